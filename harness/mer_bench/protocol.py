"""Stage 4, split: a held-out test set, then stratified k folds on the rest, from one seed.

Strata are quadrant x dataset x genre where a dataset has genres. A stratum with fewer
than ``folds`` tracks falls back to quadrant x dataset, then to quadrant, row by row, so
rare genres do not break the split; if the test set is still too small for the number of
strata, the whole split uses the next coarser level.

Tracks that share a ``song_key`` (the same song under two ids) form one group, and
groups, not tracks, are split: a song never sits on both sides of the test split or of
a fold. A group is stratified by its first member (lowest uid).

The input is sorted by track uid first, so the same tracks and seed give the same
split whatever order the loaders returned them in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from mer_bench.errors import DatasetError

#: Columns of ``splits.csv``: ``split`` is ``test`` or ``dev``; ``fold`` is the fold (numbered
#: from 1, as in the run folder and every table) whose validation part holds a dev track, -1
#: for test tracks.
SPLIT_COLUMNS = ["uid", "dataset", "track_id", "quadrant", "song_key", "stratum", "split", "fold"]
LEVELS = (("quadrant", "dataset", "genre"), ("quadrant", "dataset"), ("quadrant",))


def track_uids(tracks: pd.DataFrame) -> pd.Series:
    """``dataset/track_id``: unique across datasets."""
    return tracks["dataset"].astype(str) + "/" + tracks["track_id"].astype(str)


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


def merged_groups(tracks: pd.DataFrame) -> dict[str, int]:
    """How many song keys hold more than one track, and how many tracks they hold."""
    sizes = tracks["song_key"].value_counts()
    return {"groups": int((sizes > 1).sum()), "tracks": int(sizes[sizes > 1].sum())}


def make_splits(tracks: pd.DataFrame, folds: int, test_size: float, seed: int) -> pd.DataFrame:
    """Assign every track to the test set or to one validation fold; returns the split table."""
    table = tracks.assign(uid=track_uids(tracks)).sort_values("uid", kind="mergesort").reset_index(drop=True)
    if table["uid"].duplicated().any():
        raise DatasetError("track uids are not unique: " + ", ".join(table.loc[table["uid"].duplicated(), "uid"]))
    if "song_key" not in table.columns:
        table["song_key"] = table["uid"]
    table["song_key"] = table["song_key"].where(table["song_key"].notna(), table["uid"])
    groups = table.drop_duplicates("song_key", keep="first")  # one row per song: its lowest uid
    per_quadrant = groups["quadrant"].value_counts()
    if per_quadrant.min() < folds + 1 or len(per_quadrant) < table["quadrant"].nunique():
        raise DatasetError(
            f"too few songs to split: {per_quadrant.to_dict()} per quadrant; need at least "
            f"{folds + 1} in each for a test set and {folds} folds"
        )
    last_error: ValueError | None = None
    for level in range(len(LEVELS)):
        labels = strata(groups, folds, level)
        try:
            dev_idx, test_idx = train_test_split(
                groups.index.to_numpy(), test_size=test_size, random_state=seed, stratify=labels.to_numpy()
            )
        except ValueError as exc:  # more strata than test songs: stratify more coarsely
            last_error = exc
            continue
        break
    else:
        raise DatasetError(f"cannot split {len(groups)} songs with test_size={test_size}: {last_error}")
    dev = groups.loc[np.sort(dev_idx)]
    dev_strata = strata(dev, folds, level)
    group_fold = pd.Series(-1, index=groups["song_key"].to_numpy())
    group_stratum = pd.Series(labels.to_numpy(), index=groups["song_key"].to_numpy())
    group_stratum[dev["song_key"].to_numpy()] = dev_strata.to_numpy()
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, val_pos) in enumerate(kfold.split(dev.index.to_numpy(), dev_strata.to_numpy()), start=1):
        group_fold[dev["song_key"].to_numpy()[val_pos]] = fold
    test_keys = set(groups.loc[test_idx, "song_key"])
    table["split"] = np.where(table["song_key"].isin(test_keys), "test", "dev")
    table["fold"] = table["song_key"].map(group_fold).astype(int)
    table["stratum"] = table["song_key"].map(group_stratum)
    return table[SPLIT_COLUMNS]


def fold_parts(splits: pd.DataFrame, fold: int) -> dict[str, list[str]]:
    """The uids of the train, validation and test parts of ``fold``."""
    dev = splits["split"] == "dev"
    return {
        "train": splits.loc[dev & (splits["fold"] != fold), "uid"].tolist(),
        "val": splits.loc[dev & (splits["fold"] == fold), "uid"].tolist(),
        "test": splits.loc[~dev, "uid"].tolist(),
    }
