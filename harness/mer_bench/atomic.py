"""Atomic file writes: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def _current_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread starts.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The mode of every file mer-bench writes: what ``open()`` would give under the user's umask
#: (mkstemp's own 0600 would hide shared run folders and caches from their group).
FILE_MODE = 0o666 & ~_current_umask()


def atomic_write(path: Path, data: bytes | memoryview | Iterable[bytes | memoryview], durable: bool = True) -> None:
    """Write ``data`` (bytes, or several byte strings in order) to ``path`` through a temporary
    file in the same folder and a rename.

    The file gets the mode the user's umask gives new files. ``durable`` also flushes the
    data to disk before the rename (results); caches, which are safe to lose, skip that cost.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else list(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:16]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            for part in parts:
                f.write(part)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
