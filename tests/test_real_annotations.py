"""Opt-in: the loaders on real copies of the official annotation files.

The files live outside the project (``../shared/data/annotations`` beside the checkout,
or ``$MER_BENCH_REAL_ANNOTATIONS``); the test is skipped when they are not there. Audio
is not redistributed, so each layout gets empty placeholder files: the loaders only
need the files to exist, and nothing here decodes audio.
"""

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mer_bench.discover import discover
from mer_bench.label import assign_quadrants
from mer_bench.plugin_manager import load_plugins
from mer_bench.protocol import merged_groups
from tests.conftest import BUILTINS, REPO

REAL = Path(os.environ.get("MER_BENCH_REAL_ANNOTATIONS", REPO.parent / "shared" / "data" / "annotations"))
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real annotation files not found at {REAL}")


def touch(paths):
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A data root in the official layouts: real annotation files, placeholder audio."""
    root = tmp_path_factory.mktemp("real")
    fourq = root / "MER_audio_taffc_dataset"
    fourq.mkdir()
    for name in ("panda_dataset_taffc_annotations.csv", "panda_dataset_taffc_metadata.csv"):
        shutil.copy(REAL / "4Q" / name, fourq / name)
    songs = pd.read_csv(REAL / "4Q" / "panda_dataset_taffc_annotations.csv")
    touch(fourq / q / f"{s}.mp3" for s, q in zip(songs.Song, songs.Quadrant))

    pmemo = root / "PMEmo2019"
    (pmemo / "annotations").mkdir(parents=True)
    shutil.copy(REAL / "PMEmo" / "metadata.csv", pmemo / "metadata.csv")
    shutil.copy(REAL / "PMEmo" / "static_annotations.csv", pmemo / "annotations" / "static_annotations.csv")
    touch(pmemo / "chorus" / f for f in pd.read_csv(REAL / "PMEmo" / "metadata.csv").fileName)

    emo = root / "emoMusic"
    shutil.copytree(REAL / "EmotionInMusic", emo / "annotations")
    touch(emo / "clips_45seconds" / f"{i}.mp3" for i in range(1, 1001))

    bimodal = root / "MER_bimodal_dataset"
    bimodal.mkdir()
    shutil.copy(REAL / "BiModal" / "MER-Audio-dataset.xlsx", bimodal / "MER-Audio-dataset.xlsx")
    sheet = pd.read_excel(REAL / "BiModal" / "MER-Audio-dataset.xlsx", engine="calamine", header=None)
    codes = [v for v in sheet.to_numpy().ravel() if isinstance(v, str) and v.startswith("A") and len(v) == 4]
    touch(bimodal / "Corpus-Audio-162" / f"{c}-song.mp3" for c in codes)

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
