"""DEAM, the MediaEval Database for Emotional Analysis in Music (Aljanaki, Yang and Soleymani, 2017).

The songs of the MediaEval "Emotion in Music" tasks of 2013, 2014 and 2015. Layout, each zip
unpacked in place or into a folder of its own name (``DEAM_audio/``, ``DEAM_Annotations/``)::

    MEMD_audio/<song_id>.mp3      1,802 files: 45 s excerpts, and 58 full songs (ids 2001-2058)
    annotations/annotations averaged per song/song_level/
        static_annotations_averaged_songs_1_2000.csv      song_id, valence_mean, valence_std, arousal_mean, ...
        static_annotations_averaged_songs_2000_2058.csv   13 columns, one named "valence_ max_mean"

Values are the mean of 1..9 ratings; exactly 5 counts as low. Header names carry leading
spaces and values are padded; both are stripped. The track list starts from the
annotation ids: audio without an annotation is reported, not used.

Songs 2 to 1000 are the Emotion in Music songs under the same ids. Their song key is
``mediaeval/<song_id>`` in both loaders, so a run over both datasets keeps each such song
on one side of every split. For those songs DEAM's song-level file swaps the two
dimensions: its ``valence_mean`` is Emotion in Music's ``mean_arousal`` and the other way
round (738 of 744 songs equal after the swap; the other six differ in both columns).
Emotion in Music is taken as right, for two reasons: its static means agree with its own
per-frame files of the same dimension (r = 0.96 and 0.95, against 0.57 crossed), and
they rank its genres plausibly (classical calmest, rock most aroused; read the other way
round, country would be the most aroused genre). No source that says which release is
wrong was found, and DEAM's own per-second files, which would settle it, were not
available here. This loader swaps the two columns back for song ids up to 1000 and says
so in its notes (printed by runs and ``datasets verify``, kept in the manifest), so both
loaders give a song the same valence and arousal.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_bench import hookimpl
from mer_bench.datafiles import child, numeric, read_csv, require, require_columns
from mer_bench.errors import DatasetError
from mer_bench.types import DatasetDownload, DatasetInfo, DatasetLoader, Exclusion, LoadedDataset, RemoteFile, Scale

NAME = "deam"
INFO = DatasetInfo(
    title="DEAM: MediaEval Database for Emotional Analysis in Music (2013-2015)",
    download="https://cvml.unige.ch/databases/DEAM/ (DEAM_audio.zip and DEAM_Annotations.zip)",
    layout="<root>/MEMD_audio/<song_id>.mp3, <root>/annotations/annotations averaged per song/song_level/"
    "static_annotations_averaged_songs_1_2000.csv and ..._2000_2058.csv (each zip may unpack into a folder "
    "of its own name)",
    license="The dataset page says the audio comes from freemusicarchive.org, jamendo.com and medleyDB under "
    "Creative Commons licences; the annotations are free for research.",
    citation="A. Aljanaki, Y.-H. Yang, M. Soleymani. Developing a benchmark for emotional analysis of music. "
    "PLoS ONE 12(3), 2017.",
)
#: The two archives the dataset page links (DEAM_audio.zip holds MEMD_audio/,
#: DEAM_Annotations.zip annotations/). The page publishes no checksums: the sizes and SHA-256
#: are those a public project's acquisition report (2026-09-27) measured on the files it
#: downloaded from these URLs, so a changed file on the server is reported, not unpacked.
DOWNLOAD = DatasetDownload(
    folder="DEAM",
    terms=f"DEAM, from https://cvml.unige.ch/databases/DEAM/. {INFO.license}",
    files=(
        RemoteFile(
            "https://cvml.unige.ch/databases/DEAM/DEAM_audio.zip",
            source="https://cvml.unige.ch/databases/DEAM/; size and SHA-256 as measured by a third-party report",
            size=1_343_203_527,
            sha256="e2814325f573ade8caebc697f0efcfdf7207142b737d72558a416117ca591353",
        ),
        RemoteFile(
            "https://cvml.unige.ch/databases/DEAM/DEAM_Annotations.zip",
            source="https://cvml.unige.ch/databases/DEAM/; size and SHA-256 as measured by a third-party report",
            size=4_735_283,
            sha256="809b0feb4ba6196c1eda9b2b7b33b892b11fa71457cfceb0d47e832ed1a5f15f",
        ),
    ),
    manual="download DEAM_audio.zip and DEAM_Annotations.zip from https://cvml.unige.ch/databases/DEAM/ in a browser "
    "and unzip both into one folder",
)
SONG_LEVEL = ("annotations averaged per song", "song_level")
FILES = ("static_annotations_averaged_songs_1_2000.csv", "static_annotations_averaged_songs_2000_2058.csv")
COLUMNS = ["song_id", "valence_mean", "arousal_mean"]
#: The last song id of the 2013 set, shared with Emotion in Music (whose ids run 1..1000).
LAST_2013_SONG = 1000


def song_key(song_id: str) -> str:
    """The key that joins a MediaEval song across DEAM and Emotion in Music (same ids up to 1000)."""
    return f"mediaeval/{song_id}"


def find_folder(root: Path, *path: str, archive: str) -> Path | None:
    """``root/<path>``, or ``root/<archive>/<path>`` when the zip was unpacked into a folder of its name."""
    for base in (root, child(root, archive)):
        found = base
        for part in path:
            found = child(found, part) if found is not None else None
        if found is not None:
            return found
    return None


def load_song_level(path: Path) -> pd.DataFrame:
    """``song_id``, ``arousal`` and ``valence`` from one song-level file (padded names and values)."""
    table = read_csv(path, NAME, dtype=str)
    require_columns(table, COLUMNS, path, NAME)
    table = numeric(table, ["valence_mean", "arousal_mean"], path, NAME, "song_id")
    return table.rename(columns={"valence_mean": "valence", "arousal_mean": "arousal"})[["song_id", "arousal", "valence"]]


def swap_2013_dimensions(table: pd.DataFrame) -> pd.DataFrame:
    """Valence and arousal exchanged for the 2013 songs, whose song-level values DEAM swapped."""
    out = table.copy()
    songs_2013 = out["song_id"].astype(int) <= LAST_2013_SONG
    out.loc[songs_2013, ["arousal", "valence"]] = out.loc[songs_2013, ["valence", "arousal"]].to_numpy()
    return out


class Deam(DatasetLoader):
    """DEAM: static valence/arousal on [1, 9] for 1,802 songs (45 s excerpts and 58 full songs)."""

    name = NAME
    scale = Scale(1.0, 9.0)
    label_converter = "midpoint"
    folder_names = ("DEAM",)

    def describe(self) -> DatasetInfo:
        return INFO

    def download(self) -> DatasetDownload:
        return DOWNLOAD

    def load(self, root: Path) -> LoadedDataset:
        audio = find_folder(root, "MEMD_audio", archive="DEAM_audio")
        if audio is None:
            raise DatasetError(f"{NAME}: {root / 'MEMD_audio'} not found (is {root} the unpacked DEAM_audio.zip?)")
        song_level = find_folder(root, "annotations", *SONG_LEVEL, archive="DEAM_Annotations")
        if song_level is None:
            raise DatasetError(
                f"{NAME}: {root / 'annotations' / '/'.join(SONG_LEVEL)} not found (is {root} the unpacked "
                "DEAM_Annotations.zip?)"
            )
        parts = [load_song_level(require(song_level, NAME, FILES[0]))]
        # The 2015 file is part of the same archive, but a copy without it still loads: its 58
        # full songs then show up as audio without annotation in the report.
        later = child(song_level, FILES[1])
        if later is not None:
            parts.append(load_song_level(later))
        table = pd.concat(parts, ignore_index=True)
        if not table["song_id"].str.fullmatch(r"\d+").all():
            odd = ", ".join(table.loc[~table["song_id"].str.fullmatch(r"\d+"), "song_id"].head(5))
            raise DatasetError(f"{NAME}: {song_level}: song_id must be a number, got {odd}")
        table = swap_2013_dimensions(table)
        annotated = set(table["song_id"])
        excluded = [
            Exclusion(NAME, p.stem, "discover", "no-annotation", str(p))
            for p in sorted(audio.glob("*.mp3"), key=lambda p: (len(p.stem), p.stem))
            if p.stem not in annotated
        ]
        swapped = int((table["song_id"].astype(int) <= LAST_2013_SONG).sum())
        notes = [
            f"valence_mean and arousal_mean exchanged for the {swapped} songs with ids up to {LAST_2013_SONG} "
            "(the 2013 songs, whose DEAM song-level values are swapped against Emotion in Music's; see docs/datasets.md)"
        ] if swapped else []
        tracks = pd.DataFrame(
            {
                "dataset": NAME,
                "track_id": table["song_id"],
                "audio_path": [audio / f"{song}.mp3" for song in table["song_id"]],
                "arousal": table["arousal"],
                "valence": table["valence"],
                "song_key": table["song_id"].map(song_key),
                "mediaeval_year": pd.cut(table["song_id"].astype(int), [0, 1000, 2000, 10**6], labels=[2013, 2014, 2015]).astype(int),
            }
        )
        return LoadedDataset(tracks, excluded, notes)


@hookimpl
def mer_bench_datasets():
    return [Deam()]
