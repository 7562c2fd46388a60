"""Fetching the files plugins declare (:class:`~mer_bench.types.RemoteFile`), only when a user
asks: resumed with HTTP range requests, checked against the size and checksums known, and
placed in one rename, so nothing half-written ever lies where a loader or model reads.

This is the only module that opens a connection; runs, verify and the tests of everything
else never import it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from mer_bench import __version__
from mer_bench.errors import DownloadError
from mer_bench.progress import SILENT, Progress
from mer_bench.types import RemoteFile

#: Seconds to wait for a server to connect or to send the next block: long enough for a slow
#: server, short enough that a machine without network fails fast.
TIMEOUT_S = 10.0
BLOCK = 1 << 20
#: Suffixes of files a download keeps beside its target: the part being fetched, and a
#: finished file whose size or checksum was wrong (kept for inspection, never used).
PART, MISMATCH = ".part", ".mismatch"


@dataclass(frozen=True)
class Fetched:
    """A file in place: its path and SHA-256, and how the fetch went."""

    path: Path
    sha256: str
    #: Bytes a previous, interrupted fetch had left, that this one continued from.
    resumed_from: int = 0
    #: True when a partial file was started again because the server ignored the range request.
    restarted: bool = False
    #: False when the file was already there (checked, not fetched).
    fetched: bool = True


def mirrored(url: str, mirror: str | None) -> str:
    """``url`` served by ``mirror``: ``<mirror>/<host>/<path>``, so one mirror can hold the
    files of several hosts under their own names; unchanged without a mirror."""
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def digests(path: Path) -> dict[str, str]:
    """SHA-256 and MD5 hex digests of a file, read in blocks."""
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            sha256.update(block)
            md5.update(block)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def check_file(path: Path, file: RemoteFile) -> str:
    """The file's SHA-256, or DownloadError naming the first of size, SHA-256 and MD5 that
    differs from what ``file`` declares."""
    size = path.stat().st_size
    name = file.filename
    if file.size is not None and size != file.size:
        raise DownloadError(f"{name} has {size:,} bytes, not the {file.size:,} expected ({file.source})")
    found = digests(path)
    for algorithm in ("sha256", "md5"):
        expected = getattr(file, algorithm)
        if expected and found[algorithm] != expected.lower():
            raise DownloadError(
                f"{name} has {algorithm.upper()} {found[algorithm]}, not the {expected.lower()} expected ({file.source})"
            )
    return found["sha256"]


def _set_aside(part: Path, dest: Path, why: DownloadError) -> DownloadError:
    aside = dest.with_name(dest.name + MISMATCH)
    os.replace(part, aside)
    return DownloadError(f"{why}; the file is kept aside as {aside} and nothing was unpacked or placed")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _open(url: str, start: int):
    headers = {"User-Agent": f"mer-bench/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as exc:
        if exc.code == 416 and start:
            return None  # the part file is as long as the file, or longer: start again
        raise DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not reach {_host(url)} ({reason}): no network, or the host is down") from None


def _total(response, start: int) -> int | None:
    """The whole file's length, from Content-Range (a resumed fetch) or Content-Length."""
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return int(length) + start if length and length.isdigit() else None


def fetch(file: RemoteFile, dest: Path, *, mirror: str | None = None, progress: Progress = SILENT) -> Fetched:
    """Fetch ``file`` to ``dest``, continuing a ``dest.part`` an interrupted fetch left, check
    it and move it into place; a ``dest`` already there is checked, not fetched again.

    A file whose size or checksum is wrong is moved aside to ``dest.mismatch`` and the error
    says so. An interrupted transfer keeps ``dest.part``: the same call continues it.
    """
    dest = Path(dest)
    if dest.is_file():
        return Fetched(dest, check_file(dest, file), fetched=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART)
    url = mirrored(file.url, mirror)
    have = part.stat().st_size if part.is_file() else 0
    resumed_from, restarted = 0, False
    if not (file.size is not None and have == file.size):  # else a complete part only needs checking
        response = _open(url, have)
        if response is None:
            part.unlink()
            have, restarted = 0, True
            response = _open(url, 0)
        with response:
            if have and response.status != 206:
                have, restarted = 0, True  # the server sends the whole file: start again
            resumed_from = have
            total = _total(response, have)
            if file.size is not None and total is not None and total != file.size:
                raise DownloadError(
                    f"{url} is {total:,} bytes, not the {file.size:,} expected ({file.source}); nothing was fetched"
                )
            advance = progress.transfer(dest.name, total, have)
            received = have
            try:
                with open(part, "ab" if have else "wb") as out:
                    while block := response.read(BLOCK):
                        out.write(block)
                        received += len(block)
                        advance(len(block))
            except (http.client.HTTPException, socket.timeout, OSError) as exc:
                raise DownloadError(
                    f"the connection to {_host(url)} broke after {received:,} bytes of {dest.name} ({exc!r:.80}); "
                    f"{part} is kept: the same command continues it"
                ) from None
            if total is not None and received < total:
                raise DownloadError(
                    f"{_host(url)} sent {received:,} of {total:,} bytes of {dest.name}; {part} is kept: "
                    "the same command continues it"
                )
    try:
        sha256 = check_file(part, file)
    except DownloadError as exc:
        raise _set_aside(part, dest, exc) from None
    os.replace(part, dest)
    return Fetched(dest, sha256, resumed_from, restarted)


def record_sha256(path: Path, sha256: str) -> Path:
    """Write ``<path>.sha256`` in the format of ``sha256sum`` (checkable with ``sha256sum -c``)."""
    record = path.with_name(path.name + ".sha256")
    record.write_text(f"{sha256}  {path.name}\n")
    return record


def _inside(name: str) -> bool:
    """Whether archive member ``name`` unpacks inside the target folder (relative, no ``..``, no drive)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts and not re.match(r"^[A-Za-z]:", name)


def unpack(archive: Path, into: Path) -> None:
    """Unpack a zip or tar archive (gzip, bzip2 or xz) into ``into``; DownloadError for
    anything else, or for a member that would land outside ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                bad = [n for n in z.namelist() if not _inside(n)]
                if bad:
                    raise DownloadError(f"{archive.name} holds a path outside its folder ({bad[0]}); it was not unpacked")
                z.extractall(into)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                bad = [m.name for m in t.getmembers() if not _inside(m.name) or not (m.isfile() or m.isdir())]
                if bad:
                    raise DownloadError(
                        f"{archive.name} holds a link, a device or a path outside its folder ({bad[0]}); it was not unpacked"
                    )
                # Python's "data" filter (3.11.4 and later) checks the same again, and drops modes.
                t.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        else:
            raise DownloadError(f"{archive.name} is neither a zip nor a tar archive; it was not unpacked")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DownloadError(f"{archive.name} could not be unpacked ({type(exc).__name__}: {exc})") from None


def place(folder: Path, target: Path) -> None:
    """Move an unpacked ``folder`` to ``target`` in one rename (same file system), so a
    loader sees either nothing or the whole dataset."""
    if target.exists():
        raise DownloadError(f"{target} appeared while unpacking; nothing was moved there")
    os.replace(folder, target)


def remove(path: Path) -> None:
    """Remove a folder of unpacked files, or a file, if present."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
