"""``majority``, ``chance`` and ``mean``: the floor every comparison table should show.

Both ignore their input and look only at the fold's training labels, through
scikit-learn's ``DummyClassifier``:

- ``majority`` always predicts the most frequent training quadrant (ties, common on
  balanced data, go to the first in ``QUADRANTS`` order), with probability 1;
- ``chance`` guesses each test track's quadrant at random with the training frequencies,
  seeded by the fold's seed; its expected accuracy is the sum of squared class shares
  (0.25 on balanced data);
- ``mean``, for regression tasks (``va``), always predicts the mean of the training values
  on each dimension (scikit-learn's ``DummyRegressor``): its R² on the test part is at most
  about 0, and its Pearson r and concordance are 0.

They consume ``logmel-stats``, the cheapest built-in feature, only because every model
names one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from mer_bench import hookimpl
from mer_bench.types import FoldData, ModelFactory
from mer_bench_plugins.models.sklearn_io import load_estimators, save_estimators

#: A fitted DummyClassifier holds only skops's default types (a public estimator, NumPy
#: arrays, builtins): nothing more is trusted.
TRUSTED = ()
#: What older versions saved instead, a pickle: refused, never opened.
LEGACY_FILE = "floor.pkl"


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Floor:
    """A DummyClassifier over all classes, fitted once on the train labels."""

    def __init__(self, strategy: str, n_classes: int, seed: int, name: str = "floor"):
        self.name = name
        self.strategy = strategy
        self.n_classes = n_classes
        self.seed = seed
        self.dummy = None

    def fit(self, train: FoldData, val: FoldData) -> list[dict]:
        from sklearn.dummy import DummyClassifier

        # Zero-width inputs: the classifier sees only how many rows there are.
        self.dummy = DummyClassifier(strategy=self.strategy, random_state=self.seed)
        self.dummy.fit(np.zeros((len(train.y), 1)), train.y)
        accuracy = float((self.predict_proba(np.zeros((len(val.y), 1))).argmax(axis=1) == val.y).mean())
        return [{"epoch": 1, "val_accuracy": accuracy, "kept": True}]

    def predict_proba(self, x) -> np.ndarray:
        # Classes missing from the training labels get probability 0.
        out = np.zeros((len(x), self.n_classes))
        out[:, self.dummy.classes_] = self.dummy.predict_proba(np.zeros((len(x), 1)))
        return out

    def save(self, folder: Path) -> None:
        """The DummyClassifier in ``model.skops``, its strategy and seed in ``sklearn-model.json`` (no pickle)."""
        meta = {"strategy": self.strategy, "n_classes": self.n_classes, "seed": int(self.seed)}
        save_estimators(folder, self.name, {"dummy": self.dummy}, meta)


class MeanFloor:
    """A DummyRegressor predicting the training mean of each dimension."""

    def __init__(self, n_outputs: int, name: str = "mean"):
        self.name = name
        self.n_outputs = n_outputs
        self.dummy = None

    def fit(self, train: FoldData, val: FoldData) -> list[dict]:
        from sklearn.dummy import DummyRegressor

        self.dummy = DummyRegressor(strategy="mean").fit(np.zeros((len(train.y), 1)), train.y)
        val_loss = float(np.mean((self.predict(np.zeros((len(val.y), 1))) - val.y) ** 2))
        return [{"epoch": 1, "val_loss": val_loss, "kept": True}]

    def predict(self, x) -> np.ndarray:
        return self.dummy.predict(np.zeros((len(x), 1))).reshape(len(x), self.n_outputs)

    def save(self, folder: Path) -> None:
        """The DummyRegressor in ``model.skops`` (no pickle)."""
        save_estimators(folder, self.name, {"dummy": self.dummy}, {"n_classes": 0, "n_outputs": self.n_outputs, "seed": 0})


class MeanFactory(ModelFactory):
    """``mean``: the regression floor."""

    name = "mean"
    feature = "logmel-stats"
    settings_model = NoSettings
    task_kinds = ("regression",)

    def build(self, settings: NoSettings, n_classes: int, seed: int) -> Floor:
        from mer_bench.errors import ModelError

        raise ModelError("model 'mean' is the floor of regression tasks; 'majority' is the floor of classification ones")

    def build_regressor(self, settings: NoSettings, n_outputs: int, seed: int) -> MeanFloor:
        return MeanFloor(n_outputs, self.name)

    def load(self, folder: Path) -> MeanFloor:
        """The model :meth:`MeanFloor.save` wrote to ``folder``, loaded without running code from it."""
        from sklearn.dummy import DummyRegressor

        state, meta = load_estimators(folder, self.name, TRUSTED, {"dummy": DummyRegressor}, NoSettings, LEGACY_FILE)
        model = MeanFloor(int(meta.get("n_outputs", 1)), self.name)
        model.dummy = state["dummy"]
        return model


class FloorFactory(ModelFactory):
    feature = "logmel-stats"
    settings_model = NoSettings

    def __init__(self, name: str, strategy: str):
        self.name = name
        self.strategy = strategy

    def build(self, settings: NoSettings, n_classes: int, seed: int) -> Floor:
        return Floor(self.strategy, n_classes, seed, self.name)

    def load(self, folder: Path) -> Floor:
        """The model :meth:`Floor.save` wrote to ``folder``, loaded without running code from it."""
        from sklearn.dummy import DummyClassifier

        state, meta = load_estimators(folder, self.name, TRUSTED, {"dummy": DummyClassifier}, NoSettings, LEGACY_FILE)
        model = Floor(str(meta.get("strategy", self.strategy)), int(meta["n_classes"]), int(meta["seed"]), self.name)
        model.dummy = state["dummy"]
        return model


@hookimpl
def mer_bench_models():
    return [FloorFactory("majority", "most_frequent"), FloorFactory("chance", "stratified"), MeanFactory()]
