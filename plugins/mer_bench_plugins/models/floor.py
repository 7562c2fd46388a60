"""``majority`` and ``chance``: the floor every comparison table should show.

Both ignore their input and look only at the fold's training labels, through
scikit-learn's ``DummyClassifier``:

- ``majority`` always predicts the most frequent training quadrant (ties, common on
  balanced data, go to the first in ``QUADRANTS`` order), with probability 1;
- ``chance`` guesses each test track's quadrant at random with the training frequencies,
  seeded by the fold's seed; its expected accuracy is the sum of squared class shares
  (0.25 on balanced data).

They consume ``logmel-stats``, the cheapest built-in feature, only because every model
names one.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from mer_bench import hookimpl
from mer_bench.types import FoldData


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Floor:
    """A DummyClassifier over all classes, fitted once on the train labels."""

    def __init__(self, strategy: str, n_classes: int, seed: int):
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
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "floor.pkl").write_bytes(pickle.dumps(self))


class FloorFactory:
    feature = "logmel-stats"
    settings_model = NoSettings

    def __init__(self, name: str, strategy: str):
        self.name = name
        self.strategy = strategy

    def check(self, settings: NoSettings) -> None:
        """Nothing to check: scikit-learn is a core dependency."""

    def build(self, settings: NoSettings, n_classes: int, seed: int) -> Floor:
        return Floor(self.strategy, n_classes, seed)

    def load(self, folder: Path) -> Floor:
        return pickle.loads((Path(folder) / "floor.pkl").read_bytes())


@hookimpl
def mer_bench_models():
    return [FloorFactory("majority", "most_frequent"), FloorFactory("chance", "stratified")]
