"""``holdout-kfold``: the paper's protocol, and mer-bench's default.

A stratified held-out test set (``test_size`` of the songs), then stratified ``folds``-fold
cross-validation on the rest: unit k fits on the other folds, stops early on fold k and is
scored on the test set, so every unit's model predicts the same test tracks. Strata are
quadrant x dataset x genre, coarsened where rare (:mod:`mer_bench.stratify`).

With ``repeats`` = N > 1 the whole split is drawn N times (the first with the run's seed,
the others with seeds derived from it): units ``Repeat r, fold k``, and the summary gives
the mean and spread over repeats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.registry import Measured
from mer_bench.stratify import (
    require_songs_per_quadrant,
    song_groups,
    stratified_folds,
    stratified_holdout,
    sub_seed,
)
from mer_bench.types import EvaluationProtocol


class HoldoutKFoldSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folds: int = Field(5, ge=2, description="cross-validation folds of the development part")
    test_size: float = Field(0.1, gt=0, lt=1, description="held-out share of the songs")
    repeats: int = Field(1, ge=1, description="times the whole split is drawn, each with its own seed")


def holdout_kfold_split(tracks: pd.DataFrame, folds: int, test_size: float, seed: int) -> pd.DataFrame:
    """Per track: ``split`` (test or dev), ``fold`` (the fold whose validation part holds a dev
    track, -1 for test tracks) and ``stratum``; tracks as :meth:`EvaluationProtocol.units` gets them."""
    groups = song_groups(tracks)
    require_songs_per_quadrant(groups, folds + 1, f"for a test set and {folds} folds")
    dev, held, level, labels = stratified_holdout(groups, test_size, seed, min_count=folds)
    fold, dev_strata = stratified_folds(dev, folds, seed, level)
    group_stratum = pd.Series(labels.to_numpy(), index=groups["song_key"].to_numpy())
    group_stratum[dev_strata.index] = dev_strata.to_numpy()
    test = tracks["song_key"].isin(set(held["song_key"]))
    return pd.DataFrame(
        {
            "uid": tracks["uid"],
            "split": np.where(test, "test", "dev"),
            "fold": tracks["song_key"].map(fold).fillna(-1).astype(int),
            "stratum": tracks["song_key"].map(group_stratum),
        }
    )


class HoldoutKFold(EvaluationProtocol):
    """A held-out test set and stratified k-fold cross-validation on the rest."""

    name = "holdout-kfold"
    settings_model = HoldoutKFoldSettings

    def describe(self, settings: Any) -> str:
        repeats = f"; the whole split drawn {settings.repeats} times" if settings.repeats > 1 else ""
        return (
            f"{settings.test_size:.0%} held-out test set and stratified {settings.folds}-fold CV on the rest, "
            f"each fold's model scored on the test set; mean over folds{repeats}"
        )

    def measured(self, settings: Any) -> Measured | None:
        if settings.repeats > 1:
            return None
        return Measured(
            validation="holdout+kfold", folds=settings.folds, test_size=settings.test_size,
            aggregation="mean over folds", selection="validation",
        )

    def units(self, tracks: pd.DataFrame, settings: Any, seed: int) -> pd.DataFrame:
        frames = []
        for repeat in range(1, settings.repeats + 1):
            # The first repeat is the split of the run's own seed, so repeats = 1 is the paper's split.
            split = holdout_kfold_split(tracks, settings.folds, settings.test_size, seed if repeat == 1 else sub_seed(seed, 0, repeat))
            for fold in range(1, settings.folds + 1):
                role = np.where(split["split"] == "test", "test", np.where(split["fold"] == fold, "val", "train"))
                frame = split[["uid", "stratum"]].assign(
                    unit=(repeat - 1) * settings.folds + fold,
                    label=f"Fold {fold}" if settings.repeats == 1 else f"Repeat {repeat}, fold {fold}",
                    role=role,
                )
                frames.append(frame.assign(repeat=repeat) if settings.repeats > 1 else frame)
        return pd.concat(frames, ignore_index=True)


@hookimpl
def mer_bench_protocols():
    return [HoldoutKFold()]
