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
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
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
    #: Why a file already there was set aside and fetched anew ("" if none was).
    replaced: str = ""


def mirrored(url: str, mirror: str | None) -> str:
    """``url`` served by ``mirror``: ``<mirror>/<host>/<path>``, so one mirror can hold the
    files of several hosts under their own names; unchanged without a mirror."""
    if not mirror:
        return url
    if urlsplit(mirror).scheme not in ("http", "https"):
        raise DownloadError(f"mirror {mirror!r} is not an http:// or https:// address")
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
    for algorithm, label in (("sha256", "SHA-256"), ("md5", "MD5")):
        expected = getattr(file, algorithm)
        if expected and found[algorithm] != expected.lower():
            raise DownloadError(f"{name} has {label} {found[algorithm]}, not the {expected.lower()} expected ({file.source})")
    return found["sha256"]


def set_aside(path: Path) -> Path:
    """Move a file that failed its check to ``<name>.mismatch`` (dropping its ``.sha256``
    record): kept for inspection, never used, out of the way of the next fetch."""
    aside = path.with_name(path.name.removesuffix(PART) + MISMATCH)
    os.replace(path, aside)
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    return aside


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _open(url: str, start: int) -> tuple[Any, int | None]:
    """The server's response for ``url`` from byte ``start`` on; ``(None, length)`` when it
    answers that ``start`` is past the end (HTTP 416; ``length`` from its Content-Range)."""
    headers = {"User-Agent": f"mer-bench/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=TIMEOUT_S), None
    except HTTPError as exc:
        if exc.code == 416 and start:
            match = re.fullmatch(r"bytes \*/(\d+)", exc.headers.get("Content-Range", ""))
            return None, int(match.group(1)) if match else None
        raise DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except ValueError as exc:
        raise DownloadError(f"{url} cannot be fetched: {exc}") from None
    except (URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or repr(exc)
        raise DownloadError(f"could not reach {_host(url)} ({reason}): no network, or the host is down") from None


def _range(response) -> tuple[int | None, int | None]:
    """(first byte, whole length) of a partial response's Content-Range, or (None, None)."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", ""))
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


def fetch(file: RemoteFile, dest: Path, *, mirror: str | None = None, progress: Progress = SILENT) -> Fetched:
    """Fetch ``file`` to ``dest``, continuing a ``dest.part`` an interrupted fetch left, check
    it and move it into place. A ``dest`` already there is checked, not fetched again, unless
    the check fails: then it is set aside and fetched anew.

    A fetched file whose size or checksum is wrong is moved aside to ``dest.mismatch`` and the
    error says so. An interrupted transfer keeps ``dest.part``: the same call continues it.
    File-system errors (a full disk, no permission) are DownloadErrors naming the file.
    """
    dest = Path(dest)
    try:
        return _fetch(file, dest, mirrored(file.url, mirror), progress)
    except OSError as exc:
        raise DownloadError(f"could not write {exc.filename or dest}: {exc.strerror or exc}") from None


def _fetch(file: RemoteFile, dest: Path, url: str, progress: Progress) -> Fetched:
    replaced = ""
    if dest.is_file():
        try:
            return Fetched(dest, check_file(dest, file), fetched=False)
        except DownloadError as exc:
            replaced = f"{exc}; that file is kept as {set_aside(dest)}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART)
    have = part.stat().st_size if part.is_file() else 0
    resumed_from, restarted = 0, False
    if not (file.size is not None and have == file.size):  # else a complete part only needs checking
        response, length = _open(url, have)
        if response is None and length == have:
            pass  # the part is the whole file: an earlier fetch stopped before checking it
        else:
            if response is None or (response.status == 206 and _range(response)[0] != have):
                # Past the end, or a range other than the one asked for: start again.
                if response is not None:
                    response.close()
                part.unlink(missing_ok=True)
                have, restarted = 0, True
                response, _ = _open(url, 0)
            with response:
                if have and response.status != 206:
                    have, restarted = 0, True  # the server sends the whole file: start again
                resumed_from = have
                _transfer(response, file, url, part, have, progress)
    try:
        sha256 = check_file(part, file)
    except DownloadError as exc:
        raise DownloadError(f"{exc}; the file is kept aside as {set_aside(part)} and nothing was unpacked or placed") from None
    os.replace(part, dest)
    return Fetched(dest, sha256, resumed_from, restarted, replaced=replaced)


def _transfer(response, file: RemoteFile, url: str, part: Path, have: int, progress: Progress) -> None:
    """Write ``response``'s body to ``part`` (appending after ``have`` bytes), or DownloadError."""
    name = file.filename
    if response.headers.get_content_type() == "text/html":
        raise DownloadError(
            f"{url} answered with a web page, not {name}: the source may want a form or a login first; nothing was fetched"
        )
    total = _range(response)[1] if response.status == 206 else None
    length = response.headers.get("Content-Length")
    if total is None and length and length.isdigit():
        total = int(length) + have
    if total is None and file.size is None and "chunked" not in response.headers.get("Transfer-Encoding", ""):
        raise DownloadError(
            f"{_host(url)} gave no length for {name}, so a cut transfer could not be told from a whole one; "
            "nothing was fetched"
        )
    if file.size is not None and total is not None and total != file.size:
        raise DownloadError(f"{url} is {total:,} bytes, not the {file.size:,} expected ({file.source}); nothing was fetched")
    advance = progress.transfer(name, total, have)
    received = have
    with open(part, "ab" if have else "wb") as out:
        while True:
            try:
                block = response.read(BLOCK)
            except (http.client.HTTPException, OSError) as exc:
                raise DownloadError(
                    f"the connection to {_host(url)} broke after {received:,} bytes of {name} ({exc!r:.80}); "
                    f"{part} is kept: the same command continues it"
                ) from None
            if not block:
                break
            out.write(block)
            received += len(block)
            advance(len(block))
    if total is not None and received < total:
        raise DownloadError(
            f"{_host(url)} sent {received:,} of {total:,} bytes of {name}; {part} is kept: the same command continues it"
        )


def record_sha256(path: Path, sha256: str) -> Path:
    """Write ``<path>.sha256`` in the format of ``sha256sum`` (checkable with ``sha256sum -c``)."""
    record = path.with_name(path.name + ".sha256")
    try:
        record.write_text(f"{sha256}  {path.name}\n")
    except OSError as exc:
        raise DownloadError(f"could not write {record}: {exc.strerror or exc}") from None
    return record


def _inside(name: str) -> bool:
    """Whether archive member ``name`` unpacks inside the target folder (relative, no ``..``, no
    drive); ``./``, the folder itself (``tar -C dir -cf x.tar .``), is inside."""
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and not re.match(r"^[A-Za-z]:", name)


def unpack(archive: Path, into: Path) -> None:
    """Unpack a zip or tar archive (gzip, bzip2 or xz) into ``into``; DownloadError for
    anything else, a damaged archive, or a member that would land outside ``into``
    (file-system errors, a full disk, stay OSErrors: the archive is not at fault)."""
    try:
        into.mkdir(parents=True, exist_ok=True)
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
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{archive.name} could not be unpacked ({type(exc).__name__}: {exc})") from None


def place(folder: Path, target: Path) -> None:
    """Move an unpacked ``folder`` to ``target`` in one rename (same file system), so a
    loader sees either nothing or the whole dataset."""
    if target.exists():
        raise DownloadError(f"{target} appeared while unpacking; nothing was moved there")
    try:
        os.replace(folder, target)
    except OSError as exc:
        raise DownloadError(f"could not move the unpacked dataset to {target}: {exc.strerror or exc}") from None


def remove(path: Path) -> None:
    """Remove a folder of unpacked files, or a file, if present."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # nothing there to remove (its folder is not one)
