"""svm-handcrafted and opensmile-svm: the descriptors, the fold-internal tuning, and runs."""

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from mer_bench.errors import ModelError
from mer_bench.types import Clip, FoldData
from mer_bench_plugins.features.handcrafted import Handcrafted, HandcraftedSettings, key_strengths
from mer_bench_plugins.models.svm import SVMFactory, SVMSettings
from tests.conftest import run_cli

SR = 22050
FACTORY = SVMFactory("svm-handcrafted", "handcrafted")
SMALL_GRID = SVMSettings(c_grid=[0.1, 1.0, 10.0, 100.0], gamma_grid=[0.001, 0.01, 0.1], inner_folds=3)


def clusters(n: int, seed: int, dims: int = 30, noise: float = 1.0) -> FoldData:
    """Four quadrant clusters in ``dims`` dimensions, only 3 of which carry the class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    centres = np.array([[2, 2, 2], [2, -2, -2], [-2, -2, 2], [-2, 2, -2]], dtype=float)
    x = rng.normal(0, noise, (n, dims))
    x[:, :3] += centres[y]
    x[:, 3:] *= 50  # unscaled nuisance dimensions: the scaler must deal with them
    return FoldData(x.astype(np.float32), y, [str(i) for i in range(n)])


def test_learns_a_learnable_problem_well_above_chance(tmp_path):
    model = FACTORY.build(SMALL_GRID, 4, seed=0)
    history = model.fit(clusters(120, 0), clusters(40, 1))
    test = clusters(200, 2)
    proba = model.predict_proba(test.x)
    assert proba.shape == (200, 4) and np.allclose(proba.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == test.y).mean() > 0.8  # chance is 0.25
    (record,) = history
    assert record["kept"] and record["C"] in SMALL_GRID.c_grid and record["gamma"] in SMALL_GRID.gamma_grid
    assert record["val_accuracy"] > 0.7
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(FACTORY.load(tmp_path / "m").predict_proba(test.x), proba)


def test_an_svr_per_dimension_learns_values_and_round_trips(tmp_path):
    """A regression task's values: each dimension a smooth function of the informative features."""

    def values(data: FoldData) -> FoldData:
        x = np.asarray(data.x, dtype=float)
        return FoldData(data.x, np.clip(np.stack([np.tanh(x[:, 0] / 2), np.tanh(-x[:, 1] / 2)], axis=1), -1, 1), data.uids)

    model = FACTORY.build_regressor(SMALL_GRID.model_copy(update={"select_k": 10}), 2, seed=0)
    (record,) = model.fit(values(clusters(120, 0)), values(clusters(40, 1)))
    test = values(clusters(200, 2))
    predicted = model.predict(test.x)
    assert predicted.shape == (200, 2) and np.abs(predicted).max() <= 1
    r2 = 1 - ((test.y - predicted) ** 2).sum(axis=0) / ((test.y - test.y.mean(axis=0)) ** 2).sum(axis=0)
    assert (r2 > 0.7).all(), r2  # the mean floor's R² is 0 at best
    assert record["val_loss"] < 0.1 and len(model.chosen) == 2
    model.save(tmp_path / "svr")
    np.testing.assert_array_equal(FACTORY.load(tmp_path / "svr").predict(test.x), predicted)


def test_c_and_gamma_are_tuned_on_the_training_part_alone():
    train = clusters(80, 3, noise=1.5)
    chosen = []
    for val_seed in (4, 5):
        val = clusters(40, val_seed)
        val.y = np.random.default_rng(val_seed).permutation(val.y)  # any labels at all
        model = FACTORY.build(SMALL_GRID, 4, seed=0)
        history = model.fit(train, val)
        chosen.append((history[0]["C"], history[0]["gamma"], model.predict_proba(train.x)))
    assert chosen[0][:2] == chosen[1][:2]
    np.testing.assert_array_equal(chosen[0][2], chosen[1][2])


def test_feature_selection_keeps_k_features_and_too_few_tracks_are_refused():
    model = FACTORY.build(SMALL_GRID.model_copy(update={"select_k": 3}), 4, seed=0)
    model.fit(clusters(80, 6), clusters(20, 7))
    assert model.pipeline.named_steps["select"].get_support().sum() == 3
    # The three informative dimensions are the ones kept.
    assert sorted(np.flatnonzero(model.pipeline.named_steps["select"].get_support())) == [0, 1, 2]
    with pytest.raises(ModelError, match="at least 3 training tracks of every quadrant"):
        FACTORY.build(SMALL_GRID, 4, seed=0).fit(clusters(8, 0), clusters(4, 1))


def write(path, y):
    sf.write(str(path), y.astype(np.float32), SR)
    return Clip("t/x", "t", path, 0.0, len(y) / SR)


def test_handcrafted_descriptors_measure_tempo_dynamics_and_mode(tmp_path):
    t = np.arange(12 * SR) / SR
    # Clicks at 120 BPM: short decaying noise bursts every 0.5 s.
    clicks = np.zeros_like(t)
    burst = np.random.default_rng(0).normal(0, 0.5, 400) * np.exp(-np.arange(400) / 60)
    for start in range(0, len(t) - 400, SR // 2):
        clicks[start : start + 400] += burst
    extractor, settings = Handcrafted(), HandcraftedSettings()
    values = extractor.extract(write(tmp_path / "clicks.wav", clicks), settings)
    assert values.shape == (4 * (2 * 20 + 31) + 10,) and np.isfinite(values).all()
    tempo, low_energy = values[-10], values[-5]
    assert tempo == pytest.approx(120, rel=0.05)
    assert low_energy > 0.7  # silent between the clicks

    def chord(midis):
        return sum(0.2 * np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * t) for m in midis)

    major = extractor.extract(write(tmp_path / "major.wav", chord([60, 64, 67, 72])), settings)
    minor = extractor.extract(write(tmp_path / "minor.wav", chord([57, 60, 64, 69])), settings)
    assert major[-2] > 0 > minor[-2]  # the mode value: major minus minor key strength
    silence = extractor.extract(write(tmp_path / "silence.wav", np.zeros(4 * SR)), settings)
    assert np.isfinite(silence).all()


def test_key_strengths_find_the_profile_in_any_key():
    from mer_bench_plugins.features.handcrafted import KK_MAJOR, KK_MINOR

    assert key_strengths(np.roll(KK_MAJOR, 5))[0] == pytest.approx(1.0)
    assert key_strengths(np.roll(KK_MINOR, 9))[1] == pytest.approx(1.0)
    assert key_strengths(np.ones(12)) == (0.0, 0.0)


@pytest.mark.skipif(importlib.util.find_spec("opensmile") is None, reason="needs mer-bench[opensmile]")
def test_compare_functionals_are_the_6373_compare_values(tmp_path):
    # Not importorskip: importing opensmile here would bypass the extractor's own import,
    # the one that keeps it apart from TensorFlow.
    from mer_bench_plugins.features.compare_functionals import CompareFunctionals, CompareSettings

    t = np.arange(3 * SR) / SR
    clip = write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * t))
    values = CompareFunctionals().extract(clip, CompareSettings())
    assert values.shape == (6373,) and np.isfinite(values).all()

    # openSMILE loaded after TensorFlow used to corrupt the heap; in its own process so that
    # a regression fails this test instead of killing the test worker.
    np.save(tmp_path / "expected.npy", values)
    code = textwrap.dedent(f"""
        import numpy as np, tensorflow
        from mer_bench.types import Clip
        from mer_bench_plugins.features.compare_functionals import CompareFunctionals, CompareSettings
        values = CompareFunctionals().extract(Clip("t/x", "t", {str(clip.audio_path)!r}, 0.0, 3.0), CompareSettings())
        print(np.array_equal(values, np.load({str(tmp_path / "expected.npy")!r})))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["True"]


def test_svm_handcrafted_run_through_the_cli(tiny_site, tmp_path):
    """The quick preset's settings on the tiny demo, two folds, 10 s clips to keep it short."""
    config = tmp_path / "run.toml"
    config.write_text("clip_seconds = 10.0\n")
    runs = tmp_path / "runs"
    result = run_cli(
        "run", "--model", "svm-handcrafted", "--datasets", "demo-tiny", "--preset", "quick", "--folds", "2",
        "--config", str(config), "--no-progress", "--runs-dir", str(runs), site=tiny_site,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs.iterdir()
    for fold in (1, 2):
        history = (run / f"unit-{fold}" / "history.csv").read_text().splitlines()
        assert history[0].startswith("epoch,inner_cv_macro_f1,C,gamma")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["feature"] == "handcrafted"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"]["settings"]["inner_folds"] == 3  # from the quick preset

