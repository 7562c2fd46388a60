"""``official``: the train/test split a dataset defines itself.

A loader that knows its dataset's official split gives each track an ``official_split`` of
``train`` or ``test`` (Emotion in Music: the MediaEval 2013 development set is ``train``,
the evaluation set ``test``). One unit, ``official split``: fitted on the train tracks of
every dataset of the run, with a stratified validation part (``val_size`` of their songs)
for early stopping, scored on their test tracks. A dataset of the run without an official
split is an error, never silently mixed in.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.errors import ProtocolError
from mer_bench.stratify import split_off_validation, unit_rows
from mer_bench.types import EvaluationProtocol

COLUMN = "official_split"


class OfficialSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    val_size: float = Field(0.1, gt=0, lt=1, description="share of the official training songs kept for early stopping")


class OfficialSplit(EvaluationProtocol):
    """The datasets' own train/test split."""

    name = "official"
    settings_model = OfficialSettings

    def describe(self, settings: Any) -> str:
        return "the datasets' official train/test split (Emotion in Music: MediaEval 2013 development/evaluation)"

    def units(self, tracks: pd.DataFrame, settings: Any, seed: int) -> pd.DataFrame:
        split = tracks[COLUMN] if COLUMN in tracks.columns else pd.Series(None, index=tracks.index, dtype=object)
        without = sorted(tracks.loc[split.isna(), "dataset"].unique())
        if without:
            having = sorted(tracks.loc[split.notna(), "dataset"].unique())
            raise ProtocolError(
                f"protocol 'official': {', '.join(without)} define(s) no official train/test split (no "
                f"{COLUMN} from the loader); "
                + (f"run it on {', '.join(having)} alone" if having else "Emotion in Music (emomusic) defines one")
            )
        odd = sorted(set(split) - {"train", "test"})
        if odd:
            raise ProtocolError(f"protocol 'official': {COLUMN} must be train or test, got {', '.join(map(str, odd))}")
        test = split == "test"
        # A song on both sides of an official split (the same song under two ids) is scored, not fitted.
        fit = tracks[~test & ~tracks["song_key"].isin(set(tracks.loc[test, "song_key"]))]
        train, val = split_off_validation(fit, settings.val_size, seed)
        return unit_rows(1, "official split", [("train", train), ("val", val), ("test", tracks.loc[test, "uid"])])


@hookimpl
def mer_bench_protocols():
    return [OfficialSplit()]
