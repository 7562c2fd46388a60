"""The split protocol: stratified, deterministic, and graceful with rare strata."""

import numpy as np
import pandas as pd
import pytest

from mer_bench.errors import DatasetError
from mer_bench.protocol import fold_parts, make_splits, merged_groups
from mer_bench.results import csv_bytes
from mer_bench.types import QUADRANTS


def corpus(n_per=30, genres=None, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for dataset, n in (("alpha", n_per), ("beta", n_per // 2)):
        for q in QUADRANTS:
            for i in range(n):
                rows.append({"dataset": dataset, "track_id": f"{q}-{i}", "quadrant": q, "genre": None})
    table = pd.DataFrame(rows)
    if genres is not None:
        alpha = table.dataset == "alpha"
        table.loc[alpha, "genre"] = rng.choice(genres, size=alpha.sum())
    return table


def test_test_set_and_folds_are_stratified_on_quadrant_and_dataset():
    splits = make_splits(corpus(), folds=5, test_size=0.1, seed=3)
    test = splits[splits.split == "test"]
    assert len(test) == pytest.approx(0.1 * len(splits), abs=4)
    counts = test.groupby(["dataset", "quadrant"]).size()
    assert counts.loc["alpha"].min() == 3 and counts.loc["beta"].min() >= 1
    dev = splits[splits.split == "dev"]
    assert sorted(dev.fold.unique()) == [1, 2, 3, 4, 5]
    per_stratum = dev.groupby(["dataset", "quadrant", "fold"]).size().unstack()
    assert (per_stratum.max(axis=1) - per_stratum.min(axis=1)).max() <= 1


def test_fold_parts_partition_the_dev_set_and_never_touch_test():
    splits = make_splits(corpus(), folds=5, test_size=0.1, seed=3)
    test = set(splits.loc[splits.split == "test", "uid"])
    seen_val = []
    for fold in range(1, 6):
        parts = fold_parts(splits, fold)
        assert not set(parts["train"]) & set(parts["val"])
        assert not (set(parts["train"]) | set(parts["val"])) & test
        assert set(parts["test"]) == test
        seen_val.extend(parts["val"])
    assert sorted(seen_val) == sorted(splits.loc[splits.split == "dev", "uid"])


def test_same_seed_and_data_give_byte_identical_splits_whatever_the_row_order():
    table = corpus(genres=["rock", "pop"])
    first = csv_bytes(make_splits(table, 5, 0.1, seed=7))
    shuffled = table.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert csv_bytes(make_splits(shuffled, 5, 0.1, seed=7)) == first
    assert csv_bytes(make_splits(table, 5, 0.1, seed=8)) != first


@pytest.mark.filterwarnings("error")
def test_rare_genres_fall_back_to_coarser_strata():
    table = corpus(genres=["rock", "pop"])
    table.loc[table.track_id == "A+V+-0", "genre"] = "polka"  # a genre with one track
    splits = make_splits(table, 5, 0.1, seed=0)
    strata = splits.set_index("uid")["stratum"]
    assert strata["alpha/A+V+-0"] in {"A+V+|alpha|rock", "A+V+|alpha|pop"}
    assert strata["beta/A+V+-0"] == "A+V+|beta"
    assert strata.str.endswith("|rock").any() and strata.str.endswith("|pop").any()
    assert "polka" not in "".join(strata)


def test_too_few_tracks_is_a_clear_error():
    with pytest.raises(DatasetError, match="too few songs to split"):
        make_splits(corpus(n_per=3).query("dataset == 'alpha'"), 5, 0.1, seed=0)


def test_tracks_of_one_song_stay_together_in_the_test_split_and_every_fold():
    table = corpus()
    table["song_key"] = table["dataset"] + "/" + table["track_id"]
    # 20 songs that appear twice, once in each dataset (as PMEmo's duplicates under two ids do)
    for i in range(5):
        for q in QUADRANTS:
            table.loc[(table.dataset == "beta") & (table.track_id == f"{q}-{i}"), "song_key"] = f"alpha/{q}-{i}"
    assert merged_groups(table) == {"groups": 20, "tracks": 40}
    for seed in range(5):
        splits = make_splits(table, 5, 0.1, seed)
        by_song = splits.groupby("song_key")
        assert (by_song["split"].nunique() == 1).all()
        assert (by_song["fold"].nunique() == 1).all()
    assert splits.loc[splits.song_key == "alpha/A+V+-0", "uid"].tolist() == ["alpha/A+V+-0", "beta/A+V+-0"]


def test_without_shared_songs_every_track_is_its_own_group():
    table = corpus()
    plain = make_splits(table, 5, 0.1, seed=2)
    keyed = make_splits(table.assign(song_key=table["dataset"] + ":" + table["track_id"]), 5, 0.1, seed=2)
    assert plain["split"].tolist() == keyed["split"].tolist() and plain["fold"].tolist() == keyed["fold"].tolist()
