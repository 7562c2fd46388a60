"""Cross-dataset protocols run as a user runs them: three demo sources that share the
emotion cues but sound different, lodo and cross through the CLI, their tables, the
heatmap and the HTML report."""

import json
import shutil

import pandas as pd
import pytest

from tests.conftest import TINY_SOURCES, make_distribution, run_cli

SOURCES = ["src-live", "src-lofi", "src-studio"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_distribution(
        tmp_path_factory.mktemp("site"), "mer-bench-sources", "1.0", {"tiny_sources": TINY_SOURCES}, {"sources": "tiny_sources"}
    )


def run(site, runs, protocol, *extra):
    result = run_cli(
        "run", "--model", "logmel-mlp", "--datasets", ",".join(SOURCES), "--preset", "quick", "--seed", "2",
        "--protocol", protocol, *extra, "--no-progress", "--runs-dir", str(runs), site=site, env={"COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = runs.iterdir()
    return result, folder


@pytest.mark.slow
def test_cross_gives_the_train_by_test_matrix_with_a_generalisation_gap(sources, tmp_path):
    result, folder = run(sources, tmp_path / "runs", "cross")
    assert "Cross-dataset accuracy: rows fitted on" in result.stdout
    assert "src-lofi ->" in result.stdout  # a unit's column in Table 3
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["units"]) == 9 and summary["test_set"] is None
    metrics = [json.loads((folder / f"unit-{k}" / "metrics.json").read_text()) for k in range(1, 10)]
    within = [m["accuracy"] for m in metrics if m["train_datasets"] == m["test_datasets"]]
    across = [m["accuracy"] for m in metrics if m["train_datasets"] != m["test_datasets"]]
    assert len(within) == 3 and len(across) == 6
    # The sources share the cues: a model learns them within a source (chance is 0.25),
    # and loses much of it on a source that sounds different.
    assert sum(within) / 3 > 0.5 and sum(within) / 3 > sum(across) / 6 + 0.15
    assert (folder / "figures" / "cross-datasets.png").read_bytes()[:4] == b"\x89PNG"

    report = run_cli("report", folder.name, "--runs-dir", str(folder.parent), "--format", "json")
    matrix = pd.DataFrame(json.loads(report.stdout)["cross"]["accuracy"]).set_index("Trained on")
    assert list(matrix.index) == SOURCES and list(matrix.columns) == SOURCES
    for m in metrics:
        assert matrix.loc[m["train_datasets"][0], m["test_datasets"][0]] == pytest.approx(m["accuracy"])
    html = tmp_path / "report.html"
    assert run_cli("report", folder.name, "--runs-dir", str(folder.parent), "--html", str(html)).returncode == 0
    page = html.read_text()
    assert "Cross-dataset matrix (rows: fitted on, columns: scored on)" in page
    # The page links what it has: the matrix, and no shared test set (cross has none).
    assert '<a href="#cross">' in page and 'href="#test-set"' not in page
    assert 'id="figure-cross-datasets"' in page and "data:image/png;base64," in page.split('id="figure-cross-datasets"')[1][:400]


@pytest.mark.slow
def test_lodo_scores_each_source_with_a_model_that_never_heard_it(sources, tmp_path):
    result, folder = run(sources, tmp_path / "runs", "lodo")
    for name in SOURCES:
        assert f"test on {name}" in result.stdout
    splits = pd.read_csv(folder / "splits.csv")
    for _unit, rows in splits.groupby("unit"):
        tested = rows.loc[rows.role == "test", "dataset"].unique().tolist()
        assert len(tested) == 1 and tested[0] not in set(rows.loc[rows.role != "test", "dataset"])
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["protocol"]["name"] == "lodo" and summary["protocol"]["measured"] is None
    assert "The test set:" not in result.stdout  # no shared test set, so no fold ensemble
    # Resuming a finished unit is kept: remove one unit, resume, and the same result comes back.
    before = (folder / "unit-2" / "metrics.json").read_bytes()
    kept = (folder / "unit-1" / "metrics.json").stat().st_mtime_ns
    shutil.rmtree(folder / "unit-2")
    (folder / "summary.json").unlink()
    resumed = run_cli("run", "--resume", folder.name, "--runs-dir", str(folder.parent), "--no-progress", "--no-figures", site=sources)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (folder / "unit-2" / "metrics.json").read_bytes() == before
    assert (folder / "unit-1" / "metrics.json").stat().st_mtime_ns == kept
