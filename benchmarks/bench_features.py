"""Benchmark of the mel-image feature: each stage alone, the harness cold and warm, peak memory.

Run:  python benchmarks/bench_features.py [--clips 24] [--memory-clips 2600]

All timings use the same generated clips: 45 s, 44.1 kHz stereo, half MP3 and half WAV,
cropped to their central 24 s. Figures are per format, since an MP3 costs more to
decode than a WAV. The stage figures are medians over clips of each step run alone,
in the order the extractor runs them; their sum is what one clip must cost. The
harness figures are wall time per clip of ``extract_features`` with a fresh cache (cold:
hashing, decoding, features, cache writes and the per-dataset images) and with a full
one (warm), each the median of three runs. Peak memory is the peak RSS of a fresh process assembling the images
of ``--memory-clips`` clips from the cache, the way a run over the four datasets does.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from mer_bench.cache import FeatureCache, library_versions
from mer_bench.features import extract_features
from mer_bench_plugins.datasets.demo import piece_parameters, synthesize
from mer_bench_plugins.features.mel_image import MelImage, MelImageSettings, absolute_db, to_image

SR = 44100
SECONDS = 45.0
CLIP = 24.0


def make_clips(folder: Path, n: int) -> list[Path]:
    """``n`` clips (45 s, 44.1 kHz stereo), alternately MP3 and WAV, all different."""
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        a, v = rng.uniform(-1, 1, 2)
        mono = synthesize(piece_parameters(a, v, rng), SECONDS, SR, rng)
        stereo = np.stack([mono, 0.9 * mono], axis=1)
        path = folder / (f"clip{i:03d}.mp3" if i % 2 == 0 else f"clip{i:03d}.wav")
        sf.write(str(path), stereo, SR, format="MP3" if path.suffix == ".mp3" else "WAV")
        paths.append(path)
    return paths


def stage_times(paths: list[Path], settings: MelImageSettings) -> dict[str, float]:
    """Median ms per clip of each stage run alone."""
    times: dict[str, list[float]] = {k: [] for k in ("decode", "resample", "mel", "dB", "image")}
    start_s = (SECONDS - CLIP) / 2
    for path in paths:
        t0 = time.perf_counter()
        with sf.SoundFile(str(path)) as f:
            if f.format == "MP3":  # as the harness does: one read call up to the crop's end
                x = f.read(int((start_s + CLIP) * SR), dtype="float32", always_2d=True)[int(start_s * SR) :]
            else:
                f.seek(int(start_s * SR))
                x = f.read(int(CLIP * SR), dtype="float32", always_2d=True)
        mono = (x[:, 0] + x[:, 1]) * 0.5
        t1 = time.perf_counter()
        y = soxr.resample(mono, SR, settings.sample_rate, quality="HQ")
        t2 = time.perf_counter()
        import librosa

        mel = librosa.feature.melspectrogram(
            y=y, sr=settings.sample_rate, n_fft=settings.n_fft, hop_length=settings.hop_length, n_mels=settings.n_mels
        )
        t3 = time.perf_counter()
        db = (10 * np.log10(np.maximum(mel, 1e-10))).astype(np.float16)
        t4 = time.perf_counter()
        to_image(db, float(db.max()), settings)
        t5 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[key].append(value * 1000)
    return {k: median(v) for k, v in times.items()}


def tracks_for(paths: list[Path], dataset: str = "bench", copies: int = 1) -> pd.DataFrame:
    """``copies`` tracks per file, each a copy at its own path with its own crop window.

    Every track then has its own cache key and its own file to hash, as distinct clips do.
    """
    rows = []
    for c in range(copies):
        for path in paths:
            copy = path if c == 0 else path.with_name(f"{path.stem}-copy{c}{path.suffix}")
            if not copy.exists():
                shutil.copy(path, copy)
            rows.append(
                {"dataset": dataset, "track_id": copy.stem, "audio_path": copy,
                 "clip_start_s": round((SECONDS - CLIP) / 2 + 0.01 * c, 3), "clip_seconds": CLIP}
            )
    return pd.DataFrame(rows)


def harness_ms(tracks: pd.DataFrame, folder: Path, jobs: int, settings: MelImageSettings, repeats: int = 3):
    """Median over ``repeats`` of (cold ms per clip, warm ms per clip), each cold run on a fresh cache."""
    cold, warm = [], []
    for r in range(repeats):
        cache = FeatureCache(folder / f"cache-{jobs}-{r}")
        t0 = time.perf_counter()
        extract_features(tracks, MelImage(), settings, cache=cache, jobs=jobs)
        t1 = time.perf_counter()
        extract_features(tracks, MelImage(), settings, cache=cache, jobs=jobs)
        t2 = time.perf_counter()
        cold.append((t1 - t0) * 1000 / len(tracks))
        warm.append((t2 - t1) * 1000 / len(tracks))
        shutil.rmtree(cache.root)
    return median(cold), median(warm)


def memory_child(folder: Path, clips: int) -> None:
    """In a fresh process: assemble ``clips`` images from a warm cache; print peak RSS in MB."""
    settings = MelImageSettings()
    path = next(folder.glob("clip*.wav"))
    # Four datasets of equal size over one file: each clip has its own window, hence its own key.
    tracks = pd.DataFrame(
        {
            "dataset": [f"d{i % 4}" for i in range(clips)],
            "track_id": [str(i) for i in range(clips)],
            "audio_path": path,
            "clip_start_s": [round(1.0 + 0.005 * i, 3) for i in range(clips)],
            "clip_seconds": CLIP,
        }
    )
    features = extract_features(tracks, MelImage(), settings, cache=FeatureCache(folder / "memcache"), jobs=1)
    assert sum(len(b) for b in features.blocks) == clips
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def fill_memory_cache(folder: Path, clips: int) -> None:
    """Store one real spectrogram under the keys of every (file, window) the child will ask for."""
    from mer_bench.cache import file_digest

    settings = MelImageSettings()
    path = next(folder.glob("clip*.wav"))
    cache = FeatureCache(folder / "memcache")
    y = soxr.resample(sf.read(str(path), dtype="float32")[0].mean(axis=1), SR, settings.sample_rate)
    db = absolute_db(y[: int(CLIP * settings.sample_rate)], settings).astype(np.float16)
    digest = file_digest(path)
    versions = library_versions()
    for i in range(clips):
        key = cache.key("mel-image", settings.model_dump(mode="json"), versions, digest, round(1.0 + 0.005 * i, 3), CLIP)
        cache.put("mel-image", key, db)


def measure_format(paths: list[Path], folder: Path, workers: int, settings: MelImageSettings, copies: int):
    """Stage medians, their sum and the harness figures for clips of one format (ms per clip)."""
    from threadpoolctl import threadpool_limits

    tracks = tracks_for(paths, copies=copies)
    # One worker means one core, as each pool worker has: BLAS is held to one thread,
    # for the stages alone as for the harness.
    with threadpool_limits(1):
        passes = [stage_times(paths, settings) for _ in range(3)]
        figures = {k: median(p[k] for p in passes) for k in passes[0]}
        figures["sum of stages"] = sum(figures.values())
        figures["cold, 1 worker"], figures["warm cache"] = harness_ms(tracks, folder, 1, settings)
    figures[f"cold, {workers} workers"], _ = harness_ms(tracks, folder, workers, settings)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16, help="generated clips, half MP3, half WAV")
    parser.add_argument("--copies", type=int, default=4, help="tracks per generated clip in the harness runs")
    parser.add_argument("--memory-clips", type=int, default=2600)
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.memory_clips)
        return

    from tabulate import tabulate

    workers = os.cpu_count() or 1
    settings = MelImageSettings()
    folder = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        paths = make_clips(folder, args.clips)
        # Libraries loaded and JIT caches warm before anything is timed.
        extract_features(tracks_for(paths[:2]), MelImage(), settings, cache=FeatureCache(folder / "warmup"), jobs=1)
        stage_times(paths, settings)  # one untimed pass: files in the page cache, like the harness runs
        by_format = {
            fmt: measure_format([p for p in paths if p.suffix == f".{fmt}"], folder, workers, settings, args.copies)
            for fmt in ("mp3", "wav")
        }
        fill_memory_cache(folder, args.memory_clips)
        peak_mb = float(
            subprocess.run(
                [sys.executable, __file__, "--memory-child", str(folder), "--memory-clips", str(args.memory_clips)],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    measures = list(by_format["mp3"])
    rows = [[m, *(f"{by_format[f][m]:.2f}" for f in by_format)] for m in measures]
    checks = []
    for fmt, fig in by_format.items():
        cold_1, cold_n = fig["cold, 1 worker"], fig[f"cold, {workers} workers"]
        checks += [
            [fmt, "cold 1 worker / sum of stages", f"{cold_1 / fig['sum of stages']:.2f}", "<= 1.15"],
            [fmt, f"throughput {workers} workers / 1 worker", f"{cold_1 / cold_n:.2f}", ">= 1.7"],
            [fmt, "cold / warm", f"{cold_1 / fig['warm cache']:.0f}", ">= 50"],
        ]
    checks.append(["all", f"peak RSS assembling {args.memory_clips} clips (MB)", f"{peak_mb:.0f}", "< 1500"])
    n = args.clips * args.copies // 2
    print(f"mel-image on 45 s clips at 44.1 kHz stereo, {workers} cores: stages on {args.clips // 2} clips per format,")
    print(f"harness on {n} tracks per format (median of 3 runs, fresh cache each); ms per clip")
    print(tabulate(rows, headers=["measure", "MP3", "WAV"], tablefmt="github"))
    print()
    print(tabulate(checks, headers=["format", "ratio", "measured", "target"], tablefmt="github"))


if __name__ == "__main__":
    main()
