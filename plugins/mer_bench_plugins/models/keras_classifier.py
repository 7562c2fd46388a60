"""Keras classifiers trained from scratch, all the same way: the CNN baselines' shared loop.

A :class:`KerasRecipe` says what differs between them (the network, the optimiser,
whether inputs are segments of a song); :class:`KerasClassifier` does the rest: seeds,
TensorFlow's deterministic ops, streaming batches from the feature cache
(:mod:`keras_input`), sparse categorical cross-entropy, early stopping on the validation
loss that restores the best epoch's weights, and saving the network with its settings.

Segmented inputs (``x`` of shape songs x segments x ...) train on segments, each with
its song's label, and a song's probabilities are the mean of its segments'. The harness
splits songs, so no song's segments are ever on both sides of a split.
"""

from __future__ import annotations

import importlib.util
import json
import os
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
    """Keras' ``History`` as the harness's per-epoch dicts (``kept`` set later)."""
    logs = history.history
    return [
        {
            "epoch": first_epoch + i,
            "phase": phase,
            **{k: float(logs[k][i]) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
            "kept": False,
        }
        for i in range(len(logs["loss"]))
    ]


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

    def network(self, input_shape: tuple[int, ...], n_classes: int, settings: Any, keras) -> Any:
        """A fresh, uncompiled ``keras.Model`` with softmax outputs for inputs of ``input_shape``."""
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


class KerasClassifier:
    """One fold's network: built by ``fit`` (sized to the fold's inputs) or given by ``load``."""

    def __init__(self, recipe: KerasRecipe, settings: KerasSettings, n_classes: int, seed: int, network=None):
        self.recipe = recipe
        self.settings = settings
        self.n_classes = n_classes
        self.seed = seed
        self.network = network

    def _examples(self, x, y: np.ndarray | None):
        if not self.recipe.segmented:
            return x, y
        if len(x.shape) < 3:
            raise ModelError(f"{self.recipe.name} takes songs x segments x ... inputs; got rows of shape {x.shape[1:]}")
        view = Segments(x)
        return view, None if y is None else np.repeat(np.asarray(y), view.per_song)

    def fit(self, train: FoldData, val: FoldData) -> list[dict]:
        tf, keras = tensorflow(self.recipe.name)
        s = self.settings
        if len(val.y) == 0:
            raise ModelError(f"{self.recipe.name} stops early on the validation loss, but this fold has no validation tracks")
        keras.utils.set_random_seed(self.seed)
        if s.deterministic:
            tf.config.experimental.enable_op_determinism()
        x_train, y_train = self._examples(train.x, train.y)
        x_val, y_val = self._examples(val.x, val.y)
        self.network = self.recipe.network(tuple(x_train.shape[1:]), self.n_classes, s, keras)
        steps = max(1, -(-len(x_train) // s.batch_size))
        self.network.compile(
            optimizer=self.recipe.optimizer(s, steps, keras),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=s.patience, restore_best_weights=True)
        fitted = self.network.fit(
            batches(x_train, y_train, s.batch_size, shuffle_seed=self.seed),
            validation_data=batches(x_val, y_val, s.batch_size),
            epochs=s.epochs,
            callbacks=[stop],
            shuffle=False,  # batches() reshuffles every epoch, seeded
            verbose=0,
        )
        history = history_records(fitted, "train", 1)
        history[stop.best_epoch]["kept"] = True
        return history

    def predict_proba(self, x) -> np.ndarray:
        if self.network is None:
            raise ModelError(f"{self.recipe.name}: predict_proba called before fit or load")
        if len(x) == 0:
            return np.empty((0, self.n_classes))
        examples, _ = self._examples(x, None)
        proba = np.asarray(self.network.predict(batches(examples, None, self.settings.batch_size), verbose=0), dtype=float)
        if self.recipe.segmented:
            proba = proba.reshape(len(x), -1, self.n_classes).mean(axis=1)
        return proba

    def save(self, folder: Path) -> None:
        """``model.keras`` (the network, without optimiser state) and ``keras-model.json``."""
        tf, keras = tensorflow(self.recipe.name)
        folder.mkdir(parents=True, exist_ok=True)
        # An uncompiled Model over the same layers: the optimiser's moments would triple the file.
        keras.Model(self.network.inputs, self.network.outputs, name=self.network.name).save(folder / "model.keras")
        meta = {
            "model": self.recipe.name,
            "settings": self.settings.model_dump(mode="json"),
            "n_classes": self.n_classes,
            "seed": self.seed,
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
        (folder / "keras-model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


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

    def check(self, settings: KerasSettings) -> None:
        """TensorFlow importable (without importing it)."""
        check_tensorflow(self.name)

    def build(self, settings: KerasSettings, n_classes: int, seed: int) -> KerasClassifier:
        return KerasClassifier(self, settings, n_classes, seed)

    def load(self, folder: Path) -> KerasClassifier:
        """The classifier :meth:`KerasClassifier.save` wrote to ``folder``."""
        meta, network = read_saved(self.name, folder, "keras-model.json")
        settings = self.settings_model.model_validate(meta["settings"])
        return KerasClassifier(self, settings, meta["n_classes"], meta["seed"], network)
