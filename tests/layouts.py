"""Tiny copies of the four paper datasets, written in their official layouts with their real quirks.

Each builder writes annotation files in the formats of the real archives (CRLF and
cp1252 for 4Q, tab-padded quoted fields for Emotion in Music, a sheet whose header sits
at C1 for Bi-Modal, ...) and short MP3 clips at the rates the archives use, and returns
the facts a test can check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from mer_bench_plugins.datasets.demo import piece_parameters, synthesize

#: Sign of (arousal, valence) per quadrant.
SIGNS = {"A+V+": (1, 1), "A+V-": (1, -1), "A-V-": (-1, -1), "A-V+": (-1, 1)}


#: Encoded clips by (seconds, quadrant, rate, channels, suffix): MP3 encoding costs up to
#: a second a clip, so each kind is encoded once per test session and copied.
_ENCODED: dict[tuple, bytes] = {}


def write_clip(path: Path, seconds: float, quadrant: str, seed: int, sample_rate: int = 22050, channels: int = 1):
    """A short piece whose character follows ``quadrant``, as MP3 (or per the suffix).

    Clips of the same kind share their audio (``seed`` only varies the first one made).
    """
    key = (seconds, quadrant, sample_rate, channels, path.suffix.lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    if key in _ENCODED:
        path.write_bytes(_ENCODED[key])
        return path
    rng = np.random.default_rng(seed)
    a, v = (0.7 * s for s in SIGNS[quadrant])
    audio = synthesize(piece_parameters(a, v, rng), seconds, sample_rate, rng)
    if channels == 2:
        audio = np.stack([audio, 0.9 * audio], axis=1)
    fmt = "MP3" if path.suffix.lower() == ".mp3" else None
    sf.write(str(path), audio, sample_rate, format=fmt)
    _ENCODED[key] = path.read_bytes()
    return path


def fourq(root: Path, per_quadrant: int = 6, seconds: float = 25.0) -> dict:
    """``MER_audio_taffc_dataset``: Q1..Q4 folders, CRLF CSVs, cp1252 metadata."""
    names = {"Q1": "A+V+", "Q2": "A+V-", "Q3": "A-V-", "Q4": "A-V+"}
    rates = [(32000, 2), (22050, 2), (44100, 2), (16000, 1)]
    annotations, metadata = ["Song,Quadrant"], []
    n = 0
    for folder, quadrant in names.items():
        for i in range(per_quadrant):
            n += 1
            song = f"MT{n:010d}"
            rate, channels = rates[n % len(rates)]
            length = 10.08 if (folder, i) == ("Q1", 0) else seconds  # the two 10 s clips of the real set
            write_clip(root / folder / f"{song}.mp3", length, quadrant, n, rate, channels)
            annotations.append(f"{song},{folder}")
            metadata.append(f'"{song}","Einstürzende Band {n}","Song {n}","{folder}",1,3,3,"a","A","A",2,"Rock; Pop",1,"u"')
    # an annotated song whose clip sits in another quadrant's folder
    conflict = "MT0000000002"
    (root / "Q1" / f"{conflict}.mp3").rename(root / "Q3" / f"{conflict}.mp3")
    # an annotated song whose clip is missing, and a clip nobody annotated
    missing = f"MT{n:010d}"
    (root / "Q4" / f"{missing}.mp3").unlink()
    write_clip(root / "Q2" / "MT9999999999.mp3", seconds, "A+V-", 99)
    header = '"Song","Artist","Title","Quadrant","PQuad","MoodsTotal","Moods","MoodsFoundStr","MoodsStr","MoodsStrSplit","Genres","GenresStr","Sample","SampleURL"'
    (root / "panda_dataset_taffc_annotations.csv").write_bytes(("\r\n".join(annotations) + "\r\n").encode())
    (root / "panda_dataset_taffc_metadata.csv").write_bytes(
        ("\r\n".join([header, *metadata]) + "\r\n").encode("cp1252")
    )
    return {
        "annotated": 4 * per_quadrant,
        "short": "MT0000000001",
        "conflict": conflict,
        "missing": missing,
        "unannotated": "MT9999999999",
    }


def pmemo(root: Path, per_quadrant: int = 6, seconds: float = 26.0) -> dict:
    """``PMEmo2019``: metadata.csv, chorus/, annotations/static_annotations.csv (exact 0.5 values)."""
    values = {"A+V+": (0.8, 0.7), "A+V-": (0.75, 0.3), "A-V-": (0.5, 0.5), "A-V+": (0.3, 0.6)}
    meta, static = ["musicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time"], [
        "musicId,Arousal(mean),Valence(mean)"
    ]
    music_id = 0
    for quadrant, (a, v) in values.items():
        for i in range(per_quadrant):
            music_id += 3  # ids skip, as in the real release
            write_clip(root / "chorus" / f"{music_id}.mp3", seconds if i else 20.0, quadrant, music_id, 44100, 2)
            title, artist = (f"Song {music_id}", "방탄소년단") if i != 1 else ("Twice", "Same Artist")
            # as in the real release, the stated chorus length is a little over what decodes
            duration = (seconds if i else 20.0) + 0.1
            meta.append(f'{music_id},{music_id}.mp3,{title},{artist},"Album, Vol. 2",{duration},00:10,00:40')
            static.append(f"{music_id},{a + 0.01 * i if a != 0.5 else a},{v}")
    # a clip with metadata but no static annotation
    write_clip(root / "chorus" / "1000.mp3", seconds, "A+V+", 1000, 44100, 2)
    meta.append("1000,1000.mp3,Spring Day,방탄소년단,YOU NEVER WALK ALONE,26.0,03:19,04:34")
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "metadata.csv").write_text("\n".join(meta) + "\n", encoding="utf-8")
    (root / "annotations" / "static_annotations.csv").write_text("\n".join(static) + "\n")
    return {"annotated": 4 * per_quadrant, "unannotated": "1000", "duplicates": 4}


def emomusic(root: Path, per_quadrant: int = 6, seconds: float = 25.0, annotations_dir: str = "annotations") -> dict:
    """clips_45seconds/ (with unannotated clips) and annotations/ with tab-padded songs_info.csv."""
    values = {"A+V+": (6.5, 7.0), "A+V-": (7.2, 3.1), "A-V-": (5.0, 5.0), "A-V+": (2.5, 6.0)}
    genres = ["Blues", "Rock", "Classical"]
    static = ["song_id,mean_arousal,std_arousal,mean_valence,std_valence"]
    info = [
        '"song_id","file_name","Artist","Song title","start of the segment (min.sec)",'
        '"end of the segment (min.sec)","Genre","Mediaeval 2013 set"'
    ]
    song = 1
    for quadrant, (a, v) in values.items():
        for i in range(per_quadrant):
            song += 2
            write_clip(root / "clips_45seconds" / f"{song}.mp3", seconds, quadrant, song, 44100, 1)
            static.append(f"{song},{a},1.2,{v},0.9")
            split = "evaluation" if i % 3 == 0 else "development"
            info.append(f'{song},"\t{song}.mp3","Artist {song}\t","\tTitle {song}\t","\t0.48\t","\t1.33\t","\t{genres[i % 3]}\t","{split}"')
    write_clip(root / "clips_45seconds" / "1.mp3", seconds, "A+V+", 1, 44100, 1)  # id 1 is not annotated
    folder = root / annotations_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "static_annotations.csv").write_text("\n".join(static) + "\n")
    (folder / "songs_info.csv").write_text("\n".join(info) + "\n")
    return {"annotated": 4 * per_quadrant, "unannotated": "1", "genres": set(genres)}


def bimodal(root: Path, per_quadrant: int = 6, seconds: float = 25.0, fmt: str = "xlsx") -> dict:
    """Corpus-Audio-162/A###-*.mp3 and MER-Audio-dataset.xlsx/.xls with its header at C1 of Folha2."""
    values = {1: (2.5, 3.0), 2: (1.8, -2.3), 3: (-1.5, -1.8), 4: (-2.3, 2.8)}
    names = {1: "A+V+", 2: "A+V-", 3: "A-V-", 4: "A-V+"}
    rows, code = [], 100
    for q, (a, v) in values.items():
        for i in range(per_quadrant):
            code += 1
            rows.append([f"A{code}", q if fmt == "xlsx" else f"Q{q}", v + 0.1 * i, a, 0.6000000000000001, 0.5])
            write_clip(root / "Corpus-Audio-162" / f"A{code}-Artist-Title.mp3", seconds, names[q], code, 22050, 2)
    (root / "Corpus-Audio-162" / "A101-Artist-Title.mp3").unlink()  # annotated, no audio
    write_clip(root / "Corpus-Audio-162" / "A008.mp3", seconds, "A+V+", 8, 22050, 2)  # audio, no annotation
    header = ["Song Code", "Quadrant", "Avg_Valence", "Avg_Arousal", "SD_Valence", "SD_Arousal"]
    path = root / f"MER-Audio-dataset.{fmt}"
    if fmt == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.title = "Folha2"
        for r, row in enumerate([header, *rows], start=1):
            for c, value in enumerate(row, start=3):
                sheet.cell(row=r, column=c, value=value)
        book.create_sheet("Folha3")
        book.save(path)
    else:
        import xlwt

        book = xlwt.Workbook()
        sheet = book.add_sheet("Folha2")
        for r, row in enumerate([header, *rows]):
            for c, value in enumerate(row, start=2):
                sheet.write(r, c, value)
        book.save(str(path))
    return {"annotated": 4 * per_quadrant, "no_audio": "A101", "unannotated": "A008"}


def deam(root: Path, per_quadrant: int = 3, seconds: float = 25.0, nested: bool = False) -> dict:
    """``DEAM``: MEMD_audio/ and the two song-level files, padded, the second with 13 columns.

    Each quadrant has one 2013 song shared with :func:`emomusic` (same id, values written
    with valence and arousal swapped, as DEAM's file has them), ``per_quadrant`` 2014 songs
    of ``seconds`` and one 2015 full song of twice that. ``nested`` unpacks each zip into a
    folder of its own name.
    """
    values = {"A+V+": (6.5, 7.0), "A+V-": (7.2, 3.1), "A-V-": (5.0, 5.0), "A-V+": (2.5, 6.0)}
    shared = {"A+V+": 3, "A+V-": 15, "A-V-": 27, "A-V+": 39}  # emomusic()'s first song per quadrant
    audio = root / "DEAM_audio" / "MEMD_audio" if nested else root / "MEMD_audio"
    annotations = root / "DEAM_Annotations" / "annotations" if nested else root / "annotations"
    song_level = annotations / "annotations averaged per song" / "song_level"
    first = ["song_id, valence_mean, valence_std, arousal_mean, arousal_std"]
    second = [
        "song_id, valence_mean, valence_std, valence_ max_mean, valence_max_std, valence_min_mean, valence_min_std, "
        "arousal_mean, arousal_std, arousal_max_mean, arousal_max_std, arousal_min_mean, arousal_min_std"
    ]
    songs_2014, songs_2015 = iter(range(1001, 2000)), iter(range(2001, 2059))
    for quadrant, (a, v) in values.items():
        song = shared[quadrant]
        write_clip(audio / f"{song}.mp3", seconds, quadrant, song, 44100, 2)
        first.append(f"{song:>7},{a:>11} ,{0.94:>12},{v:>11} ,{0.63:>12}")  # swapped, as in DEAM
        for i in range(per_quadrant):
            song = next(songs_2014)
            write_clip(audio / f"{song}.mp3", seconds, quadrant, song, 44100, 2)
            varied = v + 0.1 * i if v > 5 else v - 0.1 * i  # away from the midpoint: same quadrant
            first.append(f"{song:>7},{varied:>11} ,{0.94:>12},{a:>11} ,{0.63:>12}")
        song = next(songs_2015)
        write_clip(audio / f"{song}.mp3", 2 * seconds, quadrant, song, 48000, 2)
        second.append(f"{song:>7},{v:>11} ,{0.98:>12},{8.0:>17} ,{1.41:>16},{2.2:>17} ,{0.98:>16},{a:>11} ,"
                      f"{0.8:>11} ,{8.6:>17} ,{0.49:>16},{3.4:>17} ,{1.02:>16}")
    write_clip(audio / "1999.mp3", seconds, "A+V+", 1999, 44100, 2)  # audio nobody annotated
    song_level.mkdir(parents=True, exist_ok=True)
    (song_level / "static_annotations_averaged_songs_1_2000.csv").write_text("\n".join(first) + "\n")
    (song_level / "static_annotations_averaged_songs_2000_2058.csv").write_text("\n".join(second) + "\n")
    return {
        "annotated": 4 * (per_quadrant + 2),
        "shared": shared,
        "values": values,
        "full_songs": [str(s) for s in range(2001, 2005)],
        "unannotated": "1999",
    }
