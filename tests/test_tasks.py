"""Tasks: what a run predicts. High/low arousal and valence on the same tracks and units as quadrants."""

import json

import pandas as pd
import pytest

from mer_bench.config import build_config
from mer_bench.errors import ConfigError, PluginCallError
from mer_bench.pipeline import run_benchmark
from mer_bench.predict import predict_files
from mer_bench.registry import load_registry
from tests.conftest import TINY_DEMO, load_with_module, run_cli, write_tone

ODD_PLUGINS = TINY_DEMO + """
import pandas as pd
from mer_bench.types import Task
from mer_bench_plugins.models.floor import FloorFactory


class Ranking(Task):
    name = "ranking"
    kind = "ranking"
    classes = ("first", "second")

    def labels(self, tracks):
        return pd.Series("first", index=tracks.index)


class Genre(Task):
    name = "by-genre"
    kind = "classification"
    classes = ("rock", "pop")

    def labels(self, tracks):
        return pd.Series("jazz", index=tracks.index)


class Regressor(FloorFactory):
    task_kinds = ("regression",)


@hookimpl
def mer_bench_tasks():
    return [Ranking(), Genre()]


@hookimpl
def mer_bench_models():
    return [Regressor("regressor", "most_frequent")]
"""


def config(**values):
    return build_config(
        load_registry(),
        {"datasets": "demo-tiny", "preset": "quick", "seed": 5, "protocol_settings": {"test_size": 0.2}, **values},
    )


# The demo's arousal cues (tempo, loudness) show in log-mel statistics more plainly than its
# valence cue (the mode), so on 8 test tracks arousal is learnt almost perfectly and valence less.
@pytest.mark.parametrize("task, classes, margin", [("arousal", ["A+", "A-"], 0.3), ("valence", ["V+", "V-"], 0.1)])
def test_high_low_tasks_learn_their_two_classes_on_the_quadrants_units(tiny_plugins, tmp_path, task, classes, margin):
    runs = tmp_path / "runs"
    learnt = run_benchmark(config(model="logmel-mlp", task=task), tiny_plugins, runs)
    floor = run_benchmark(config(model="majority", task=task), tiny_plugins, runs)
    quadrants = run_benchmark(config(model="majority"), tiny_plugins, runs)
    summary = json.loads((learnt.path / "summary.json").read_text())
    assert summary["task"]["name"] == task and summary["task"]["classes"] == classes
    assert sorted(summary["metrics"]["per_class"]) == sorted(classes)
    assert len(summary["metrics"]["confusion"]) == 2
    # Each track's class is its quadrant's sign on the dimension.
    predictions = pd.read_csv(learnt.path / "unit-1" / "predictions.csv")
    assert list(predictions.columns) == ["uid", "true", "predicted", *(f"p_{c}" for c in classes)]
    tracks = pd.read_csv(learnt.path / "tracks.csv").set_index("uid")
    position = 0 if task == "arousal" else 2
    assert (predictions["true"] == tracks.loc[predictions["uid"], "quadrant"].str[position:position + 2].to_numpy()).all()
    # The model learns them: above the floor's accuracy and macro F1 on the same units.
    floor_metrics = json.loads((floor.path / "summary.json").read_text())["metrics"]
    for metric in ("accuracy", "macro_f1"):
        assert summary["metrics"][metric]["mean"] > floor_metrics[metric]["mean"] + margin, metric
    # The same tracks in the same units, whatever the task.
    assert (learnt.path / "splits.csv").read_bytes() == (quadrants.path / "splits.csv").read_bytes()
    # The report and predict speak the task's classes.
    report = run_cli("report", learnt.run_id, "--runs-dir", str(runs), "--format", "json")
    table4 = json.loads(report.stdout)["table4"]
    assert [row["Class"] for row in table4] == classes


def test_predict_names_its_column_after_the_task(tiny_plugins, tmp_path):
    runs = tmp_path / "runs"
    folder = run_benchmark(config(model="majority", task="valence"), tiny_plugins, runs)
    clip = write_tone(tmp_path / "clip.wav", 30.0)
    table, excluded = predict_files(folder, tiny_plugins, [clip], unit=1)
    assert not excluded and list(table.columns) == ["file", "valence", "p_V+", "p_V-"]
    assert table["valence"].iloc[0] in ("V+", "V-")


def test_a_task_or_model_that_cannot_run_is_one_clear_error_before_any_work(tmp_path, monkeypatch):
    plugins = load_with_module(tmp_path, monkeypatch, "odd_tasks", ODD_PLUGINS)
    runs = tmp_path / "runs"
    with pytest.raises(PluginCallError, match="task plugin 'ranking' has kind 'ranking'; mer-bench runs classification, regression tasks"):
        run_benchmark(config(model="majority", task="ranking"), plugins, runs)
    with pytest.raises(ConfigError, match="model 'regressor' learns regression tasks; task 'quadrants' is a classification task"):
        run_benchmark(config(model="regressor"), plugins, runs)
    assert not runs.exists() or not any(runs.iterdir())  # nothing was started
    with pytest.raises(PluginCallError, match=r"task plugin 'by-genre': labels gave 40 track\(s\) no class of rock, pop"):
        run_benchmark(config(model="majority", task="by-genre"), plugins, runs)
    unknown = run_cli("run", "--model", "majority", "--datasets", "demo", "--task", "mood")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: unknown task plugin 'mood'; known task plugins: arousal, quadrants, va, valence"
