"""A small scikit-learn MLP on clip vectors, under two names:

- ``logmel-mlp``: the fast reference model, on ``logmel-stats``;
- ``openl3-mlp``: pretrained OpenL3 embeddings and an MLP, the best Emotion-in-Music
  system of Koh and Dubnov (2021), on ``openl3`` (which needs weights from outside);
- ``musicnn-mlp``: the same on ``musicnn`` embeddings, which install offline (an extra).

Trained the way the deep models are: epoch by epoch on the fold's train part, with early
stopping on the validation loss that restores the best epoch's weights. Koh and Dubnov's
MLP settings are not available here; these defaults are this module's.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.types import FoldData, ModelFactory
from mer_bench_plugins.models.sklearn_io import load_estimators, save_estimators

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
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(32, gt=0)
    epochs: int = Field(300, gt=0)
    patience: int = Field(30, gt=0, description="epochs without a better validation loss before stopping")


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))


class MLP:
    """A standardising scaler and an MLP; fitted once per fold."""

    def __init__(self, settings: MLPSettings, n_classes: int, seed: int, name: str = "mlp"):
        self.name = name
        self.settings = settings
        self.n_classes = n_classes
        self.seed = seed
        self.scaler = None
        self.net = None

    def fit(self, train: FoldData, val: FoldData) -> list[dict[str, float]]:
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler

        s = self.settings
        x_train, x_val = np.asarray(train.x), np.asarray(val.x)
        self.scaler = StandardScaler().fit(x_train)
        x_train, x_val = self.scaler.transform(x_train), self.scaler.transform(x_val)
        net = MLPClassifier(
            hidden_layer_sizes=tuple(s.hidden),
            alpha=s.alpha,
            learning_rate_init=s.learning_rate,
            batch_size=min(s.batch_size, len(x_train)),
            random_state=self.seed,
        )
        classes = np.arange(self.n_classes)
        history, best, best_loss, best_epoch, waited = [], None, np.inf, 1, 0
        for epoch in range(1, s.epochs + 1):
            net.partial_fit(x_train, train.y, classes=classes)
            p_train, p_val = net.predict_proba(x_train), net.predict_proba(x_val)
            record = {
                "epoch": epoch,
                "loss": _log_loss(p_train, train.y),
                "accuracy": float((p_train.argmax(1) == train.y).mean()),
                "val_loss": _log_loss(p_val, val.y),
                "val_accuracy": float((p_val.argmax(1) == val.y).mean()),
            }
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

    def save(self, folder: Path) -> None:
        """The scaler and network in ``model.skops``, the settings in ``sklearn-model.json`` (no pickle)."""
        meta = {"settings": self.settings.model_dump(mode="json"), "n_classes": self.n_classes, "seed": int(self.seed)}
        save_estimators(folder, self.name, {"scaler": self.scaler, "net": self.net}, meta)


class MLPFactory(ModelFactory):
    settings_model = MLPSettings

    def __init__(self, name: str, feature: str):
        self.name = name
        self.feature = feature

    def build(self, settings: MLPSettings, n_classes: int, seed: int) -> MLP:
        return MLP(settings, n_classes, seed, self.name)

    def load(self, folder: Path) -> MLP:
        """The model :meth:`MLP.save` wrote to ``folder``, loaded without running code from it."""
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler

        expect = {"scaler": StandardScaler, "net": MLPClassifier}
        state, meta = load_estimators(folder, self.name, TRUSTED, expect, MLPSettings, LEGACY_FILE)
        model = MLP(meta["settings"], int(meta["n_classes"]), int(meta["seed"]), self.name)
        model.scaler, model.net = state["scaler"], state["net"]
        return model


@hookimpl
def mer_bench_models():
    return [
        MLPFactory("logmel-mlp", "logmel-stats"),
        MLPFactory("openl3-mlp", "openl3"),
        MLPFactory("musicnn-mlp", "musicnn"),
    ]
