"""``cv``: repeated stratified k-fold cross-validation with no separate test set.

Each fold's held-out part is its test set, so every track is scored once per repeat; early
stopping uses a validation part (``val_size`` of the training songs, stratified) carved
from the other folds. The protocols of Malheiro et al. 2016 (``folds = 10``) and Panda et
al. 2018 (``folds = 10``, ``repeats = 20``). Repeat 1 uses the run's seed, the others seeds
derived from it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.registry import Measured
from mer_bench.stratify import require_songs_per_quadrant, song_groups, split_off_validation, stratified_folds, sub_seed
from mer_bench.types import EvaluationProtocol


class CVSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folds: int = Field(10, ge=2, description="folds per repeat; each is scored once")
    repeats: int = Field(1, ge=1, description="times the folds are drawn anew")
    val_size: float = Field(0.1, gt=0, lt=1, description="share of a unit's training songs kept for early stopping")


class CrossValidation(EvaluationProtocol):
    """Repeated stratified k-fold: each fold is scored by the model fitted on the others."""

    name = "cv"
    settings_model = CVSettings

    def describe(self, settings: Any) -> str:
        times = f", repeated {settings.repeats} times" if settings.repeats > 1 else ""
        return f"stratified {settings.folds}-fold CV{times}, each fold scored by the model fitted on the others; mean over folds"

    def measured(self, settings: Any) -> Measured:
        return Measured(
            validation="repeated-kfold" if settings.repeats > 1 else "kfold", folds=settings.folds,
            repeats=settings.repeats if settings.repeats > 1 else None, aggregation="mean over folds",
            selection="validation",
        )

    def units(self, tracks: pd.DataFrame, settings: Any, seed: int) -> pd.DataFrame:
        groups = song_groups(tracks)
        require_songs_per_quadrant(groups, settings.folds, f"for {settings.folds} folds")
        frames = []
        for repeat in range(1, settings.repeats + 1):
            repeat_seed = seed if repeat == 1 else sub_seed(seed, 0, repeat)
            fold_of_song, stratum = stratified_folds(groups, settings.folds, repeat_seed)
            fold = tracks["song_key"].map(fold_of_song)
            for k in range(1, settings.folds + 1):
                train, val = split_off_validation(tracks[fold != k], settings.val_size, sub_seed(repeat_seed, k))
                parts = [("train", train), ("val", val), ("test", tracks.loc[fold == k, "uid"])]
                frame = pd.concat([pd.DataFrame({"uid": uids, "role": role}) for role, uids in parts], ignore_index=True)
                frame["stratum"] = frame["uid"].map(dict(zip(tracks["uid"], tracks["song_key"].map(stratum))))
                frame["unit"] = (repeat - 1) * settings.folds + k
                frame["label"] = f"Fold {k}" if settings.repeats == 1 else f"Repeat {repeat}, fold {k}"
                frames.append(frame.assign(repeat=repeat) if settings.repeats > 1 else frame)
        return pd.concat(frames, ignore_index=True)


@hookimpl
def mer_bench_protocols():
    return [CrossValidation()]
