"""The shared held-out test set: statistics whose unit is a test track.

Every fold's model predicts the same test tracks, so the five folds' test predictions are
not five times as many independent observations. What a test set of n tracks can tell
apart is judged per track: the fold ensemble (the mean of the fold models' probabilities
for each track) is one prediction per track, and a bootstrap that resamples tracks gives
an interval for the test accuracy, both the paper's mean over folds and the ensemble's.

A regression task's fold ensemble is the mean of the fold models' values per track; its R²
per dimension gets the same kind of interval, and its accuracy is that of the classes its
mean values imply.
"""

from __future__ import annotations

from collections.abc import Callable
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


def value_ensemble(predictions: pd.DataFrame, dimensions: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """One row per test track (``uid``, in order): its ``true`` class, and per dimension its
    true value (``true_<d>``) and the mean of the fold models' predicted values (``pred_<d>``)."""
    columns = [f"{kind}_{d}" for d in dimensions for kind in ("true", "pred")]
    grouped = predictions.groupby("uid", sort=True)
    return grouped[columns].mean().assign(true=grouped["true"].first()).reset_index()


def _r2(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """R² along the last axis, as scikit-learn's r2_score gives it row by row (for constant
    truth: 1 for a perfect prediction, else 0, its ``force_finite`` rule)."""
    residual = ((true - predicted) ** 2).sum(axis=-1)
    total = ((true - true.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    constant = total == 0
    return np.where(constant, (residual == 0).astype(float), 1 - residual / np.where(constant, 1.0, total))


def heldout_summary(
    predictions: pd.DataFrame,
    classes: tuple[str, ...] | list[str],
    *,
    dimensions: tuple[str, ...] | list[str] = (),
    label_values: Callable[[np.ndarray], list[str]] | None = None,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The figures of a run's test set: its size, the accuracy as a mean over folds (the
    paper's figure) and of the fold ensemble, each with a ``confidence`` bootstrap interval
    over test tracks (``resamples`` resamples drawn with ``seed``), and the ensemble's macro F1.

    For a regression task (``dimensions``, and ``label_values`` turning an (n, d) array of
    values into classes) the ensemble averages values, not probabilities, and ``regression``
    gives per dimension the R² as a mean over folds and of the ensemble, each with its
    interval, and the ensemble's CCC and RMSE.
    """
    right = (predictions["predicted"] == predictions["true"]).groupby(predictions["uid"], sort=True).mean()
    if dimensions:
        ensemble = value_ensemble(predictions, dimensions)
        values = ensemble[[f"pred_{d}" for d in dimensions]].to_numpy(dtype=float)
        ensemble = ensemble.assign(predicted=label_values(values))
    else:
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

    out = {
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
    if dimensions:
        out["regression"] = _regression_heldout(predictions, dimensions, resamples, tail, seed)
    return out


def _regression_heldout(
    predictions: pd.DataFrame, dimensions, resamples: int, tail: float, seed: int
) -> dict[str, dict[str, Any]]:
    """Per dimension: R² as the mean over folds and of the fold ensemble, each with a bootstrap
    interval over test tracks, and the ensemble's CCC and RMSE; ``tracks`` counts the tracks
    they are computed on: those every unit scored, so that each fold's R² is on the same tracks."""
    from mer_bench.metrics import regression_score

    every = predictions.groupby("uid")["unit"].nunique() == predictions["unit"].nunique()
    common = predictions[predictions["uid"].isin(every[every].index)]
    ensemble = value_ensemble(common, dimensions)
    picks = np.random.default_rng(seed).integers(0, len(ensemble), size=(resamples, len(ensemble)))

    def interval(r2_per_resample: np.ndarray) -> list[float]:
        return [float(np.quantile(r2_per_resample, tail)), float(np.quantile(r2_per_resample, 1 - tail))]

    scores = regression_score(
        ensemble[[f"true_{d}" for d in dimensions]].to_numpy(dtype=float),
        ensemble[[f"pred_{d}" for d in dimensions]].to_numpy(dtype=float),
        tuple(dimensions),
    )
    out = {}
    for d in dimensions:
        # One column per fold, one row per test track, both in uid order as the ensemble's rows.
        folds = common.pivot(index="uid", columns="unit", values=f"pred_{d}").sort_index().to_numpy(dtype=float)
        true = ensemble[f"true_{d}"].to_numpy(dtype=float)
        mean = ensemble[f"pred_{d}"].to_numpy(dtype=float)
        per_fold = _r2(true[picks][:, None, :], folds.T[:, picks].transpose(1, 0, 2))  # (resamples, folds)
        out[d] = {
            "tracks": int(len(ensemble)),
            "r2_mean_over_folds": {"value": float(_r2(true, folds.T).mean()), "interval": interval(per_fold.mean(axis=1))},
            "ensemble_r2": {"value": float(_r2(true, mean)), "interval": interval(_r2(true[picks], mean[picks]))},
            "ensemble_ccc": scores[d]["ccc"],
            "ensemble_rmse": scores[d]["rmse"],
        }
    return out
