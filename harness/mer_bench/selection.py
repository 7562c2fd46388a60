"""Which prepared tracks of each dataset a run keeps: the selection policies.

A policy is chosen per dataset (``[selection]`` in a config file or preset, by dataset
name, ``"*"`` for the datasets not named):

- ``"none"`` keeps every track;
- ``"equalise"`` cuts every quadrant to the size of the dataset's smallest one;
- ``{ cap = N }`` keeps every track of a quadrant with at most N, and the N most extreme
  tracks of a larger one.

Where tracks are dropped, the kept ones are the most extreme: farthest from both axes
(the smaller of the two distances from the scale's midpoint), then farthest from the
centre, then by track id, so the choice is deterministic. Datasets that ship quadrants
without values (4Q) rank by track id alone. Every track left out is reported.
"""

from __future__ import annotations

from typing import Literal, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mer_bench.errors import ConfigError, DatasetError
from mer_bench.types import QUADRANTS, Exclusion, Scale

#: The key of ``[selection]`` that applies to every dataset not named.
OTHERS = "*"
#: The policy of a dataset that ``[selection]`` does not mention, with no ``"*"`` either.
DEFAULT = "equalise"


class Cap(BaseModel):
    """At most ``cap`` tracks per quadrant, the most extreme ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cap: int = Field(ge=1)


Policy = Union[Literal["none", "equalise"], Cap]


def policy_for(selection: dict[str, Policy], dataset: str) -> Policy:
    """The policy ``selection`` gives ``dataset``."""
    return selection.get(dataset, selection.get(OTHERS, DEFAULT))


def describe(policy: Policy) -> str:
    """``none``, ``equalise`` or ``cap N``: how manifests and reports name a policy."""
    return f"cap {policy.cap}" if isinstance(policy, Cap) else policy


def check_names(selection: dict[str, Policy], known: set[str]) -> None:
    """ConfigError for a ``[selection]`` key that is no dataset plugin: a misspelt name
    would otherwise leave that dataset under the default policy without a word."""
    unknown = sorted(set(selection) - known - {OTHERS})
    if unknown:
        raise ConfigError(
            f"[selection] names {', '.join(map(repr, unknown))}, which is no dataset plugin "
            f"(known: {', '.join(sorted(known))}; \"*\" stands for the others)"
        )


def extremeness(tracks: pd.DataFrame, scale: Scale | None) -> pd.DataFrame:
    """Add ``score`` = min(|a - mid|, |v - mid|) and ``radius`` (distance from the centre).

    Both are 0 for datasets that give quadrants without valence/arousal values.
    """
    if scale is None:
        return tracks.assign(score=0.0, radius=0.0)
    da = (tracks["arousal"] - scale.midpoint).abs()
    dv = (tracks["valence"] - scale.midpoint).abs()
    return tracks.assign(score=np.minimum(da, dv).fillna(0.0), radius=np.hypot(da, dv).fillna(0.0))


def _quota(dataset: str, counts: pd.Series, policy: Policy) -> int | None:
    """How many tracks each quadrant keeps (None: all of them)."""
    if policy == "none":
        return None
    if isinstance(policy, Cap):
        return policy.cap
    empty = [q for q in QUADRANTS if counts.get(q, 0) == 0]
    if empty:
        raise DatasetError(
            f"dataset {dataset!r} has no tracks in quadrant(s) {', '.join(empty)} after preparation, so its "
            f'quadrants cannot be equalised; select it with "none" or {{ cap = N }} in [selection]'
        )
    return int(counts.min())


def select_tracks(
    tracks: pd.DataFrame, scales: dict[str, Scale | None], selection: dict[str, Policy]
) -> tuple[pd.DataFrame, list[Exclusion]]:
    """The tracks each dataset's policy keeps (in their original order), and those it leaves out."""
    if tracks.empty:
        return tracks, []
    kept, excluded = [], []
    for dataset, rows in tracks.groupby("dataset", sort=False):
        policy = policy_for(selection, dataset)
        quota = _quota(dataset, rows["quadrant"].value_counts(), policy)
        if quota is None:
            kept.append(rows)
            continue
        reason, rule = ("cap", f"cap {quota}") if isinstance(policy, Cap) else ("balance", "the smallest quadrant")
        scored = extremeness(rows, scales.get(dataset))
        for quadrant, group in scored.groupby("quadrant", sort=False):
            ranked = group.sort_values(["score", "radius", "track_id"], ascending=[False, False, True], kind="mergesort")
            kept.append(ranked.iloc[:quota].drop(columns=["score", "radius"]))
            for row in ranked.iloc[quota:].itertuples(index=False):
                excluded.append(
                    Exclusion(
                        dataset,
                        row.track_id,
                        "prepare",
                        reason,
                        f"{quadrant} has {len(group)} tracks, kept the {quota} farthest from the axes ({rule}; "
                        f"this one: distance {row.score:.4g})",
                    )
                )
    return pd.concat(kept).sort_index(), excluded
