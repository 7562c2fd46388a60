"""The plugin guide's example is installed with pip and run; the docs cover every hook."""

import json
import re

import pandas as pd
import pytest

from mer_bench import hookspecs
from tests.conftest import REPO, pip_install_target, run_cli

GUIDE = REPO / "docs" / "writing-a-plugin.md"
EXAMPLE = REPO / "docs" / "examples" / "mer-bench-example"


def test_the_guide_shows_the_example_files_verbatim():
    text = GUIDE.read_text()
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    assert {name for name, _ in blocks} == {"mer_bench_example.py", "pyproject.toml"}
    for name, body in blocks:
        assert body == (EXAMPLE / name).read_text(), f"{name} in the guide differs from {EXAMPLE / name}"


def test_every_hook_is_documented():
    text = GUIDE.read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("mer_bench_")]
    assert len(hooks) == 7
    for name in hooks:
        assert f"### `{name}`" in text
        assert getattr(hookspecs, name).__doc__.strip()


@pytest.mark.slow
def test_the_example_installs_as_a_distribution_and_runs(tmp_path):
    site = tmp_path / "site"
    pip_install_target(EXAMPLE, site)
    listing = json.loads(run_cli("plugins", "--json", site=site).stdout)
    ours = {(p["kind"], p["name"]): p["source"] for p in listing["plugins"] if not p["source"]["builtin"]}
    assert ours.keys() == {("dataset", "my-songs"), ("model", "nearest-centroid"), ("protocol", "shuffle-split")}
    assert ours[("model", "nearest-centroid")]["distribution"] == "mer-bench-example"
    assert listing["failures"] == []

    # Its dataset in its own layout, built from the demo's audio and labels (rescaled to 1..9).
    from mer_bench_plugins.datasets.demo import DemoDataset

    demo = DemoDataset(name="demo-tiny", tracks_per_quadrant=12, seed=11).default_root()
    root = tmp_path / "data" / "MySongs_v1"
    (root / "audio").mkdir(parents=True)
    labels = pd.read_csv(demo / "annotations.csv", dtype={"track_id": str})
    for f in labels["file"]:
        (root / "audio" / f).symlink_to(demo / "audio" / f)
    rows = labels.assign(valence=labels.valence * 4 + 5, arousal=labels.arousal * 4 + 5)[["file", "valence", "arousal"]]
    rows = pd.concat([rows, pd.DataFrame([{"file": "lost.mp3", "valence": 2.0, "arousal": 2.0}])])
    rows.to_csv(root / "labels.csv", index=False)

    runs = tmp_path / "runs"
    result = run_cli(
        "run", "--model", "nearest-centroid", "--datasets", "my-songs", "--data-dir", str(tmp_path / "data"),
        "--seed", "1", "--no-progress", "--runs-dir", str(runs), site=site,
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = list(runs.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["units"] == 5 and summary["datasets"] == ["my-songs"]
    report = pd.read_csv(run_dir / "prep-report.csv")
    assert ("lost", "audio-missing") in set(zip(report.track_id, report.reason))
    assert "mer-bench-example" in json.loads((run_dir / "manifest.json").read_text())["versions"]

    # Its protocol: two independent splits, each unit scored on its own test tracks.
    shuffled = run_cli(
        "run", "--model", "nearest-centroid", "--datasets", "my-songs", "--data-dir", str(tmp_path / "data"),
        "--protocol", "shuffle-split", "--set", "protocol.splits=2", "--seed", "1", "--no-progress", "--no-figures",
        "--runs-dir", str(tmp_path / "shuffled"), site=site,
    )
    assert shuffled.returncode == 0, shuffled.stderr
    assert "Split 1" in shuffled.stdout and "Split 2" in shuffled.stdout
    (run_dir,) = list((tmp_path / "shuffled").iterdir())
    splits = pd.read_csv(run_dir / "splits.csv")
    assert splits.drop_duplicates("unit")["label"].tolist() == ["Split 1", "Split 2"]
    tests = [set(splits.loc[(splits.unit == k) & (splits.role == "test"), "uid"]) for k in (1, 2)]
    assert tests[0] and tests[1] and tests[0] != tests[1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["protocol"]["name"] == "shuffle-split" and summary["test_set"] is None
