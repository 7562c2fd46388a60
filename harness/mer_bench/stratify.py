"""Song-grouped, stratified splitting and unit tables: the building blocks of the built-in
protocols, there for any protocol plugin to use.

Strata are quadrant x dataset x genre where a dataset has genres. A stratum with fewer
than ``min_count`` songs falls back to quadrant x dataset, then to quadrant, row by row,
so rare genres do not break a split; if a held-out part is still too small for the number
of strata, the whole split uses the next coarser level.

Songs, not tracks, are split: :func:`song_groups` gives one row per song key (its
lowest uid stands for it), so tracks of one song never sit on two sides of a split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mer_bench.errors import DatasetError, ProtocolError

LEVELS = (("quadrant", "dataset", "genre"), ("quadrant", "dataset"), ("quadrant",))


def strata(tracks: pd.DataFrame, min_count: int, start_level: int = 0) -> pd.Series:
    """A stratum label per row, coarsened row by row where a stratum has < ``min_count`` rows.

    Rows still in too small a group at the coarsest level join the largest stratum of
    their quadrant and dataset (else of their quadrant), so every stratum is usable.
    """
    labels = pd.Series(None, index=tracks.index, dtype=object)
    pending = pd.Series(True, index=tracks.index)
    for columns in LEVELS[start_level:]:
        parts = tracks[list(columns)].astype(object).where(tracks[list(columns)].notna(), "")
        key = parts.astype(str).agg(lambda p: "|".join(v for v in p if v), axis=1)
        counts = key[pending].value_counts()
        ok = pending & (key.map(counts).fillna(0) >= min_count)
        labels[ok] = key[ok]
        pending &= ~ok
    for idx in pending[pending].index:
        row = tracks.loc[idx]
        for same in (["quadrant", "dataset"], ["quadrant"]):
            mask = (tracks[same] == row[same]).all(axis=1) & labels.notna()
            if mask.any():
                sizes = labels[mask].value_counts()
                labels[idx] = min(sizes.index, key=lambda k: (-sizes[k], k))
                break
        else:
            labels[idx] = row["quadrant"]
    return labels


def song_groups(tracks: pd.DataFrame) -> pd.DataFrame:
    """One row per song key of ``tracks`` (sorted by uid, as a protocol receives them): the
    song's first track, which stands for the song when it is stratified."""
    return tracks.drop_duplicates("song_key", keep="first")


def stratified_holdout(
    groups: pd.DataFrame, share: float | int, seed: int, min_count: int
) -> tuple[pd.DataFrame, pd.DataFrame, int, pd.Series]:
    """Split songs ``groups`` into a kept part and a held-out ``share`` (a fraction, or a
    number of songs), stratified.

    Returns (kept, held out, the stratum level used, each song's stratum at that level);
    strata are coarsened until the held-out part can hold one song of each. DatasetError
    when even quadrants alone cannot be split.
    """
    from sklearn.model_selection import train_test_split

    last_error: ValueError | None = None
    for level in range(len(LEVELS)):
        labels = strata(groups, min_count, level)
        try:
            kept_idx, held_idx = train_test_split(
                groups.index.to_numpy(), test_size=share, random_state=seed, stratify=labels.to_numpy()
            )
        except ValueError as exc:  # more strata than held-out songs: stratify more coarsely
            last_error = exc
            continue
        return groups.loc[np.sort(kept_idx)], groups.loc[np.sort(held_idx)], level, labels
    raise DatasetError(f"cannot hold out {share:g} of {len(groups)} songs stratified by quadrant: {last_error}")


def stratified_folds(groups: pd.DataFrame, folds: int, seed: int, level: int = 0) -> tuple[pd.Series, pd.Series]:
    """Stratified ``folds``-fold assignment of songs ``groups``: (fold 1..k, stratum), each a
    Series indexed by song key."""
    from sklearn.model_selection import StratifiedKFold

    labels = strata(groups, folds, level)
    fold = pd.Series(-1, index=groups["song_key"].to_numpy())
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(kfold.split(groups.index.to_numpy(), labels.to_numpy()), start=1):
        fold[groups["song_key"].to_numpy()[held]] = k
    return fold, pd.Series(labels.to_numpy(), index=groups["song_key"].to_numpy())


def require_songs_per_quadrant(groups: pd.DataFrame, needed: int, why: str) -> None:
    """DatasetError unless every quadrant present has ``needed`` songs (``why`` says what for)."""
    per_quadrant = groups["quadrant"].value_counts()
    if per_quadrant.min() < needed:
        raise DatasetError(f"too few songs to split: {per_quadrant.to_dict()} per quadrant; need at least {needed} in each {why}")


def split_off_validation(tracks: pd.DataFrame, share: float, seed: int) -> tuple[pd.Series, pd.Series]:
    """A stratified, song-grouped validation part carved from ``tracks``: (train uids, val uids).

    The part holds ``share`` of the songs, and at least one song of each quadrant, so that
    early stopping sees every class.
    """
    groups = song_groups(tracks)
    require_songs_per_quadrant(groups, 2, "for a validation part")
    size = max(int(round(share * len(groups))), groups["quadrant"].nunique())
    _, held, _, _ = stratified_holdout(groups, size, seed, min_count=2)
    val = tracks["song_key"].isin(set(held["song_key"]))
    return tracks.loc[~val, "uid"], tracks.loc[val, "uid"]


def sub_seed(seed: int, *path: int) -> int:
    """A seed of its own for one part of a protocol (a repeat, a dataset), derived from the run's."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


def unit_rows(unit: int, label: str, parts: list[tuple[str, pd.Series]]) -> pd.DataFrame:
    """One unit's rows of a unit table (:class:`mer_bench.types.EvaluationProtocol`) from (role, uids) pairs."""
    frame = pd.concat([pd.DataFrame({"uid": list(uids), "role": role}) for role, uids in parts], ignore_index=True)
    return frame.assign(unit=unit, label=label)


def require_datasets(name: str, datasets: list[str], needed: int = 2) -> None:
    """ProtocolError unless a run of protocol ``name`` has ``needed`` datasets."""
    if len(set(datasets)) < needed:
        raise ProtocolError(
            f"protocol {name!r} needs at least {needed} datasets and this run has {len(set(datasets))} "
            f"({', '.join(datasets)}); pass more with --datasets (the demo has three sources: --datasets demo-sources)"
        )
