"""The shared held-out test set: statistics whose unit is a test track.

Every fold's model predicts the same test tracks, so the five folds' test predictions are
not five times as many independent observations. What a test set of n tracks can tell
apart is judged per track: the fold ensemble (the mean of the fold models' probabilities
for each track) is one prediction per track, and a bootstrap that resamples tracks gives
an interval for the test accuracy, both the paper's mean over folds and the ensemble's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def probability_columns(classes: tuple[str, ...] | list[str]) -> list[str]:
    """The ``p_<class>`` columns of a predictions table, in class order."""
    return [f"p_{c}" for c in classes]


def fold_ensemble(predictions: pd.DataFrame, classes: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """One row per test track (``uid``): its ``true`` class, the mean of the fold models'
    probabilities and the class they predict together (``predicted``, the first of
    ``classes`` on a tie), in uid order."""
    mean = predictions.groupby("uid", sort=True)[probability_columns(classes)].mean()
    true = predictions.groupby("uid", sort=True)["true"].first()
    out = mean.assign(true=true, predicted=[classes[i] for i in mean.to_numpy().argmax(axis=1)])
    return out.reset_index()


def _macro_f1(true: pd.Series, predicted: pd.Series, classes: tuple[str, ...] | list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(true, predicted, labels=list(classes), average="macro", zero_division=0))


def heldout_summary(
    predictions: pd.DataFrame, classes: tuple[str, ...] | list[str], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """The figures of a run's test set: its size, the accuracy as a mean over folds (the
    paper's figure) and of the fold ensemble, each with a ``confidence`` bootstrap interval
    over test tracks (``resamples`` resamples drawn with ``seed``), and the ensemble's macro F1.
    """
    right = (predictions["predicted"] == predictions["true"]).groupby(predictions["uid"], sort=True).mean()
    ensemble = fold_ensemble(predictions, classes)
    ensemble_right = (ensemble["predicted"] == ensemble["true"]).to_numpy(dtype=float)
    # Each fold predicted every test track once, so the mean over folds of each fold's
    # accuracy is the mean over tracks of the share of folds that got the track right.
    per_track = right.to_numpy(dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(per_track), size=(resamples, len(per_track)))
    tail = (1 - confidence) / 2

    def interval(values: np.ndarray) -> list[float]:
        means = values[picks].mean(axis=1)
        return [float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))]

    return {
        "tracks": int(len(per_track)),
        "confidence": confidence,
        "resamples": resamples,
        "accuracy_mean_over_folds": {"value": float(per_track.mean()), "interval": interval(per_track)},
        "fold_ensemble": {
            "accuracy": float(ensemble_right.mean()),
            "accuracy_interval": interval(ensemble_right),
            "macro_f1": _macro_f1(ensemble["true"], ensemble["predicted"], classes),
        },
    }
