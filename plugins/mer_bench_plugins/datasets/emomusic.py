"""Emotion in Music, also "1000 songs" or emoMusic (Soleymani et al., 2013).

Layout (the archive's folder name varies)::

    clips_45seconds/<song_id>.mp3          1000 clips, of which 744 are annotated
    annotations/static_annotations.csv     song_id,mean_arousal,std_arousal,mean_valence,std_valence
    annotations/songs_info.csv             song_id,file_name,Artist,Song title,...,Genre,Mediaeval 2013 set

Values are the mean of 1..9 ratings; exactly 5 counts as low. The track list starts
from the annotation ids, so the 256 unannotated clips are reported, not used.
``songs_info.csv`` pads its quoted fields with tab characters; every field is stripped.
Each song has one genre, used to stratify the split, and the MediaEval 2013
development/evaluation set is kept as the ``mediaeval_set`` column and, as ``train`` and
``test``, as ``official_split``: the split the ``official`` protocol follows. DEAM holds the
same songs under the same ids; both loaders give them the song key ``mediaeval/<song_id>``,
so a run over both never splits a song.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_bench import hookimpl
from mer_bench.datafiles import child, numeric, read_csv, require, require_columns
from mer_bench.errors import DatasetError
from mer_bench.types import DatasetDownload, DatasetInfo, DatasetLoader, Exclusion, LoadedDataset, RemoteFile, Scale
from mer_bench_plugins.datasets.deam import song_key

NAME = "emomusic"
INFO = DatasetInfo(
    title="Emotion in Music (emoMusic, '1000 songs for emotional analysis of music')",
    download="https://cvml.unige.ch/databases/emoMusic/ (clips_45seconds and annotations)",
    layout="<root>/clips_45seconds/<song_id>.mp3, <root>/annotations/static_annotations.csv, "
    "<root>/annotations/songs_info.csv",
    license="The dataset page states no licence; the clips come from the Free Music Archive, and each clip's "
    "ID3 copyright tag (TCOP) names its own licence.",
    citation="M. Soleymani, M. N. Caro, E. M. Schmidt, C.-Y. Sha, Y.-H. Yang. 1000 songs for emotional "
    "analysis of music. CrowdMM @ ACM Multimedia 2013.",
)
#: The two archives of the dataset page, as the MARBLE benchmark's download script fetches
#: them (clips_45sec.tar.gz holds clips_45seconds/, annotations.tar.gz annotations/); the
#: page publishes no sizes or checksums, and may ask for a form before it serves them.
DOWNLOAD = DatasetDownload(
    folder="emoMusic",
    terms=f"Emotion in Music (1000 songs), from https://cvml.unige.ch/databases/emoMusic/. {INFO.license}",
    files=tuple(
        RemoteFile(
            f"http://cvml.unige.ch/databases/emoMusic/{name}",
            source="https://cvml.unige.ch/databases/emoMusic/ and the MARBLE benchmark's EMO download script",
        )
        for name in ("clips_45sec.tar.gz", "annotations.tar.gz")
    ),
    manual="open https://cvml.unige.ch/databases/emoMusic/ in a browser (it may ask for a form), download "
    "clips_45sec.tar.gz and annotations.tar.gz and unpack both into one folder",
)
STATIC_COLUMNS = ["song_id", "mean_arousal", "mean_valence"]
INFO_COLUMNS = ["song_id", "file_name", "Artist", "Song title", "Genre", "Mediaeval 2013 set"]


def load_static_annotations(path: Path) -> pd.DataFrame:
    """``song_id``, ``arousal`` and ``valence`` from ``static_annotations.csv``."""
    table = read_csv(path, NAME, dtype={"song_id": str})
    require_columns(table, STATIC_COLUMNS, path, NAME)
    table = numeric(table, ["mean_arousal", "mean_valence"], path, NAME, "song_id")
    return table.rename(columns={"mean_arousal": "arousal", "mean_valence": "valence"})[
        ["song_id", "arousal", "valence"]
    ]


def load_songs_info(path: Path) -> pd.DataFrame:
    """File name, artist, title, genre and MediaEval set per ``song_id``, every field stripped."""
    table = read_csv(path, NAME, dtype=str)
    require_columns(table, INFO_COLUMNS, path, NAME)
    return table.rename(
        columns={
            "file_name": "file",
            "Artist": "artist",
            "Song title": "title",
            "Genre": "genre",
            "Mediaeval 2013 set": "mediaeval_set",
        }
    )[["song_id", "file", "artist", "title", "genre", "mediaeval_set"]]


class EmoMusic(DatasetLoader):
    """Emotion in Music: static valence/arousal on [1, 9] for 744 clips of 45 s."""

    name = NAME
    scale = Scale(1.0, 9.0)
    label_converter = "midpoint"
    folder_names = ("emoMusic", "emotion-in-music", "1000songs", "clips_45seconds_and_annotations")

    def describe(self) -> DatasetInfo:
        return INFO

    def download(self) -> DatasetDownload:
        return DOWNLOAD

    def load(self, root: Path) -> LoadedDataset:
        annotations_dir = require(root, NAME, "annotations")
        clips = child(root, "clips_45seconds", "clips_45sec", "clips")
        if clips is None:
            raise DatasetError(f"{NAME}: {root / 'clips_45seconds'} not found (is {root} the unpacked archive?)")
        static = load_static_annotations(require(annotations_dir, NAME, "static_annotations.csv"))
        info_path = child(annotations_dir, "songs_info.csv")
        table = static
        if info_path is not None:
            table = table.merge(load_songs_info(info_path), on="song_id", how="left")
        else:
            table = table.assign(file=None, artist=None, title=None, genre=None, mediaeval_set=None)
        table["file"] = table["file"].fillna(table["song_id"] + ".mp3")
        annotated = set(static["song_id"])
        excluded = [
            Exclusion(NAME, p.stem, "discover", "no-annotation", str(p))
            for p in sorted(clips.glob("*.mp3"), key=lambda p: (len(p.stem), p.stem))
            if p.stem not in annotated
        ]
        tracks = pd.DataFrame(
            {
                "dataset": NAME,
                "track_id": table["song_id"],
                "audio_path": [clips / f for f in table["file"]],
                "arousal": table["arousal"],
                "valence": table["valence"],
                "genre": table["genre"],
                "title": table["title"],
                "artist": table["artist"],
                "song_key": table["song_id"].map(song_key),
                "mediaeval_set": table["mediaeval_set"],
                "official_split": table["mediaeval_set"].str.lower().map({"development": "train", "evaluation": "test"}),
            }
        )
        return LoadedDataset(tracks, excluded)


@hookimpl
def mer_bench_datasets():
    return [EmoMusic()]
