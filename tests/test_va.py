"""The va task: valence/arousal regression on a common scale, scored per dimension and through its quadrants."""

import json

import numpy as np
import pandas as pd
import pytest

from mer_bench import report as reports
from mer_bench.config import build_config
from mer_bench.errors import ConfigError, PluginCallError
from mer_bench.figures import value_predictions
from mer_bench.html_report import run_report_html
from mer_bench.metrics import concordance, regression_score
from mer_bench.pipeline import run_benchmark
from mer_bench.predict import predict_files
from mer_bench.registry import load_registry
from mer_bench.results import RunFolder
from mer_bench.types import Scale
from mer_bench_plugins.tasks.va import ValenceArousal
from tests import layouts
from tests.conftest import TINY_DEMO, load_with_module, run_cli, write_tone


def config(**values):
    return build_config(
        load_registry(),
        {"datasets": "demo-tiny", "preset": "quick", "seed": 5, "protocol_settings": {"test_size": 0.2}, "task": "va", **values},
    )


def test_regression_metrics_match_hand_computations():
    y = np.array([[0.1, -0.5], [0.4, 0.2], [-0.3, 0.9], [0.8, 0.0]])
    p = np.array([[0.2, -0.4], [0.3, 0.0], [-0.1, 0.7], [0.6, 0.3]])
    scores = regression_score(y, p, ("valence", "arousal"))
    t, q = y[:, 0], p[:, 0]
    assert scores["valence"]["r2"] == pytest.approx(1 - np.sum((t - q) ** 2) / np.sum((t - t.mean()) ** 2))
    assert scores["valence"]["pearson_r"] == pytest.approx(np.corrcoef(t, q)[0, 1])
    assert scores["valence"]["rmse"] == pytest.approx(np.sqrt(np.mean((t - q) ** 2)))
    # Lin's CCC: 1 for a perfect prediction, below r for a shifted one.
    assert concordance(t, t) == pytest.approx(1.0)
    assert concordance(t, t + 0.5) < np.corrcoef(t, t + 0.5)[0, 1] == pytest.approx(1.0)
    constant = regression_score(y, np.zeros_like(y), ("valence", "arousal"))
    assert constant["arousal"]["pearson_r"] == 0.0 and constant["arousal"]["ccc"] == 0.0


def test_every_scale_maps_onto_minus_one_to_one_with_the_midpoint_at_zero():
    task = ValenceArousal()
    tracks = pd.DataFrame(
        {
            "dataset": ["pmemo", "pmemo", "emomusic", "bimodal", "4q"],
            "valence": [0.0, 0.5, 9.0, -2.0, np.nan],
            "arousal": [1.0, 0.75, 5.0, 4.0, np.nan],
            "quadrant": ["A+V-", "A+V-", "A-V+", "A+V-", "A+V+"],
        }
    )
    values = task.values(tracks, {"pmemo": Scale(0, 1), "emomusic": Scale(1, 9), "bimodal": Scale(-4, 4)})
    assert values.to_numpy().tolist()[:4] == [[-1.0, 1.0], [0.0, 0.5], [1.0, 0.0], [-0.5, 1.0]]
    assert values.iloc[4].isna().all()
    # The midpoint counts as low, as the label converter has it.
    assert task.label_values(values.iloc[:4]).tolist() == ["A+V-", "A+V-", "A-V+", "A+V-"]


def test_va_learns_values_well_above_the_mean_floor_and_reports_them(tiny_plugins, tmp_path):
    runs = tmp_path / "runs"
    learnt = run_benchmark(config(model="logmel-mlp"), tiny_plugins, runs)
    floor = run_benchmark(config(model="mean"), tiny_plugins, runs)
    summary = json.loads((learnt.path / "summary.json").read_text())
    floor_summary = json.loads((floor.path / "summary.json").read_text())
    assert summary["task"]["dimensions"] == ["valence", "arousal"]
    regression, floor_regression = summary["metrics"]["regression"], floor_summary["metrics"]["regression"]
    assert set(regression["arousal"]) == {"r2", "pearson_r", "ccc", "rmse"}
    # The floor predicts the training mean: no correlation, R² at most about 0.
    assert floor_regression["arousal"]["pearson_r"]["mean"] == 0 and floor_regression["arousal"]["r2"]["mean"] < 0.05
    # Arousal (tempo, loudness) is learnt from log-mel statistics; valence (the mode) is harder.
    assert regression["arousal"]["r2"]["mean"] > 0.3 and regression["arousal"]["ccc"]["mean"] > 0.6
    for dim in ("valence", "arousal"):
        assert regression[dim]["pearson_r"]["mean"] > 0.3, dim
        assert regression[dim]["rmse"]["mean"] < floor_regression[dim]["rmse"]["mean"], dim
    # Through the quadrants its values imply, the regressor also sits in the quadrant tables.
    assert summary["metrics"]["accuracy"]["mean"] > floor_summary["metrics"]["accuracy"]["mean"] + 0.15
    predictions = pd.read_csv(learnt.path / "unit-1" / "predictions.csv")
    assert list(predictions.columns) == [
        "uid", "true", "predicted", "true_valence", "true_arousal", "pred_valence", "pred_arousal",
    ]
    assert predictions[["true_valence", "true_arousal"]].abs().le(1).all().all()
    # Every fold predicted the same test tracks: the fold ensemble averages their values.
    held = summary["test_set"]["regression"]["arousal"]
    assert held["r2_mean_over_folds"]["value"] == pytest.approx(regression["arousal"]["r2"]["mean"])
    every = pd.concat(pd.read_csv(learnt.path / f"unit-{k}" / "predictions.csv") for k in range(1, 6))
    mean = every.groupby("uid")[["true_arousal", "pred_arousal"]].mean()
    from sklearn.metrics import r2_score

    assert held["ensemble_r2"]["value"] == pytest.approx(r2_score(mean["true_arousal"], mean["pred_arousal"]))
    for figure in (held["r2_mean_over_folds"], held["ensemble_r2"]):
        low, high = figure["interval"]
        assert low < figure["value"] < high
    table, title = reports.test_set_table(learnt)
    assert "R² arousal" in table.columns and "classes the values imply" in title
    assert table["Figure"].tolist()[1] == "Fold ensemble (mean of the fold models' values)"
    report = json.loads(run_cli("report", learnt.run_id, "--runs-dir", str(runs), "--format", "json").stdout)
    assert set(report["regression"]) == {"valence", "arousal"}
    assert report["regression"]["arousal"]["r2"]["mean"] == pytest.approx(regression["arousal"]["r2"]["mean"])
    assert len(value_predictions(learnt).axes) >= 2
    # compare pairs the absolute errors per track and bootstraps the R² difference.
    compared = run_cli("compare", learnt.run_id, floor.run_id, "--runs-dir", str(runs), "--format", "json",
                       "--resamples", "200")
    assert compared.returncode == 0, compared.stderr
    # The classes the value ensembles imply get the overall McNemar row, as a classifier's would.
    overall = json.loads(compared.stdout)["units"][-1]
    assert overall["Unit"] == "Fold ensemble" and overall["Tracks"] == held["tracks"]
    values = {row["Dimension"]: row for row in json.loads(compared.stdout)["values"]}
    assert values["arousal"]["Mean abs error A"] < values["arousal"]["Mean abs error B"]
    # The p-value is Wilcoxon's on each test track's mean absolute error over the units.
    from scipy.stats import wilcoxon

    def track_errors(folder):
        table = pd.concat(pd.read_csv(folder.path / f"unit-{k}" / "predictions.csv") for k in range(1, 6))
        return (table["pred_arousal"] - table["true_arousal"]).abs().groupby(table["uid"]).mean()

    assert values["arousal"]["Wilcoxon p"] == pytest.approx(wilcoxon(track_errors(learnt), track_errors(floor)).pvalue)
    assert values["arousal"]["R² A - B"] == pytest.approx(values["arousal"]["R² A"] - values["arousal"]["R² B"])
    # predict gives each file's values and the quadrant they imply.
    table, excluded = predict_files(learnt, tiny_plugins, [write_tone(tmp_path / "tone.wav", 30.0)], unit=1)
    assert not excluded and list(table.columns) == ["file", "quadrant", "valence", "arousal"]


def test_a_dataset_without_values_is_left_out_of_va_and_said_so(tmp_path):
    root = tmp_path / "data"
    layouts.fourq(root / "MER_audio_taffc_dataset")
    layouts.emomusic(root / "emoMusic")
    runs = tmp_path / "runs"
    alone = run_cli("run", "--model", "mean", "--datasets", "4q", "--task", "va", "--data-dir", str(root),
                    "--runs-dir", str(runs), "--no-progress")
    assert alone.returncode == 1
    assert alone.stderr.startswith(
        "error: task 'va' predicts valence, arousal values, and 4q gives quadrants only, no valence or arousal "
        "values: it cannot take part. Run the task on datasets with values ("
    )
    both = run_cli("run", "--model", "mean", "--datasets", "4q,emomusic", "--task", "va", "--data-dir", str(root),
                   "--runs-dir", str(runs), "--preset", "quick", "--set", "protocol.test_size=0.25", "--no-progress", "--no-figures")
    assert both.returncode == 0, both.stderr
    assert "4q: left out of task va: gives quadrants only, no valence or arousal values" in both.stdout
    (run_dir,) = list(runs.iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["task"]["left_out"] == {"4q": "gives quadrants only, no valence or arousal values"}
    assert json.loads((run_dir / "summary.json").read_text())["datasets"] == ["emomusic"]
    assert set(pd.read_csv(run_dir / "splits.csv")["dataset"]) == {"emomusic"}
    page = run_report_html(RunFolder(run_dir))
    assert '<p class="subtitle">mean on emomusic:' in page
    assert "left out 4q: gives quadrants only, no valence or arousal values" in page


BROKEN_TASK = TINY_DEMO + """
import pandas as pd
from mer_bench.types import QUADRANTS, Task


class OneValue(Task):
    name = "loudness"
    kind = "regression"
    classes = QUADRANTS
    dimensions = ("loudness",)

    def labels(self, tracks):
        return tracks["quadrant"]

    def values(self, tracks, scales):
        return pd.DataFrame({"volume": 0.0}, index=tracks.index)


@hookimpl
def mer_bench_tasks():
    return [OneValue()]
"""


def test_a_regression_task_with_wrong_values_is_named_in_one_line(tmp_path, monkeypatch):
    plugins = load_with_module(tmp_path, monkeypatch, "broken_task", BROKEN_TASK)
    with pytest.raises(PluginCallError, match="task plugin 'loudness': values must have the columns loudness, got volume"):
        run_benchmark(config(model="mean", task="loudness"), plugins, tmp_path / "runs")
    with pytest.raises(ConfigError, match="model 'majority' learns classification tasks; task 'va' is a regression task"):
        run_benchmark(config(model="majority"), plugins, tmp_path / "runs")
