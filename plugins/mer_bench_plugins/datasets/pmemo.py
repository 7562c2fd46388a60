"""PMEmo 2019 (Zhang, Zhang, Li, Yang and Sun, 2018), as unpacked from its release.

Layout (``PMEmo2019/``)::

    metadata.csv                     musicId,fileName,title,artist,album,duration,...
    chorus/<musicId>.mp3             794 chorus clips
    annotations/static_annotations.csv   musicId,Arousal(mean),Valence(mean)   (767 rows)

Values are on [0, 1]; a value of exactly 0.5 counts as low. Only annotated clips are
used: the 27 clips without a static annotation are reported, not used. The metadata
``duration`` is informational only (the decoded audio is about 0.1 s shorter, and
preparation measures it). Songs listed twice under different ids share a song key, so
they are never split across train and test.

The older 2018 release (``Chorus/``, ``A_static.csv``, ``V_static.csv``) is recognised
and refused with a message, since its annotation files could not be checked.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_bench import hookimpl
from mer_bench.datafiles import child, numeric, read_csv, require, require_columns
from mer_bench.errors import DatasetError
from mer_bench.types import DatasetDownload, DatasetInfo, DatasetLoader, Exclusion, LoadedDataset, Scale

NAME = "pmemo"
INFO = DatasetInfo(
    title="PMEmo: Popular Music with Emotional Annotations (2019 release)",
    download="https://github.com/HuiZhangDB/PMEmo (links to the PMEmo2019 download)",
    layout="PMEmo2019/metadata.csv, PMEmo2019/chorus/<musicId>.mp3, PMEmo2019/annotations/static_annotations.csv",
    license="The authors' page says the dataset 'is publically available to the research community' and that "
    "full songs are not included because of copyright; no licence text was found.",
    citation="K. Zhang, H. Zhang, S. Li, C. Yang, L. Sun. The PMEmo Dataset for Music Emotion Recognition. "
    "ICMR 2018.",
)
#: PMEmo2019 is shared through cloud drive folders: a browser's work.
DOWNLOAD = DatasetDownload(
    folder="PMEmo2019",
    terms=f"PMEmo, from https://github.com/HuiZhangDB/PMEmo. {INFO.license}",
    manual="PMEmo2019 is shared through Google Drive folders linked from https://github.com/HuiZhangDB/PMEmo and the "
    "NEXT lab's PMEmo page: download PMEmo2019 (chorus/, metadata.csv, annotations/) in a browser and unpack it",
)
AROUSAL, VALENCE = "Arousal(mean)", "Valence(mean)"


def load_static_annotations(path: Path) -> pd.DataFrame:
    """``musicId``, ``arousal`` and ``valence`` from ``static_annotations.csv``."""
    table = read_csv(path, NAME, dtype={"musicId": str})
    require_columns(table, ["musicId", AROUSAL, VALENCE], path, NAME)
    table = numeric(table, [AROUSAL, VALENCE], path, NAME, "musicId")
    return table.rename(columns={AROUSAL: "arousal", VALENCE: "valence"})[["musicId", "arousal", "valence"]]


def load_metadata(path: Path) -> pd.DataFrame:
    """``musicId``, ``fileName``, ``title``, ``artist`` and ``duration`` from ``metadata.csv``."""
    table = read_csv(path, NAME, dtype={"musicId": str, "fileName": str})
    require_columns(table, ["musicId", "fileName", "title", "artist", "duration"], path, NAME)
    return table[["musicId", "fileName", "title", "artist", "duration"]]


def refuse_2018_layout(root: Path) -> None:
    """A clear error for the 2018 release, whose annotation files differ."""
    if child(root, "A_static.csv", "V_static.csv") is not None and child(root, "annotations") is None:
        raise DatasetError(
            f"{NAME}: {root} looks like the 2018 PMEmo release (A_static.csv, Chorus/); mer-bench reads the "
            "2019 release (PMEmo2019: metadata.csv, chorus/, annotations/static_annotations.csv)"
        )


class PMEmo(DatasetLoader):
    """PMEmo 2019: static valence/arousal on [0, 1] for 767 chorus clips."""

    name = NAME
    scale = Scale(0.0, 1.0)
    label_converter = "midpoint"
    folder_names = ("PMEmo2019", "PMEmo")

    def describe(self) -> DatasetInfo:
        return INFO

    def download(self) -> DatasetDownload:
        return DOWNLOAD

    def load(self, root: Path) -> LoadedDataset:
        refuse_2018_layout(root)
        annotations = load_static_annotations(
            require(require(root, NAME, "annotations"), NAME, "static_annotations.csv")
        )
        metadata = load_metadata(require(root, NAME, "metadata.csv"))
        chorus = require(root, NAME, "chorus")
        table = annotations.merge(metadata, on="musicId", how="left")
        table["fileName"] = table["fileName"].fillna(table["musicId"] + ".mp3")
        excluded = []
        annotated = set(annotations["musicId"])
        unannotated = set(metadata["musicId"]) | {p.stem for p in chorus.glob("*.mp3")}
        for music_id in sorted(unannotated - annotated, key=lambda m: (len(m), m)):
            excluded.append(
                Exclusion(NAME, music_id, "discover", "no-annotation", "clip has no static annotation")
            )
        tracks = pd.DataFrame(
            {
                "dataset": NAME,
                "track_id": table["musicId"],
                "audio_path": [chorus / f for f in table["fileName"]],
                "arousal": table["arousal"],
                "valence": table["valence"],
                "title": table["title"],
                "artist": table["artist"],
                "duration_s": table["duration"],
            }
        )
        return LoadedDataset(tracks, excluded)


@hookimpl
def mer_bench_datasets():
    return [PMEmo()]
