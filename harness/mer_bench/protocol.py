"""Stage 4, split: the run's evaluation protocol (a plugin) turns the prepared tracks into
units, and the harness checks them before any model sees them.

A unit is one model's evaluation: the tracks it fits on (``train``), stops early on
(``val``) and is scored on (``test``). The protocol returns them as a long table (see
:class:`mer_bench.types.EvaluationProtocol`); :func:`make_units` checks it and adds each
track's dataset, id, quadrant and song key, giving ``splits.csv``: one row per track and
unit, documented in docs/protocol.md, and what ``compare`` checks before pairing runs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mer_bench.errors import DatasetError, PluginCallError, ProtocolError
from mer_bench.plugin_calls import plugin_call
from mer_bench.types import ROLES, UNIT_COLUMNS, EvaluationProtocol

#: The first columns of ``splits.csv``; a protocol's own columns (``stratum``, ``repeat``) follow.
SPLIT_COLUMNS = ["unit", "label", "role", "uid", "dataset", "track_id", "quadrant", "song_key"]


def track_uids(tracks: pd.DataFrame) -> pd.Series:
    """``dataset/track_id``: unique across datasets."""
    return tracks["dataset"].astype(str) + "/" + tracks["track_id"].astype(str)


def protocol_input(tracks: pd.DataFrame) -> pd.DataFrame:
    """The prepared tracks as a protocol gets them: with ``uid``, sorted by it (so the loaders'
    row order cannot change a split), and every ``song_key`` filled (a track of no known song
    is a song of its own)."""
    table = tracks.assign(uid=track_uids(tracks)).sort_values("uid", kind="mergesort").reset_index(drop=True)
    if table["uid"].duplicated().any():
        raise DatasetError("track uids are not unique: " + ", ".join(table.loc[table["uid"].duplicated(), "uid"]))
    if "song_key" not in table.columns:
        table["song_key"] = table["uid"]
    table["song_key"] = table["song_key"].where(table["song_key"].notna(), table["uid"])
    return table


def merged_groups(tracks: pd.DataFrame) -> dict[str, int]:
    """How many song keys hold more than one track, and how many tracks they hold."""
    sizes = tracks["song_key"].value_counts()
    return {"groups": int((sizes > 1).sum()), "tracks": int(sizes[sizes > 1].sum())}


def make_units(tracks: pd.DataFrame, protocol: EvaluationProtocol, settings: Any, seed: int) -> pd.DataFrame:
    """The split table of a run: ``protocol``'s units of the prepared ``tracks``, checked,
    with the columns of :data:`SPLIT_COLUMNS` first, sorted by unit and uid."""
    table = protocol_input(tracks)
    with plugin_call("protocol", protocol.name, "units", f"{len(table)} tracks", keep=(DatasetError, ProtocolError)):
        units = protocol.units(table.copy(), settings, seed)
    check_units(units, table, protocol.name)
    info = table[["uid", "dataset", "track_id", "quadrant", "song_key"]]
    extra = [c for c in units.columns if c not in SPLIT_COLUMNS]
    out = units[[*UNIT_COLUMNS, *extra]].merge(info, on="uid", how="left", validate="many_to_one")
    out["unit"] = out["unit"].astype(int)
    return out[[*SPLIT_COLUMNS, *extra]].sort_values(["unit", "uid"], kind="mergesort").reset_index(drop=True)


def check_units(units: Any, tracks: pd.DataFrame, name: str) -> None:
    """PluginCallError saying what protocol ``name``'s unit table gets wrong, if anything."""
    owner = f"protocol plugin {name!r}: units"

    def fail(problem: str) -> None:
        raise PluginCallError(f"{owner} {problem}")

    if not isinstance(units, pd.DataFrame):
        fail(f"returned {type(units).__name__}, not a pandas DataFrame")
    missing = [c for c in UNIT_COLUMNS if c not in units.columns]
    if missing:
        fail(f"returned a table without column(s) {', '.join(missing)}")
    if units.empty:
        fail("returned no units")
    numbers = pd.to_numeric(units["unit"], errors="coerce")
    if numbers.isna().any() or (numbers != numbers.round()).any():
        fail("numbered a unit with something that is not an integer")
    expected = list(range(1, int(numbers.max()) + 1))
    if sorted(numbers.astype(int).unique()) != expected:
        fail(f"must number its units 1 to n without gaps, got {sorted(numbers.astype(int).unique())[:10]}")
    odd_roles = sorted(set(units["role"]) - set(ROLES), key=str)
    if odd_roles:
        fail(f"gave role(s) {', '.join(map(str, odd_roles))}; a role is one of {', '.join(ROLES)}")
    unknown = sorted(set(units["uid"]) - set(tracks["uid"]), key=str)
    if unknown:
        fail(f"named tracks that were not prepared: {', '.join(map(str, unknown[:5]))}")
    twice = units.duplicated(["unit", "uid"])
    if twice.any():
        row = units[twice].iloc[0]
        fail(f"put track {row['uid']} into unit {row['unit']} twice")
    labels = units.groupby("unit")["label"].nunique()
    if (labels != 1).any():
        fail(f"gave unit {labels[labels != 1].index[0]} more than one label")
    if units.groupby("unit")["label"].first().duplicated().any():
        fail("gave two units the same label")
    if "repeat" in units.columns:
        repeats = pd.to_numeric(units["repeat"], errors="coerce")
        if repeats.isna().any() or (repeats != repeats.round()).any() or (repeats < 1).any():
            fail("gave a repeat that is not a whole number from 1")
        if (units.assign(repeat=repeats).groupby("unit")["repeat"].nunique() != 1).any():
            fail("gave one unit more than one repeat")
    song = units.merge(tracks[["uid", "song_key"]], on="uid", how="left")
    for unit, rows in song.groupby("unit"):
        label = rows["label"].iloc[0]
        for role in ROLES:
            if not (rows["role"] == role).any():
                fail(f"left unit {unit} ({label}) without {role} tracks")
        sides = rows.groupby("song_key")["role"].nunique()
        if (sides > 1).any():
            key = sides[sides > 1].index[0]
            parts = sorted(rows.loc[rows["song_key"] == key, "role"].unique())
            fail(f"put song {key!r} on two sides of unit {unit} ({label}): {' and '.join(parts)}")


def unit_numbers(splits: pd.DataFrame) -> list[int]:
    """The units of a split table, in order."""
    return sorted(int(u) for u in splits["unit"].unique())


def shares_one_test_set(splits: pd.DataFrame) -> bool:
    """Whether two units or more are all scored on the same tracks (``holdout-kfold`` without
    repeats): the units' predictions of one track can then be averaged into a fold ensemble."""
    tests = splits[splits["role"] == "test"].groupby("unit")["uid"].apply(frozenset)
    return len(tests) > 1 and tests.nunique() == 1
