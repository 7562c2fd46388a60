"""The paper's model: architecture, offline weights, training, early stopping, saving.

TensorFlow traces a fresh EfficientNetB3 training graph in 15-50 s on two cores, so the
tests share one trained model (a module fixture). The full-size step and whole runs are
in test_effnetb3_runs.py, so that parallel test workers can take them apart.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

from mer_bench.errors import ModelError
from mer_bench.types import FoldData
from mer_bench_plugins.models import effnetb3, imagenet_weights
from mer_bench_plugins.models.effnetb3 import (
    EffNetB3Factory,
    EffNetB3Settings,
    build_backbone,
    build_network,
    calibrate_batchnorm,
)
from mer_bench_plugins.models.imagenet_weights import WeightsSource, resolve_weights
from mer_bench_plugins.models.keras_classifier import Output

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

#: The paper's output: a softmax over the four quadrants.
FOUR = Output(regression=False, size=4)


def brightness_problem(n: int, size: int, seed: int) -> FoldData:
    """Images whose class is their mean brightness (40, 95, 150 or 205 of 255), with noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.normal(0, 20, (n, size, size, 3)) + (40 + 55 * y)[:, None, None, None]
    return FoldData(x.clip(0, 255).astype(np.uint8), y, [str(i) for i in range(n)])


def calibrated_backbone(tmp_path, images: np.ndarray):
    """A random backbone whose BatchNorm statistics are those of ``images``, saved as a weights file.

    A randomly initialised EfficientNet's features vanish in inference mode until its
    BatchNorm moving statistics have converged (thousands of steps); ImageNet weights
    arrive converged. The model's own calibration stands in for that here.
    """
    keras.utils.set_random_seed(3)  # the backbone's random weights: the same in every test process
    backbone = build_backbone(images.shape[1:], imagenet_stem=True)
    calibrate_batchnorm(backbone, images, len(images), 16, seed=0)
    path = tmp_path / "calibrated.weights.h5"
    backbone.save_weights(str(path))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One effnetb3 trained (head only, over a calibrated backbone) on the brightness problem."""
    tmp = tmp_path_factory.mktemp("effnetb3")
    train, val, test = brightness_problem(64, 32, 0), brightness_problem(32, 32, 1), brightness_problem(32, 32, 2)
    weights = calibrated_backbone(tmp, train.x)
    settings = EffNetB3Settings(
        weights=str(weights), learning_rate=1e-3, epochs=30, train_backbone=False, patience=2, batch_size=16
    )
    model = EffNetB3Factory().build(settings, n_classes=4, seed=7)
    history = model.fit(train, val)
    return model, history, (train, val, test), tmp


def test_batches_stream_rows_with_their_labels_and_reshuffle_by_seed():
    from mer_bench.features import Features
    from mer_bench_plugins.models.keras_input import batches

    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    rows = Features([images[:6], images[6:]], [f"u{i}" for i in range(10)], []).select([f"u{i}" for i in range(10)])
    labels = np.arange(10) % 4

    def epoch(dataset):
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
        return np.concatenate(xs), np.concatenate(ys)

    x, y = epoch(batches(rows, labels, 4))
    assert x.dtype == np.float32 and x.shape == (10, 2, 2, 3)
    assert x[:, 0, 0, 0].tolist() == list(range(10)) and y.tolist() == labels.tolist()
    shuffled = batches(rows, labels, 4, shuffle_seed=3)
    first, second = epoch(shuffled), epoch(shuffled)
    assert (first[0][:, 0, 0, 0] % 4 == first[1]).all()  # each image keeps its label
    assert sorted(first[0][:, 0, 0, 0]) == list(range(10))
    assert first[0][:, 0, 0, 0].tolist() != second[0][:, 0, 0, 0].tolist()  # a new order each epoch
    again = epoch(batches(rows, labels, 4, shuffle_seed=3))
    assert again[0].tolist() == first[0].tolist()


def test_network_is_the_papers_layer_by_layer():
    network = build_network((300, 300, 3), FOUR, WeightsSource("none"))
    backbone = network.get_layer("efficientnetb3")
    assert backbone.output.shape[1:] == (10, 10, 1536)
    head = [
        (type(layer).__name__, getattr(layer, "units", None), getattr(layer, "rate", None))
        for layer in network.layers[2:]
    ]
    assert head == [
        ("Flatten", None, None),
        ("Dense", 512, None), ("Dropout", None, 0.5),
        ("Dense", 128, None), ("Dropout", None, 0.3),
        ("Dense", 64, None), ("Dropout", None, 0.1),
        ("Dense", 4, None),
    ]
    dense = [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.activation.__name__ for d in dense] == ["relu", "relu", "relu", "softmax"]
    assert network.get_layer("flatten").output.shape[1] == 153_600
    # Backbone 10,783,535 + head 78,717,892 (shared/measurements.md).
    assert backbone.count_params() == 10_783_535
    assert network.count_params() == 89_501_427


def test_defaults_are_the_published_recipe_and_the_optimiser_is_adam(trained):
    paper = EffNetB3Settings()
    assert (paper.weights, paper.learning_rate, paper.epochs, paper.frozen_epochs) == ("imagenet", 1e-5, 50, 0)
    model, *_ = trained
    trained_part = model.head  # the backbone never trained: its features trained the head
    assert isinstance(trained_part.optimizer, keras.optimizers.Adam)
    assert float(trained_part.optimizer.learning_rate) == pytest.approx(model.settings.learning_rate)
    assert isinstance(trained_part.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.network.get_layer("classes") is trained_part.get_layer("classes")  # the same layers


def test_learns_a_learnable_problem_well_above_chance(trained):
    model, history, (_, _, test), _ = trained
    accuracy = float((model.predict_proba(test.x).argmax(axis=1) == test.y).mean())
    assert accuracy >= 0.5, f"test accuracy {accuracy:.2f} (chance 0.25)"
    kept = next(h for h in history if h["kept"])
    assert kept["val_loss"] < history[0]["val_loss"]


def test_early_stopping_keeps_the_best_epochs_weights(trained):
    model, history, (_, val, _), _ = trained
    assert len(history) < model.settings.epochs, "patience 2 should stop this run early"
    losses = [h["val_loss"] for h in history]
    kept = [h for h in history if h["kept"]]
    assert len(kept) == 1 and kept[0]["epoch"] == int(np.argmin(losses)) + 1
    assert kept[0]["epoch"] <= len(history) - model.settings.patience  # stopped `patience` epochs after it
    proba = model.predict_proba(val.x)
    val_loss = float(-np.mean(np.log(proba[np.arange(len(val.y)), val.y])))
    assert val_loss == pytest.approx(kept[0]["val_loss"], rel=1e-4)
    assert val_loss < losses[-1]


def test_save_and_load_round_trip_predictions(trained):
    model, _, (_, _, test), tmp = trained
    model.save(tmp / "saved")
    assert (tmp / "saved" / "model.keras").is_file()
    loaded = EffNetB3Factory().load(tmp / "saved")
    np.testing.assert_allclose(loaded.predict_proba(test.x), model.predict_proba(test.x), rtol=1e-6, atol=1e-7)
    assert loaded.weights.kind == "file" and loaded.weights.md5 == model.weights.md5
    assert loaded.settings == model.settings


def test_batchnorm_calibration_sets_the_statistics_of_the_training_images():
    images = brightness_problem(24, 32, 5).x
    keras.utils.set_random_seed(4)
    backbone = build_backbone(images.shape[1:], imagenet_stem=False)
    top = backbone.predict(images.astype("float32"), verbose=0)
    assert np.abs(top).mean() < 1e-3  # random statistics: the features have all but vanished
    assert calibrate_batchnorm(backbone, images, 100, 8, seed=0) == 24  # every image, in three batches
    stem = backbone.get_layer("stem_bn")
    conv = keras.Model(backbone.inputs, backbone.get_layer("stem_conv").output).predict(images.astype("float32"), verbose=0)
    # The mean over the three batches of each batch's channel means: the images' channel means.
    np.testing.assert_allclose(stem.moving_mean.numpy(), conv.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    assert stem.momentum == 0.99  # put back for training
    calibrated = backbone.predict(images.astype("float32"), verbose=0)
    assert np.isfinite(calibrated).all() and np.abs(calibrated).mean() > 0.05


def test_a_frozen_backbone_is_left_exactly_as_loaded(trained):
    model, history, _, tmp = trained
    assert {h["phase"] for h in history} == {"frozen"}
    keras.utils.set_random_seed(3)
    loaded = build_backbone(model.network.input_shape[1:], imagenet_stem=True)
    loaded.load_weights(str(tmp / "calibrated.weights.h5"))
    for before, after in zip(loaded.weights, model.network.get_layer("efficientnetb3").weights, strict=True):
        np.testing.assert_array_equal(before.numpy(), after.numpy(), err_msg=before.path)


def test_same_seed_gives_the_same_training(trained):
    model, history, (train, val, _), _ = trained
    again = EffNetB3Factory().build(model.settings, n_classes=4, seed=7)
    assert again.fit(train, val) == history


def test_imagenet_weights_missing_says_which_file_to_put_where(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(ModelError) as info:
        resolve_weights("imagenet")
    message = str(info.value)
    expected = tmp_path / "keras" / "models" / "efficientnetb3_notop.h5"
    assert str(expected) in message
    assert imagenet_weights.IMAGENET_URL in message and imagenet_weights.IMAGENET_MD5 in message
    assert "weights=none" in message and "a run never downloads" in message
    assert "run `mer-bench weights download effnetb3`" in message
    with pytest.raises(ModelError, match="not found"):
        EffNetB3Factory().check(EffNetB3Settings())
    assert not expected.exists()


def test_imagenet_file_with_the_wrong_hash_is_refused_and_left_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    bad = tmp_path / "models" / "efficientnetb3_notop.h5"
    bad.parent.mkdir()
    bad.write_bytes(b"half a download")
    with pytest.raises(ModelError, match="not Keras' af6d107764bb5b1abb91932881670226"):
        resolve_weights("imagenet")
    assert bad.read_bytes() == b"half a download"


def test_none_is_asked_for_by_name_and_a_missing_path_is_an_error(tmp_path):
    assert resolve_weights("none") == WeightsSource("none")
    with pytest.raises(ModelError, match="'imagenet', 'none' or the path"):
        resolve_weights(str(tmp_path / "nothing.h5"))
    with pytest.raises(ModelError, match="'imagenet', 'none' or the path"):
        resolve_weights("random")


def _keras_format_h5(model, path) -> None:
    """Write weights in the legacy HDF5 layout of Keras' own ImageNet files (Keras 3 only reads it)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.fixture
def no_sockets(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_weights_path_gives_exactly_keras_own_imagenet_model(tmp_path, monkeypatch, no_sockets):
    import keras.src.applications.efficientnet as keras_efficientnet

    shape = (64, 64, 3)
    made_here = build_backbone(shape, imagenet_stem=True)
    # Weights unlike the initial ones, so that loading them is visible.
    made_here.set_weights([w + np.float32(0.01) * (i % 3) for i, w in enumerate(made_here.get_weights())])
    file = tmp_path / "efficientnetb3_notop.h5"
    _keras_format_h5(made_here, file)
    digest = imagenet_weights.md5(file)

    # Keras' own ImageNet path, fed the file through its cache with its hash table agreeing.
    cache = imagenet_weights.imagenet_file()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(file.read_bytes())
    top_hash = keras_efficientnet.WEIGHTS_HASHES["b3"][0]
    monkeypatch.setitem(keras_efficientnet.WEIGHTS_HASHES, "b3", (top_hash, digest))
    try:
        reference = keras.applications.EfficientNetB3(include_top=False, weights="imagenet", input_shape=shape)
        by_path = build_network(shape, FOUR, resolve_weights(str(file))).get_layer("efficientnetb3")
        monkeypatch.setattr(imagenet_weights, "IMAGENET_MD5", digest)
        by_name = build_network(shape, FOUR, resolve_weights("imagenet")).get_layer("efficientnetb3")
    finally:
        cache.unlink()

    x = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype("float32")
    expected = np.asarray(reference(x, training=False))
    for ours in (by_path, by_name):
        assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in reference.layers]
        for a, b in zip(ours.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.asarray(ours(x, training=False)), expected)
    # Without the ImageNet stem the same weights compute something else: the layer matters.
    plain = build_backbone(shape, imagenet_stem=False)
    plain.load_weights(str(file))
    assert not np.allclose(np.asarray(plain(x, training=False)), expected)


def test_a_weights_file_for_another_network_is_a_clear_error(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(str(path))
    with pytest.raises(ModelError, match="cannot load .*other.weights.h5 into EfficientNetB3"):
        build_network((32, 32, 3), FOUR, resolve_weights(str(path)))


def test_inputs_must_be_images_of_at_least_32_pixels():
    model = EffNetB3Factory().build(EffNetB3Settings(weights="none"), 4, 0)
    small = FoldData(np.zeros((4, 16, 16, 3), np.uint8), np.arange(4), list("abcd"))
    with pytest.raises(ModelError, match="at least 32x32x3"):
        model.fit(small, small)


def test_without_imagenet_weights_a_run_stops_before_reading_data(tiny_site, tmp_path):
    from tests.conftest import run_cli

    result = run_cli(
        "run", "--model", "effnetb3", "--datasets", "demo-tiny", "--no-progress", "--runs-dir", str(tmp_path / "runs"),
        site=tiny_site, env={"KERAS_HOME": str(tmp_path / "keras")},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: EfficientNetB3 ImageNet weights not found at ")
    assert str(tmp_path / "keras" / "models" / "efficientnetb3_notop.h5") in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_mixed_precision_computes_in_float16_with_a_float32_output():
    with effnetb3.precision_policy(True, keras):
        network = build_network((32, 32, 3), FOUR, WeightsSource("none"))
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back
    assert network.get_layer("dense_1").compute_dtype == "float16"
    assert network.get_layer("dense_1").variable_dtype == "float32"
    assert network.get_layer("classes").compute_dtype == "float32"


def test_a_regression_head_learns_values_on_the_frozen_backbone(trained):
    """The paper's head ending in two linear units, trained with the mean squared error."""
    _, _, (train, val, test), tmp = trained

    def values(data: FoldData) -> FoldData:
        # Brightness class 0..3 as two values on [-1, 1]: one rises with it, one falls.
        level = np.asarray(data.y) / 3 * 1.5 - 0.75
        return FoldData(data.x, np.stack([level, -level], axis=1), data.uids)

    # A random backbone's features are large (the first epochs' losses are in the thousands),
    # so the linear head needs many cheap epochs on them, not a patience of 2.
    settings = EffNetB3Settings(
        weights=str(tmp / "calibrated.weights.h5"), learning_rate=1e-3, epochs=150, train_backbone=False, patience=30,
        batch_size=16,
    )
    model = EffNetB3Factory().build_regressor(settings, n_outputs=2, seed=7)
    history = model.fit(values(train), values(val))
    truth, predicted = values(test).y, model.predict(test.x)
    assert model.network.get_layer("values").activation.__name__ == "linear"
    assert predicted.shape == (len(test.y), 2) and np.abs(predicted).max() <= 1.0
    r2 = 1 - ((truth - predicted) ** 2).sum() / ((truth - truth.mean(axis=0)) ** 2).sum()
    assert r2 > 0.3, history  # the mean floor's R² is 0 at best
    model.save(tmp / "regressor")
    loaded = EffNetB3Factory().load(tmp / "regressor")
    np.testing.assert_allclose(loaded.predict(test.x), predicted, rtol=1e-5, atol=1e-6)


def test_the_stages_readout_reads_every_depth_standardised_on_the_training_images(tmp_path):
    """The quick preset's read-out: the pooled output of the stem, of each block stage and of
    the top, standardised with the training images' statistics, then the paper's head."""
    train, val, test = brightness_problem(48, 32, 0), brightness_problem(24, 32, 1), brightness_problem(24, 32, 2)
    settings = EffNetB3Settings(
        weights="none", calibrate_batchnorm=48, train_backbone=False, readout="stages", learning_rate=1e-3, epochs=30,
        patience=5, batch_size=16,
    )
    assert EffNetB3Settings().readout == "top"  # the paper's network is unchanged
    model = EffNetB3Factory().build(settings, n_classes=4, seed=7)
    model.fit(train, val)
    stages = model.network.get_layer(effnetb3.STAGES_BACKBONE)
    assert effnetb3.stage_outputs(stages)[1:-1] == [
        "block1b_add", "block2c_add", "block3c_add", "block4e_add", "block5e_add", "block6f_add", "block7b_add",
    ]
    assert stages.output.shape[1:] == (40 + 24 + 32 + 48 + 96 + 136 + 232 + 384 + 1536,)
    features = keras.Model(model.network.inputs, model.network.get_layer("standardise").output)
    standardised = features.predict(train.x.astype("float32"), verbose=0)
    varying = standardised.std(axis=0) > 1e-3  # a ReLU-like channel may be constant on tiny images
    assert varying.mean() > 0.9
    np.testing.assert_allclose(standardised.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(standardised.std(axis=0)[varying], 1, atol=1e-2)
    accuracy = float((model.predict_proba(test.x).argmax(axis=1) == test.y).mean())
    assert accuracy >= 0.5, f"test accuracy {accuracy:.2f} (chance 0.25)"
    model.save(tmp_path / "saved")
    loaded = EffNetB3Factory().load(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict_proba(test.x), model.predict_proba(test.x), rtol=1e-6, atol=1e-7)
