"""Stage 6b, score: scikit-learn metrics per unit, and their mean and std over units."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

HEADLINE = ("accuracy", "macro_f1", "micro_f1")


def score(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro and micro F1, per-class precision/recall/F1/support and the confusion matrix.

    Labels are indices into the task's ``classes``; a class never predicted scores 0, not NaN.
    """
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0)),
        "per_class": {
            q: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for q, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def score_per_dataset(y_true: np.ndarray, y_pred: np.ndarray, datasets: list[str], n_classes: int) -> dict[str, Any]:
    """Size, accuracy and macro F1 (over the task's ``n_classes``) of the predictions of each dataset's tracks."""
    labels = list(range(n_classes))
    names = np.asarray(datasets)
    out = {}
    for name in sorted(set(datasets)):
        mine = names == name
        out[name] = {
            "n": int(mine.sum()),
            "accuracy": float(accuracy_score(y_true[mine], y_pred[mine])),
            "macro_f1": float(f1_score(y_true[mine], y_pred[mine], labels=labels, average="macro", zero_division=0)),
        }
    return out


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std())}


def aggregate(unit_metrics: list[dict[str, Any]], classes: tuple[str, ...]) -> dict[str, Any]:
    """Mean and (population) std over units of every headline and per-class metric (``classes``).

    The confusion matrices are summed over units.
    """
    out: dict[str, Any] = {"units": len(unit_metrics)}
    for key in HEADLINE:
        out[key] = _stats([m[key] for m in unit_metrics])
    out["per_class"] = {
        q: {k: _stats([m["per_class"][q][k] for m in unit_metrics]) for k in ("precision", "recall", "f1")}
        for q in classes
    }
    out["confusion"] = np.sum([m["confusion"] for m in unit_metrics], axis=0).tolist()
    return out


def repeat_spread(unit_metrics: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean and std over repeats of each repeat's mean accuracy and macro F1 (None without repeats)."""
    repeats = sorted({m["repeat"] for m in unit_metrics if m.get("repeat") is not None})
    if len(repeats) < 2:
        return None
    means = {
        key: [float(np.mean([m[key] for m in unit_metrics if m.get("repeat") == r])) for r in repeats]
        for key in ("accuracy", "macro_f1")
    }
    return {"repeats": len(repeats), **{key: _stats(values) for key, values in means.items()}}


REGRESSION = ("r2", "pearson_r", "ccc", "rmse")


def concordance(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Lin's concordance correlation coefficient: agreement, not only correlation (population moments)."""
    mean_t, mean_p = y_true.mean(), y_pred.mean()
    covariance = ((y_true - mean_t) * (y_pred - mean_p)).mean()
    return float(2 * covariance / (y_true.var() + y_pred.var() + (mean_t - mean_p) ** 2))


def regression_score(y_true: np.ndarray, y_pred: np.ndarray, dimensions: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per dimension: R², Pearson r, concordance correlation and RMSE of ``y_pred`` (n, d) against ``y_true``.

    A constant prediction (the mean floor) has no correlation: r and CCC are then 0, not NaN.
    """
    from scipy.stats import pearsonr
    from sklearn.metrics import mean_squared_error, r2_score

    out = {}
    for j, name in enumerate(dimensions):
        t, p = y_true[:, j], y_pred[:, j]
        constant = np.ptp(p) == 0 or np.ptp(t) == 0
        out[name] = {
            "r2": float(r2_score(t, p)),
            "pearson_r": 0.0 if constant else float(pearsonr(t, p).statistic),
            "ccc": 0.0 if constant else concordance(t, p),
            "rmse": float(np.sqrt(mean_squared_error(t, p))),
        }
    return out


def aggregate_regression(unit_metrics: list[dict[str, Any]], dimensions: tuple[str, ...]) -> dict[str, Any]:
    """Mean and (population) std over units of every regression metric of every dimension."""
    return {
        d: {k: _stats([m["regression"][d][k] for m in unit_metrics]) for k in REGRESSION} for d in dimensions
    }
