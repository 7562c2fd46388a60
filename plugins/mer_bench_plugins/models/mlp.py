"""A small scikit-learn MLP on clip vectors, under two names:

- ``logmel-mlp``: the fast reference model, on ``logmel-stats``;
- ``openl3-mlp``: pretrained OpenL3 embeddings and an MLP, the best Emotion-in-Music
  system of Koh and Dubnov (2021), on ``openl3`` (which needs weights from outside);
- ``musicnn-mlp``: the same on ``musicnn`` embeddings, which install offline (an extra).

Trained the way the deep models are: epoch by epoch on the unit's train part, with early
stopping on the validation loss that restores the best epoch's weights. For a regression
task (``va``) the network is an ``MLPRegressor`` with one output per dimension, its loss
the mean squared error. Koh and Dubnov's
MLP settings are not available here; these defaults are this module's.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.types import FoldData, ModelFactory
from mer_bench_plugins.models.sklearn_io import load_estimators, save_estimators, saved_outputs

#: Types beyond skops's defaults (scikit-learn's public estimators, NumPy, builtins) that a
#: fitted MLP holds. AdamOptimizer is the network's optimiser state, kept for partial_fit:
#: its step count, learning rate and moment arrays, rebuilt as plain attributes (it defines
#: no __setstate__ or __reduce__), and never called by predict_proba.
TRUSTED = ("sklearn.neural_network._stochastic_optimizers.AdamOptimizer",)
#: What older versions saved instead, a pickle: refused, never opened.
LEGACY_FILE = "model.pkl"


class MLPSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: list[int] = Field(default_factory=lambda: [64])
    alpha: float = Field(1e-3, ge=0, description="L2 penalty")
    # Regressing two values over-fits far more than classifying at the classifier's penalty:
    # on the demo, R² of valence went from -0.4 (alpha 1e-3) to 0.34 (10), arousal from 0.30
    # to 0.88. Picked on the demo's folds, not on any benchmark dataset: tune it on yours.
    regression_alpha: float = Field(10.0, ge=0, description="L2 penalty for regression tasks (va)")
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(32, gt=0)
    epochs: int = Field(300, gt=0)
    patience: int = Field(30, gt=0, description="epochs without a better validation loss before stopping")


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))


def _bounded(net, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A regression network's outputs clipped to [-1, 1], where every target lies: its linear
    output extrapolates without bound on a clip unlike any it was fitted on (seen on the
    demo: one outlying clip predicted at -34)."""
    return np.clip(net.predict(x).reshape(shape), -1.0, 1.0)


class MLP:
    """A standardising scaler and an MLP; fitted once per unit. ``n_outputs`` set: a regressor."""

    def __init__(self, settings: MLPSettings, n_classes: int, seed: int, name: str = "mlp", n_outputs: int | None = None):
        self.name = name
        self.settings = settings
        self.n_classes = n_classes
        self.n_outputs = n_outputs
        self.seed = seed
        self.scaler = None
        self.net = None

    def _epoch(self, net, x_train, train: FoldData, x_val, val: FoldData, epoch: int) -> dict[str, float]:
        """One more pass over the train part, and the losses after it."""
        if self.n_outputs is not None:
            net.partial_fit(x_train, train.y)
            return {
                "epoch": epoch,
                "loss": float(np.mean((_bounded(net, x_train, train.y.shape) - train.y) ** 2)),
                "val_loss": float(np.mean((_bounded(net, x_val, val.y.shape) - val.y) ** 2)),
            }
        net.partial_fit(x_train, train.y, classes=np.arange(self.n_classes))
        p_train, p_val = net.predict_proba(x_train), net.predict_proba(x_val)
        return {
            "epoch": epoch,
            "loss": _log_loss(p_train, train.y),
            "accuracy": float((p_train.argmax(1) == train.y).mean()),
            "val_loss": _log_loss(p_val, val.y),
            "val_accuracy": float((p_val.argmax(1) == val.y).mean()),
        }

    def fit(self, train: FoldData, val: FoldData) -> list[dict[str, float]]:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.preprocessing import StandardScaler

        s = self.settings
        x_train, x_val = np.asarray(train.x), np.asarray(val.x)
        self.scaler = StandardScaler().fit(x_train)
        x_train, x_val = self.scaler.transform(x_train), self.scaler.transform(x_val)
        net = (MLPClassifier if self.n_outputs is None else MLPRegressor)(
            hidden_layer_sizes=tuple(s.hidden),
            alpha=s.alpha if self.n_outputs is None else s.regression_alpha,
            learning_rate_init=s.learning_rate,
            batch_size=min(s.batch_size, len(x_train)),
            random_state=self.seed,
        )
        history, best, best_loss, best_epoch, waited = [], None, np.inf, 1, 0
        for epoch in range(1, s.epochs + 1):
            record = self._epoch(net, x_train, train, x_val, val, epoch)
            history.append(record)
            if record["val_loss"] < best_loss:
                best, best_loss, best_epoch, waited = copy.deepcopy(net), record["val_loss"], epoch, 0
            else:
                waited += 1
                if waited >= s.patience:
                    break
        self.net = best
        history[best_epoch - 1]["kept"] = True
        return history

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.net.predict_proba(self.scaler.transform(np.asarray(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """A regressor's values, one row per track, within the targets' range [-1, 1]."""
        return _bounded(self.net, self.scaler.transform(np.asarray(x)), (len(x), self.n_outputs))

    def save(self, folder: Path) -> None:
        """The scaler and network in ``model.skops``, the settings in ``sklearn-model.json`` (no pickle)."""
        meta = {"settings": self.settings.model_dump(mode="json"), "n_classes": self.n_classes, "seed": int(self.seed)}
        if self.n_outputs is not None:
            meta["n_outputs"] = self.n_outputs
        save_estimators(folder, self.name, {"scaler": self.scaler, "net": self.net}, meta)


class MLPFactory(ModelFactory):
    settings_model = MLPSettings
    task_kinds = ("classification", "regression")

    def __init__(self, name: str, feature: str):
        self.name = name
        self.feature = feature

    def build(self, settings: MLPSettings, n_classes: int, seed: int) -> MLP:
        return MLP(settings, n_classes, seed, self.name)

    def build_regressor(self, settings: MLPSettings, n_outputs: int, seed: int) -> MLP:
        return MLP(settings, 0, seed, self.name, n_outputs=n_outputs)

    def load(self, folder: Path) -> MLP:
        """The model :meth:`MLP.save` wrote to ``folder``, loaded without running code from it."""
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.preprocessing import StandardScaler

        expect = {"scaler": StandardScaler, "net": MLPRegressor if saved_outputs(folder) else MLPClassifier}
        state, meta = load_estimators(folder, self.name, TRUSTED, expect, MLPSettings, LEGACY_FILE)
        outputs = meta.get("n_outputs")
        model = MLP(meta["settings"], int(meta["n_classes"]), int(meta["seed"]), self.name, int(outputs) if outputs else None)
        model.scaler, model.net = state["scaler"], state["net"]
        return model


@hookimpl
def mer_bench_models():
    return [
        MLPFactory("logmel-mlp", "logmel-stats"),
        MLPFactory("openl3-mlp", "openl3"),
        MLPFactory("musicnn-mlp", "musicnn"),
    ]
