"""``effnetb3``: the model of Cazzaniga, Gasparini and Saibene (2024), section 4.2.

EfficientNetB3 without its top (``keras.applications``) on 300x300x3 ``mel-image``
inputs, initialised from ImageNet, then Flatten, Dense 512 ReLU, Dropout 0.5, Dense 128
ReLU, Dropout 0.3, Dense 64 ReLU, Dropout 0.1 and Dense 4 softmax. Sparse categorical
cross-entropy, Adam with learning rate 1e-5, 50 epochs, early stopping on the
validation loss restoring the best weights.

Where the paper is silent, a setting with a default (docs/protocol.md gives the reasons):
a batch size of 32 (what Keras' ``fit`` uses when none is given), a patience of 10
epochs, and a backbone that trains from the first epoch (``frozen_epochs = 0``).

``readout = "stages"`` (not the paper's; the quick preset's) reads the same backbone at
every depth instead of only at its top: the global average of the stem's output, of each
of the seven block stages' and of the top's, concatenated and standardised with the
statistics of the fold's training images, then the paper's head.

For a regression task (``va``) the same head ends in a linear unit per dimension, trained
with the mean squared error; seeding, compiling, early stopping, the history and saving
are the shared Keras loop's (:mod:`keras_classifier`).

TensorFlow is imported only when a model is checked, built or loaded, so the rest of
mer-bench starts without it.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mer_bench import hookimpl
from mer_bench.errors import ModelError
from mer_bench.executors import Resources
from mer_bench.types import FoldData, ModelFactory, RemoteWeights
from mer_bench_plugins.models.imagenet_weights import WeightsSource, imagenet_remote, resolve_weights
from mer_bench_plugins.models.keras_classifier import (
    Output,
    check_tensorflow,
    compile_network,
    early_stopping,
    fit_epochs,
    read_saved,
    save_network,
    saved_output,
    start_training,
    tensorflow,
)
from mer_bench_plugins.models.keras_input import batches

#: The head of section 4.2: (units, dropout rate) of each hidden Dense layer.
HEAD = ((512, 0.5), (128, 0.3), (64, 0.1))
#: The ImageNet channel standard deviations Keras divides by a second time for its
#: ImageNet weights (keras.applications.efficientnet, tensorflow/tensorflow#49930).
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
#: The smallest input keras.applications accepts for EfficientNet.
MIN_SIZE = 32
BACKBONE = "efficientnetb3"
#: The backbone with the ``stages`` readout: its layers, and the pooled outputs of every stage.
STAGES_BACKBONE = "efficientnetb3_stages"
NAME = "effnetb3"


class EffNetB3Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: str = Field(
        "imagenet", description="'imagenet' (the Keras cache file, checked offline), 'none' (random) or a file path"
    )
    learning_rate: float = Field(1e-5, gt=0)
    epochs: int = Field(50, gt=0)
    patience: int = Field(10, gt=0, description="epochs without a lower validation loss before stopping")
    batch_size: int = Field(32, gt=0, description="global batch, split over GPUs when several are used")
    frozen_epochs: int = Field(
        0, ge=0, description="first epochs that train the head alone (a fixed warm-up); = epochs: the backbone never trains"
    )
    train_backbone: bool = Field(
        True, description="false: the backbone is a fixed feature extractor and only the head trains, for every epoch"
    )
    mixed_precision: bool = Field(False, description="float16 compute with float32 weights (for GPUs)")
    distribute: Literal["auto", "none", "mirrored"] = Field(
        "auto", description="auto: MirroredStrategy over all GPUs when there are several"
    )
    deterministic: bool = Field(True, description="TensorFlow's deterministic ops (slower on GPU)")
    calibrate_batchnorm: int = Field(
        0,
        ge=0,
        description="before training, set the backbone's BatchNorm statistics from up to this many training images "
        "(0: off); for random weights, whose statistics describe no data",
    )
    readout: Literal["top", "stages"] = Field(
        "top",
        description="what the head reads: 'top', the backbone's last feature map, flattened (the paper's); 'stages', "
        "the global average of the stem's, each block stage's and the top's outputs, concatenated and standardised "
        "on the training images (for random weights, whose deeper blocks wash out what the images hold)",
    )

    @model_validator(mode="after")
    def _frozen_within_epochs(self) -> EffNetB3Settings:
        if self.frozen_epochs > self.epochs:
            raise ValueError(f"frozen_epochs ({self.frozen_epochs}) cannot exceed epochs ({self.epochs})")
        return self


def _check_input(shape: tuple[int, ...]) -> None:
    if len(shape) != 3 or shape[2] != 3 or min(shape[:2]) < MIN_SIZE:
        raise ModelError(
            f"effnetb3 takes images of at least {MIN_SIZE}x{MIN_SIZE}x3 (the mel-image feature); got rows of shape {shape}"
        )


def build_backbone(input_shape: tuple[int, int, int], imagenet_stem: bool):
    """EfficientNetB3 without its top, randomly initialised; with ``imagenet_stem`` in the
    form Keras gives it for ``weights="imagenet"``: a per-channel Rescaling by 1/sqrt(std)
    after its Normalization layer.

    Keras adds that layer only when it loads its own ImageNet file, so a file given by
    path must meet the same network, or its features would see wrongly scaled inputs.
    """
    _, keras = tensorflow(NAME)
    _check_input(tuple(input_shape))
    backbone = keras.applications.EfficientNetB3(include_top=False, weights=None, input_shape=tuple(input_shape))
    if not imagenet_stem:
        return backbone

    def call(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        if isinstance(layer, keras.layers.Normalization):
            out = keras.layers.Rescaling([1.0 / math.sqrt(s) for s in IMAGENET_STDDEV_RGB])(out)
        return out

    return keras.models.clone_model(backbone, call_function=call)


def stage_outputs(backbone) -> list[str]:
    """The layers whose outputs ``readout = "stages"`` pools: the stem's activation, the last
    layer of each block stage (``block1`` .. ``block7``, whatever the input size) and the top's activation."""
    names = [layer.name for layer in backbone.layers]
    last = {}
    for name in names:
        if name.startswith("block") and name[5:6].isdigit():
            last[name[5]] = name
    return ["stem_activation", *(last[stage] for stage in sorted(last)), "top_activation"]


def stages_backbone(backbone, keras):
    """``backbone``'s layers as a model whose output is the global average of each of
    :func:`stage_outputs`, concatenated: one vector per image, the same length at any input size."""
    pooled = [
        keras.layers.GlobalAveragePooling2D(name=f"pool_{name}")(backbone.get_layer(name).output)
        for name in stage_outputs(backbone)
    ]
    return keras.Model(backbone.input, keras.layers.Concatenate(name="stages")(pooled), name=STAGES_BACKBONE)


def build_network(input_shape: tuple[int, int, int], output: Output, weights: WeightsSource, readout: str = "top"):
    """The paper's network for ``input_shape`` (300x300x3 in the paper), with the backbone's
    initial weights from ``weights``, ending in ``output`` (the paper's: softmax over four
    classes). Inputs are 0..255: the backbone rescales them itself.

    With ``readout = "stages"`` the backbone ends in its pooled stage outputs
    (:func:`stages_backbone`) and the head starts with a Normalization layer
    (``standardise``), to be adapted to the training images' features, in place of Flatten."""
    _, keras = tensorflow(NAME)
    backbone = build_backbone(input_shape, imagenet_stem=weights.kind != "none")
    if weights.path is not None:
        try:
            # Keras only warns about layers a file has no weights for and leaves them random:
            # here that is an error, never a silent fallback to random weights.
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                backbone.load_weights(str(weights.path))
        except (ValueError, OSError, KeyError, TypeError, Warning) as exc:
            raise ModelError(f"cannot load {weights.path} into EfficientNetB3 without its top: {exc}") from None
    inputs = keras.Input(shape=tuple(input_shape), name="mel_image")
    if readout == "stages":
        # On a calibrated random backbone the stem's pooled features vary about 60 times less
        # over the images than block 7's; standardised, the deep ones do not swamp the early ones.
        x = keras.layers.Normalization(name="standardise")(stages_backbone(backbone, keras)(inputs))
    else:
        x = keras.layers.Flatten(name="flatten")(backbone(inputs))
    for i, (units, rate) in enumerate(HEAD, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        x = keras.layers.Dropout(rate, name=f"dropout_{i}")(x)
    return keras.Model(inputs, output.layer(keras)(x), name="effnetb3")


@contextmanager
def precision_policy(mixed: bool, keras):
    """Build layers under the mixed_float16 policy, then put the global policy back."""
    if not mixed:
        yield
        return
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def calibrate_batchnorm(backbone, x, count: int, batch_size: int, seed: int) -> int:
    """Set every BatchNormalization layer of ``backbone`` to the statistics of up to ``count``
    rows of ``x`` (training images), drawn with ``seed``; the number of images used.

    A randomly initialised EfficientNet keeps moving means of 0 and variances of 1, which
    describe no data: in inference mode its features shrink block after block until they
    carry nothing (about 1e-7 at the top), so a head trained on them learns nothing it can
    use. ImageNet weights arrive with statistics converged over a million images; without
    them, this estimates the statistics the same way (batch statistics in training mode),
    from the fold's own training images, in one pass. The moving averages become the plain
    mean of the batches' statistics (momentum i/(i+1) for the i-th batch).
    """
    _, keras = tensorflow(NAME)
    picked = np.sort(np.random.default_rng(seed).permutation(len(x))[: min(count, len(x))])
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    try:
        for i, start in enumerate(range(0, len(picked), batch_size)):
            for layer in norms:
                layer.momentum = i / (i + 1)
            backbone(np.asarray(x.take(picked[start : start + batch_size], axis=0), dtype="float32"), training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
    return len(picked)


def _strategy(name: str, tf):
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class EffNetB3:
    """One unit's network; ``fit`` builds it, so that it is sized to the unit's images. A
    classifier (``predict_proba``) or, with a regression ``output``, a regressor (``predict``)."""

    def __init__(self, settings: EffNetB3Settings, output: Output, seed: int, network=None, weights=None):
        self.settings = settings
        self.output = output
        self.seed = seed
        self.network = network
        self.weights: WeightsSource | None = weights
        #: The head as a model of its own, which the frozen epochs trained (None without them).
        self.head = None

    def _compile(self, model, strategy, keras) -> None:
        with strategy.scope():
            optimizer = keras.optimizers.Adam(learning_rate=self.settings.learning_rate)
        compile_network(model, optimizer, self.output, keras, strategy)

    def _head(self, keras):
        """The layers after the backbone as a model of their own, sharing their weights with
        :attr:`network`: what a frozen backbone's features train."""
        layers = self.network.layers
        backbone = self._backbone()
        inputs = keras.Input(shape=tuple(backbone.output.shape[1:]), name="backbone_features")
        x = inputs
        for layer in layers[layers.index(backbone) + 1 :]:
            x = layer(x)
        return keras.Model(inputs, x, name="effnetb3_head")

    def _backbone(self):
        return self.network.get_layer(STAGES_BACKBONE if self.settings.readout == "stages" else BACKBONE)

    def fit(self, train: FoldData, val: FoldData) -> list[dict]:
        """Train on ``train``, stopping early on ``val``'s loss and keeping its best epoch.

        While the backbone is frozen (the first ``frozen_epochs``), it is a fixed feature
        extractor: its features are computed once, in inference mode as Keras' transfer
        learning guide runs a frozen base, and the head trains on them. Each such epoch then
        costs the head's work alone instead of a pass through EfficientNet.
        """
        s = self.settings
        if len(val.y) == 0:
            raise ModelError("effnetb3 stops early on the validation loss, but this unit has no validation tracks")
        tf, keras = start_training(NAME, self.seed, s.deterministic)
        self.weights = resolve_weights(s.weights)
        strategy = _strategy(s.distribute, tf)
        with precision_policy(s.mixed_precision, keras), strategy.scope():
            self.network = build_network(tuple(train.x.shape[1:]), self.output, self.weights, s.readout)
        backbone = self._backbone()
        if s.calibrate_batchnorm:
            calibrate_batchnorm(backbone, train.x, s.calibrate_batchnorm, s.batch_size, self.seed)
        frozen_only = not s.train_backbone or s.frozen_epochs == s.epochs
        history, frozen = [], s.epochs if frozen_only else s.frozen_epochs
        stop = early_stopping(keras, s.patience)
        parts = {"train": train, "val": val}
        needed = ("train", "val") if frozen else ("train",) if s.readout == "stages" else ()
        features = {name: backbone.predict(batches(parts[name].x, None, s.batch_size), verbose=0) for name in needed}
        if s.readout == "stages":
            # From the training part only, and from the backbone as it starts: kept fixed
            # while a trainable backbone trains on.
            self.network.get_layer("standardise").adapt(features["train"])
        if frozen:
            backbone.trainable = False
            with precision_policy(s.mixed_precision, keras), strategy.scope():
                self.head = self._head(keras)
            self._compile(self.head, strategy, keras)
            history += fit_epochs(
                self.head, (features["train"], train.y), (features["val"], val.y), batch_size=s.batch_size,
                seed=self.seed, epochs=frozen, callbacks=[stop] if frozen_only else [], phase="frozen",
            )
        del features
        if not frozen_only:
            backbone.trainable = True
            # A fresh optimiser once the backbone joins: Adam's moments for the head alone do not carry over.
            self._compile(self.network, strategy, keras)
            history += fit_epochs(
                self.network, (train.x, train.y), (val.x, val.y), batch_size=s.batch_size, seed=self.seed,
                epochs=s.epochs, callbacks=[stop], phase="fine-tune" if frozen else "train", initial_epoch=frozen,
            )
        # EarlyStopping numbers epochs from 0, counting the frozen ones given as initial_epoch.
        history[stop.best_epoch]["kept"] = True
        return history

    def _outputs(self, x, method: str) -> np.ndarray:
        if self.network is None:
            raise ModelError(f"effnetb3: {method} called before fit or load")
        _check_input(tuple(x.shape[1:]))
        if len(x) == 0:
            return np.empty((0, self.output.size))
        return self.output.read(self.network.predict(batches(x, None, self.settings.batch_size), verbose=0))

    def predict_proba(self, x) -> np.ndarray:
        """A classifier's class probabilities, one row per image."""
        return self._outputs(x, "predict_proba")

    def predict(self, x) -> np.ndarray:
        """A regressor's values, one row per image."""
        return self._outputs(x, "predict")

    def save(self, folder: Path) -> None:
        """``model.keras`` (the network, without optimiser state) and ``effnetb3.json``."""
        tf, keras = tensorflow(NAME)
        meta = {
            "settings": self.settings.model_dump(mode="json"),
            "n_classes": 0 if self.output.regression else self.output.size,
            "output": self.output.as_dict(),
            "seed": self.seed,
            "input_shape": list(self.network.input_shape[1:]),
            "weights": self.weights.as_dict() if self.weights else None,
        }
        save_network(folder, self.network, meta, "effnetb3.json", tf, keras)


class EffNetB3Factory(ModelFactory):
    name = NAME
    feature = "mel-image"
    settings_model = EffNetB3Settings
    # 89 M parameters and Adam's two moments, batches of 300x300x3 images: a GPU's work.
    resources = Resources(cpus=2, gpus=1, memory_gb=8)
    task_kinds = ("classification", "regression")

    def check(self, settings: EffNetB3Settings) -> None:
        """TensorFlow importable and the initial weights present and intact (without importing TensorFlow)."""
        check_tensorflow(NAME)
        resolve_weights(settings.weights)

    def build(self, settings: EffNetB3Settings, n_classes: int, seed: int) -> EffNetB3:
        return EffNetB3(settings, Output(False, n_classes), seed)

    def build_regressor(self, settings: EffNetB3Settings, n_outputs: int, seed: int) -> EffNetB3:
        return EffNetB3(settings, Output(True, n_outputs), seed)

    def remote_weights(self) -> tuple[RemoteWeights, ...]:
        """Keras' ImageNet file, fetched to the Keras cache where ``weights = "imagenet"`` finds it."""
        return (imagenet_remote(),)

    def load(self, folder: Path) -> EffNetB3:
        meta, network = read_saved(NAME, folder, "effnetb3.json")
        source = meta.get("weights")
        weights = WeightsSource(source["kind"], Path(source["path"]) if source["path"] else None, source["md5"]) if source else None
        settings = EffNetB3Settings.model_validate(meta["settings"])
        return EffNetB3(settings, saved_output(meta, meta["n_classes"]), meta["seed"], network, weights)


@hookimpl
def mer_bench_models():
    return [EffNetB3Factory()]
