"""``mer-bench weights download``: fetch the weights files a model declares
(:meth:`~mer_bench.types.ModelFactory.remote_weights`) to where the model looks for them,
each checked against its declared checksum before it is placed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mer_bench.download import check_file, fetch
from mer_bench.errors import DownloadError, PluginCallError
from mer_bench.plugin_calls import plugin_call
from mer_bench.progress import SILENT, Progress
from mer_bench.types import ModelFactory, RemoteWeights


@dataclass(frozen=True)
class WeightsOutcome:
    """What ``weights download`` did with one file: ``downloaded`` or ``already present``."""

    model: str
    path: Path
    status: str
    detail: str


def remote_weights(factory: ModelFactory) -> list[RemoteWeights]:
    """The model's declared weights files, checked: each is a RemoteWeights with a checksum."""
    with plugin_call("model", factory.name, "remote_weights"):
        declared = list(factory.remote_weights())
    for item in declared:
        if not isinstance(item, RemoteWeights):
            raise PluginCallError(f"model plugin {factory.name!r}: remote_weights() must give RemoteWeights, not {type(item).__name__}")
        if not (item.file.sha256 or item.file.md5):
            raise PluginCallError(
                f"model plugin {factory.name!r}: weights file {item.file.url} declares no checksum; mer-bench places no "
                "weights file unchecked"
            )
    return declared


def in_place(item: RemoteWeights) -> bool:
    """Whether ``item``'s file is where its model looks, with the declared checksum."""
    try:
        check_file(Path(item.path), item.file)
        return True
    except (DownloadError, OSError):
        return False


def download_weights(
    factory: ModelFactory, *, mirror: str | None = None, progress: Progress = SILENT
) -> list[WeightsOutcome]:
    """Fetch each of the model's weights files that is not already in place and right.

    A file in place with a wrong checksum is moved aside (``.mismatch``) and fetched again;
    a fetched file with a wrong checksum is never placed (DownloadError)."""
    declared = remote_weights(factory)
    if not declared:
        raise DownloadError(f"model {factory.name!r} declares no weights to download: it trains from scratch or brings its own")
    outcomes = []
    for item in declared:
        got = fetch(item.file, Path(item.path), mirror=mirror, progress=progress)
        if not got.fetched:
            outcomes.append(WeightsOutcome(factory.name, got.path, "already present", "its checksum is right"))
            continue
        checked = "MD5" if item.file.md5 else "SHA-256"
        resumed = f", resumed at {got.resumed_from:,} bytes" if got.resumed_from else ""
        replaced = f"; fetched again: {got.replaced}" if got.replaced else ""
        outcomes.append(
            WeightsOutcome(factory.name, got.path, "downloaded", f"{checked} checked ({item.file.source}){resumed}{replaced}")
        )
    return outcomes
