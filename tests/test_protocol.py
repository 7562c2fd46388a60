"""The holdout-kfold protocol: stratified, deterministic, graceful with rare strata, and the
same split as before protocols were plugins."""

import numpy as np
import pandas as pd
import pytest

from mer_bench.errors import DatasetError
from mer_bench.protocol import make_units, merged_groups, protocol_input
from mer_bench.results import csv_bytes
from mer_bench.types import QUADRANTS
from mer_bench_plugins.protocols.holdout_kfold import HoldoutKFold, holdout_kfold_split
from tests.conftest import REPO

REFERENCE = REPO / "tests" / "data" / "reference"


def make_splits(tracks: pd.DataFrame, folds: int, test_size: float, seed: int) -> pd.DataFrame:
    """Per track (by uid): split, fold and stratum, with the track's dataset, quadrant and song key."""
    table = protocol_input(tracks)
    split = holdout_kfold_split(table, folds, test_size, seed)
    return table[["uid", "dataset", "quadrant", "song_key"]].merge(split, on="uid")


def units(tracks: pd.DataFrame, seed: int, **settings) -> pd.DataFrame:
    protocol = HoldoutKFold()
    return make_units(tracks, protocol, protocol.settings_model(**settings), seed)


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


def test_units_partition_the_dev_set_and_never_touch_test():
    splits = make_splits(corpus(), folds=5, test_size=0.1, seed=3)
    table = units(corpus(), 3, folds=5, test_size=0.1)
    assert table["label"].drop_duplicates().tolist() == [f"Fold {k}" for k in range(1, 6)]
    test = set(splits.loc[splits.split == "test", "uid"])
    seen_val = []
    for fold in range(1, 6):
        rows = table[table["unit"] == fold]
        parts = {role: rows.loc[rows["role"] == role, "uid"].tolist() for role in ("train", "val", "test")}
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


def reference_corpus() -> pd.DataFrame:
    """The corpus the reference split was recorded on: genres, and 15 songs under two ids."""
    table = corpus(genres=["rock", "pop"])
    table["song_key"] = table["dataset"] + "/" + table["track_id"]
    ids = table.track_id.unique()
    for i in range(20):
        table.loc[(table.dataset == "beta") & (table.track_id == ids[i]), "song_key"] = "alpha/" + ids[i]
    return table


def test_holdout_kfold_gives_the_split_mer_bench_gave_before_protocols_were_plugins():
    # Recorded with make_splits at 9c1b0b5, the last commit before protocol plugins.
    before = pd.read_csv(REFERENCE / "holdout-kfold-corpus.csv")
    table = units(reference_corpus(), 7, folds=5, test_size=0.1)
    test = table[table.role == "test"].drop_duplicates("uid").set_index("uid")
    val = table[table.role == "val"].set_index("uid")
    now = pd.DataFrame({"uid": sorted(set(table.uid))}).set_index("uid")
    now["split"] = ["test" if u in test.index else "dev" for u in now.index]
    now["fold"] = [int(val.loc[u, "unit"]) if u in val.index else -1 for u in now.index]
    now["stratum"] = table.drop_duplicates("uid").set_index("uid")["stratum"]
    assert now.reset_index()[["uid", "stratum", "split", "fold"]].equals(before[["uid", "stratum", "split", "fold"]])


def test_repeats_draw_new_splits_and_the_first_repeat_is_the_plain_split():
    plain = units(corpus(), 4, folds=3, test_size=0.2)
    repeated = units(corpus(), 4, folds=3, test_size=0.2, repeats=2)
    assert repeated["unit"].max() == 6 and set(repeated["repeat"]) == {1, 2}
    assert repeated.loc[repeated.unit == 4, "label"].iloc[0] == "Repeat 2, fold 1"
    first = repeated[repeated.repeat == 1].drop(columns=["repeat", "label"]).reset_index(drop=True)
    assert first.equals(plain.drop(columns=["label"]))
    tests = [set(repeated.loc[(repeated.repeat == r) & (repeated.role == "test"), "uid"]) for r in (1, 2)]
    assert tests[0] != tests[1]
    assert csv_bytes(units(corpus(), 4, folds=3, test_size=0.2, repeats=2)) == csv_bytes(repeated)
