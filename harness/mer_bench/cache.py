"""The content-addressed feature cache: one ``.npy`` file per clip and feature configuration.

The key is a sha256 over the extractor's name, its settings, the versions of the
libraries that change its output, the audio file's content and the crop window. So a
changed file, setting or library version is a miss, never a stale hit. Entries are
written atomically and read memory-mapped; an entry that cannot be read is deleted and
counts as a miss. The cache lives under ``$MER_BENCH_CACHE/features`` (or the user cache
folder) and is safe to delete.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from mer_bench.atomic import atomic_write
from mer_bench.paths import cache_dir

#: Libraries whose versions change decoded audio or spectrograms.
AUDIO_LIBRARIES = ("numpy", "scipy", "librosa", "soundfile", "soxr", "pillow")


def library_versions(names: tuple[str, ...] = AUDIO_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (``not installed`` where absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes: the audio's identity, whatever its name or location."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheStats:
    """What ``cache info`` shows for one extractor."""

    feature: str
    entries: int
    bytes: int


class FeatureCache:
    """Arrays by key under ``root/<feature>/<key[:2]>/<key>.npy``."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "features"

    @staticmethod
    def key(feature: str, settings: dict, versions: dict[str, str], audio_digest: str, start_s: float, seconds: float) -> str:
        """The entry key for one clip under one feature configuration."""
        payload = json.dumps(
            {
                "feature": feature,
                "settings": settings,
                "versions": versions,
                "audio": audio_digest,
                "window": [round(start_s, 6), round(seconds, 6)],
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def digest(self, path: Path, compute: bool = True) -> str | None:
        """The file's sha256, remembered by (path, size, modification time) so unchanged files are read once.

        With ``compute=False`` only a remembered digest is returned (None otherwise, or if
        the file is missing). A file rewritten with the same size and mtime would keep its
        old digest; editors and copies change the mtime, the trade-off make and rsync make.
        """
        path = Path(path)
        try:
            st = path.stat()
        except OSError:
            if compute:
                raise
            return None
        memo_key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        memo = self.root / "digests" / memo_key[:2] / memo_key
        try:
            known = memo.read_text()
            if len(known) == 64:
                return known
        except OSError:
            pass
        if not compute:
            return None
        digest = file_digest(path)
        atomic_write(memo, digest.encode(), durable=False)
        return digest

    def path(self, feature: str, key: str) -> Path:
        return self.root / feature / key[:2] / f"{key}.npy"

    def get(self, feature: str, key: str) -> np.ndarray | None:
        """The cached array, memory-mapped, or None on a miss or a damaged entry (then deleted)."""
        path = self.path(feature, key)
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            path.unlink(missing_ok=True)
            return None

    def put(self, feature: str, key: str, array: np.ndarray) -> None:
        """Store ``array`` atomically: readers see the whole entry or none."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        atomic_write(self.path(feature, key), buffer.getbuffer(), durable=False)

    def stats(self) -> list[CacheStats]:
        """Entries and bytes per feature."""
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            files = [f for f in folder.glob("*/*") if f.is_file()]
            out.append(CacheStats(folder.name, len(files), sum(f.stat().st_size for f in files)))
        return out

    def clear(self) -> int:
        """Delete every entry; returns the bytes freed."""
        freed = sum(s.bytes for s in self.stats())
        shutil.rmtree(self.root, ignore_errors=True)
        return freed
