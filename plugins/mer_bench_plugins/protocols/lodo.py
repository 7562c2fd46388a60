"""``lodo``, leave one dataset out: does a model work on a dataset it has never seen?

One unit per dataset of the run (in name order), labelled ``test on <dataset>``: scored on
every prepared track of that dataset, fitted on the other datasets' tracks, with a
stratified validation part (``val_size`` of their songs) for early stopping. A training
track of a song that the test dataset also holds (the same song under another dataset's
id) is left out of that unit, so no song is on both sides.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.stratify import require_datasets, split_off_validation, sub_seed, unit_rows
from mer_bench.types import EvaluationProtocol


class LodoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    val_size: float = Field(0.2, gt=0, lt=1, description="share of the training songs kept for early stopping")


class LeaveOneDatasetOut(EvaluationProtocol):
    """Test on each dataset in turn, train on the others."""

    name = "lodo"
    settings_model = LodoSettings

    def check(self, settings: Any, datasets: list[str]) -> None:
        require_datasets(self.name, datasets)

    def describe(self, settings: Any) -> str:
        return "leave one dataset out: each dataset scored by a model fitted on the others; mean over datasets"

    def units(self, tracks: pd.DataFrame, settings: Any, seed: int) -> pd.DataFrame:
        names = sorted(tracks["dataset"].unique())
        require_datasets(self.name, names)
        frames = []
        for unit, name in enumerate(names, start=1):
            test = tracks["dataset"] == name
            others = tracks[~test & ~tracks["song_key"].isin(set(tracks.loc[test, "song_key"]))]
            train, val = split_off_validation(others, settings.val_size, sub_seed(seed, unit))
            frames.append(unit_rows(unit, f"test on {name}", [("train", train), ("val", val), ("test", tracks.loc[test, "uid"])]))
        return pd.concat(frames, ignore_index=True)


@hookimpl
def mer_bench_protocols():
    return [LeaveOneDatasetOut()]
