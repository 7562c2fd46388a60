"""The shared Keras loop: every Keras model (the CNN baselines and ``effnetb3``) trains this way.

The loop's parts: :func:`start_training` (seeds, TensorFlow's deterministic ops),
:class:`Output` (a softmax over the task's classes with sparse categorical cross-entropy,
or a linear value per dimension with the mean squared error, read back clipped to the
targets' [-1, 1]), :func:`compile_network`, :func:`fit_epochs` (batches streamed from the
feature cache by :mod:`keras_input`, early stopping on the validation loss that restores
the best epoch's weights, the per-epoch history) and :func:`save_network`.

A :class:`KerasRecipe` says what differs between the from-scratch baselines (the network,
the optimiser, whether inputs are segments of a song); :class:`KerasModel` does the rest.
Segmented inputs (``x`` of shape songs x segments x ...) train on segments, each with its
song's target, and a song's output is the mean of its segments'. The harness splits
songs, so no song's segments are ever on both sides of a split.
"""

from __future__ import annotations

import importlib.util
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench.errors import ModelError
from mer_bench.executors import Resources
from mer_bench.types import FoldData, ModelFactory
from mer_bench_plugins.models.keras_input import batches

TENSORFLOW_MISSING = "{name} needs TensorFlow: pip install 'mer-bench[tf-cpu]' (CPU) or 'mer-bench[gpu]' (NVIDIA GPU, Linux)"


def tensorflow(name: str):
    """TensorFlow and Keras, imported on first use, or a ModelError telling model ``name``'s user what to install."""
    # TensorFlow reads this once, at import; without it every run starts with oneDNN notices.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        raise ModelError(TENSORFLOW_MISSING.format(name=name)) from None
    # Every fold builds a new network, which TensorFlow reports as "retracing" each time.
    tf.get_logger().setLevel("ERROR")
    return tf, keras


def check_tensorflow(name: str) -> None:
    """Raise ModelError unless TensorFlow and Keras can be imported (without importing them)."""
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("keras") is None:
        raise ModelError(TENSORFLOW_MISSING.format(name=name))


def history_records(history, phase: str, first_epoch: int) -> list[dict]:
    """Keras' ``History`` as the harness's per-epoch dicts (``kept`` set later); accuracies
    where the network reports them (a classifier)."""
    logs = history.history
    return [
        {
            "epoch": first_epoch + i,
            "phase": phase,
            **{k: float(logs[k][i]) for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs},
            "kept": False,
        }
        for i in range(len(logs["loss"]))
    ]


@dataclass(frozen=True)
class Output:
    """What a network predicts: ``size`` class probabilities (a classification task) or
    ``size`` values on [-1, 1] (a regression task's dimensions)."""

    regression: bool
    size: int

    def layer(self, keras):
        """The last layer: softmax over the classes, or a linear unit per dimension; float32
        even under mixed precision, so the outputs and the loss stay exact."""
        if self.regression:
            return keras.layers.Dense(self.size, activation=None, dtype="float32", name="values")
        return keras.layers.Dense(self.size, activation="softmax", dtype="float32", name="classes")

    def loss(self, keras):
        return keras.losses.MeanSquaredError() if self.regression else keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list[str]:
        return [] if self.regression else ["accuracy"]

    def read(self, raw: np.ndarray) -> np.ndarray:
        """The network's outputs as the harness takes them: a linear output extrapolates
        without bound on inputs unlike its training data, while every target lies in [-1, 1]."""
        out = np.asarray(raw, dtype=float)
        return np.clip(out, -1.0, 1.0) if self.regression else out

    def as_dict(self) -> dict:
        return {"regression": self.regression, "size": self.size}


def start_training(name: str, seed: int, deterministic: bool):
    """TensorFlow and Keras, with every random generator seeded by ``seed`` and, when
    ``deterministic``, TensorFlow's deterministic ops on: the same seed gives the same training."""
    tf, keras = tensorflow(name)
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf, keras


def compile_network(network, optimizer, output: Output, keras, strategy=None) -> None:
    """Compile ``network`` with ``optimizer`` and ``output``'s loss and metrics (inside
    ``strategy``'s scope when one is given)."""
    with strategy.scope() if strategy is not None else nullcontext():
        network.compile(optimizer=optimizer, loss=output.loss(keras), metrics=output.metrics())


def fit_epochs(network, train_data: tuple, val_data: tuple, *, batch_size: int, seed: int, epochs: int, callbacks: list,
          phase: str = "train", initial_epoch: int = 0) -> list[dict]:
    """Fit ``network`` on ``train_data`` (x, y) from ``initial_epoch`` to ``epochs``, validating
    on ``val_data``, with batches reshuffled every epoch by ``seed``; its per-epoch history."""
    fitted = network.fit(
        batches(*train_data, batch_size, shuffle_seed=seed),
        validation_data=batches(*val_data, batch_size),
        initial_epoch=initial_epoch,
        epochs=epochs,
        callbacks=callbacks,
        shuffle=False,  # batches() reshuffles every epoch, seeded
        verbose=0,
    )
    return history_records(fitted, phase, initial_epoch + 1)


def early_stopping(keras, patience: int):
    """Stop once the validation loss has not fallen for ``patience`` epochs; keep the best epoch's weights."""
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)


def save_network(folder: Path, network, meta: dict, meta_file: str, tf, keras) -> None:
    """``model.keras`` (the network, without optimiser state) and ``meta`` (with the library
    versions) as ``meta_file``."""
    folder.mkdir(parents=True, exist_ok=True)
    # An uncompiled Model over the same layers: the optimiser's moments would triple the file.
    keras.Model(network.inputs, network.outputs, name=network.name).save(folder / "model.keras")
    meta = {**meta, "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}
    (folder / meta_file).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def saved_output(meta: dict, n_classes: int) -> Output:
    """The :class:`Output` a saved model's metadata records (older files: a classifier)."""
    recorded = meta.get("output")
    return Output(bool(recorded["regression"]), int(recorded["size"])) if recorded else Output(False, n_classes)


class KerasSettings(BaseModel):
    """What every from-scratch Keras baseline can set; recipes add their own fields."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(1e-4, gt=0)
    epochs: int = Field(100, gt=0)
    patience: int = Field(10, gt=0, description="epochs without a lower validation loss before stopping")
    batch_size: int = Field(32, gt=0)
    deterministic: bool = Field(True, description="TensorFlow's deterministic ops (slower on GPU)")


class KerasRecipe(Protocol):
    """What one Keras baseline adds to the shared loop."""

    name: str
    #: True when ``x`` is songs x segments x ...: train on segments, average them per song.
    segmented: bool

    def network(self, input_shape: tuple[int, ...], output: Output, settings: Any, keras) -> Any:
        """A fresh, uncompiled ``keras.Model`` for inputs of ``input_shape``, ending in
        ``output.layer(keras)``."""
        ...

    def optimizer(self, settings: Any, steps_per_epoch: int, keras) -> Any:
        """A fresh Keras optimiser (``steps_per_epoch`` lets a schedule count in epochs)."""
        ...


class Segments:
    """Songs x segments rows seen as one row per segment (song-major), read lazily."""

    def __init__(self, songs):
        self.songs = songs
        self.per_song = int(songs.shape[1])
        self.shape = (len(songs) * self.per_song, *songs.shape[2:])
        self.dtype = songs.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, indices, axis: int = 0) -> np.ndarray:
        """The segments at ``indices``: each song is read once, however many of its segments are asked for."""
        indices = np.asarray(indices, dtype=np.int64)
        songs, where = np.unique(indices // self.per_song, return_inverse=True)
        return self.songs.take(songs, axis=0)[where, indices % self.per_song]


class KerasModel:
    """One unit's network: built by ``fit`` (sized to the unit's inputs) or given by ``load``;
    a classifier (``predict_proba``) or, with a regression ``output``, a regressor (``predict``)."""

    def __init__(self, recipe: KerasRecipe, settings: KerasSettings, output: Output, seed: int, network=None):
        self.recipe = recipe
        self.settings = settings
        self.output = output
        self.seed = seed
        self.network = network

    def _examples(self, x, y: np.ndarray | None):
        if not self.recipe.segmented:
            return x, y
        if len(x.shape) < 3:
            raise ModelError(f"{self.recipe.name} takes songs x segments x ... inputs; got rows of shape {x.shape[1:]}")
        view = Segments(x)
        return view, None if y is None else np.repeat(np.asarray(y), view.per_song, axis=0)

    def fit(self, train: FoldData, val: FoldData) -> list[dict]:
        s = self.settings
        if len(val.y) == 0:
            raise ModelError(f"{self.recipe.name} stops early on the validation loss, but this unit has no validation tracks")
        _, keras = start_training(self.recipe.name, self.seed, s.deterministic)
        x_train, y_train = self._examples(train.x, train.y)
        x_val, y_val = self._examples(val.x, val.y)
        self.network = self.recipe.network(tuple(x_train.shape[1:]), self.output, s, keras)
        steps = max(1, -(-len(x_train) // s.batch_size))
        compile_network(self.network, self.recipe.optimizer(s, steps, keras), self.output, keras)
        stop = early_stopping(keras, s.patience)
        history = fit_epochs(
            self.network, (x_train, y_train), (x_val, y_val), batch_size=s.batch_size, seed=self.seed, epochs=s.epochs,
            callbacks=[stop],
        )
        history[stop.best_epoch]["kept"] = True
        return history

    def _outputs(self, x, method: str) -> np.ndarray:
        if self.network is None:
            raise ModelError(f"{self.recipe.name}: {method} called before fit or load")
        if len(x) == 0:
            return np.empty((0, self.output.size))
        examples, _ = self._examples(x, None)
        out = self.output.read(self.network.predict(batches(examples, None, self.settings.batch_size), verbose=0))
        if self.recipe.segmented:
            out = out.reshape(len(x), -1, self.output.size).mean(axis=1)
        return out

    def predict_proba(self, x) -> np.ndarray:
        """A classifier's class probabilities, one row per track (a song's: the mean of its segments')."""
        return self._outputs(x, "predict_proba")

    def predict(self, x) -> np.ndarray:
        """A regressor's values, one row per track (a song's: the mean of its segments')."""
        return self._outputs(x, "predict")

    def save(self, folder: Path) -> None:
        """``model.keras`` (the network, without optimiser state) and ``keras-model.json``."""
        tf, keras = tensorflow(self.recipe.name)
        meta = {
            "model": self.recipe.name,
            "settings": self.settings.model_dump(mode="json"),
            "n_classes": 0 if self.output.regression else self.output.size,
            "output": self.output.as_dict(),
            "seed": self.seed,
        }
        save_network(folder, self.network, meta, "keras-model.json", tf, keras)


def read_saved(name: str, folder: Path, meta_file: str) -> tuple[dict, Any]:
    """The metadata JSON and the Keras network a model saved in ``folder``; ModelError if unreadable."""
    _, keras = tensorflow(name)
    folder = Path(folder)
    try:
        meta = json.loads((folder / meta_file).read_text(encoding="utf-8"))
        network = keras.models.load_model(folder / "model.keras", compile=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the {name} model saved in {folder}: {exc}") from None
    return meta, network


class KerasFactory(ModelFactory):
    """The model-factory half of a Keras baseline: a subclass is a :class:`KerasRecipe` with
    ``name``, ``feature``, ``settings_model`` (a :class:`KerasSettings`) and ``segmented``."""

    name: str
    settings_model: type[KerasSettings]
    resources = Resources(cpus=2, gpus=1, memory_gb=4)
    task_kinds = ("classification", "regression")

    def check(self, settings: KerasSettings) -> None:
        """TensorFlow importable (without importing it)."""
        check_tensorflow(self.name)

    def build(self, settings: KerasSettings, n_classes: int, seed: int) -> KerasModel:
        return KerasModel(self, settings, Output(False, n_classes), seed)

    def build_regressor(self, settings: KerasSettings, n_outputs: int, seed: int) -> KerasModel:
        return KerasModel(self, settings, Output(True, n_outputs), seed)

    def load(self, folder: Path) -> KerasModel:
        """The model :meth:`KerasModel.save` wrote to ``folder``."""
        meta, network = read_saved(self.name, folder, "keras-model.json")
        settings = self.settings_model.model_validate(meta["settings"])
        return KerasModel(self, settings, saved_output(meta, meta["n_classes"]), meta["seed"], network)
