"""sarkar-vgg, cnn6 and cnn10: their inputs, their networks, and that they learn.

Networks here are small (``width``) and inputs tiny, so that each trains in seconds on a
CPU; the published sizes are checked by building them, not by training them.
"""

import json

import keras
import numpy as np
import pytest
import soundfile as sf

from mer_bench.errors import AudioError, ModelError
from mer_bench.types import Clip, FoldData
from mer_bench_plugins.features.mel_segments import MelSegments, MelSegmentsSettings
from mer_bench_plugins.features.panns_logmel import PannsLogmel, PannsLogmelSettings
from mer_bench_plugins.models.keras_classifier import Output, Segments
from mer_bench_plugins.models.panns_cnn import PannsCNN, PannsSettings
from mer_bench_plugins.models.sarkar_vgg import SarkarSettings, SarkarVGG

CNN6, CNN10 = PannsCNN("cnn6", convolutions=1, kernel=5), PannsCNN("cnn10", convolutions=2, kernel=3)
SARKAR = SarkarVGG()


def band_problem(n: int, seed: int, frames: int = 48, bands: int = 16, segments: int | None = None) -> FoldData:
    """Log-Mel-like inputs whose class is the quarter of the bands that holds the energy.

    Segmented inputs are standardised per segment, as ``mel-segments`` gives them.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    shape = (n, segments, bands, frames) if segments else (n, frames, bands)
    x = rng.normal(-60, 6, shape)
    quarter = bands // 4
    for i, k in enumerate(y):
        if segments:
            x[i, :, k * quarter : (k + 1) * quarter, :] += 30
        else:
            x[i, :, k * quarter : (k + 1) * quarter] += 30
    if segments:
        x = (x - x.mean(axis=(2, 3), keepdims=True)) / x.std(axis=(2, 3), keepdims=True)
    return FoldData(x.astype(np.float16), y, [str(i) for i in range(n)])


def test_panns_networks_have_the_published_sizes():
    """PANNs' own counts with its 527 AudioSet outputs: 4.84 M (CNN-6) and 5.22 M (CNN-10) weights."""
    for recipe, published in ((CNN6, 4.84e6), (CNN10, 5.22e6)):
        network = recipe.network((6001, 64), Output(False, 527), PannsSettings(), keras)
        trainable = sum(int(np.prod(w.shape)) for w in network.trainable_weights)
        assert trainable == pytest.approx(published, rel=0.002)
        convs = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]
        assert len(convs) == 4 * recipe.convolutions and all(not c.use_bias for c in convs)
        assert [c.filters for c in convs][:: recipe.convolutions] == [64, 128, 256, 512]
        assert {c.kernel_size for c in convs} == {(recipe.kernel, recipe.kernel)}
        assert network.get_layer("fc1").units == 512 and network.output_shape == (None, 527)


def test_sarkar_network_is_the_reimplementations_stack():
    network = SARKAR.network((128, 216), Output(False, 4), SarkarSettings(), keras)
    convs = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 64, 64, 64, 128, 256, 256]
    pools = [layer.pool_size for layer in network.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == [(2, 2), (2, 2), (3, 3), (3, 3), (3, 3)]
    dense = [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [256, 256, 4] and dense[0].kernel_regularizer.l2 == pytest.approx(1e-3)
    assert network.get_layer("flatten").output.shape[1] == 2 * 2 * 256


def test_segments_view_reads_each_songs_segments_in_order():
    songs = np.arange(3 * 4 * 2).reshape(3, 4, 2)
    view = Segments(songs)
    assert len(view) == 12 and view.shape == (12, 2)
    np.testing.assert_array_equal(view.take([0, 5, 11, 4]), songs.reshape(12, 2)[[0, 5, 11, 4]])


def test_spec_augment_zeroes_stripes_in_training_only():
    from mer_bench_plugins.models.spec_augment import SpecAugment

    keras.utils.set_random_seed(0)
    layer = SpecAugment(time_drop_width=8, time_stripes=2, freq_drop_width=4, freq_stripes=2)
    x = np.ones((16, 50, 20, 1), dtype="float32")
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    out = np.asarray(layer(x, training=True))[..., 0]
    assert set(np.unique(out)) <= {0.0, 1.0} and (out == 0).any()
    for example in out:
        zero_frames = np.flatnonzero((example == 0).all(axis=1))
        zero_bands = np.flatnonzero((example == 0).all(axis=0))
        # At most two stripes of fewer than 8 frames, and two of fewer than 4 bands.
        assert len(zero_frames) <= 2 * 7 and len(zero_bands) <= 2 * 3
        # Everything zeroed lies in a zeroed frame or a zeroed band.
        covered = np.zeros_like(example, dtype=bool)
        covered[zero_frames, :] = True
        covered[:, zero_bands] = True
        assert (covered == (example == 0)).all()


@pytest.fixture(scope="module")
def trained_cnn6(tmp_path_factory):
    settings = PannsSettings(width=0.125, learning_rate=3e-3, epochs=12, patience=4, batch_size=16)
    train, val, test = band_problem(96, 0), band_problem(32, 1), band_problem(40, 2)
    model = CNN6.build(settings, 4, seed=3)
    history = model.fit(train, val)
    return model, history, (train, val, test), tmp_path_factory.mktemp("cnn6")


def test_cnn6_learns_a_learnable_problem_and_keeps_its_best_epoch(trained_cnn6):
    model, history, (_, _, test), _ = trained_cnn6
    accuracy = (model.predict_proba(test.x).argmax(axis=1) == test.y).mean()
    assert accuracy >= 0.6, history  # chance is 0.25
    (kept,) = [h for h in history if h["kept"]]
    assert kept["val_loss"] == min(h["val_loss"] for h in history)


def test_cnn6_save_and_load_give_the_same_predictions(trained_cnn6):
    model, _, (_, _, test), tmp = trained_cnn6
    model.save(tmp / "model")
    loaded = CNN6.load(tmp / "model")
    np.testing.assert_allclose(loaded.predict_proba(test.x), model.predict_proba(test.x), rtol=1e-5, atol=1e-6)
    assert loaded.settings == model.settings
    assert json.loads((tmp / "model" / "keras-model.json").read_text())["model"] == "cnn6"


def test_cnn10_learns_with_its_step_decayed_learning_rate():
    settings = PannsSettings(width=0.125, learning_rate=3e-3, epochs=8, patience=4, batch_size=16, decay_every=1, decay_rate=0.5)
    train, val, test = band_problem(96, 4), band_problem(32, 5), band_problem(40, 6)
    model = CNN10.build(settings, 4, seed=1)
    history = model.fit(train, val)
    assert (model.predict_proba(test.x).argmax(axis=1) == test.y).mean() >= 0.6, history
    # StepLR(1 epoch, 0.5) counted in steps: 6 batches per epoch, so after n epochs lr = 3e-3 / 2**n.
    optimizer = model.network.optimizer
    assert int(optimizer.iterations.numpy()) == 6 * len(history)
    assert float(optimizer.learning_rate) == pytest.approx(3e-3 / 2 ** len(history))


def test_sarkar_trains_on_segments_and_averages_them_per_song():
    settings = SarkarSettings(width=0.125, learning_rate=2e-3, epochs=12, patience=4, batch_size=16, l2=0.0)
    train, val, test = (band_problem(n, s, frames=24, segments=3) for n, s in ((64, 7), (24, 8), (40, 9)))
    model = SARKAR.build(settings, 4, seed=0)
    history = model.fit(train, val)
    proba = model.predict_proba(test.x)
    assert proba.shape == (40, 4) and (proba.argmax(axis=1) == test.y).mean() >= 0.6, history
    segments = model.network.predict(test.x.reshape(120, *test.x.shape[2:]).astype("float32"), verbose=0)
    np.testing.assert_allclose(proba, segments.reshape(40, 3, 4).mean(axis=1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ModelError, match="songs x segments"):
        model.predict_proba(np.zeros((2, 16)))


def test_same_seed_gives_the_same_training():
    settings = SarkarSettings(width=0.0625, learning_rate=1e-3, epochs=2, batch_size=16)
    train, val = band_problem(32, 1, frames=24, segments=2), band_problem(16, 2, frames=24, segments=2)
    first = SARKAR.build(settings, 4, seed=5).fit(train, val)
    assert SARKAR.build(settings, 4, seed=5).fit(train, val) == first


SR = 22050


def test_panns_logmel_reads_the_first_seconds_and_zero_pads(tmp_path):
    t = np.arange(3 * SR) / SR
    path = tmp_path / "short.wav"
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR)
    settings = PannsLogmelSettings(seconds=5.0)
    logmel = PannsLogmel().extract(Clip("d/x", "d", path, 1.0, 2.0), settings)
    assert logmel.shape == (5 * 32000 // 320 + 1, 64) and logmel.dtype == np.float16
    frames_per_s = 100
    assert logmel[: 2 * frames_per_s].max() > -20  # the tone, from the file's start
    assert (logmel[4 * frames_per_s :] == -100).all()  # zero padding: 10*log10 of the floor
    import librosa

    centres = librosa.mel_frequencies(64 + 2, fmin=50, fmax=14000)[1:-1]
    assert int(np.argmax(logmel[50])) == int(np.argmin(np.abs(centres - 1000)))  # the 1 kHz tone's band
    from_clip = PannsLogmel().extract(Clip("d/x", "d", path, 1.0, 2.0), settings.model_copy(update={"start": "clip"}))
    assert (from_clip[2 * frames_per_s + 2 :] == -100).all() and from_clip[: 2 * frames_per_s - 2].max() > -20
    with pytest.raises(ValueError, match="fmax <= sample_rate / 2"):
        PannsLogmelSettings(sample_rate=16000)


def test_mel_segments_cut_the_clip_into_standardised_segments(tmp_path):
    t = np.arange(12 * SR) / SR
    path = tmp_path / "tone.wav"
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    segments = MelSegments().extract(Clip("d/x", "d", path, 0.5, 11.0), MelSegmentsSettings())
    assert segments.shape == (2, 128, 216) and segments.dtype == np.float16  # 11 s: two 5 s segments
    for segment in segments.astype(np.float32):
        assert segment.mean() == pytest.approx(0, abs=1e-2) and segment.std() == pytest.approx(1, abs=1e-2)
    with pytest.raises(AudioError, match="shorter than one 5 s segment"):
        MelSegments().extract(Clip("d/x", "d", path, 0.0, 4.0), MelSegmentsSettings())


@pytest.mark.parametrize("task", ["quadrants", "va"])
def test_sarkar_vgg_runs_and_predicts_through_the_cli(tiny_site, tmp_path, task):
    """The quick preset on the tiny demo, two folds, 10 s clips (two segments per song); for
    va, the regression head through the whole pipeline: fit, score, save, load, predict."""
    from tests.conftest import run_cli, write_tone

    config = tmp_path / "run.toml"
    config.write_text("clip_seconds = 10.0\n")
    runs = tmp_path / "runs"
    result = run_cli(
        "run", "--model", "sarkar-vgg", "--datasets", "demo-tiny", "--preset", "quick", "--folds", "2",
        "--config", str(config), "--epochs", "2", "--task", task, "--no-progress", "--runs-dir", str(runs),
        site=tiny_site, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["feature"]["settings"]["n_mels"] == 64 and manifest["model"]["settings"]["width"] == 0.25
    for fold in (1, 2):
        history = (run / f"unit-{fold}" / "history.csv").read_text().splitlines()
        assert len(history) == 3  # two epochs
        predictions = (run / f"unit-{fold}" / "predictions.csv").read_text().splitlines()
        assert len(predictions) - 1 == json.loads((run / f"unit-{fold}" / "metrics.json").read_text())["n"]
    song = write_tone(tmp_path / "song.wav", 12.0, freq=330.0)
    predicted = run_cli("predict", "--run", run.name, "--runs-dir", str(runs), "--json", str(song), site=tiny_site)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    (row,) = json.loads(predicted.stdout)["predictions"]
    if task == "va":
        assert manifest["task"]["dimensions"] == ["valence", "arousal"]
        assert set(json.loads((run / "summary.json").read_text())["metrics"]["regression"]) == {"valence", "arousal"}
        assert all(-1 <= row[d] <= 1 for d in ("valence", "arousal")) and row["quadrant"] in ("A+V+", "A+V-", "A-V-", "A-V+")
    else:
        assert sum(row[f"p_{q}"] for q in ("A+V+", "A+V-", "A-V-", "A-V+")) == pytest.approx(1.0, abs=1e-5)


def with_values(data: FoldData) -> FoldData:
    """``data`` with a regression target per track instead of its class: two values on
    [-1, 1] that rise and fall with the position of its band of energy."""
    level = np.asarray(data.y) / 3 * 1.6 - 0.8
    values = np.stack([level, -level], axis=1)
    return FoldData(data.x, values.astype(np.float64), data.uids)


def r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - ((truth - predicted) ** 2).sum() / ((truth - truth.mean(axis=0)) ** 2).sum())


def test_cnn6_and_sarkar_train_a_regression_head_that_beats_the_mean(tmp_path):
    settings = PannsSettings(width=0.125, learning_rate=3e-3, epochs=12, patience=4, batch_size=16)
    train, val, test = (with_values(band_problem(n, s)) for n, s in ((96, 10), (32, 11), (40, 12)))
    model = CNN6.build_regressor(settings, 2, seed=3)
    history = model.fit(train, val)
    assert "accuracy" not in history[0] and any(h["kept"] for h in history)
    predicted = model.predict(test.x)
    assert predicted.shape == (40, 2) and np.abs(predicted).max() <= 1.0
    # The mean floor's R² is 0 at best; the head learns the values.
    assert r2(test.y, predicted) > 0.5, history
    model.save(tmp_path / "cnn6")
    np.testing.assert_allclose(CNN6.load(tmp_path / "cnn6").predict(test.x), predicted, rtol=1e-5, atol=1e-6)
    # Segments: each song's value is the mean of its segments'.
    sarkar = SarkarSettings(width=0.125, learning_rate=2e-3, epochs=12, patience=4, batch_size=16, l2=0.0)
    train, val, test = (with_values(band_problem(n, s, frames=24, segments=3)) for n, s in ((64, 13), (24, 14), (40, 15)))
    model = SARKAR.build_regressor(sarkar, 2, seed=0)
    history = model.fit(train, val)
    assert r2(test.y, model.predict(test.x)) > 0.5, history
