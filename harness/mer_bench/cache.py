"""The content-addressed feature cache: one ``.npy`` file per clip and feature configuration.

The key is a sha256 over the extractor's name, its settings, the versions of the
libraries that change its output, the audio file's content and the crop window. So a
changed file, setting or library version is a miss, never a stale hit. Entries are
written atomically and read memory-mapped.

Every file ends with a trailer holding the sha256 of what precedes it (``.npy`` readers
ignore trailing bytes, so an entry is still a plain ``.npy`` file). Reading an entry
checks it first: a damaged one (a flipped bit, a truncated file) is deleted, counted in
:attr:`FeatureCache.damaged` so that the run can say so, and counts as a miss, which
rebuilds it. The cache lives under ``$MER_BENCH_CACHE/features`` (or the user cache
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
from mer_bench.errors import CacheError
from mer_bench.paths import cache_dir

#: The layout of entries; part of every key, so entries of another layout are never read.
FORMAT = 2
#: What precedes the sha256 at the end of every cache file.
TRAILER = b"\nmer-bench-sha256:"
_SEAL = len(TRAILER) + hashlib.sha256().digest_size

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


def seal(data: bytes | memoryview) -> list[bytes | memoryview]:
    """``data`` and its trailer, as the parts of one cache file."""
    return [data, TRAILER + hashlib.sha256(data).digest()]


def intact(path: Path) -> bool:
    """Whether the file at ``path`` ends with the trailer of what precedes it (OSError if unreadable)."""
    size = Path(path).stat().st_size
    if size < _SEAL:
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = size - _SEAL
        while left:
            chunk = f.read(min(1 << 22, left))
            if not chunk:
                return False
            digest.update(chunk)
            left -= len(chunk)
        return f.read() == TRAILER + digest.digest()


def writable(write):
    """Run ``write()``; an OSError (no permission, a full disk) becomes a CacheError that says where."""
    try:
        return write()
    except OSError as exc:
        root = cache_dir()
        raise CacheError(
            f"cannot write the feature cache ({exc.strerror or exc}: {exc.filename or root}); free some space "
            f"or point MER_BENCH_CACHE at a writable folder"
        ) from None


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
        #: Entries this object found damaged (and deleted), as ``feature/key``.
        self.damaged: list[str] = []

    @staticmethod
    def key(feature: str, settings: dict, versions: dict[str, str], audio_digest: str, start_s: float, seconds: float) -> str:
        """The entry key for one clip under one feature configuration."""
        payload = json.dumps(
            {
                "format": FORMAT,
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
        memo_key = hashlib.sha256(f"{FORMAT}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        memo = self.root / "digests" / memo_key[:2] / memo_key
        try:
            known = memo.read_bytes()
            if known[:-_SEAL] and known == b"".join(seal(known[:-_SEAL])):
                return known[:-_SEAL].decode()
        except OSError:
            pass
        if not compute:
            return None
        digest = file_digest(path)
        writable(lambda: atomic_write(memo, seal(digest.encode()), durable=False))
        return digest

    def path(self, feature: str, key: str) -> Path:
        return self.root / feature / key[:2] / f"{key}.npy"

    def get(self, feature: str, key: str) -> np.ndarray | None:
        """The cached array, memory-mapped, once its checksum is verified; None on a miss or a
        damaged entry (then deleted and recorded in :attr:`damaged`)."""
        path = self.path(feature, key)
        try:
            if intact(path):
                return np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            pass
        self.damaged.append(f"{feature}/{key}")
        path.unlink(missing_ok=True)
        return None

    def put(self, feature: str, key: str, array: np.ndarray) -> None:
        """Store ``array`` atomically with its checksum: readers see the whole entry or none."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        writable(lambda: atomic_write(self.path(feature, key), seal(buffer.getbuffer()), durable=False))

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
