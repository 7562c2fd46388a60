"""Comparing runs: paired tests on shared splits, and re-runs against their published numbers."""

import json
from math import comb

import numpy as np
import pandas as pd
import pytest

from mer_bench.plugin_manager import load_plugins
from mer_bench.registry import load_registry
from mer_bench.report import leaderboard
from mer_bench.results import RunFolder
from mer_bench.run_records import FORMAT_VERSION, Manifest, ProtocolRecord, Summary, TaskRecord
from tests.conftest import BUILTINS, run_cli


def mcnemar_by_hand(only_a: int, only_b: int) -> float:
    """Two-sided exact binomial p-value at 0.5: twice the smaller tail, at most 1."""
    n = only_a + only_b
    return 1.0 if n == 0 else min(1.0, 2 * sum(comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """logmel-mlp and majority on the same tiny demo splits, and majority under another seed."""
    from tests.conftest import TINY_DEMO, make_distribution

    site = make_distribution(tmp_path_factory.mktemp("site"), "mer-bench-tiny", "1.0", {"tiny_demo": TINY_DEMO}, {"tiny": "tiny_demo"})
    folder = tmp_path_factory.mktemp("runs")
    ids = {}
    for name, model, seed in (("mlp", "logmel-mlp", "3"), ("majority", "majority", "3"), ("other", "majority", "4")):
        out = run_cli(
            "run", "--model", model, "--datasets", "demo-tiny", "--preset", "quick", "--seed", seed, "--no-progress",
            "--runs-dir", str(folder / name), site=site,
        )
        assert out.returncode == 0, out.stderr
        (run,) = (folder / name).iterdir()
        target = folder / "all" / run.name
        target.parent.mkdir(exist_ok=True)
        run.rename(target)
        ids[name] = run.name
    return folder / "all", ids


def test_compare_gives_mcnemar_p_values_that_match_a_hand_computation(runs):
    folder, ids = runs
    out = run_cli("compare", ids["mlp"], ids["majority"], "--runs-dir", str(folder), "--format", "json", "--resamples", "300")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    a, b = (pd.concat([pd.read_csv(folder / ids[n] / f"unit-{k}" / "predictions.csv").assign(fold=k) for k in range(1, 6)])
            for n in ("mlp", "majority"))
    both = a.merge(b, on=["fold", "uid"], suffixes=("_a", "_b"))
    right_a, right_b = both.predicted_a == both.true_a, both.predicted_b == both.true_b
    rows = result["units"]
    assert [r["Unit"] for r in rows] == ["Fold 1", "Fold 2", "Fold 3", "Fold 4", "Fold 5", "Fold ensemble"]
    for k, row in enumerate(rows[:5]):
        part = both.fold == k + 1
        only_a, only_b = int((right_a & ~right_b & part).sum()), int((~right_a & right_b & part).sum())
        assert (row["Only A right"], row["Only B right"]) == (only_a, only_b)
        assert row["McNemar p"] == pytest.approx(mcnemar_by_hand(only_a, only_b), rel=1e-9)
        assert row[f"Accuracy {ids['mlp']}"] == pytest.approx(right_a[part].mean())
    # The fold ensemble, by hand: each run's mean probability per test track, its argmax.
    quadrants = ["A+V+", "A+V-", "A-V-", "A-V+"]
    columns = [f"p_{q}" for q in quadrants]
    ensemble = {}
    for name, table in (("a", a), ("b", b)):
        mean = table.groupby("uid")[columns].mean()
        ensemble[name] = pd.Series([quadrants[i] for i in np.argmax(mean.to_numpy(), axis=1)], index=mean.index)
    truth = a.groupby("uid")["true"].first()
    ens_a, ens_b = ensemble["a"] == truth, ensemble["b"] == truth
    only_a, only_b = int((ens_a & ~ens_b).sum()), int((~ens_a & ens_b).sum())
    last = rows[5]
    assert last["Tracks"] == len(truth) == len(a) // 5  # one row per test track, not five
    assert (last["Only A right"], last["Only B right"]) == (only_a, only_b)
    assert last["McNemar p"] == pytest.approx(mcnemar_by_hand(only_a, only_b), rel=1e-9)
    # The tiny demo's test set has a handful of tracks: too few for significance, so only
    # the interval's consistency is checked here.
    low, high = result["interval"]
    assert low <= result["macro_f1_difference"] <= high and low < high
    text = run_cli("compare", ids["mlp"], ids["majority"], "--runs-dir", str(folder), "--resamples", "200")
    assert "McNemar" in text.stdout and "macro F1, A - B: " in text.stdout


def test_runs_split_differently_are_not_paired(runs):
    folder, ids = runs
    out = run_cli("compare", ids["mlp"], ids["other"], "--runs-dir", str(folder))
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: runs {ids['mlp']} and {ids['other']} were split differently (they differ in seed)")


def test_a_rerun_of_a_published_system_shows_its_difference(tmp_path):
    registry = load_registry()
    plugins = load_plugins(BUILTINS, entry_points=False)

    def run(run_id, model, datasets, accuracy, protocol="holdout-kfold", task="quadrants", **settings):
        """A finished run's records as the pipeline writes them, with the protocol plugin's own description."""
        plugin = plugins.protocol(protocol)
        chosen = plugin.settings_model(**settings)
        record = ProtocolRecord(
            name=protocol, settings=chosen.model_dump(), description=plugin.describe(chosen),
            measured=plugin.measured(chosen),
        )
        stat = {"mean": accuracy, "std": 0.01}
        chosen_task = plugins.task(task)
        task_record = TaskRecord(name=task, kind="classification", classes=list(chosen_task.classes), description=task)
        common = {"format_version": FORMAT_VERSION, "run_id": run_id, "protocol": record, "task": task_record,
                  "units": ["Fold 1"], "seed": 0}
        folder = RunFolder.create(tmp_path, run_id)
        folder.write_json("manifest.json", Manifest(
            **common, mer_bench_version="test", command=[], config={}, model={"name": model, "settings": {}},
            feature={"name": "mel-image", "settings": {}}, unit_seeds=[1], versions={}, git=None, host={},
            data={d: {"root": f"/data/{d}", "fingerprint": "0" * 64} for d in datasets}, selection={}, scales={},
        ).model_dump(mode="json"))
        folder.write_json("summary.json", Summary(
            **common, model=model, feature="mel-image", datasets=datasets, preset="paper", tracks={}, excluded={},
            song_groups={}, feature_cache={},
            metrics={"units": 5, "accuracy": stat, "macro_f1": stat, "micro_f1": stat, "per_class": {}, "confusion": []},
        ).model_dump(mode="json"))
        return folder

    paper = run("r1", "effnetb3", ["4q", "pmemo", "emomusic", "bimodal"], 0.70)
    demo = run("r2", "effnetb3", ["demo"], 0.70)
    three_folds = run("r3", "effnetb3", ["4q", "pmemo", "emomusic", "bimodal"], 0.70, folds=3)
    repeated = run("r4", "effnetb3", ["4q", "pmemo", "emomusic", "bimodal"], 0.70, repeats=2)
    lodo = run("r5", "effnetb3", ["4q", "pmemo", "emomusic", "bimodal"], 0.50, protocol="lodo")
    arousal = run("r6", "effnetb3", ["4q", "pmemo", "emomusic", "bimodal"], 0.80, task="arousal")
    table = leaderboard(registry, [paper, demo, three_folds, repeated, lodo, arousal]).set_index(["Source", "Metric"])
    assert table.loc[("run r1", "accuracy"), "vs published"] == "+0.060 (Cazzaniga et al. 2024)"
    # The paper's F1 has no stated averaging, a demo run is not the paper's data, the
    # published row's fields say 5 folds and one split, lodo is another question, and
    # high/low arousal another task.
    published = next(p for p in registry.published if p.model == "effnetb3" and p.metric == "accuracy")
    assert (published.measured.folds, published.measured.test_size) == (5, 0.1)
    assert pd.isna(table.loc[("run r1", "macro_f1"), "vs published"])
    for other in ("r2", "r3", "r4", "r5", "r6"):
        assert pd.isna(table.loc[(f"run {other}", "accuracy"), "vs published"])
    assert table.loc[("Cazzaniga et al. 2024", "accuracy"), "Printed in"].startswith("Cazzaniga et al. 2024, section 5")
    # Re-runs are keyed by task, protocol, datasets and data, and grouped in that order.
    reruns = table[table["Kind"] == "re-run"].reset_index()
    assert reruns["Task"].tolist() == ["arousal"] * 2 + ["quadrants"] * 10
    assert reruns["Protocol"].tolist() == ["holdout-kfold"] * 10 + ["lodo"] * 2
    assert reruns.loc[reruns["Source"] == "run r5", "Protocol in words"].iloc[0].startswith("mer-bench paper: leave one dataset out")
    assert reruns["Data"].str.fullmatch("[0-9a-f]{8}").all()


@pytest.mark.parametrize("fmt", ["terminal", "markdown", "csv", "latex", "json"])
def test_leaderboard_over_several_runs_renders_in_every_format(runs, fmt):
    folder, ids = runs
    out = run_cli("leaderboard", "--runs-dir", str(folder), "--format", fmt, env={"COLUMNS": "400"})
    assert out.returncode == 0, out.stderr
    published = load_registry().published
    if fmt == "csv":
        table = pd.read_csv(pd.io.common.StringIO(out.stdout))
    elif fmt == "json":
        table = pd.DataFrame(json.loads(out.stdout))
    else:
        for run_id in ids.values():
            assert run_id in out.stdout
        assert "Sung & Wei 2021" in out.stdout.replace("\\&", "&")  # LaTeX escapes the ampersand
        if fmt == "latex":
            assert out.stdout.count("\\begin{tabular}") == 1 and "\\toprule" in out.stdout
        if fmt == "markdown":
            # A header, its rule, one row per published result and two per run (accuracy, macro F1).
            rows = [line for line in out.stdout.splitlines() if line.startswith("|")]
            assert len(rows) == 2 + len(published) + 2 * len(ids)
        return
    assert len(table) == len(published) + 2 * len(ids)
    reruns = table[table["Kind"] == "re-run"]
    assert sorted(set(reruns["Source"])) == sorted(f"run {i}" for i in ids.values())
    assert reruns["Std"].notna().all() and table.loc[table["Kind"] == "published", "Std"].isna().all()
    mlp = json.loads((folder / ids["mlp"] / "summary.json").read_text())["metrics"]["accuracy"]["mean"]
    row = reruns[(reruns["Source"] == f"run {ids['mlp']}") & (reruns["Metric"] == "accuracy")]
    assert float(row["Value"].iloc[0]) == pytest.approx(mlp)
