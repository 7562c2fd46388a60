"""``mer-bench datasets download``: fetch a dataset's archives, unpack them into the layout its
loader reads, and say per dataset what happened.

Archives go to ``<data dir>/downloads/<dataset>/`` with their SHA-256 beside them; they are
unpacked in a folder there, the loader is asked to read the result, and only then is the
dataset moved under its folder name in one rename. A dataset already under the data
directory is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mer_bench.discover import find_in_data_dir
from mer_bench.download import fetch, place, record_sha256, remove, set_aside, unpack
from mer_bench.errors import AudioError, DatasetError, DownloadError, PluginCallError
from mer_bench.plugin_calls import plugin_call
from mer_bench.progress import SILENT, Progress
from mer_bench.types import DatasetDownload, DatasetLoader

#: What can become of a dataset; only the first three leave it where runs find it.
DOWNLOADED, PRESENT, NOTHING, MANUAL, FAILED = (
    "downloaded",
    "already present",
    "nothing to download",
    "needs a manual step",
    "failed",
)
#: The folder under the data directory that keeps archives and partial downloads.
DOWNLOADS = "downloads"


@dataclass(frozen=True)
class DatasetOutcome:
    """What ``datasets download`` did for one dataset, and where it now lies (if anywhere)."""

    name: str
    status: str
    detail: str
    root: Path | None = None


def download_spec(loader: DatasetLoader) -> DatasetDownload | None:
    """The loader's :class:`DatasetDownload`, checked: its folder must be one the loader reads."""
    with plugin_call("dataset", loader.name, "download"):
        spec = loader.download()
    if spec is None:
        return None
    if not isinstance(spec, DatasetDownload):
        raise PluginCallError(f"dataset plugin {loader.name!r}: download() must return a DatasetDownload or None, not {type(spec).__name__}")
    accepted = (loader.name, *loader.folder_names)
    if spec.folder not in accepted:
        raise PluginCallError(
            f"dataset plugin {loader.name!r}: download() unpacks into {spec.folder!r}, a folder its loader does not "
            f"read (it reads {', '.join(accepted)})"
        )
    if not spec.files and not spec.manual:
        raise PluginCallError(f"dataset plugin {loader.name!r}: download() names neither files nor a manual step")
    return spec


def manual_step(loader: DatasetLoader, spec: DatasetDownload, data_dir: Path) -> str:
    """The manual step in words, ending with where the result goes and what it must hold."""
    return f"{spec.manual}, then put it under {data_dir} as {spec.folder} (layout: {loader.describe().layout})"


def _dataset_root(loader: DatasetLoader, staging: Path) -> Path:
    """The folder under ``staging`` the loader reads: ``staging`` itself, or the one folder an
    archive wrapped everything in. DownloadError when the loader reads neither."""
    candidates = [staging]
    children = list(staging.iterdir())
    # Archives made on macOS carry __MACOSX/ and dot files beside the real content.
    content = [c for c in children if c.name != "__MACOSX" and not c.name.startswith(".")]
    if len(content) == 1 and content[0].is_dir():
        candidates.append(content[0])
    errors = []
    for candidate in candidates:
        try:
            with plugin_call("dataset", loader.name, "load", str(candidate), keep=(DatasetError, AudioError)):
                loader.load(candidate)
            return candidate
        except (DatasetError, AudioError, PluginCallError) as exc:
            errors.append(str(exc))
    held = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in children)[:12]) or "nothing"
    raise DownloadError(
        f"the archives do not unpack into the layout {loader.name} reads ({loader.describe().layout}): they hold "
        f"{held}; the loader said: {errors[-1]}"
    )


def download_dataset(
    loader: DatasetLoader, data_dir: Path, *, mirror: str | None = None, progress: Progress = SILENT
) -> DatasetOutcome:
    """Fetch, check and unpack one dataset under ``data_dir``; every failure becomes a
    ``failed`` outcome with its reason (a plugin's bug raises), so the others still run."""
    data_dir = Path(data_dir)
    spec = download_spec(loader)
    if spec is None:
        return DatasetOutcome(loader.name, NOTHING, loader.describe().download)
    found = find_in_data_dir(loader, data_dir)
    if found is not None:
        return DatasetOutcome(loader.name, PRESENT, f"{found} is left as it is", found)
    by_hand = manual_step(loader, spec, data_dir) if spec.manual else ""
    if not spec.files:
        return DatasetOutcome(loader.name, MANUAL, by_hand)
    target = data_dir / spec.folder
    downloads = data_dir / DOWNLOADS / loader.name
    staging = downloads / f".unpacking-{spec.folder}"
    try:
        fetched = []
        for file in spec.files:
            got = fetch(file, downloads / file.filename, mirror=mirror, progress=progress)
            record_sha256(got.path, got.sha256)
            fetched.append((file, got))
        remove(staging)
        for file, got in fetched:
            try:
                unpack(got.path, staging / file.unpack_into)
            except DownloadError as exc:
                if file.sha256 or file.md5:
                    raise  # its checksum matched: fetching it again would give the same bytes
                # Unchecked, it may be a cut or wrong file: out of the way, so the next run fetches it anew.
                raise DownloadError(f"{exc}; it is moved aside as {set_aside(got.path)}: the next run fetches it anew") from None
        place(_dataset_root(loader, staging), target)
    except OSError as exc:  # the data directory itself: not a folder, no permission, full
        return DatasetOutcome(loader.name, FAILED, f"could not write under {data_dir}: {exc}")
    except DownloadError as exc:
        return DatasetOutcome(loader.name, FAILED, str(exc) + (f". By hand instead: {by_hand}" if by_hand else ""))
    finally:
        remove(staging)
    parts = []
    for _, got in fetched:
        how = "checked, fetched before" if not got.fetched else "fetched"
        if got.replaced:
            how += f" again: {got.replaced}"
        if got.resumed_from:
            how += f", resumed at {got.resumed_from:,} bytes"
        if got.restarted:
            how += ", started again: the server ignored the range request"
        parts.append(f"{got.path.name} ({how}; SHA-256 {got.sha256[:16]}…)")
    return DatasetOutcome(loader.name, DOWNLOADED, f"into {target}: " + "; ".join(parts), target)
