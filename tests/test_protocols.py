"""Evaluation protocols as plugins: lodo, cross, cv and official on tracks read from the
official layouts, and what the harness checks of any protocol's units."""

import pandas as pd
import pytest
from pydantic import BaseModel

from mer_bench.discover import discover
from mer_bench.errors import DatasetError, PluginCallError, ProtocolError
from mer_bench.label import assign_quadrants
from mer_bench.plugin_manager import load_plugins
from mer_bench.protocol import make_units, protocol_input
from mer_bench.results import csv_bytes
from mer_bench.types import EvaluationProtocol
from tests import layouts
from tests.conftest import BUILTINS

PAPER = ("4q", "pmemo", "emomusic", "bimodal")


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(BUILTINS, entry_points=False)


@pytest.fixture(scope="module")
def paper_tracks(tmp_path_factory, plugins) -> pd.DataFrame:
    """The four paper datasets in their official layouts, discovered and labelled (no audio decoded)."""
    root = tmp_path_factory.mktemp("data")
    layouts.fourq(root / "MER_audio_taffc_dataset", per_quadrant=6)
    layouts.pmemo(root / "PMEmo2019", per_quadrant=6)
    layouts.emomusic(root / "emomusic", per_quadrant=6)
    layouts.bimodal(root / "bimodal", per_quadrant=6)
    found = discover(plugins, list(PAPER), root, {})
    return assign_quadrants(found.tracks, plugins)


def units(plugins, name: str, tracks: pd.DataFrame, seed: int = 0, **settings) -> pd.DataFrame:
    protocol = plugins.protocol(name)
    return make_units(tracks, protocol, protocol.settings_model(**settings), seed)


def sides_of_each_song(table: pd.DataFrame) -> pd.Series:
    """Per unit and song: how many roles its tracks play (1 when the song stays on one side)."""
    return table.groupby(["unit", "song_key"])["role"].nunique()


def test_lodo_tests_on_each_dataset_and_never_trains_on_it(plugins, paper_tracks):
    table = units(plugins, "lodo", paper_tracks, seed=3)
    labels = table.drop_duplicates("unit").set_index("unit")["label"]
    assert labels.tolist() == [f"test on {d}" for d in sorted(PAPER)]
    for unit, name in zip(labels.index, sorted(PAPER)):
        rows = table[table.unit == unit]
        assert set(rows.loc[rows.role == "test", "dataset"]) == {name}
        assert len(rows[rows.role == "test"]) == (paper_tracks.dataset == name).sum()
        assert name not in set(rows.loc[rows.role != "test", "dataset"])
        # the validation part is stratified by quadrant: each quadrant of the training datasets is in it
        assert set(rows.loc[rows.role == "val", "quadrant"]) == set(rows.loc[rows.role == "train", "quadrant"])
    assert (sides_of_each_song(table) == 1).all()


def test_lodo_keeps_a_song_found_in_two_datasets_out_of_the_training_part(plugins, paper_tracks):
    tracks = paper_tracks.copy()
    # the same song in 4Q and in PMEmo (as DEAM shares Emotion in Music's songs)
    q4 = tracks.index[tracks.dataset == "4q"][0]
    pm = tracks.index[tracks.dataset == "pmemo"][0]
    tracks.loc[[q4, pm], "song_key"] = "shared|song"
    table = units(plugins, "lodo", tracks, seed=3)
    shared = table[table.song_key == "shared|song"]
    test_on_4q = table.loc[table.label == "test on 4q", "unit"].iloc[0]
    assert set(shared.loc[shared.unit == test_on_4q, "role"]) == {"test"}  # PMEmo's copy is not trained on
    assert (sides_of_each_song(table) == 1).all()


def test_cross_has_every_ordered_pair_and_the_diagonal(plugins, paper_tracks):
    table = units(plugins, "cross", paper_tracks, seed=1)
    labels = table.drop_duplicates("unit")["label"].tolist()
    pairs = [f"{a} -> {b}" for a in sorted(PAPER) for b in sorted(PAPER) if a != b]
    assert [x for x in labels if x.split(" -> ")[0] != x.split(" -> ")[1]] == pairs  # n(n-1) = 12
    assert len(labels) == 12 + 4
    for _unit, rows in table.groupby("unit"):
        source, target = rows.label.iloc[0].split(" -> ")
        assert set(rows.loc[rows.role != "test", "dataset"]) == {source}
        assert set(rows.loc[rows.role == "test", "dataset"]) == {target}
        if source != target:
            assert (rows.role == "test").sum() == (paper_tracks.dataset == target).sum()
    # every unit fitted on one dataset fits on the same tracks
    fitted = table[table.role == "train"].groupby("unit")["uid"].apply(frozenset)
    source = table.drop_duplicates("unit").set_index("unit")["label"].str.split(" -> ").str[0]
    assert (fitted.groupby(source).nunique() == 1).all()
    assert (sides_of_each_song(table) == 1).all()
    without = units(plugins, "cross", paper_tracks, seed=1, diagonal=False)
    assert without["unit"].max() == 12


def test_cv_scores_every_track_once_per_repeat_and_is_deterministic(plugins, paper_tracks):
    table = units(plugins, "cv", paper_tracks, seed=2, folds=3, repeats=2)
    assert table["unit"].max() == 6
    n = len(paper_tracks)
    for repeat in (1, 2):
        tested = table[(table.repeat == repeat) & (table.role == "test")]
        assert len(tested) == n and tested.uid.nunique() == n
    assert table.loc[table.unit == 5, "label"].iloc[0] == "Repeat 2, fold 2"
    assert csv_bytes(units(plugins, "cv", paper_tracks, seed=2, folds=3, repeats=2)) == csv_bytes(table)
    assert csv_bytes(units(plugins, "cv", paper_tracks, seed=9, folds=3, repeats=2)) != csv_bytes(table)
    assert (sides_of_each_song(table) == 1).all()


def test_official_follows_the_mediaeval_sets_of_emotion_in_music(plugins, paper_tracks):
    emomusic = paper_tracks[paper_tracks.dataset == "emomusic"]
    table = units(plugins, "official", emomusic)
    assert table["label"].unique().tolist() == ["official split"]
    tested = set(table.loc[table.role == "test", "track_id"])
    assert tested == set(emomusic.loc[emomusic.mediaeval_set == "evaluation", "track_id"]) and tested
    fitted = set(table.loc[table.role != "test", "track_id"])
    assert fitted == set(emomusic.loc[emomusic.mediaeval_set == "development", "track_id"])


def test_official_on_a_dataset_without_one_is_a_clear_error(plugins, paper_tracks):
    with pytest.raises(ProtocolError, match=r"4q.* define\(s\) no official train/test split.*run it on emomusic alone"):
        units(plugins, "official", paper_tracks[paper_tracks.dataset.isin(["4q", "emomusic"])])


def test_cross_dataset_protocols_refuse_a_run_of_one_dataset(plugins):
    for name in ("lodo", "cross"):
        protocol = plugins.protocol(name)
        with pytest.raises(ProtocolError, match=f"protocol '{name}' needs at least 2 datasets.*demo-sources"):
            protocol.check(protocol.settings_model(), ["pmemo"])


def test_too_few_songs_for_the_folds_is_a_clear_error(plugins, paper_tracks):
    with pytest.raises(DatasetError, match="too few songs to split.*need at least 30 in each for 30 folds"):
        units(plugins, "cv", paper_tracks, folds=30)


class Settings(BaseModel):
    pass


class Broken(EvaluationProtocol):
    """A protocol whose units are whatever the test makes them."""

    name = "broken"
    settings_model = Settings

    def __init__(self, make):
        self.make = make

    def units(self, tracks, settings, seed):
        return self.make(tracks)


def first_unit(tracks: pd.DataFrame) -> pd.DataFrame:
    roles = (["train", "train", "val", "test"] * len(tracks))[: len(tracks)]
    return pd.DataFrame({"unit": 1, "label": "only", "uid": tracks["uid"], "role": roles})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: [1, 2], "returned list, not a pandas DataFrame"),
        (lambda t: first_unit(t).drop(columns=["role"]), "without column\\(s\\) role"),
        (lambda t: first_unit(t).assign(role="fit"), "gave role\\(s\\) fit; a role is one of train, val, test"),
        (lambda t: first_unit(t).assign(unit=2), "must number its units 1 to n"),
        (lambda t: first_unit(t).assign(uid="nowhere/1"), "named tracks that were not prepared: nowhere/1"),
        (lambda t: first_unit(t).assign(role="train"), "left unit 1 \\(only\\) without val tracks"),
        (lambda t: pd.concat([first_unit(t), first_unit(t).assign(unit=2)]), "gave two units the same label"),
        (lambda t: first_unit(t).assign(repeat=float("nan")), "gave a repeat that is not a whole number from 1"),
        (lambda t: first_unit(t).assign(repeat=[1 + k % 2 for k in range(len(t))]), "gave one unit more than one repeat"),
        (lambda t: t.pipe(first_unit).assign(role=lambda u: ["test" if k % 2 else "train" for k in range(len(u))]),
         "without val tracks"),
    ],
)
def test_a_protocol_returning_bad_units_is_named_in_one_line(plugins, paper_tracks, make, message):
    with pytest.raises(PluginCallError, match=f"protocol plugin 'broken': units .*{message}"):
        make_units(paper_tracks, Broken(make), Settings(), 0)


def test_a_protocol_putting_one_song_on_two_sides_is_refused(paper_tracks):
    tracks = paper_tracks.copy()
    tracks.loc[tracks.index[:2], "song_key"] = "one|song"
    table = protocol_input(tracks)
    split_song = table.index[table.song_key == "one|song"]

    def make(t):
        units = first_unit(t)
        units.loc[split_song, "role"] = ["train", "test"]
        return units

    with pytest.raises(PluginCallError, match="put song 'one\\|song' on two sides of unit 1 \\(only\\): test and train"):
        make_units(tracks, Broken(make), Settings(), 0)


def test_a_protocol_that_raises_is_named_in_one_line(paper_tracks):
    def make(t):
        raise KeyError("stratum")

    with pytest.raises(PluginCallError, match="protocol plugin 'broken' failed in units on .* tracks: KeyError: 'stratum'"):
        make_units(paper_tracks, Broken(make), Settings(), 0)
