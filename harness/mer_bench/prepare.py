"""Stage 3, prepare: drop clips that are too short, place the central crop, select per dataset.

Every track left out is returned as an :class:`~mer_bench.types.Exclusion`; the run
writes them to ``prep-report.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from mer_bench.audio import decoded_duration, require_file
from mer_bench.cache import FeatureCache, file_digest, library_versions
from mer_bench.errors import AudioError
from mer_bench.parallel import run_parallel
from mer_bench.progress import SILENT, Progress
from mer_bench.selection import Policy, select_tracks
from mer_bench.types import Exclusion, Scale

#: The cache folder for decoded lengths.
DURATION = "decoded-duration"


@dataclass
class Prepared:
    """Tracks kept, with ``decoded_s``, ``clip_start_s`` and ``clip_seconds`` added, and the exclusions."""

    tracks: pd.DataFrame
    excluded: list[Exclusion]
    #: Cached decoded lengths that failed their checksum and were measured again.
    rebuilt: int = 0


def measured_duration(path: Path, cache: FeatureCache | None) -> tuple[float, str]:
    """Decoded length of ``path`` and its content digest; the length is cached by content."""
    require_file(path)
    try:
        digest = cache.digest(path) if cache is not None else file_digest(path)
    except OSError:
        raise AudioError(path, "file not found", code="audio-missing") from None
    if cache is None:
        return decoded_duration(path), digest
    # "checks" names what a cached length vouches for besides the length: entries measured
    # before NaN samples were refused must not vouch for finite audio.
    key = cache.key(DURATION, {"checks": "finite"}, library_versions(("soundfile",)), digest, 0.0, 0.0)
    hit = cache.get(DURATION, key)
    if hit is not None:
        return float(hit[0]), digest
    seconds = decoded_duration(path)
    cache.put(DURATION, key, np.array([seconds]))
    return seconds, digest


def _measure(cache_root, path: Path) -> tuple[float, str | None, str, str, int]:
    """(seconds, digest, reason, message, damaged cache entries) for one file, failures as
    values (run in workers)."""
    cache = FeatureCache(cache_root) if cache_root is not None else None
    try:
        seconds, digest = measured_duration(path, cache)
    except AudioError as exc:
        return np.nan, None, exc.code, str(exc), len(cache.damaged) if cache else 0
    return seconds, digest, "", "", len(cache.damaged) if cache else 0


#: How much shorter than the length a dataset states a decoded file may be before it counts
#: as truncated: encoders pad and trim a fraction of a second (PMEmo decodes ~0.1 s short).
TRUNCATED_SLACK_S = 1.0
TRUNCATED_SLACK_FRACTION = 0.05


def truncated_tracks(tracks: pd.DataFrame) -> pd.Series:
    """Which tracks decoded clearly shorter than the ``duration_s`` their dataset states.

    Such a file is cut or damaged (a partial download, a broken copy); kept, it would be
    cropped from the wrong part of the song. Tracks without a stated duration are never
    truncated.
    """
    if "duration_s" not in tracks:
        return pd.Series(False, index=tracks.index)
    stated = tracks["duration_s"]
    slack = np.maximum(TRUNCATED_SLACK_S, TRUNCATED_SLACK_FRACTION * stated)
    return (stated.notna() & (tracks["decoded_s"] < stated - slack)).fillna(False).astype(bool)


def crop_tracks(
    tracks: pd.DataFrame,
    clip_seconds: float,
    progress: Progress = SILENT,
    cache: FeatureCache | None = None,
    jobs: int | None = 1,
) -> Prepared:
    """Measure each file's decoded length, drop those shorter than ``clip_seconds``, centre the crop.

    Adds ``decoded_s``, ``audio_digest`` (sha256 of the file), ``clip_start_s`` and
    ``clip_seconds``. With a cache, lengths of files already measured are not decoded
    again; ``jobs`` processes decode the others (None: one per core).
    """
    paths = sorted({Path(p) for p in tracks["audio_path"]})
    work = partial(_measure, cache.root if cache is not None else None)
    measured = dict(run_parallel(work, paths, jobs, progress, "measuring decoded audio"))
    durations, digests, excluded = [], [], []
    for row in tracks.itertuples(index=False):
        seconds, digest, reason, message, _ = measured[Path(row.audio_path)]
        if reason:
            excluded.append(Exclusion(row.dataset, row.track_id, "prepare", reason, message))
        durations.append(seconds)
        digests.append(digest)
    out = tracks.assign(decoded_s=durations, audio_digest=digests)
    truncated = truncated_tracks(out)
    for row in out[truncated].itertuples(index=False):
        excluded.append(
            Exclusion(
                row.dataset, row.track_id, "prepare", "truncated",
                f"{row.decoded_s:.2f} s decoded of the {row.duration_s:.2f} s the dataset states (a damaged or cut file)",
            )
        )
    short = ~truncated & (out["decoded_s"] < clip_seconds)
    for row in out[short].itertuples(index=False):
        excluded.append(
            Exclusion(row.dataset, row.track_id, "prepare", "too-short", f"{row.decoded_s:.2f} s decoded < {clip_seconds:g} s")
        )
    out = out[out["decoded_s"].notna() & ~short & ~truncated].copy()
    # On a millisecond grid: the exact centre often falls on half a sample, where a
    # float round trip (e.g. through tracks.csv) could move the crop by one sample.
    out["clip_start_s"] = ((out["decoded_s"] - clip_seconds) / 2).round(3)
    out["clip_seconds"] = float(clip_seconds)
    return Prepared(out.reset_index(drop=True), excluded, rebuilt=sum(m[4] for m in measured.values()))


def prepare(
    tracks: pd.DataFrame,
    scales: dict[str, Scale | None],
    clip_seconds: float,
    selection: dict[str, Policy],
    progress: Progress = SILENT,
    cache: FeatureCache | None = None,
    jobs: int | None = 1,
) -> Prepared:
    """Crop to the central ``clip_seconds`` (dropping shorter clips), then keep what each
    dataset's selection policy selects (:mod:`mer_bench.selection`)."""
    cropped = crop_tracks(tracks, clip_seconds, progress, cache, jobs)
    kept, excluded = select_tracks(cropped.tracks, scales, selection)
    kept = kept.sort_values(["dataset", "track_id"], kind="mergesort").reset_index(drop=True)
    return Prepared(kept, cropped.excluded + excluded, cropped.rebuilt)
