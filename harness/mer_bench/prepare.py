"""Stage 3, prepare: drop clips that are too short, place the central crop, balance quadrants.

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
from mer_bench.errors import AudioError, DatasetError
from mer_bench.parallel import run_parallel
from mer_bench.progress import SILENT, Progress
from mer_bench.types import QUADRANTS, Exclusion, Scale

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
    key = cache.key(DURATION, {}, library_versions(("soundfile",)), digest, 0.0, 0.0)
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


def balance_score(tracks: pd.DataFrame, scale: Scale | None) -> pd.DataFrame:
    """Add ``score`` = min(|a - mid|, |v - mid|) and ``radius`` (distance from the centre).

    Both are 0 for datasets that give quadrants without valence/arousal values.
    """
    if scale is None:
        return tracks.assign(score=0.0, radius=0.0)
    da = (tracks["arousal"] - scale.midpoint).abs()
    dv = (tracks["valence"] - scale.midpoint).abs()
    return tracks.assign(score=np.minimum(da, dv).fillna(0.0), radius=np.hypot(da, dv).fillna(0.0))


def balance_quadrants(tracks: pd.DataFrame, scales: dict[str, Scale | None]) -> Prepared:
    """Within each dataset, keep as many tracks per quadrant as its smallest quadrant has.

    The kept tracks are those farthest from the axes (largest ``score``), ties broken by
    distance from the centre, then by track id, so the choice is deterministic.
    """
    kept, excluded = [], []
    if tracks.empty:
        return Prepared(tracks, excluded)
    for dataset, rows in tracks.groupby("dataset", sort=False):
        counts = rows["quadrant"].value_counts()
        empty = [q for q in QUADRANTS if counts.get(q, 0) == 0]
        if empty:
            raise DatasetError(
                f"dataset {dataset!r} has no tracks in quadrant(s) {', '.join(empty)} after preparation, "
                "so it cannot be balanced; set balance = false to keep it unbalanced"
            )
        target = int(counts.min())
        scored = balance_score(rows, scales[dataset])
        for quadrant, group in scored.groupby("quadrant", sort=False):
            ranked = group.sort_values(["score", "radius", "track_id"], ascending=[False, False, True], kind="mergesort")
            kept.append(ranked.iloc[:target])
            for row in ranked.iloc[target:].itertuples(index=False):
                excluded.append(
                    Exclusion(
                        dataset,
                        row.track_id,
                        "prepare",
                        "balance",
                        f"{quadrant} has {len(group)} tracks, kept the {target} farthest from the axes "
                        f"(this one: distance {row.score:.4g})",
                    )
                )
    out = pd.concat(kept).drop(columns=["score", "radius"]).sort_index()
    return Prepared(out.reset_index(drop=True), excluded)


def balanced_datasets(balance: bool | list[str], datasets) -> set[str]:
    """Which of ``datasets`` a ``balance`` setting (True, False or a list of names) balances."""
    if balance is True:
        return set(datasets)
    return set(datasets) & set(balance or [])


def prepare(
    tracks: pd.DataFrame,
    scales: dict[str, Scale | None],
    clip_seconds: float,
    balance: bool | list[str],
    progress: Progress = SILENT,
    cache: FeatureCache | None = None,
    jobs: int | None = 1,
) -> Prepared:
    """Crop to the central ``clip_seconds`` (dropping shorter clips), then balance.

    ``balance`` is True (every dataset), False (none) or the names of the datasets to balance.
    """
    cropped = crop_tracks(tracks, clip_seconds, progress, cache, jobs)
    selected = cropped.tracks["dataset"].isin(balanced_datasets(balance, scales))
    if not selected.any():
        return cropped
    balanced = balance_quadrants(cropped.tracks[selected], scales)
    kept = pd.concat([balanced.tracks, cropped.tracks[~selected]]).sort_values(["dataset", "track_id"], kind="mergesort")
    return Prepared(kept.reset_index(drop=True), cropped.excluded + balanced.excluded, cropped.rebuilt)
