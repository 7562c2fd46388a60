"""Selection policies: none, equalise and cap, chosen per dataset."""

import pytest

from mer_bench.config import build_config, read_config_file
from mer_bench.errors import ConfigError, DatasetError
from mer_bench.registry import load_registry
from mer_bench.selection import Cap, check_names, describe, policy_for, select_tracks
from mer_bench.types import Scale
from tests.test_prepare import grid_tracks

SCALES = {"d": Scale(-1, 1)}


def kept_ids(selection, tracks=None) -> set[str]:
    kept, _ = select_tracks(grid_tracks() if tracks is None else tracks, SCALES, selection)
    return set(kept["track_id"])


def test_equalise_keeps_the_points_farthest_from_the_axes():
    kept, excluded = select_tracks(grid_tracks(), SCALES, {"d": "equalise"})
    assert kept["quadrant"].value_counts().to_dict() == {"A+V+": 2, "A+V-": 2, "A-V-": 2, "A-V+": 2}
    assert "p1" not in set(kept["track_id"])
    (only,) = excluded
    assert (only.track_id, only.reason) == ("p1", "balance")
    assert "A+V+ has 3 tracks, kept the 2 farthest from the axes (the smallest quadrant" in only.detail


def test_ties_break_by_radius_then_id():
    tracks = grid_tracks()
    # p1 now ties p2 on score 0.5 but lies farther from the centre; p3 ties p2 exactly.
    tracks.loc[tracks.track_id == "p1", ["arousal", "valence"]] = [0.9, 0.5]
    tracks.loc[tracks.track_id == "p3", ["arousal", "valence"]] = [0.5, 0.5]
    kept = kept_ids({"d": "equalise"}, tracks)
    assert {"p1", "p2"} <= kept and "p3" not in kept


def test_equalise_refuses_a_dataset_with_an_empty_quadrant_and_says_what_else_to_choose():
    tracks = grid_tracks()
    tracks = tracks[tracks.quadrant != "A-V+"]
    with pytest.raises(DatasetError, match=r"no tracks in quadrant\(s\) A-V\+.*\"none\" or \{ cap = N \}"):
        select_tracks(tracks, SCALES, {"d": "equalise"})
    assert len(select_tracks(tracks, SCALES, {"d": Cap(cap=1)})[0]) == 3  # a cap needs no full quadrant


def test_a_cap_keeps_small_quadrants_whole_and_the_most_extreme_of_larger_ones():
    kept, excluded = select_tracks(grid_tracks(), SCALES, {"d": Cap(cap=1)})
    assert sorted(kept["track_id"]) == ["m1", "n1", "p3", "q1"]  # the farthest from both axes in each
    assert {e.reason for e in excluded} == {"cap"} and len(excluded) == 5
    assert "A+V+ has 3 tracks, kept the 1 farthest from the axes (cap 1; this one: distance" in excluded[0].detail
    assert kept_ids({"d": Cap(cap=2)}) == kept_ids({"d": "equalise"})  # here the smallest quadrant has 2
    assert len(kept_ids({"d": Cap(cap=3)})) == 9 == len(kept_ids({"d": "none"}))


def test_the_policy_of_a_dataset_not_named_is_the_star_entry_else_equalise():
    assert policy_for({"d": "none", "*": Cap(cap=4)}, "d") == "none"
    assert policy_for({"d": "none", "*": Cap(cap=4)}, "e") == Cap(cap=4)
    assert policy_for({}, "e") == "equalise"
    assert [describe(p) for p in ("none", "equalise", Cap(cap=60))] == ["none", "equalise", "cap 60"]


def test_policies_come_from_the_preset_and_the_config_file_dataset_by_dataset(tmp_path):
    registry = load_registry()
    paper = build_config(registry, {"model": "majority", "datasets": "all"})
    assert paper.selection == {"4q": "none", "bimodal": "none", "pmemo": Cap(cap=60), "emomusic": Cap(cap=91), "*": "equalise"}
    balanced = build_config(registry, {"model": "majority", "datasets": "all", "preset": "paper-balanced"})
    assert {policy_for(balanced.selection, d) for d in balanced.datasets} == {"equalise"}
    path = tmp_path / "run.toml"
    path.write_text('[selection]\npmemo = { cap = 58 }\n"*" = "none"\n')
    mine = build_config(registry, {"model": "majority", "datasets": "all"}, path)
    assert [describe(policy_for(mine.selection, d)) for d in mine.datasets] == ["none", "cap 58", "cap 91", "none"]
    assert describe(policy_for(mine.selection, "demo")) == "none"


@pytest.mark.parametrize(
    "text, message",
    [
        ('[selection]\npmemo = "cap"\n', "selection.pmemo"),
        ("[selection]\npmemo = { cap = 0 }\n", "greater than or equal to 1"),
        ("[selection]\npmemo = { cap = 60, top = 3 }\n", "Extra inputs are not permitted"),
        ("balance = true\n", r'balance was replaced by a \[selection\] table.*balance = true is "\*" = "equalise"'),
        # Settings that moved into the protocol say where they went.
        ("folds = 3\n", r"folds is a setting of the evaluation protocol now: put it under \[protocol_settings\]"),
        ("test_size = 0.2\n", r"--set protocol.test_size=VALUE"),
    ],
)
def test_bad_selection_and_moved_settings_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_config_file(path)


def test_a_misspelt_dataset_name_is_an_error_not_a_silent_default():
    check_names({"pmemo": "none", "*": "equalise"}, {"pmemo", "4q"})
    with pytest.raises(ConfigError, match=r"\[selection\] names 'pmeno', which is no dataset plugin \(known: 4q, pmemo"):
        check_names({"pmeno": "none"}, {"pmemo", "4q"})
