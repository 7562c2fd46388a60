"""Whole runs on the demo data: what lands in the run folder, determinism, resume, learning."""

import importlib.metadata
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mer_bench.config import build_config
from mer_bench.errors import RunError
from mer_bench.pipeline import run_benchmark
from mer_bench.plugin_manager import load_plugins
from mer_bench.registry import load_registry
from mer_bench.types import QUADRANTS, Clip, quadrant_index
from tests.conftest import BUILTINS, REPO, run_cli

REFERENCE = REPO / "tests" / "data" / "reference"


def tiny_config(**overrides):
    values = {"model": "logmel-mlp", "datasets": "demo-tiny", "preset": "quick", "seed": 5, "protocol_settings": {"test_size": 0.2}}
    values.update(overrides)
    return build_config(load_registry(), values)


@pytest.mark.slow
def test_the_demo_benchmark_learns_well_above_chance(tmp_path):
    plugins = load_plugins(BUILTINS, entry_points=False)
    config = build_config(load_registry(), {"model": "logmel-mlp", "datasets": "demo", "preset": "quick"})
    folder = run_benchmark(config, plugins, tmp_path / "runs")
    summary = json.loads((folder.path / "summary.json").read_text())
    assert summary["metrics"]["accuracy"]["mean"] > 0.5
    assert summary["metrics"]["macro_f1"]["mean"] > 0.5
    report = pd.read_csv(folder.path / "prep-report.csv")
    assert {"too-short", "balance"} <= set(report["reason"])
    tracks = pd.read_csv(folder.path / "tracks.csv")
    assert tracks["quadrant"].value_counts().nunique() == 1  # balanced
    assert len(tracks) + len(report) == 4 * 60 + 6  # every generated track is kept or reported


def test_run_folder_holds_manifest_splits_and_folds(tiny_plugins, tmp_path):
    folder = run_benchmark(tiny_config(), tiny_plugins, tmp_path / "runs", command=["mer-bench", "run"])
    manifest = json.loads((folder.path / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 5 and manifest["model"]["settings"]["epochs"] == 120
    assert manifest["versions"]["scikit-learn"] != "not installed"
    assert manifest["versions"]["keras"] == importlib.metadata.version("keras")  # installed by the dev extra
    assert len(manifest["data"]["demo-tiny"]["fingerprint"]) == 64
    assert len(manifest["unit_seeds"]) == 5 and len(set(manifest["unit_seeds"])) == 5
    assert manifest["format_version"] == 3 and manifest["units"] == [f"Fold {k}" for k in range(1, 6)]
    assert manifest["protocol"]["name"] == "holdout-kfold" and manifest["protocol"]["measured"]["folds"] == 5
    splits = pd.read_csv(folder.path / "splits.csv")
    assert list(splits.columns) == ["unit", "label", "role", "uid", "dataset", "track_id", "quadrant", "song_key", "stratum"]
    test_uids = set(splits.loc[splits.role == "test", "uid"])
    for fold in range(1, 6):
        predictions = pd.read_csv(folder.path / f"unit-{fold}" / "predictions.csv")
        assert set(predictions["uid"]) == test_uids
        assert np.allclose(predictions[[f"p_{q}" for q in QUADRANTS]].sum(axis=1), 1.0)
        history = pd.read_csv(folder.path / f"unit-{fold}" / "history.csv")
        assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history.columns)
    assert not list(folder.path.glob("*.partial"))
    assert manifest["scales"] == {"demo-tiny": {"low": -1.0, "high": 1.0}}
    # One training track of unit 1 per quadrant, the first by uid, with its 192 logmel-stats values.
    dev = splits[(splits.unit == 1) & (splits.role == "train")].sort_values("uid")
    with np.load(folder.path / "feature-examples.npz") as examples:
        for q in QUADRANTS:
            assert str(examples[f"{q}_uid"]) == dev.loc[dev.quadrant == q, "uid"].iloc[0]
            assert examples[q].shape == (192,)
    # The excluded tracks keep their labels in the report.
    report = pd.read_csv(folder.path / "prep-report.csv")
    assert list(report.columns) == ["dataset", "track_id", "stage", "reason", "detail", "quadrant", "arousal", "valence"]
    assert report["valence"].notna().all() and report["quadrant"].isin(QUADRANTS).all()
    # holdout-kfold became a plugin without changing a result: the same seed gives what the
    # welded-in split gave before (recorded from that code on this very config).
    reference = json.loads((REFERENCE / "holdout-kfold-demo-tiny-results.json").read_text())
    for unit, expected in reference.items():
        metrics = json.loads((folder.path / f"unit-{unit}" / "metrics.json").read_text())
        predictions = pd.read_csv(folder.path / f"unit-{unit}" / "predictions.csv")
        assert metrics["epochs"] == expected["epochs"], f"unit {unit}"
        assert metrics["accuracy"] == pytest.approx(expected["accuracy"]), f"unit {unit}"
        assert dict(zip(predictions["uid"], predictions["predicted"])) == expected["predicted"], f"unit {unit}"


def test_early_stopping_restores_the_best_validation_epoch(tiny_plugins, tmp_path):
    folder = run_benchmark(tiny_config(), tiny_plugins, tmp_path / "runs")
    factory = tiny_plugins.model("logmel-mlp")
    model = factory.load(folder.path / "unit-1" / "model")
    history = pd.read_csv(folder.path / "unit-1" / "history.csv")
    splits = pd.read_csv(folder.path / "splits.csv")
    val = splits[(splits.role == "val") & (splits.unit == 1)]
    extractor = tiny_plugins.feature("logmel-stats")
    settings = extractor.settings_model()
    tracks = pd.read_csv(folder.path / "tracks.csv").set_index("uid").loc[val["uid"]]
    root = json.loads((folder.path / "manifest.json").read_text())["data"]["demo-tiny"]["root"]
    clips = [Clip(u, "demo-tiny", _audio(root, u), r.clip_start_s, 24.0) for u, r in tracks.iterrows()]
    x = np.stack([extractor.extract(c, settings) for c in clips])
    proba = model.predict_proba(x)
    y = quadrant_index(val["quadrant"])
    loss = -np.mean(np.log(proba[np.arange(len(y)), y]))
    assert loss == pytest.approx(history["val_loss"].min(), rel=1e-6)
    assert history["val_loss"].idxmin() < len(history) - 1  # it trained past the best epoch


def _audio(root, uid):
    from pathlib import Path

    track = uid.split("/", 1)[1]
    return next((Path(root) / "audio").glob(f"{track}.*"))


def test_same_seed_gives_identical_splits_and_scores(tiny_plugins, tmp_path):
    a = run_benchmark(tiny_config(), tiny_plugins, tmp_path / "a")
    b = run_benchmark(tiny_config(), tiny_plugins, tmp_path / "b")
    assert (a.path / "splits.csv").read_bytes() == (b.path / "splits.csv").read_bytes()
    assert json.loads((a.path / "summary.json").read_text())["metrics"] == json.loads(
        (b.path / "summary.json").read_text()
    )["metrics"]
    c = run_benchmark(tiny_config(seed=6), tiny_plugins, tmp_path / "c")
    assert (a.path / "splits.csv").read_bytes() != (c.path / "splits.csv").read_bytes()


def test_resume_finishes_missing_folds_with_the_same_result(tiny_plugins, tmp_path):
    folder = run_benchmark(tiny_config(), tiny_plugins, tmp_path / "runs")
    complete = json.loads((folder.path / "summary.json").read_text())
    kept = (folder.path / "unit-1" / "metrics.json").stat().st_mtime_ns
    for fold in (2, 3, 4):
        shutil.rmtree(folder.path / f"unit-{fold}")
    (folder.path / "summary.json").unlink()
    (folder.path / "unit-4.partial").mkdir()  # what a kill during fold 4 leaves
    run_benchmark(tiny_config(), tiny_plugins, tmp_path / "runs", resume=folder.run_id)
    resumed = json.loads((folder.path / "summary.json").read_text())
    assert resumed["metrics"] == complete["metrics"]
    assert (folder.path / "unit-1" / "metrics.json").stat().st_mtime_ns == kept
    assert not (folder.path / "unit-4.partial").exists()


def test_resume_refuses_other_settings_or_changed_data(tiny_plugins, tmp_path, cache_root):
    data = tmp_path / "data"
    shutil.copytree(tiny_plugins.dataset("demo-tiny").default_root(), data)
    config = tiny_config(paths={"demo-tiny": str(data)})
    folder = run_benchmark(config, tiny_plugins, tmp_path / "runs")
    manifest_data = json.loads((folder.path / "manifest.json").read_text())["data"]
    with pytest.raises(RunError, match=r"other settings \(seed: 5 -> 6\)"):
        run_benchmark(tiny_config(seed=6, paths={"demo-tiny": str(data)}), tiny_plugins, tmp_path / "runs", resume=folder.run_id)
    # The audio of one track re-encoded (the same labels): finished folds saw the old audio.
    (folder.path / "unit-3" / "metrics.json").unlink()
    annotations = pd.read_csv(data / "annotations.csv", dtype={"track_id": str})
    first = data / "audio" / annotations["file"][0]
    audio, rate = sf.read(first)
    sf.write(first, 0.5 * audio, rate, format=sf.info(first).format)
    with pytest.raises(RunError, match="audio or labels of demo-tiny changed since it started"):
        run_benchmark(config, tiny_plugins, tmp_path / "runs", resume=folder.run_id)
    assert not (folder.path / "unit-3" / "metrics.json").exists()  # nothing was run on the new data
    assert json.loads((folder.path / "manifest.json").read_text())["data"] == manifest_data
    # A track dropped from the annotations is refused the same way.
    sf.write(first, audio, rate, format=sf.info(first).format)
    annotations.iloc[1:].to_csv(data / "annotations.csv", index=False)
    with pytest.raises(RunError, match="audio or labels of demo-tiny changed"):
        run_benchmark(config, tiny_plugins, tmp_path / "runs", resume=folder.run_id)


def test_the_data_fingerprint_follows_audio_content_and_labels():
    from mer_bench.pipeline import data_fingerprints

    base = pd.DataFrame(
        {"dataset": "d", "track_id": ["1", "2"], "quadrant": ["A+V+", "A-V-"], "arousal": [0.5, -0.5],
         "valence": [0.5, -0.5], "decoded_s": [30.0, 31.0], "audio_digest": ["a" * 64, "b" * 64]}
    )
    first = data_fingerprints(base)["d"]
    assert data_fingerprints(base.iloc[::-1])["d"] == first  # order does not matter
    assert data_fingerprints(base.assign(audio_digest=["a" * 64, "c" * 64]))["d"] != first
    assert data_fingerprints(base.assign(valence=[0.5, -0.4]))["d"] != first


def test_a_run_folder_of_another_format_is_refused_in_one_line(tmp_path):
    old = tmp_path / "runs" / "20250101-000000-effnetb3-abcdef"
    (old / "fold-1").mkdir(parents=True)
    # What mer-bench wrote before protocols were plugins: no format_version, folds in the config.
    manifest = {"run_id": old.name, "mer_bench_version": "0.4.0", "config": {"folds": 5, "test_size": 0.1}}
    (old / "manifest.json").write_text(json.dumps(manifest))
    (old / "summary.json").write_text(json.dumps({"run_id": old.name, "folds": 5}))
    expected = (
        f"run {old.name} was written by mer-bench 0.4.0 in run-folder format 1; this mer-bench reads format 3: "
        "re-run it, or read it with the mer-bench that wrote it"
    )
    for args in (["report", old.name], ["leaderboard", old.name], ["run", "--resume", old.name]):
        result = run_cli(*args, "--runs-dir", str(tmp_path / "runs"))
        assert result.returncode == 1 and result.stderr.strip() == f"error: {expected}", result.stderr
    # A leaderboard over the whole runs folder leaves it out, says so, and shows the rest.
    result = run_cli("leaderboard", "--runs-dir", str(tmp_path / "runs"), "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"left out 1 run(s) in another run-folder format (re-run them to compare): {old.name}"
    assert "published" in result.stdout
