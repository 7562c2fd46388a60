"""Bi-Modal Emotion Dataset, audio part (Malheiro, Panda, Gomes and Paiva, 2016).

Layout (``MER_bimodal_dataset/``)::

    Corpus-Audio-162/A###<anything>.mp3   162 clips of about 30 s
    MER-Audio-dataset.xlsx (or .xls)      Song Code,Quadrant,Avg_Valence,Avg_Arousal,SD_Valence,SD_Arousal

The sheet is read wherever its header row sits (copies put it at C1 of sheet
``Folha2``), from ``.xls`` or ``.xlsx`` alike (python-calamine reads both). Values are on
[-4, 4]; 0 counts as low. ``Quadrant`` may be ``Q1``..``Q4`` or 1..4; it must agree with
the signs of the values, or the song is reported as a conflict. Audio files are matched
on the leading ``A###`` code of their name, since copies name them differently; songs
without audio and audio without a song are both reported. Excel stores 0.6 as
0.6000000000000001, so values are rounded to 6 decimals.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from mer_bench import hookimpl
from mer_bench.datafiles import child, numeric, require_columns, strip_table
from mer_bench.errors import DatasetError
from mer_bench.types import DatasetDownload, DatasetInfo, DatasetLoader, Exclusion, LoadedDataset, Scale

NAME = "bimodal"
SHEETS = ("MER-Audio-dataset.xlsx", "MER-Audio-dataset.xls")
AUDIO_FOLDERS = ("Corpus-Audio-162", "Corpus-Audio", "chorus", "audio")
COLUMNS = ["Song Code", "Quadrant", "Avg_Valence", "Avg_Arousal"]
QUADRANTS = {1: "A+V+", 2: "A+V-", 3: "A-V-", 4: "A-V+"}
CODE = re.compile(r"^(A\d{3})", flags=re.I)
INFO = DatasetInfo(
    title="Bi-Modal Emotion Dataset (audio, 162 clips)",
    download="https://mir.dei.uc.pt/downloads.html ('MER_bimodal_dataset')",
    layout="MER_bimodal_dataset/Corpus-Audio-162/A###*.mp3, MER_bimodal_dataset/MER-Audio-dataset.xlsx (or .xls)",
    license="No licence text was found in the sources mer-bench could read; check the terms on the download "
    "page before use, and cite the paper.",
    citation="R. Malheiro, R. Panda, P. Gomes, R. P. Paiva. Bi-Modal Music Emotion Recognition: Novel Lyrical "
    "Features and Dataset. MML @ ECML/PKDD 2016.",
)
#: No direct file URL for the Bi-Modal dataset could be checked: the download page is for a browser.
DOWNLOAD = DatasetDownload(
    folder="MER_bimodal_dataset",
    terms=f"Bi-Modal Music Emotion dataset, from https://mir.dei.uc.pt/downloads.html. {INFO.license}",
    manual="download the Bi-Modal dataset (MER_bimodal_dataset) from https://mir.dei.uc.pt/downloads.html in a browser and unpack it",
)


def load_sheet(path: Path) -> pd.DataFrame:
    """The annotation table of the first sheet holding a ``Song Code`` header, wherever it starts."""
    try:
        sheets = pd.read_excel(path, engine="calamine", sheet_name=None, header=None)
    except Exception as exc:  # calamine raises its own error types for damaged workbooks
        raise DatasetError(f"{NAME}: {path} is not a readable .xls/.xlsx workbook: {exc}") from None
    for raw in sheets.values():
        cells = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
        hits = np.argwhere(cells.to_numpy() == "Song Code")
        if len(hits):
            row, col = hits[0]
            table = cells.iloc[row + 1 :, col:]
            table.columns = cells.iloc[row, col:].tolist()
            table = table.loc[:, [isinstance(c, str) and c != "" for c in table.columns]]
            return strip_table(table.dropna(how="all").reset_index(drop=True))
    raise DatasetError(f"{NAME}: {path} has no sheet with a 'Song Code' header")


def parse_quadrant(value: object) -> int | None:
    """1..4 from ``Q1``..``Q4`` or a number; None for anything else."""
    text = str(value).strip().upper().removeprefix("Q")
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number in (1, 2, 3, 4) else None


def sign_quadrant(arousal: float, valence: float) -> int:
    """The quadrant number the signs give (0 counts as low)."""
    return {(True, True): 1, (True, False): 2, (False, False): 3, (False, True): 4}[(arousal > 0, valence > 0)]


def load_annotations(path: Path) -> pd.DataFrame:
    """``code``, ``arousal``, ``valence`` and the sheet's ``sheet_quadrant`` (1..4)."""
    table = load_sheet(path)
    require_columns(table, COLUMNS, path, NAME)
    table["Song Code"] = table["Song Code"].astype(str).str.upper()
    table = numeric(table, ["Avg_Valence", "Avg_Arousal"], path, NAME, "Song Code")
    quadrant = table["Quadrant"].map(parse_quadrant)
    if quadrant.isna().any():
        bad = table.loc[quadrant.isna(), ["Song Code", "Quadrant"]].astype(str).agg("=".join, axis=1)
        raise DatasetError(f"{NAME}: {path}: unknown Quadrant value(s): {', '.join(bad.head(10))}")
    return pd.DataFrame(
        {
            "code": table["Song Code"],
            "arousal": table["Avg_Arousal"].round(6),
            "valence": table["Avg_Valence"].round(6),
            "sheet_quadrant": quadrant.astype(int),
        }
    )


def index_audio(folder: Path) -> tuple[dict[str, Path], list[Path], dict[str, list[Path]]]:
    """Audio files by their ``A###`` code; files without a code; codes with several files."""
    by_code: dict[str, list[Path]] = {}
    uncoded = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".mp3", ".wav"):
            continue
        match = CODE.match(path.stem)
        if match is None:
            uncoded.append(path)
        else:
            by_code.setdefault(match.group(1).upper(), []).append(path)
    single = {code: paths[0] for code, paths in by_code.items() if len(paths) == 1}
    several = {code: paths for code, paths in by_code.items() if len(paths) > 1}
    return single, uncoded, several


class BiModal(DatasetLoader):
    """Bi-Modal: static valence/arousal on [-4, 4] for 162 clips."""

    name = NAME
    scale = Scale(-4.0, 4.0)
    label_converter = "midpoint"
    folder_names = ("MER_bimodal_dataset", "MER_bi")

    def describe(self) -> DatasetInfo:
        return INFO

    def download(self) -> DatasetDownload:
        return DOWNLOAD

    def load(self, root: Path) -> LoadedDataset:
        sheet = child(root, *SHEETS)
        if sheet is None:
            raise DatasetError(f"{NAME}: neither {root / SHEETS[0]} nor {root / SHEETS[1]} found")
        folder = child(root, *AUDIO_FOLDERS)
        if folder is None or not folder.is_dir():
            raise DatasetError(f"{NAME}: {root / AUDIO_FOLDERS[0]} not found (is {root} the unpacked archive?)")
        table = load_annotations(sheet)
        audio, uncoded, several = index_audio(folder)
        excluded, keep, paths = [], [], []
        for row in table.itertuples(index=False):
            expected = sign_quadrant(row.arousal, row.valence)
            # The annotated values go with the exclusion, so the report and the V/A figure show it.
            labels = {"arousal": row.arousal, "valence": row.valence}
            if row.code in several:
                files = ", ".join(p.name for p in several[row.code])
                excluded.append(
                    Exclusion(NAME, row.code, "discover", "ambiguous-audio", f"several files: {files}", **labels)
                )
            elif row.code not in audio:
                excluded.append(
                    Exclusion(NAME, row.code, "discover", "audio-missing", f"no {row.code}*.mp3 in {folder}", **labels)
                )
            elif row.sheet_quadrant != expected:
                excluded.append(
                    Exclusion(NAME, row.code, "discover", "quadrant-conflict",
                              f"sheet says Q{row.sheet_quadrant}, valence/arousal signs say Q{expected}", **labels)
                )
            else:
                keep.append(True)
                paths.append(audio[row.code])
                continue
            keep.append(False)
        annotated = set(table["code"])
        for code, path in sorted(audio.items()):
            if code not in annotated:
                excluded.append(Exclusion(NAME, code, "discover", "no-annotation", str(path)))
        for path in uncoded:
            excluded.append(Exclusion(NAME, path.stem, "discover", "no-annotation", f"{path}: name has no A### code"))
        table = table[keep]
        tracks = pd.DataFrame(
            {
                "dataset": NAME,
                "track_id": table["code"],
                "audio_path": paths,
                "arousal": table["arousal"],
                "valence": table["valence"],
            }
        )
        return LoadedDataset(tracks, excluded)


@hookimpl
def mer_bench_datasets():
    return [BiModal()]
