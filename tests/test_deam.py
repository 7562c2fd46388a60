"""DEAM from its official layout: padded song-level files, full songs, and the songs it shares with Emotion in Music."""

import json
import shutil

import pandas as pd
import pytest

from mer_bench.discover import discover
from mer_bench.errors import DatasetError
from mer_bench.label import assign_quadrants
from mer_bench.plugin_manager import load_plugins
from mer_bench_plugins.datasets.deam import Deam
from tests import layouts
from tests.conftest import BUILTINS, run_cli


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Emotion in Music and DEAM under their archive folder names; do not modify."""
    root = tmp_path_factory.mktemp("mediaeval")
    facts = {"emomusic": layouts.emomusic(root / "emoMusic"), "deam": layouts.deam(root / "DEAM")}
    return root, facts


@pytest.mark.parametrize("nested", [False, True], ids=["unpacked-in-place", "zip-named-folders"])
def test_deam_reads_its_padded_files_and_full_songs_and_unswaps_the_2013_songs(tmp_path, nested):
    facts = layouts.deam(tmp_path / "DEAM", nested=nested)
    loaded = Deam().load(tmp_path / "DEAM")
    tracks = loaded.tracks.set_index("track_id")
    assert len(tracks) == facts["annotated"]
    assert set(facts["full_songs"]) <= set(tracks.index)  # the 2015 file, 13 columns and a typo in one name
    assert {(e.track_id, e.reason) for e in loaded.excluded} == {(facts["unannotated"], "no-annotation")}
    assert tracks.loc["2001", "audio_path"].is_file()
    # Each song's values are its quadrant's, whichever file and year it comes from: the 2013
    # songs' swapped columns are put right, the later ones are read as they are.
    for quadrant, song in facts["shared"].items():
        arousal, valence = facts["values"][quadrant]
        assert (tracks.loc[str(song), "arousal"], tracks.loc[str(song), "valence"]) == (arousal, valence)
    labelled = assign_quadrants(loaded.tracks.assign(quadrant=None), load_plugins(BUILTINS, entry_points=False))
    assert labelled.groupby("quadrant").size().to_dict() == {q: 5 for q in facts["values"]}
    assert tracks["mediaeval_year"].value_counts().to_dict() == {2014: 12, 2013: 4, 2015: 4}
    assert loaded.notes == [
        "valence_mean and arousal_mean exchanged for the 4 songs with ids up to 1000 (the 2013 songs, whose DEAM "
        "song-level values are swapped against Emotion in Music's; see docs/datasets.md)"
    ]


def test_deam_and_emotion_in_music_give_a_shared_song_one_key_and_the_same_values(data_root):
    root, facts = data_root
    found = discover(load_plugins(BUILTINS, entry_points=False), ["emomusic", "deam"], root)
    tracks = found.tracks.set_index(["dataset", "track_id"])
    for song in facts["deam"]["shared"].values():
        emo, deam = tracks.loc[("emomusic", str(song))], tracks.loc[("deam", str(song))]
        assert emo["song_key"] == deam["song_key"]
        assert (emo["arousal"], emo["valence"]) == (deam["arousal"], deam["valence"])
    # Songs that only one of them holds stay songs of their own.
    assert tracks["song_key"].value_counts().max() == 2
    assert (tracks["song_key"].value_counts() == 2).sum() == len(facts["deam"]["shared"])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: shutil.rmtree(r / "MEMD_audio"), "MEMD_audio not found"),
        (lambda r: shutil.rmtree(r / "annotations"), "annotations averaged per song/song_level not found"),
        (
            lambda r: (r / "annotations" / "annotations averaged per song" / "song_level" / "static_annotations_averaged_songs_1_2000.csv").write_text("song_id, valence, arousal\n2, 3, 4\n"),
            r"static_annotations_averaged_songs_1_2000.csv lacks column\(s\) valence_mean, arousal_mean; found song_id, valence, arousal",
        ),
        (
            lambda r: (r / "annotations" / "annotations averaged per song" / "song_level" / "static_annotations_averaged_songs_2000_2058.csv").write_text(
                "song_id, valence_mean, arousal_mean\n 2001,  , 3\n"),
            "valence_mean is missing or not a number for song_id 2001",
        ),
    ],
)
def test_a_damaged_deam_copy_fails_with_a_message_naming_the_file(tmp_path, damage, message):
    layouts.deam(tmp_path / "DEAM", per_quadrant=1)
    damage(tmp_path / "DEAM")
    with pytest.raises(DatasetError, match=message):
        Deam().load(tmp_path / "DEAM")


def test_a_run_over_emotion_in_music_and_deam_never_splits_a_shared_song(data_root, tmp_path):
    root, facts = data_root
    runs = tmp_path / "runs"
    result = run_cli("run", "--model", "majority", "--datasets", "emomusic,deam", "--data-dir", str(root),
                     "--preset", "quick", "--set", "protocol.folds=3", "--runs-dir", str(runs), "--no-progress")
    assert result.returncode == 0, result.stderr
    (run_dir,) = list(runs.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["datasets"] == ["emomusic", "deam"]
    assert summary["song_groups"] == {"groups": 4, "tracks": 8}
    # The correction is said on screen and kept with the run.
    (note,) = json.loads((run_dir / "manifest.json").read_text())["data"]["deam"]["notes"]
    assert f"deam: {note}" in result.stdout and note.startswith("valence_mean and arousal_mean exchanged for the 4 songs")
    splits = pd.read_csv(run_dir / "splits.csv", dtype={"track_id": str})
    shared = splits[splits["track_id"].isin({str(s) for s in facts["deam"]["shared"].values()})]
    assert set(shared["dataset"]) == {"emomusic", "deam"}
    # In every unit, both copies of a shared song play the same role.
    assert (shared.groupby(["unit", "song_key"])["role"].nunique() == 1).all()
    assert (splits.groupby(["unit", "song_key"])["role"].nunique() == 1).all()
    # The full songs are kept: their central clip is taken like anyone's.
    kept = pd.read_csv(run_dir / "tracks.csv", dtype={"track_id": str})
    assert set(facts["deam"]["full_songs"]) <= set(kept.loc[kept.dataset == "deam", "track_id"])


def test_verify_counts_deam_and_shows_its_correction(data_root):
    root, facts = data_root
    result = run_cli("datasets", "verify", "deam,emomusic", "--data-dir", str(root), "--preset", "quick", "--json")
    assert result.returncode == 0, result.stderr
    checks = json.loads(result.stdout)
    assert list(checks) == ["deam", "emomusic"]
    assert (checks["deam"]["labelled"], checks["deam"]["unlabelled"]) == (facts["deam"]["annotated"], 1)
    assert checks["deam"]["notes"][0].startswith("valence_mean and arousal_mean exchanged for the 4 songs")
    assert checks["emomusic"]["notes"] == []
