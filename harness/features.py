"""Stage 5, features: per-clip arrays through the cache, then each dataset's finishing step.

Clips missing from the cache are extracted in a process pool (one worker per core by
default). Workers write their results into the cache and the parent reads them back
memory-mapped, so arrays never travel through pipes and a second run reads them all
from disk. A clip that fails to decode is excluded with its path and reason, and the run
goes on without it.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mer_bench.cache import FeatureCache, file_digest, library_versions
from mer_bench.errors import AudioError
from mer_bench.progress import SILENT, Progress
from mer_bench.protocol import track_uids
from mer_bench.types import Clip, Exclusion, FeatureExtractor


@dataclass
class Features:
    """Feature rows in one block per dataset; ``rows`` gathers them by uid."""

    blocks: list[np.ndarray]
    uids: list[str]
    excluded: list[Exclusion]
    #: What the cache did: ``hits``, ``computed`` and ``failed`` clip counts.
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._where = {}
        for b, block in enumerate(self.blocks):
            start = len(self._where)
            for r in range(len(block)):
                self._where[self.uids[start + r]] = (b, r)

    @property
    def x(self) -> np.ndarray:
        """Every row in ``uids`` order (a copy: prefer :meth:`rows`)."""
        return np.concatenate(self.blocks) if self.blocks else np.empty((0,))

    def rows(self, uids: list[str]) -> np.ndarray:
        """The rows of ``uids`` that have features, in that order, as one new array."""
        places = [self._where[u] for u in uids if u in self._where]
        if not places:
            return np.empty((0, *self.blocks[0].shape[1:]), self.blocks[0].dtype) if self.blocks else np.empty((0,))
        out = np.empty((len(places), *self.blocks[places[0][0]].shape[1:]), dtype=self.blocks[places[0][0]].dtype)
        for i, (b, r) in enumerate(places):
            out[i] = self.blocks[b][r]
        return out


def feature_versions(distribution: str, version: str) -> dict[str, str]:
    """What goes into cache keys besides settings: the plugin's own version and the audio libraries'."""
    return {**library_versions(), distribution: version}


def _init_worker() -> None:
    # One BLAS thread per worker: the pool already uses every core.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _extract_into_cache(extractor: FeatureExtractor, settings: Any, clip: Clip, key: str, cache_root) -> str | None:
    """Extract one clip and store it; returns an error message for a clip that cannot be decoded."""
    try:
        array = np.asarray(extractor.extract(clip, settings))
    except AudioError as exc:
        return str(exc)
    FeatureCache(cache_root).put(extractor.name, key, array)
    return None


def extract_features(
    tracks: pd.DataFrame,
    extractor: FeatureExtractor,
    settings: Any,
    *,
    versions: dict[str, str] | None = None,
    cache: FeatureCache | None = None,
    jobs: int | None = 1,
    progress: Progress = SILENT,
) -> Features:
    """Features for every prepared track, computing only what the cache lacks.

    ``jobs`` is the number of worker processes (None: one per core; 1: in this process).
    """
    cache = cache or FeatureCache()
    versions = versions if versions is not None else library_versions()
    settings_json = settings.model_dump(mode="json") if hasattr(settings, "model_dump") else settings
    tracks = tracks.assign(uid=track_uids(tracks))
    clips, keys, excluded = {}, {}, []
    for row in tracks.itertuples(index=False):
        clip = Clip(row.uid, row.dataset, row.audio_path, float(row.clip_start_s), float(row.clip_seconds))
        try:
            digest = getattr(row, "audio_digest", None) or file_digest(row.audio_path)
        except OSError as exc:
            excluded.append(Exclusion(row.dataset, row.track_id, "features", "audio-missing", f"{row.audio_path}: {exc}"))
            continue
        clips[row.uid] = clip
        keys[row.uid] = cache.key(extractor.name, settings_json, versions, digest, clip.start_s, clip.duration_s)
    missing = [u for u in clips if not cache.path(extractor.name, keys[u]).is_file()]
    failed = dict(_compute(missing, clips, keys, extractor, settings, cache, jobs, progress))
    for uid, message in failed.items():
        dataset, track_id = uid.split("/", 1)
        excluded.append(Exclusion(dataset, track_id, "features", "decode-error", message))

    blocks, uids = [], []
    for _, rows in tracks.groupby("dataset", sort=False):
        arrays, kept = [], []
        for uid in rows["uid"]:
            if uid not in clips or uid in failed:
                continue
            array = cache.get(extractor.name, keys[uid])
            if array is None:  # damaged since it was written: rebuild it here
                _extract_into_cache(extractor, settings, clips[uid], keys[uid], cache.root)
                array = cache.get(extractor.name, keys[uid])
            arrays.append(array)
            kept.append(uid)
        if arrays:
            blocks.append(np.asarray(extractor.finish_dataset(np.stack(arrays), settings)))
            uids.extend(kept)
    counts = {"hits": len(clips) - len(missing), "computed": len(missing) - len(failed), "failed": len(failed)}
    return Features(blocks, uids, excluded, counts)


def _compute(missing, clips, keys, extractor, settings, cache, jobs, progress):
    """Yield (uid, error) for every clip in ``missing`` that could not be decoded."""
    label = f"{extractor.name} features"
    workers = min(jobs or os.cpu_count() or 1, max(len(missing), 1))
    if workers <= 1:
        for uid in progress.track(missing, label):
            error = _extract_into_cache(extractor, settings, clips[uid], keys[uid], cache.root)
            if error:
                yield uid, error
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        futures = {
            pool.submit(_extract_into_cache, extractor, settings, clips[u], keys[u], cache.root): u for u in missing
        }
        for future in progress.track(as_completed(futures), label, total=len(futures)):
            error = future.result()
            if error:
                yield futures[future], error
