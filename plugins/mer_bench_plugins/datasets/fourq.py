"""4Q audio emotion dataset (Panda, Malheiro and Paiva, 2018), as unpacked from its archive.

Layout (``MER_audio_taffc_dataset/``)::

    Q1/ Q2/ Q3/ Q4/                       225 MP3 clips each, <Song>.mp3 (MT + 10 digits)
    panda_dataset_taffc_annotations.csv   Song,Quadrant (Q1..Q4)
    panda_dataset_taffc_metadata.csv      Song,Artist,Title,Quadrant,...,GenresStr,...

Quadrants are given (Q1 = A+V+, Q2 = A+V-, Q3 = A-V-, Q4 = A-V+); there are no
valence/arousal values. The quadrant of the annotations file is cross-checked against the
folder holding the clip, and against the metadata file when it is there. The CSVs come
with CRLF or LF line endings and in UTF-8 or cp1252. A song has several genres, so no
genre is used for stratification.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_bench import hookimpl
from mer_bench.datafiles import child, read_csv, require, require_columns
from mer_bench.errors import DatasetError
from mer_bench.types import DatasetDownload, DatasetInfo, DatasetLoader, Exclusion, LoadedDataset, RemoteFile

NAME = "4q"
ANNOTATIONS = "panda_dataset_taffc_annotations.csv"
METADATA = "panda_dataset_taffc_metadata.csv"
QUADRANTS = {"Q1": "A+V+", "Q2": "A+V-", "Q3": "A-V-", "Q4": "A-V+"}
INFO = DatasetInfo(
    title="4Q audio emotion dataset (MER_audio_taffc_dataset)",
    download="https://mir.dei.uc.pt/downloads.html (4QAED: 'MER_audio_taffc_dataset.zip')",
    layout="MER_audio_taffc_dataset/{Q1,Q2,Q3,Q4}/<Song>.mp3, panda_dataset_taffc_annotations.csv, "
    "panda_dataset_taffc_metadata.csv",
    license="No licence text was found in the sources mer-bench could read; check the terms on the download "
    "page before use, and cite the paper.",
    citation="R. Panda, R. Malheiro, R. P. Paiva. Novel Audio Features for Music Emotion Recognition. "
    "IEEE Transactions on Affective Computing 11(4), 2020 (online 2018).",
)
#: The zip the download page links (it unpacks into MER_audio_taffc_dataset/); the page
#: publishes no size or checksum.
DOWNLOAD = DatasetDownload(
    folder="MER_audio_taffc_dataset",
    terms=f"4Q audio emotion dataset, from https://mir.dei.uc.pt/downloads.html. {INFO.license}",
    files=(
        RemoteFile(
            "http://mir.dei.uc.pt/resources/MER_audio_taffc_dataset.zip",
            source="linked from https://mir.dei.uc.pt/downloads.html (4QAED); the same URL is in public projects' "
            "READMEs that use the dataset",
        ),
    ),
    manual="download MER_audio_taffc_dataset.zip from https://mir.dei.uc.pt/downloads.html in a browser and unzip it",
)


def parse_quadrants(values: pd.Series, path: Path) -> pd.Series:
    """``Q1``..``Q4`` (any case, or 1..4) as quadrant names; anything else is a DatasetError."""
    normalised = values.astype(str).str.strip().str.upper().map(lambda v: v if v.startswith("Q") else f"Q{v}")
    bad = ~normalised.isin(QUADRANTS)
    if bad.any():
        raise DatasetError(f"{NAME}: {path}: unknown quadrant value(s) {', '.join(values[bad].astype(str).unique())}")
    return normalised.map(QUADRANTS)


def load_annotations(path: Path) -> pd.DataFrame:
    """``Song`` and ``quadrant`` (a quadrant name) from the annotations CSV."""
    table = read_csv(path, NAME, dtype=str)
    require_columns(table, ["Song", "Quadrant"], path, NAME)
    return pd.DataFrame({"Song": table["Song"], "quadrant": parse_quadrants(table["Quadrant"], path)})


def load_metadata(path: Path) -> pd.DataFrame:
    """``Song``, ``artist``, ``title``, ``genres`` and the metadata's own ``quadrant``."""
    table = read_csv(path, NAME, dtype=str)
    require_columns(table, ["Song", "Artist", "Title", "Quadrant"], path, NAME)
    return pd.DataFrame(
        {
            "Song": table["Song"],
            "artist": table["Artist"],
            "title": table["Title"],
            "genres": table["GenresStr"] if "GenresStr" in table.columns else None,
            "metadata_quadrant": parse_quadrants(table["Quadrant"], path),
        }
    )


def index_audio(root: Path) -> dict[str, tuple[str, Path]]:
    """Every clip under ``Q1``..``Q4``: song id -> (quadrant name of its folder, path)."""
    found: dict[str, tuple[str, Path]] = {}
    for folder_name, quadrant in QUADRANTS.items():
        folder = child(root, folder_name)
        if folder is None:
            continue
        for path in sorted(folder.glob("*.mp3")) + sorted(folder.glob("*.MP3")):
            found[path.stem] = (quadrant, path)
    return found


class FourQ(DatasetLoader):
    """The 4Q dataset: quadrants given by the authors."""

    name = NAME
    scale = None
    label_converter = "given"
    folder_names = ("MER_audio_taffc_dataset",)

    def describe(self) -> DatasetInfo:
        return INFO

    def download(self) -> DatasetDownload:
        return DOWNLOAD

    def load(self, root: Path) -> LoadedDataset:
        annotations = load_annotations(require(root, NAME, ANNOTATIONS))
        metadata_path = child(root, METADATA)
        audio = index_audio(root)
        if not audio and not any(child(root, q) for q in QUADRANTS):
            raise DatasetError(f"{NAME}: no Q1..Q4 folders in {root} (is it the unpacked MER_audio_taffc_dataset?)")
        table = annotations
        if metadata_path is not None:
            table = table.merge(load_metadata(metadata_path), on="Song", how="left")
        excluded = []
        keep = pd.Series(True, index=table.index)
        paths = []
        for i, row in table.iterrows():
            folder_quadrant, path = audio.get(row["Song"], (None, None))
            conflicts = []
            if folder_quadrant is not None and folder_quadrant != row["quadrant"]:
                conflicts.append(f"folder says {folder_quadrant}")
            meta_quadrant = row.get("metadata_quadrant")
            if isinstance(meta_quadrant, str) and meta_quadrant != row["quadrant"]:
                conflicts.append(f"metadata says {meta_quadrant}")
            if conflicts:
                keep[i] = False
                excluded.append(
                    Exclusion(NAME, row["Song"], "discover", "quadrant-conflict",
                              f"annotations say {row['quadrant']}, " + ", ".join(conflicts), quadrant=row["quadrant"])
                )
            # A clip missing from its folder keeps its expected path; preparation reports it.
            quadrant_folder = next(q for q, name in QUADRANTS.items() if name == row["quadrant"])
            paths.append(path if path is not None else root / quadrant_folder / f"{row['Song']}.mp3")
        table["audio_path"] = paths
        annotated = set(table["Song"])
        for song, (_, path) in sorted(audio.items()):
            if song not in annotated:
                excluded.append(Exclusion(NAME, song, "discover", "no-annotation", str(path)))
        table = table[keep]
        tracks = pd.DataFrame(
            {
                "dataset": NAME,
                "track_id": table["Song"],
                "audio_path": table["audio_path"],
                "quadrant": table["quadrant"],
                "artist": table.get("artist"),
                "title": table.get("title"),
                "genres": table.get("genres"),
            }
        )
        return LoadedDataset(tracks, excluded)


@hookimpl
def mer_bench_datasets():
    return [FourQ()]
