"""``cross``: train on one dataset, test on each other one: a train x test matrix.

For each dataset A of the run (in name order), a stratified ``test_size`` of A's songs is
held out and a validation part (``val_size`` of the rest) carved for early stopping; the
remaining songs are A's training part, the same in every unit that trains on A. Unit
``A -> B`` fits on A's training part and is scored on every prepared track of B (n(n-1)
units for n datasets), leaving out any track of B whose song is in A's training or
validation part. With ``diagonal`` (the default), unit ``A -> A`` is scored on A's held-out
part: the within-dataset score on the matrix's diagonal, n more units.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.stratify import (
    require_datasets,
    require_songs_per_quadrant,
    song_groups,
    split_off_validation,
    stratified_holdout,
    sub_seed,
    unit_rows,
)
from mer_bench.types import EvaluationProtocol


class CrossSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_size: float = Field(0.2, gt=0, lt=1, description="share of each training dataset's songs held out for the diagonal")
    val_size: float = Field(0.2, gt=0, lt=1, description="share of the rest kept for early stopping")
    diagonal: bool = Field(True, description="also score each dataset's model on its own held-out part")


class CrossDataset(EvaluationProtocol):
    """Every ordered pair of datasets: fit on one, score on the other."""

    name = "cross"
    settings_model = CrossSettings

    def check(self, settings: Any, datasets: list[str]) -> None:
        require_datasets(self.name, datasets)

    def describe(self, settings: Any) -> str:
        return (
            "cross-dataset: a model fitted on each dataset scored on each other one"
            + (f" and on {settings.test_size:.0%} of its own songs held out" if settings.diagonal else "")
        )

    def units(self, tracks: pd.DataFrame, settings: Any, seed: int) -> pd.DataFrame:
        names = sorted(tracks["dataset"].unique())
        require_datasets(self.name, names)
        frames = []
        for row, source in enumerate(names, start=1):
            own = tracks[tracks["dataset"] == source]
            groups = song_groups(own)
            require_songs_per_quadrant(groups, 3, f"of {source} for a held-out, a validation and a training part")
            _, held, _, _ = stratified_holdout(groups, settings.test_size, sub_seed(seed, row), min_count=2)
            is_held = own["song_key"].isin(set(held["song_key"]))
            train, val = split_off_validation(own[~is_held], settings.val_size, sub_seed(seed, row, 1))
            fitted_songs = set(own.loc[~is_held, "song_key"])
            for target in names:
                if target == source:
                    if not settings.diagonal:
                        continue
                    test = own.loc[is_held, "uid"]
                else:
                    other = tracks[tracks["dataset"] == target]
                    test = other.loc[~other["song_key"].isin(fitted_songs), "uid"]
                unit = len(frames) + 1
                frames.append(unit_rows(unit, f"{source} -> {target}", [("train", train), ("val", val), ("test", test)]))
        return pd.concat(frames, ignore_index=True)


@hookimpl
def mer_bench_protocols():
    return [CrossDataset()]
