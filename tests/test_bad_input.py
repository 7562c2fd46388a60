"""Damaged data, wrong config values and unwritable folders: one clear error, nothing lost."""

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import mer_bench.results
from mer_bench.cache import FeatureCache
from mer_bench.compare import compare_runs
from mer_bench.config import build_config, read_config_file
from mer_bench.errors import CacheError, ConfigError, DatasetError, MerBenchError, RunError
from mer_bench.pipeline import run_benchmark
from mer_bench.predict import predict_files
from mer_bench.prepare import crop_tracks
from mer_bench.registry import load_registry
from mer_bench.results import RunFolder
from tests.conftest import run_cli, write_tone


@pytest.fixture
def data(tiny_plugins, tmp_path):
    """A copy of the tiny demo dataset to damage."""
    root = tmp_path / "data"
    shutil.copytree(tiny_plugins.dataset("demo-tiny").default_root(), root)
    return root


def config(**overrides):
    values = {"model": "majority", "datasets": "demo-tiny", "preset": "quick", "seed": 5, "protocol_settings": {"folds": 2}}
    return build_config(load_registry(), {**values, **overrides})


def test_audio_whose_samples_are_nan_is_excluded_as_non_finite(tmp_path):
    nan = tmp_path / "nan.wav"
    x = np.sin(np.arange(16000 * 30) / 10).astype(np.float32)
    x[16000 * 20] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    ok = write_tone(tmp_path / "ok.wav", 30.0)
    tracks = pd.DataFrame({"dataset": "d", "track_id": ["nan", "ok"], "audio_path": [nan, ok]})
    out = crop_tracks(tracks, 24.0)
    assert out.tracks["track_id"].tolist() == ["ok"]
    (excluded,) = out.excluded
    assert (excluded.reason, excluded.detail) == ("non-finite-audio", f"{nan}: samples are NaN or infinite (first at 20.00 s)")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "annotations.csv").write_text((root / "annotations.csv").read_text().splitlines()[0] + "\n"),
         r"no track is left after reading .*data in dataset 'demo-tiny' \(its loader returned no track\)"),
        (lambda root: [p.unlink() for p in (root / "audio").iterdir()],
         r"no track is left after preparation in dataset 'demo-tiny' \(54 excluded: audio-missing 54 \(e\.g\. D0001: "),
        (None, r"no track is left after preparation in dataset 'demo-tiny' \(54 excluded: too-short 54 \(e\.g\. D0001: [\d.]+ s decoded < 300 s\)\)"),
    ],
    ids=["header-only annotations", "empty audio folder", "clip longer than every track"],
)
def test_a_dataset_with_no_track_left_says_why(tiny_plugins, data, tmp_path, damage, message):
    if damage is not None:
        damage(data)
    overrides = {"clip_seconds": 300.0} if damage is None else {}
    with pytest.raises(DatasetError, match=message):
        run_benchmark(config(paths={"demo-tiny": str(data)}, **overrides), tiny_plugins, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # stopped before any run folder, the runs folder included


@pytest.mark.parametrize(
    "content, message",
    [
        (b'model_settings = "abc"\n', "model_settings: Input should be a valid dictionary"),
        (b"feature_settings = [1, 2]\n", "feature_settings: Input should be a valid dictionary"),
        (b"[paths]\ndemo = 3\n", "paths.demo: Input is not a valid path"),
        (b"clip_seconds = -4\n", "clip_seconds: Input should be greater than 0"),
        (b"clip_seconds = inf\n", "clip_seconds: Input should be a finite number"),
        (b"seed = 3.5\n", "seed: Input should be a valid integer"),
        (b"\xff\xfe = 1\n", r"is not UTF-8 text \(byte 0 is 0xff\)"),
    ],
)
def test_config_values_of_the_wrong_type_are_one_error_for_every_command(tmp_path, content, message):
    path = tmp_path / "run.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_config_file(path)


def test_verify_features_and_run_read_the_config_file_through_the_same_checks(tmp_path):
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "bad.toml").write_text('clip_seconds = "long"\n')
    for args in (
        ["datasets", "verify", "demo", "--config"],
        ["features", "--datasets", "demo", "--no-progress", "--config"],
        ["run", "--model", "majority", "--datasets", "demo", "--no-progress", "--config"],
    ):
        bad = run_cli(*args, str(tmp_path / "bad.toml"))
        assert (bad.returncode, bad.stderr.strip()) == (
            1, f"error: invalid config file {tmp_path / 'bad.toml'}: clip_seconds: Input should be a valid number, "
            "unable to parse string as a number",
        )
    folder = run_cli("run", "--model", "majority", "--datasets", "demo", "--config", str(tmp_path / "folder.toml"))
    assert folder.stderr.strip() == f"error: config file {tmp_path / 'folder.toml'} is not a file"
    seed = run_cli("run", "--model", "majority", "--datasets", "demo", "--seed", "-1")
    assert seed.stderr.strip() == "error: invalid run configuration: seed: Input should be greater than or equal to 0"


@pytest.fixture
def finished(tiny_plugins, tmp_path):
    return run_benchmark(config(), tiny_plugins, tmp_path / "runs")


def test_predict_refuses_nan_audio_devices_and_a_damaged_model_file(tiny_plugins, finished, tmp_path):
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(16000 * 30, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    ok = write_tone(tmp_path / "ok.wav", 30.0)
    table, excluded = predict_files(finished, tiny_plugins, [nan, Path("/dev/zero"), tmp_path, ok])
    assert table["file"].tolist() == [str(ok)]
    assert [(e.track_id, e.reason) for e in excluded] == [
        ("0", "non-finite-audio"), ("1", "audio-missing"), ("2", "audio-missing")
    ]
    assert "not a regular file" in excluded[1].detail
    model_dir = finished.unit_dir(1) / "model"
    (saved,) = [p for p in model_dir.iterdir() if p.is_file() and p.suffix != ".json"] or list(model_dir.iterdir())
    saved.write_bytes(saved.read_bytes()[: len(saved.read_bytes()) // 2])
    with pytest.raises(MerBenchError) as raised:
        predict_files(finished, tiny_plugins, [ok], unit=1)
    message = str(raised.value)
    assert "\n" not in message and "majority" in message and finished.run_id in message


def test_compare_refuses_an_empty_predictions_file(tiny_plugins, finished, tmp_path):
    other = run_benchmark(config(model="chance"), tiny_plugins, tmp_path / "runs")
    (finished.unit_dir(2) / "predictions.csv").write_text("")
    with pytest.raises(RunError, match=rf"run {finished.run_id}: unit-2/predictions.csv is empty \(a damaged run folder\)"):
        compare_runs(finished, other, resamples=10)
    (finished.unit_dir(2) / "predictions.csv").write_text("uid,true,predicted\n")
    with pytest.raises(RunError, match=r"unit-2/predictions.csv holds no predictions"):
        compare_runs(finished, other, resamples=10)


def test_an_unwritable_cache_or_runs_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = run_cli("run", "--model", "majority", "--datasets", "demo", "--no-progress", env={"MER_BENCH_CACHE": str(blocker)})
    assert cache.returncode == 1
    assert cache.stderr.strip().endswith("point MER_BENCH_CACHE at a writable folder")
    runs = run_cli("run", "--model", "majority", "--datasets", "demo", "--no-progress", "--runs-dir", str(blocker))
    assert runs.stderr.strip() == f"error: the runs folder {blocker} is a file, not a folder; pass another --runs-dir"
    runs = run_cli("run", "--model", "majority", "--datasets", "demo", "--no-progress", "--runs-dir", str(blocker / "sub"))
    assert runs.stderr.strip() == f"error: cannot create a run folder in {blocker / 'sub'}: Not a directory; pass another --runs-dir"


REAL_WRITE = mer_bench.results.atomic_write


def disk_full_at(monkeypatch, name: str):
    """Make writing the run file ``name`` fail as a full disk does."""
    real = REAL_WRITE

    def write(path, data, durable=True):
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, durable)

    monkeypatch.setattr(mer_bench.results, "atomic_write", write)


def test_a_full_disk_leaves_either_no_run_or_one_that_resumes(tiny_plugins, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    disk_full_at(monkeypatch, "manifest.json")
    with pytest.raises(RunError, match="No space left on device"):
        run_benchmark(config(), tiny_plugins, runs)
    assert list(runs.iterdir()) == []  # a folder without a manifest could never be resumed: removed

    disk_full_at(monkeypatch, "metrics.json")
    with pytest.raises(RunError) as raised:
        run_benchmark(config(), tiny_plugins, runs)
    (kept,) = runs.iterdir()
    assert f"Run {kept.name} is kept" in str(raised.value) and "No space left on device" in str(raised.value)
    monkeypatch.setattr(mer_bench.results, "atomic_write", REAL_WRITE)  # space freed
    folder = run_benchmark(config(), tiny_plugins, runs, resume=kept.name)
    assert json.loads((folder.path / "summary.json").read_text())["units"] == ["Fold 1", "Fold 2"]


def test_a_cache_that_cannot_be_written_is_a_cache_error(tmp_path, monkeypatch):
    import mer_bench.cache

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mer_bench.cache, "atomic_write", full)
    tone = write_tone(tmp_path / "t.wav", 30.0)
    tracks = pd.DataFrame({"dataset": "d", "track_id": ["t"], "audio_path": [tone]})
    with pytest.raises(CacheError, match=r"cannot write the feature cache \(No space left on device"):
        crop_tracks(tracks, 24.0, cache=FeatureCache(tmp_path / "cache"))


def test_a_run_folder_path_taken_by_a_file_is_not_a_traceback(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(RunError, match="is a file, not a folder"):
        RunFolder.create(tmp_path / "runs", "x")
