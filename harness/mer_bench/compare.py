"""Paired comparison of two runs on the same units: McNemar's exact test and a bootstrap.

Two runs can be paired only when every track plays the same role in the same units in
both, which ``splits.csv`` records byte for byte (any protocol). Each unit's models then
predicted the same test tracks, so per unit the question is whether the discordant tracks
(one model right, the other wrong) split evenly: McNemar's exact test (a two-sided
binomial test on them). Units may score the same track (every fold of ``holdout-kfold``
scores one test set), so their predictions are not pooled as if they were independent
tracks: the overall test is McNemar's on the per-track ensembles (each run's mean of its
unit models' probabilities per test track), whose unit is a track. The macro-F1
difference gets a paired bootstrap over test tracks (each resample keeps a track's
predictions from every unit together) with a percentile confidence interval.

Runs of a regression task (``va``) are compared on the classes their values imply, as
above (their ensemble averages values, and its classes are those the mean values imply,
given ``label_values``: the task plugin's), and per dimension:
Wilcoxon's signed-rank test on the paired absolute errors per test track (each track's
mean over the units that scored it), and the same paired bootstrap for the R² difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mer_bench.errors import RunError
from mer_bench.heldout import fold_ensemble, value_ensemble
from mer_bench.results import RunFolder


@dataclass
class Comparison:
    """Per-unit and per-track-ensemble McNemar tests, and the bootstrap of the macro-F1 difference (A - B)."""

    units: pd.DataFrame
    f1_difference: float
    f1_interval: tuple[float, float]
    confidence: float
    resamples: int
    #: Regression tasks: per dimension, the paired absolute-error test and the R² difference.
    values: pd.DataFrame | None = None


def mcnemar_exact(a_right: np.ndarray, b_right: np.ndarray) -> tuple[int, int, float]:
    """(b, c, p): tracks only A got right, tracks only B got right, and the two-sided exact p-value."""
    from scipy.stats import binomtest

    only_a = int(np.sum(a_right & ~b_right))
    only_b = int(np.sum(~a_right & b_right))
    if only_a + only_b == 0:
        return 0, 0, 1.0
    return only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def _predictions(folder: RunFolder, units: list[int]) -> pd.DataFrame:
    if not all(folder.unit_done(k) for k in units):
        raise RunError(f"run {folder.run_id} is unfinished; `{folder.resume_command()}` finishes it before comparing")
    predictions = folder.unit_predictions(units)
    empty = [k for k in units if not (predictions["unit"] == k).any()]
    if empty:
        raise RunError(
            f"run {folder.run_id}: unit-{empty[0]}/predictions.csv holds no predictions (a damaged run folder); "
            "re-run it to compare it"
        )
    return predictions


def _ensemble(predictions: pd.DataFrame, task, label_values) -> pd.DataFrame:
    """Each test track's ``true`` and ``predicted`` class from the mean of the units that
    scored it: of their probabilities, or for a regression task of their values."""
    if not task.dimensions:
        return fold_ensemble(predictions, task.classes)
    ensemble = value_ensemble(predictions, task.dimensions)
    values = ensemble[[f"pred_{d}" for d in task.dimensions]].to_numpy(dtype=float)
    return ensemble.assign(predicted=label_values(values))[["uid", "true", "predicted"]]


def _check_paired(a: RunFolder, b: RunFolder) -> list[str]:
    """The unit labels, or RunError saying why the runs cannot be paired."""
    ma, mb = a.manifest(), b.manifest()
    if ma.task.name != mb.task.name:
        raise RunError(
            f"runs {a.run_id} and {b.run_id} predict different tasks ({ma.task.name}, {mb.task.name}); "
            "a paired test compares two models on one task"
        )
    splits_a, splits_b = (f.path / "splits.csv" for f in (a, b))
    if splits_a.read_bytes() != splits_b.read_bytes():
        ca, cb = ma.config, mb.config
        keys = ("datasets", "seed", "protocol", "protocol_settings", "clip_seconds", "selection")
        differ = [k for k in keys if ca.get(k) != cb.get(k)]
        why = f"they differ in {', '.join(differ)}" if differ else "the same settings gave different data"
        raise RunError(
            f"runs {a.run_id} and {b.run_id} were split differently ({why}); a paired test needs the same "
            "splits: re-run one of them with the other's datasets, seed and protocol"
        )
    return ma.units


def compare_runs(
    a: RunFolder,
    b: RunFolder,
    *,
    label_values: Callable[[np.ndarray], list[str]] | None = None,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare run ``a`` with run ``b`` unit by unit on their shared splits. For a regression
    task, ``label_values`` (the classes an (n, dimensions) array of values implies) gives the
    overall row on the runs' value ensembles; without it that row is left out."""
    from sklearn.metrics import f1_score

    labels = _check_paired(a, b)
    units = list(range(1, len(labels) + 1))
    pa, pb = _predictions(a, units), _predictions(b, units)
    merged = pa.merge(pb, on=["unit", "uid"], suffixes=("_a", "_b"), validate="one_to_one")
    if len(merged) != len(pa) or len(merged) != len(pb):
        raise RunError(f"runs {a.run_id} and {b.run_id} predicted different test tracks; their features differ")
    merged["right_a"] = merged["predicted_a"] == merged["true_a"]
    merged["right_b"] = merged["predicted_b"] == merged["true_b"]

    task = a.manifest().task
    rows = []
    parts = [(label, merged[merged["unit"] == k]) for k, label in zip(units, labels)]
    # Each track once: the mean of a run's unit models that scored it (the fold ensemble of
    # holdout-kfold); where each track was scored by one unit (cv, lodo), just the pooled tracks.
    scored_once = pa.groupby("uid")["unit"].nunique().max() == 1
    if scored_once:
        overall = "All tracks (each scored once)"
    else:
        overall = "Fold ensemble" if all(label.startswith("Fold ") for label in labels) else "Ensemble per track"
    overall_parts = []
    if not task.dimensions or label_values is not None:
        ensembles = _ensemble(pa, task, label_values).merge(
            _ensemble(pb, task, label_values), on="uid", suffixes=("_a", "_b"), validate="one_to_one"
        )
        ensembles["right_a"] = ensembles["predicted_a"] == ensembles["true_a"]
        ensembles["right_b"] = ensembles["predicted_b"] == ensembles["true_b"]
        overall_parts = [(overall, ensembles)]
    for name, part in [*parts, *overall_parts]:
        only_a, only_b, p = mcnemar_exact(part["right_a"].to_numpy(), part["right_b"].to_numpy())
        rows.append(
            {
                "Unit": name,
                "Tracks": len(part),
                f"Accuracy {a.run_id}": part["right_a"].mean(),
                f"Accuracy {b.run_id}": part["right_b"].mean(),
                "Only A right": only_a,
                "Only B right": only_b,
                "McNemar p": p,
            }
        )

    def f1_gap(table: pd.DataFrame) -> float:
        return f1_score(table["true_a"], table["predicted_a"], average="macro", zero_division=0) - f1_score(
            table["true_a"], table["predicted_b"], average="macro", zero_division=0
        )

    tracks = merged["uid"].unique()
    by_track = merged.groupby("uid").indices
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(resamples):
        picked = rng.choice(tracks, size=len(tracks), replace=True)
        gaps.append(f1_gap(merged.iloc[np.concatenate([by_track[u] for u in picked])]))
    tail = (1 - confidence) / 2
    interval = (float(np.quantile(gaps, tail)), float(np.quantile(gaps, 1 - tail)))
    values = _compare_values(merged, task.dimensions, resamples, confidence, seed) if task.dimensions else None
    return Comparison(pd.DataFrame(rows), f1_gap(merged), interval, confidence, resamples, values)


def _compare_values(
    merged: pd.DataFrame, dimensions: list[str], resamples: int, confidence: float, seed: int
) -> pd.DataFrame:
    """Per dimension: mean absolute errors, Wilcoxon's signed-rank p on the paired per-track
    absolute errors, R² of each run and a paired bootstrap interval of their difference."""
    from scipy.stats import wilcoxon
    from sklearn.metrics import r2_score

    tracks = merged["uid"].unique()
    by_track = merged.groupby("uid").indices
    rng = np.random.default_rng(seed)
    picks = [np.concatenate([by_track[u] for u in rng.choice(tracks, size=len(tracks), replace=True)]) for _ in range(resamples)]
    tail = (1 - confidence) / 2
    rows = []
    for dim in dimensions:
        true, pred_a, pred_b = (merged[c].to_numpy(dtype=float) for c in (f"true_{dim}_a", f"pred_{dim}_a", f"pred_{dim}_b"))
        errors = pd.DataFrame({"uid": merged["uid"], "a": np.abs(pred_a - true), "b": np.abs(pred_b - true)})
        per_track = errors.groupby("uid", sort=True)[["a", "b"]].mean()
        differ = (per_track["a"] != per_track["b"]).any()
        p = float(wilcoxon(per_track["a"], per_track["b"]).pvalue) if differ else 1.0
        gaps = [r2_score(true[i], pred_a[i]) - r2_score(true[i], pred_b[i]) for i in picks]
        rows.append(
            {
                "Dimension": dim,
                "Tracks": len(per_track),
                "Mean abs error A": float(per_track["a"].mean()),
                "Mean abs error B": float(per_track["b"].mean()),
                "Wilcoxon p": p,
                "R² A": float(r2_score(true, pred_a)),
                "R² B": float(r2_score(true, pred_b)),
                "R² A - B": float(r2_score(true, pred_a) - r2_score(true, pred_b)),
                f"{confidence:.0%} interval": f"{np.quantile(gaps, tail):+.3f} to {np.quantile(gaps, 1 - tail):+.3f}",
            }
        )
    return pd.DataFrame(rows)
