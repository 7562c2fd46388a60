"""The demo dataset: synthetic pieces whose musical attributes follow valence and arousal.

It lets anyone run the whole benchmark with no download. On first use it is generated
(numpy synthesis, deterministic from its seed) into the cache folder, in a layout like
a real dataset: ``annotations.csv`` plus an ``audio/`` folder of OGG, FLAC, MP3 and WAV files
at 16 and 22.05 kHz, mono and stereo.

How a piece follows its (hidden) valence v and arousal a, both in [-1, 1]:

- arousal: tempo, notes per beat, loudness, percussion level and brightness;
- valence: major or minor mode (more likely major as v grows), register, brightness.

The published labels are the hidden values plus annotator noise, so points near the
axes are ambiguous, as in real annotations. About one piece in twelve is shorter than
24 s, and the quadrants are unbalanced, so preparation has work to do.

Three sources share these cues but differ in how they sound, so that a model fitted on
one can be scored on another (protocols ``lodo`` and ``cross``): ``demo`` (the
``studio`` character: the clean synthesis), ``demo-lofi`` (band-limited to 4 kHz, hiss,
soft clipping, 8 kHz files) and ``demo-live`` (a reverberant room and crowd noise, 22.05
kHz stereo). Their pieces are different songs (their own seeds, titles and artists).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mer_bench import hookimpl
from mer_bench.errors import DatasetError
from mer_bench.paths import cache_dir
from mer_bench.types import DatasetInfo, DatasetLoader, LoadedDataset, Scale

#: Bump when the synthesis changes, so old caches are not reused.
VERSION = 2
SIGNS = {"A+V+": (1, 1), "A+V-": (1, -1), "A-V-": (-1, -1), "A-V+": (-1, 1)}
#: Extra tracks per quadrant beyond ``tracks_per_quadrant``: the imbalance balancing removes.
EXTRA = {"A+V+": 0, "A+V-": 4, "A-V-": 2, "A-V+": 0}
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
GENRES = ("ambient", "folk", "pop", "rock")
COLUMNS = ["track_id", "file", "arousal", "valence", "genre", "title", "artist"]


def _midi_hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


def piece_parameters(arousal: float, valence: float, rng: np.random.Generator) -> dict:
    """The musical attributes of one piece, drawn around what its valence and arousal imply."""
    return {
        "tempo": float(np.clip(95 + 40 * arousal + rng.normal(0, 8), 50, 160)),
        "subdivision": int(1 + (arousal + rng.normal(0, 0.3) > -0.2) + 2 * (arousal + rng.normal(0, 0.3) > 0.45)),
        "gain_db": float(-15 + 6 * arousal + rng.normal(0, 2.5)),
        "rolloff": float(np.clip(1.7 - 0.5 * arousal - 0.25 * valence + rng.normal(0, 0.2), 0.6, 3.0)),
        "percussion": float(np.clip(0.25 * (arousal + 1) + rng.normal(0, 0.08), 0, 0.6)),
        "major": bool(rng.random() < 1 / (1 + np.exp(-5 * valence))),
        "base_midi": float(55 + 4 * valence + rng.normal(0, 2.5)),
        "key": int(rng.integers(0, 12)),
    }


def synthesize(params: dict, seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A melody over a chord pad with noise percussion, following ``params``."""
    n = int(seconds * sample_rate)
    beat = 60.0 / params["tempo"]
    # Room for the last bar's pad to ring past the end before the cut.
    out = np.zeros(n + int((4 * beat + 1) * sample_rate), dtype=np.float64)
    steps = MAJOR if params["major"] else MINOR
    note_s = beat / params["subdivision"]
    harmonics = np.arange(1, 9)
    # float32 time axes: np.sin is about twice as fast as in float64.
    t_note = (np.arange(int(note_s * sample_rate)) / sample_rate).astype(np.float32)
    envelope = (1 - np.exp(-t_note * 300)) * np.exp(-t_note * (2.5 / note_s))
    root = params["base_midi"] + params["key"] % 5

    def tone(freqs: np.ndarray, t: np.ndarray, n_harmonics: int = 8) -> np.ndarray:
        k = harmonics[:n_harmonics]
        amps = k[None, :] ** -params["rolloff"] * (freqs[:, None] * k[None, :] < sample_rate / 2.2)
        phase = (2 * np.pi * freqs[:, None, None] * k[None, :, None]).astype(np.float32) * t[None, None, :]
        return (amps[:, :, None].astype(np.float32) * np.sin(phase)).sum(axis=(0, 1))

    degree = 0
    for start in np.arange(0, seconds, note_s):
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 9))
        midi = root + steps[degree % 7] + 12 * (degree // 7)
        i = int(start * sample_rate)
        out[i : i + len(t_note)] += tone(np.array([_midi_hz(midi)]), t_note) * envelope
    bar = 4 * beat
    t_bar = (np.arange(int(bar * sample_rate)) / sample_rate).astype(np.float32)
    pad_env = np.minimum(1, t_bar * 8) * np.minimum(1, (bar - t_bar) * 8)
    for k, start in enumerate(np.arange(0, seconds, bar)):
        chord_root = root - 12 + steps[[0, 3, 4, 5][k % 4]]
        chord = chord_root + np.array([0, steps[2], steps[4]])
        i = int(start * sample_rate)
        out[i : i + len(t_bar)] += 0.25 * tone(_midi_hz(chord), t_bar, n_harmonics=3) * pad_env
    hit = rng.normal(0, 1, int(0.06 * sample_rate)) * np.exp(-np.arange(int(0.06 * sample_rate)) / (0.01 * sample_rate))
    for start in np.arange(0, seconds, beat):
        i = int(start * sample_rate)
        out[i : i + len(hit)] += params["percussion"] * 4 * hit
    out = out[:n]
    out *= 10 ** (params["gain_db"] / 20) / max(np.abs(out).max(), 1e-9)
    return out.astype(np.float32)


#: How each character sounds, for :meth:`DemoDataset.describe`.
CHARACTERS = {
    "studio": "clean synthesis",
    "lofi": "band-limited to 4 kHz, with hiss and soft clipping, as from a cheap recorder",
    "live": "in a reverberant room with crowd noise",
}


def colour(audio: np.ndarray, character: str, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``audio`` as a source of ``character`` records it; the emotion cues (tempo, mode,
    register, loudness, percussion) are left as they are. ``studio`` is unchanged."""
    if character == "studio":
        return audio
    peak = float(np.abs(audio).max()) or 1.0
    if character == "lofi":
        import soxr

        narrow = soxr.resample(soxr.resample(audio, sample_rate, 8000), 8000, sample_rate)[: len(audio)]
        hiss = rng.normal(0, 0.02 * peak, len(narrow))
        return (peak * np.tanh(2.5 * (narrow + hiss) / peak) / np.tanh(2.5)).astype(np.float32)
    if character == "live":
        from scipy.signal import fftconvolve

        tail = np.arange(int(0.8 * sample_rate)) / sample_rate
        room = rng.normal(0, 1, len(tail)) * np.exp(-tail / 0.18)
        room[0] = 8.0  # the direct sound
        wet = fftconvolve(audio, room / np.abs(room).sum() * 4)[: len(audio)]
        crowd = np.convolve(rng.normal(0, 1, len(audio)), np.ones(40) / 40, mode="same")
        mixed = wet + 0.15 * peak * crowd / (np.abs(crowd).max() or 1.0)
        return (mixed * peak / (np.abs(mixed).max() or 1.0)).astype(np.float32)
    raise ValueError(f"unknown demo character {character!r}; known: {', '.join(CHARACTERS)}")


def _write(path: Path, audio: np.ndarray, sample_rate: int, fmt: str) -> None:
    import soundfile as sf

    subtype = {"OGG": "VORBIS", "MP3": "MPEG_LAYER_III", "WAV": "PCM_16", "FLAC": "PCM_16"}[fmt]
    sf.write(str(path), audio, sample_rate, format=fmt, subtype=subtype)


def generate(root: Path, tracks_per_quadrant: int, seed: int, character: str = "studio", name: str = "demo") -> None:
    """Write a demo source into ``root`` (atomically: a temporary folder renamed at the end).

    ``character`` says how it sounds (:data:`CHARACTERS`); a source other than the studio
    one names its pieces after itself (``name``), so that no two sources share a song.
    """
    import soxr

    rng = np.random.default_rng(seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        (staging / "audio").mkdir()
        rows = []
        index = 0
        for quadrant, (sa, sv) in SIGNS.items():
            for _ in range(tracks_per_quadrant + EXTRA[quadrant]):
                index += 1
                arousal = sa * rng.uniform(0.03, 1.0)
                valence = sv * rng.uniform(0.03, 1.0)
                params = piece_parameters(arousal, valence, rng)
                short = rng.random() < 1 / 12
                seconds = float(rng.uniform(12, 22) if short else rng.uniform(25, 32))
                audio = colour(synthesize(params, seconds, 16000, rng), character, 16000, rng)
                # Mixed formats, rates and channel counts, as real archives have.
                if character == "lofi":
                    fmt, ext, sample_rate = "FLAC", "flac", 8000
                    audio = soxr.resample(audio, 16000, sample_rate)
                elif character == "live":
                    fmt, ext, sample_rate = ("OGG", "ogg", 22050) if index % 2 else ("WAV", "wav", 22050)
                    audio = soxr.resample(audio, 16000, sample_rate)
                    audio = np.stack([audio, 0.9 * audio + 0.1 * np.roll(audio, 331)], axis=1)
                elif index % 20 == 3:
                    fmt, ext, sample_rate = "WAV", "wav", 22050
                    audio = soxr.resample(audio, 16000, sample_rate)
                    audio = np.stack([audio, 0.8 * audio], axis=1)
                elif index % 10 == 7:
                    fmt, ext, sample_rate = "MP3", "mp3", 16000
                elif index % 10 in (1, 5):
                    fmt, ext, sample_rate = "FLAC", "flac", 16000
                else:
                    fmt, ext, sample_rate = "OGG", "ogg", 16000
                track_id = f"D{index:04d}"
                _write(staging / "audio" / f"{track_id}.{ext}", audio, sample_rate, fmt)
                noisy = np.clip(np.array([arousal, valence]) + rng.normal(0, 0.08, 2), -1, 1)
                rows.append(
                    {
                        "track_id": track_id,
                        "file": f"{track_id}.{ext}",
                        "arousal": round(float(noisy[0]), 4),
                        "valence": round(float(noisy[1]), 4),
                        "genre": GENRES[int(np.clip(round(1.5 + 1.5 * arousal + rng.normal(0, 0.8)), 0, 3))],
                        "title": f"Demo piece {index}" if character == "studio" else f"{name} piece {index}",
                        "artist": f"Synth {index % 17}" if character == "studio" else f"{name} synth {index % 17}",
                    }
                )
        pd.DataFrame(rows, columns=COLUMNS).to_csv(staging / "annotations.csv", index=False)
        (staging / "VERSION.json").write_text(
            json.dumps({"version": VERSION, "tracks_per_quadrant": tracks_per_quadrant, "seed": seed, "character": character})
        )
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class DemoDataset(DatasetLoader):
    """A synthetic demo source; ``tracks_per_quadrant``, ``seed`` and ``character`` decide its content."""

    scale = Scale(-1.0, 1.0)
    label_converter = "midpoint"
    folder_names: tuple[str, ...] = ()

    def __init__(self, name: str = "demo", tracks_per_quadrant: int = 60, seed: int = 7, character: str = "studio"):
        if character not in CHARACTERS:
            raise ValueError(f"unknown demo character {character!r}; known: {', '.join(CHARACTERS)}")
        self.name = name
        self.tracks_per_quadrant = tracks_per_quadrant
        self.seed = seed
        self.character = character

    def describe(self) -> DatasetInfo:
        return DatasetInfo(
            title=f"mer-bench synthetic demo ({CHARACTERS[self.character]})",
            download="generated locally on first use, nothing to download",
            layout="annotations.csv (track_id,file,arousal,valence,genre,title,artist) and audio/<track_id>.<ogg|flac|mp3|wav>",
            license="CC0: synthetic audio made by mer-bench",
            citation="mer-bench demo dataset (synthetic), version %d" % VERSION,
        )

    def default_root(self) -> Path:
        """The generated copy in the cache, made now if it is not there yet."""
        # The studio source keeps the key it had before there were others, and so its cached copy.
        character = "" if self.character == "studio" else f"|{self.character}|{self.name}"
        key = hashlib.sha256(f"{VERSION}|{self.tracks_per_quadrant}|{self.seed}{character}".encode()).hexdigest()[:10]
        root = cache_dir() / "datasets" / f"demo-v{VERSION}-{key}"
        if not (root / "annotations.csv").is_file():
            try:
                generate(root, self.tracks_per_quadrant, self.seed, self.character, self.name)
            except OSError as exc:
                raise DatasetError(
                    f"demo dataset: cannot write it into {root} ({exc.strerror or exc}); point MER_BENCH_CACHE "
                    "at a writable folder"
                ) from None
        return root

    def load(self, root: Path) -> LoadedDataset:
        path = Path(root) / "annotations.csv"
        try:
            table = pd.read_csv(path, dtype={"track_id": str})
        except FileNotFoundError:
            raise DatasetError(f"demo dataset: {path} is missing; delete {root} to regenerate it") from None
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise DatasetError(f"demo dataset: {path} lacks column(s) {', '.join(missing)}")
        tracks = table.assign(dataset=self.name, audio_path=[Path(root) / "audio" / f for f in table["file"]])
        return LoadedDataset(tracks.drop(columns=["file"]))


@hookimpl
def mer_bench_datasets():
    return [
        DemoDataset(),
        DemoDataset("demo-lofi", tracks_per_quadrant=30, seed=8, character="lofi"),
        DemoDataset("demo-live", tracks_per_quadrant=30, seed=9, character="live"),
    ]
