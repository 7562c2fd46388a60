"""Opt-in: the loaders on real copies of the official annotation files.

The files live outside the project (``../shared/data/annotations`` beside the checkout,
or ``$MER_BENCH_REAL_ANNOTATIONS``); the test is skipped when they are not there. Audio
is not redistributed, so the layouts get empty placeholder files where the loaders only
need the files to exist, and silent files of each release file's length where preparation
decodes them.
"""

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mer_bench.discover import discover
from mer_bench.label import assign_quadrants
from mer_bench.plugin_manager import load_plugins
from mer_bench.protocol import merged_groups
from tests.conftest import BUILTINS, REPO, run_cli

REAL = Path(os.environ.get("MER_BENCH_REAL_ANNOTATIONS", REPO.parent / "shared" / "data" / "annotations"))
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real annotation files not found at {REAL}")


def touch(path: Path, seconds: float) -> None:
    """An empty placeholder where the audio goes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


#: The two 4Q clips that are 10.08 s long (shared/datasets.md); all others are about 30 s.
SHORT_4Q = {"MT0013621344", "MT0013914319"}


def official_layout(root: Path, audio) -> Path:
    """A data root in the four official layouts with the real annotation files; ``audio(path,
    seconds)`` makes each audio file, ``seconds`` being what that file lasts in the release."""
    fourq = root / "MER_audio_taffc_dataset"
    fourq.mkdir(parents=True)
    for name in ("panda_dataset_taffc_annotations.csv", "panda_dataset_taffc_metadata.csv"):
        shutil.copy(REAL / "4Q" / name, fourq / name)
    songs = pd.read_csv(REAL / "4Q" / "panda_dataset_taffc_annotations.csv")
    for song, quadrant in zip(songs.Song, songs.Quadrant):
        audio(fourq / quadrant / f"{song}.mp3", 10.08 if song in SHORT_4Q else 30.0)

    pmemo = root / "PMEmo2019"
    (pmemo / "annotations").mkdir(parents=True)
    shutil.copy(REAL / "PMEmo" / "metadata.csv", pmemo / "metadata.csv")
    shutil.copy(REAL / "PMEmo" / "static_annotations.csv", pmemo / "annotations" / "static_annotations.csv")
    meta = pd.read_csv(REAL / "PMEmo" / "metadata.csv")
    for name, seconds in zip(meta.fileName, meta.duration):
        audio(pmemo / "chorus" / name, float(seconds))

    emo = root / "emoMusic"
    shutil.copytree(REAL / "EmotionInMusic", emo / "annotations")
    for i in range(1, 1001):
        audio(emo / "clips_45seconds" / f"{i}.mp3", 45.0)

    bimodal = root / "MER_bimodal_dataset"
    bimodal.mkdir()
    shutil.copy(REAL / "BiModal" / "MER-Audio-dataset.xlsx", bimodal / "MER-Audio-dataset.xlsx")
    sheet = pd.read_excel(REAL / "BiModal" / "MER-Audio-dataset.xlsx", engine="calamine", header=None)
    codes = [v for v in sheet.to_numpy().ravel() if isinstance(v, str) and v.startswith("A") and len(v) == 4]
    for code in codes:
        audio(bimodal / "Corpus-Audio-162" / f"{code}-song.mp3", 30.0)
    return root


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A data root in the official layouts: real annotation files, placeholder audio."""
    root = official_layout(tmp_path_factory.mktemp("real"), touch)
    plugins = load_plugins(BUILTINS, entry_points=False)
    found = discover(plugins, ["4q", "pmemo", "emomusic", "bimodal"], root)
    return found, assign_quadrants(found.tracks, plugins)


def quadrants(labelled, dataset):
    return labelled.loc[labelled.dataset == dataset, "quadrant"].value_counts().to_dict()


def excluded(found, dataset, reason):
    return sorted((e.track_id for e in found.excluded if e.dataset == dataset and e.reason == reason), key=lambda t: (len(t), t))


def test_4q_counts(real):
    found, labelled = real
    assert quadrants(labelled, "4q") == {"A+V+": 225, "A+V-": 225, "A-V-": 225, "A-V+": 225}
    assert not [e for e in found.excluded if e.dataset == "4q"]
    artists = set(labelled.loc[labelled.dataset == "4q", "artist"])
    assert "Einstürzende Neubauten" in artists


def test_pmemo_counts(real):
    found, labelled = real
    assert quadrants(labelled, "pmemo") == {"A+V+": 491, "A-V-": 138, "A+V-": 76, "A-V+": 62}
    assert excluded(found, "pmemo", "no-annotation") == (
        "11 64 85 95 101 110 118 205 206 226 264 278 291 311 320 352 359 371 384 392 404 459 464 596 610 687 866".split()
    )
    pmemo = labelled[labelled.dataset == "pmemo"]
    # The 11 pairs of the research notes, plus Drake's "Sneakin'" (224) and "Sneakin’" (277),
    # same song and length, which only differ by the apostrophe.
    assert merged_groups(pmemo) == {"groups": 12, "tracks": 24}
    pairs = {tuple(sorted(g.track_id, key=int)) for _, g in pmemo.groupby("song_key") if len(g) > 1}
    assert {("90", "92"), ("853", "854"), ("966", "967"), ("224", "277")} <= pairs


def test_emomusic_counts(real):
    found, labelled = real
    assert quadrants(labelled, "emomusic") == {"A-V-": 307, "A+V+": 251, "A-V+": 113, "A+V-": 73}
    assert len(excluded(found, "emomusic", "no-annotation")) == 256
    emo = labelled[labelled.dataset == "emomusic"]
    assert emo.genre.value_counts().to_dict() == {
        "Classical": 116, "Country": 105, "Jazz": 105, "Blues": 100, "Electronic": 92, "Pop": 78, "Rock": 77, "Folk": 71,
    }
    assert emo.mediaeval_set.value_counts().to_dict() == {"development": 619, "evaluation": 125}
    assert not emo.title.str.contains("\t").any() and not emo.artist.str.contains("\t").any()


def test_bimodal_counts(real):
    found, labelled = real
    assert quadrants(labelled, "bimodal") == {"A+V+": 52, "A+V-": 45, "A-V-": 31, "A-V+": 34}
    assert not [e for e in found.excluded if e.dataset == "bimodal"]
    assert labelled.loc[labelled.dataset == "bimodal", "valence"].between(-4, 3.8).all()


@pytest.fixture(scope="module")
def real_lengths(tmp_path_factory):
    """The official layouts with audio of each file's length in the release (silence at 100 Hz:
    WAV bytes under the official .mp3 names, which the decoder reads by content)."""
    made: dict[float, bytes] = {}

    def audio(path: Path, seconds: float) -> None:
        if seconds not in made:
            buffer = io.BytesIO()
            sf.write(buffer, np.zeros(round(seconds * 100), dtype=np.int16), 100, format="WAV", subtype="PCM_16")
            made[seconds] = buffer.getvalue()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(made[seconds])

    return official_layout(tmp_path_factory.mktemp("lengths"), audio)


def test_the_paper_preset_keeps_the_papers_tracks(real_lengths):
    """898 / 233 / 346 / 162: all of 4Q but its two 10 s clips, PMEmo capped at 60 per quadrant
    after the 24 s rule, Emotion in Music capped at 91, all of Bi-Modal (registry.toml)."""
    result = run_cli("datasets", "verify", "all", "--data-dir", str(real_lengths), "--json", timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    checks = json.loads(result.stdout)
    assert {name: (c["selection"], c["prepared"]) for name, c in checks.items()} == {
        "4q": ("none", 898), "pmemo": ("cap 60", 233), "emomusic": ("cap 91", 346), "bimodal": ("none", 162),
    }
    assert checks["pmemo"]["quadrants_prepared"] == {"A+V+": 60, "A+V-": 60, "A-V-": 60, "A-V+": 53}
    assert checks["emomusic"]["quadrants_prepared"] == {"A+V+": 91, "A+V-": 73, "A-V-": 91, "A-V+": 91}
    assert checks["4q"]["excluded"] == {"too-short": 2}
    assert sum(c["prepared"] for c in checks.values()) == 1639  # the paper prints 1,637 (its parts add up to 1,640)
    equal = run_cli("datasets", "verify", "all", "--data-dir", str(real_lengths), "--json", "--preset", "paper-balanced")
    counts = {name: (c["selection"], c["prepared"]) for name, c in json.loads(equal.stdout).items()}
    assert counts == {"4q": ("equalise", 892), "pmemo": ("equalise", 212), "emomusic": ("equalise", 292),
                      "bimodal": ("equalise", 124)}


def test_only_a_cap_of_91_gives_the_papers_346_emotion_in_music_tracks(real):
    _, labelled = real
    sizes = labelled.loc[labelled.dataset == "emomusic", "quadrant"].value_counts()
    assert [cap for cap in range(1, 400) if sizes.clip(upper=cap).sum() == 346] == [91]


@pytest.fixture(scope="module")
def real_deam(tmp_path_factory):
    """DEAM's two real song-level files in their layout, with Emotion in Music beside it; placeholder audio."""
    root = tmp_path_factory.mktemp("deam")
    song_level = root / "DEAM" / "DEAM_Annotations" / "annotations" / "annotations averaged per song" / "song_level"
    song_level.mkdir(parents=True)
    for path in sorted((REAL / "DEAM").glob("static_annotations_averaged_songs_*.csv")):
        shutil.copy(path, song_level / path.name)
        for song in pd.read_csv(path, skipinitialspace=True).iloc[:, 0]:
            touch(root / "DEAM" / "DEAM_audio" / "MEMD_audio" / f"{song}.mp3", 45.0)
    shutil.copytree(REAL / "EmotionInMusic", root / "emoMusic" / "annotations")
    for i in range(1, 1001):
        touch(root / "emoMusic" / "clips_45seconds" / f"{i}.mp3", 45.0)
    plugins = load_plugins(BUILTINS, entry_points=False)
    return discover(plugins, ["emomusic", "deam"], root), plugins


def test_deam_counts_and_its_2013_songs_agree_with_emotion_in_music(real_deam):
    found, plugins = real_deam
    labelled = assign_quadrants(found.tracks, plugins)
    assert quadrants(labelled, "deam") == {"A-V-": 742, "A+V+": 594, "A-V+": 276, "A+V-": 190}
    assert not [e for e in found.excluded if e.dataset == "deam"]
    deam = labelled[labelled.dataset == "deam"].set_index("track_id")
    emo = labelled[labelled.dataset == "emomusic"].set_index("track_id")
    assert len(deam) == 1802 and deam.mediaeval_year.value_counts().to_dict() == {2014: 1000, 2013: 744, 2015: 58}
    # With DEAM's swapped 2013 columns put back, 738 of the 744 shared songs carry Emotion in
    # Music's values (DEAM rounds to two decimals); the six others differ in the sources.
    shared = emo.merge(deam, left_index=True, right_index=True, suffixes=("", "_deam"))
    same = ((shared.arousal - shared.arousal_deam).abs() < 0.011) & ((shared.valence - shared.valence_deam).abs() < 0.011)
    assert len(shared) == 744 and same.sum() == 738
    assert sorted(shared.index[~same], key=int) == ["448", "452", "609", "652", "850", "1000"]
    # Every shared song is one song in a run over both.
    assert (shared.song_key == shared.song_key_deam).all()
    assert found.notes["deam"][0].startswith("valence_mean and arousal_mean exchanged for the 744 songs")
