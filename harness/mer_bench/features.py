"""Stage 5, features: per-clip arrays through the cache, then each dataset's finishing step.

Clips missing from the cache are extracted in a process pool (one worker per core by
default, see :mod:`mer_bench.parallel`). Workers write their results into the cache and the parent reads them back
memory-mapped, so arrays never travel through pipes and a second run reads them all
from disk. A clip that fails to decode is excluded with its path and reason, and the run
goes on without it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mer_bench.cache import FeatureCache, library_versions
from mer_bench.errors import AudioError, PluginCallError
from mer_bench.parallel import run_parallel
from mer_bench.plugin_calls import check_features, plugin_call
from mer_bench.progress import SILENT, Progress
from mer_bench.protocol import track_uids
from mer_bench.types import Clip, Exclusion, FeatureExtractor

if TYPE_CHECKING:
    from mer_bench.plugin_manager import PluginSet

#: The cache folder for each dataset's finished arrays.
FINISHED = "finished"


class Rows:
    """Some rows of the memory-mapped feature blocks, read from disk only when taken.

    What a model receives as ``FoldData.x``: it has ``len``, ``shape`` and ``dtype``
    like an array, ``take(indices, axis=0)`` reads just those rows (so a model can stream
    batches without holding a fold in memory), and ``np.asarray`` reads them all.
    """

    def __init__(self, blocks: list[np.ndarray], places: np.ndarray):
        self._blocks = blocks
        #: (block, row) of each row, in order.
        self._places = np.asarray(places, dtype=np.int64).reshape(-1, 2)
        sample = blocks[0] if blocks else np.empty((0,))
        self.dtype = sample.dtype
        self.shape = (len(self._places), *sample.shape[1:])

    def __len__(self) -> int:
        return len(self._places)

    def take(self, indices, axis: int = 0) -> np.ndarray:
        """The rows at ``indices`` (in that order) as a new array."""
        if axis != 0:
            raise ValueError("Rows can only be taken along axis 0")
        wanted = self._places[np.asarray(indices, dtype=np.int64)]
        out = np.empty((len(wanted), *self.shape[1:]), dtype=self.dtype)
        for b in np.unique(wanted[:, 0]):
            at = np.flatnonzero(wanted[:, 0] == b)
            # Reading a block's rows in file order keeps memory-mapped reads sequential.
            order = np.argsort(wanted[at, 1], kind="stable")
            out[at[order]] = self._blocks[b][wanted[at[order], 1]]
        return out

    def __getitem__(self, key) -> np.ndarray:
        """Rows by index, slice, integer array or boolean mask, read into a new array."""
        picked = np.arange(len(self))[key]
        return self.take(picked.reshape(1))[0] if np.ndim(picked) == 0 else self.take(picked)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        # Models written for plain arrays (x.mean(), x.reshape()) get told what to do instead.
        raise AttributeError(
            f"Rows has no attribute {name!r}: it reads feature rows lazily; use np.asarray(x) for an array "
            "or x.take(indices, axis=0) for some rows"
        )

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self.take(np.arange(len(self)))
        return rows if dtype is None else rows.astype(dtype, copy=False)


@dataclass
class Features:
    """Feature rows in one block per dataset; ``select`` and ``rows`` find them by uid."""

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

    def __getstate__(self) -> dict[str, Any]:
        # A memory-mapped block travels as its cache path (the receiver maps the same
        # file), any other block by value: a unit job pickles to a few kilobytes.
        blocks = [
            ("path", block.filename) if isinstance(block, np.memmap) and block.filename else ("array", np.asarray(block))
            for block in self.blocks
        ]
        return {"blocks": blocks, "uids": self.uids, "excluded": self.excluded, "counts": self.counts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        blocks = [np.load(value, mmap_mode="r") if kind == "path" else value for kind, value in state["blocks"]]
        self.__init__(blocks, state["uids"], state["excluded"], state["counts"])

    def in_memory(self) -> Features:
        """The same features with every block read into memory (to ship by value)."""
        return Features([np.asarray(b) for b in self.blocks], self.uids, self.excluded, self.counts)

    @property
    def x(self) -> np.ndarray:
        """Every row in ``uids`` order (a copy: prefer :meth:`rows`)."""
        return np.concatenate(self.blocks) if self.blocks else np.empty((0,))

    def select(self, uids: list[str]) -> Rows:
        """The rows of ``uids`` that have features, in that order, without reading them."""
        return Rows(self.blocks, np.array([self._where[u] for u in uids if u in self._where], dtype=np.int64))

    def rows(self, uids: list[str]) -> np.ndarray:
        """The rows of ``uids`` that have features, in that order, as one new array."""
        return np.asarray(self.select(uids))


def feature_versions(plugins: PluginSet, name: str) -> dict[str, str]:
    """What goes into cache keys besides settings: the version of the distribution that
    provides feature plugin ``name``, and the audio libraries' versions."""
    source = plugins.entries["feature"][name].source
    return {**library_versions(), source.distribution: source.version}


def extract_clip(extractor: FeatureExtractor, clip: Clip, settings: Any) -> np.ndarray:
    """``extractor.extract`` on one clip, checked: an AudioError passes (the clip is excluded),
    any other exception or a result that is not numbers is a PluginCallError naming the clip."""
    where = f"clip {clip.uid} ({clip.audio_path})"
    with plugin_call("feature", extractor.name, "extract", where, keep=(AudioError,)):
        array = extractor.extract(clip, settings)
    return check_features(array, f"feature plugin {extractor.name!r} on {where}")


def _ensure_cached(extractor, settings, settings_json, versions, cache_root, job: tuple[Clip, str | None]):
    """Hash (if needed), key, and extract one clip unless cached; returns (key, outcome, message).

    ``outcome`` is ``hit``, ``computed``, an :class:`AudioError`'s code (``decode-error``,
    ``audio-missing``, ``non-finite-audio``) or ``non-finite-features`` (NaN or infinity, never cached or passed on). Run in a
    worker, so that hashing the audio happens in parallel too.
    """
    clip, digest = job
    cache = FeatureCache(cache_root)
    try:
        digest = digest or cache.digest(clip.audio_path)
    except OSError as exc:
        return None, "audio-missing", f"{clip.audio_path}: {exc}"
    key = cache.key(extractor.name, settings_json, versions, digest, clip.start_s, clip.duration_s)
    if cache.path(extractor.name, key).is_file():
        return key, "hit", ""
    try:
        array = extract_clip(extractor, clip, settings)
    except AudioError as exc:
        return key, exc.code, str(exc)
    if not np.isfinite(array).all():
        return key, "non-finite-features", f"{clip.audio_path}: {extractor.name} gave NaN or infinite values"
    cache.put(extractor.name, key, array)
    return key, "computed", ""


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
    Clips whose content digest is already known (an ``audio_digest`` column, as
    preparation adds, or the digest memo) and whose entry exists are hits found here;
    everything else goes to the workers, which hash, key and extract.
    """
    cache = cache or FeatureCache()
    damaged_before = len(cache.damaged)
    versions = versions if versions is not None else library_versions()
    settings_json = settings.model_dump(mode="json") if hasattr(settings, "model_dump") else settings
    tracks = tracks.assign(uid=track_uids(tracks))
    clips, keys, todo = {}, {}, []
    for row in tracks.itertuples(index=False):
        clip = Clip(row.uid, row.dataset, row.audio_path, float(row.clip_start_s), float(row.clip_seconds))
        clips[row.uid] = clip
        digest = getattr(row, "audio_digest", None) or cache.digest(row.audio_path, compute=False)
        if digest:
            key = cache.key(extractor.name, settings_json, versions, digest, clip.start_s, clip.duration_s)
            if cache.path(extractor.name, key).is_file():
                keys[row.uid] = key
                continue
        todo.append((row.uid, digest))
    counts = {"hits": len(keys), "computed": 0, "failed": 0}
    excluded = []
    work = partial(_ensure_cached, extractor, settings, settings_json, versions, cache.root)
    todo_jobs = [(clips[uid], digest) for uid, digest in todo]
    for (clip, _), (key, outcome, message) in run_parallel(work, todo_jobs, jobs, progress, f"{extractor.name} features"):
        if outcome in ("hit", "computed"):
            keys[clip.uid] = key
            counts["hits" if outcome == "hit" else "computed"] += 1
        else:
            counts["failed"] += 1
            excluded.append(Exclusion(clip.dataset, clip.uid.split("/", 1)[1], "features", outcome, message))

    blocks, uids = [], []
    for _, rows in tracks.groupby("dataset", sort=False):
        kept = [u for u in rows["uid"] if u in keys]
        if kept:
            block = _finished_block(kept, keys, clips, extractor, settings, cache)
            if blocks and block.shape[1:] != blocks[0].shape[1:]:
                raise PluginCallError(
                    f"feature plugin {extractor.name!r} gave {clips[kept[0]].dataset} rows of shape {block.shape[1:]} "
                    f"but {clips[uids[0]].dataset} rows of shape {blocks[0].shape[1:]}; one run needs one shape"
                )
            blocks.append(block)
            uids.extend(kept)
    counts["rebuilt"] = len(cache.damaged) - damaged_before
    return Features(blocks, uids, excluded, counts)


def _finished_block(uids, keys, clips, extractor, settings, cache) -> np.ndarray:
    """A dataset's finished arrays, cached under a key made of its clips' keys, memory-mapped.

    The finishing step sees every clip of the dataset (the paper's per-dataset dB
    reference), so its result is cached per exact set of clips, not per clip. Entries
    that fail their checksum are rebuilt here (and were counted by the cache).
    """
    block_key = hashlib.sha256(("finish|" + "|".join(keys[u] for u in uids)).encode()).hexdigest()
    block = cache.get(FINISHED, block_key)
    if block is not None and len(block) == len(uids):
        return block
    arrays = []
    for uid in uids:
        array = cache.get(extractor.name, keys[uid])
        if array is None:  # damaged since it was written: rebuild it here
            cache.put(extractor.name, keys[uid], extract_clip(extractor, clips[uid], settings))
            array = cache.get(extractor.name, keys[uid])
        if arrays and array.shape != arrays[0].shape:
            raise PluginCallError(
                f"feature plugin {extractor.name!r}: extract gave clip {uid} shape {array.shape} but clip {uids[0]} "
                f"shape {arrays[0].shape}; every clip's features must have one shape"
            )
        arrays.append(array)
    where = f"the {len(uids)} clips of {clips[uids[0]].dataset}"
    with plugin_call("feature", extractor.name, "finish_dataset", where):
        finished = extractor.finish_dataset(np.stack(arrays), settings)
    finished = check_features(finished, f"feature plugin {extractor.name!r} (finish_dataset on {where})")
    if len(finished) != len(uids) or not np.isfinite(finished).all():
        raise PluginCallError(
            f"feature plugin {extractor.name!r}: finish_dataset on {where} returned {len(finished)} rows"
            f"{'' if np.isfinite(finished).all() else ' with NaN or infinite values'}; it must return one finite row per clip"
        )
    cache.put(FINISHED, block_key, finished)
    return cache.get(FINISHED, block_key)
