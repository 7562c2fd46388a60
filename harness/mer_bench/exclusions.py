"""What each stage left out: the preparation report, and the check that something is left.

Every stage that drops a track records an :class:`~mer_bench.types.Exclusion`; a run writes
them all to ``prep-report.csv``. A dataset that loses every track is an error that says why,
never a dataset that silently vanishes from the run.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from mer_bench.errors import DatasetError
from mer_bench.types import Exclusion

COLUMNS = ["dataset", "track_id", "stage", "reason", "detail", "quadrant", "arousal", "valence"]


def exclusions_table(excluded: list[Exclusion]) -> pd.DataFrame:
    """The preparation report: one row per excluded track, sorted for stable output."""
    table = pd.DataFrame([e.__dict__ for e in excluded], columns=COLUMNS)
    return table.sort_values(["dataset", "track_id", "stage"], kind="mergesort").reset_index(drop=True)


def why_excluded(excluded: list[Exclusion]) -> str:
    """``excluded`` summarised per reason, most common first, each with one example."""
    counts = Counter(e.reason for e in excluded)
    first = {}
    for e in excluded:
        first.setdefault(e.reason, e)
    return "; ".join(
        f"{reason} {n}" + (f" (e.g. {first[reason].track_id}: {first[reason].detail})" if first[reason].detail else "")
        for reason, n in counts.most_common()
    )


def require_tracks_left(tracks: pd.DataFrame, datasets: list[str], excluded: list[Exclusion], after: str) -> None:
    """DatasetError naming each of ``datasets`` that has no track left in ``tracks`` ``after``
    a stage, and why: what was excluded, or that its loader returned none."""
    present = set(tracks["dataset"]) if len(tracks) else set()
    empty = [name for name in datasets if name not in present]
    if not empty:
        return
    reasons = []
    for name in empty:
        mine = [e for e in excluded if e.dataset == name]
        why = f"{len(mine)} excluded: {why_excluded(mine)}" if mine else "its loader returned no track"
        reasons.append(f"{name!r} ({why})")
    raise DatasetError(f"no track is left after {after} in dataset {' | '.join(reasons)}")
