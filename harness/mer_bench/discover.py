"""Stage 1, discover: find each dataset's folder and read its validated track table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mer_bench.errors import AudioError, DatasetError
from mer_bench.exclusions import require_tracks_left
from mer_bench.plugin_calls import plugin_call
from mer_bench.plugin_manager import PluginSet
from mer_bench.songkey import song_keys
from mer_bench.types import DatasetLoader, Exclusion, validate_tracks


@dataclass
class Discovery:
    """Every dataset's tracks in one table, where each was read from, what loaders excluded,
    and the corrections each loader made (:attr:`LoadedDataset.notes`)."""

    tracks: pd.DataFrame
    roots: dict[str, Path]
    excluded: list[Exclusion]
    notes: dict[str, list[str]] = field(default_factory=dict)


def find_in_data_dir(loader: DatasetLoader, data_dir: Path | None) -> Path | None:
    """``data_dir/<name>`` or ``data_dir/<archive folder name>``, whichever exists first."""
    if data_dir is None:
        return None
    for name in (loader.name, *loader.folder_names):
        candidate = Path(data_dir) / name
        if candidate.is_dir():
            return candidate
    return None


def resolve_root(loader: DatasetLoader, data_dir: Path | None, explicit: Path | None) -> Path:
    """The folder a dataset is read from.

    An explicit path wins; then ``data_dir/<name>`` or ``data_dir/<archive folder name>``;
    then the loader's own default (the demo generates itself). Otherwise the error says
    which folder to create.
    """
    if explicit is not None:
        if not Path(explicit).is_dir():
            raise DatasetError(f"dataset {loader.name!r}: configured path {explicit} is not a folder")
        return Path(explicit)
    found = find_in_data_dir(loader, data_dir)
    if found is not None:
        return found
    with plugin_call("dataset", loader.name, "default_root", keep=(DatasetError,)):
        default = loader.default_root()
    if default is not None:
        return default
    where = f"{data_dir}" if data_dir is not None else "the data directory (--data-dir or MER_BENCH_DATA)"
    names = " or ".join((loader.name, *loader.folder_names))
    raise DatasetError(
        f"dataset {loader.name!r} not found: unpack it as {names} under {where}, "
        f"or set [paths] {loader.name} = \"...\" in the config file ({loader.describe().download})"
    )


def discover(
    plugins: PluginSet,
    datasets: list[str],
    data_dir: Path | None = None,
    paths: dict[str, Path] | None = None,
) -> Discovery:
    """Load and validate every named dataset; the track tables are concatenated in the given order."""
    paths = paths or {}
    loaders = [plugins.dataset(name) for name in datasets]
    roots, missing = {}, []
    # Every dataset is located before any is read, so one message lists all that are missing.
    for loader in loaders:
        try:
            roots[loader.name] = resolve_root(loader, data_dir, paths.get(loader.name))
        except DatasetError as exc:
            missing.append(str(exc))
    if missing:
        raise DatasetError(f"{len(missing)} of {len(loaders)} datasets not found: " + " | ".join(missing))
    tables, excluded, notes = [], [], {}
    for loader in loaders:
        root = roots[loader.name]
        with plugin_call("dataset", loader.name, "load", str(root), keep=(DatasetError, AudioError)):
            loaded = loader.load(root)
        table = validate_tracks(loaded.tracks, loader.name, loader.scale)
        require_tracks_left(table, [loader.name], loaded.excluded, f"reading {root}")
        tables.append(table)
        excluded.extend(loaded.excluded)
        notes[loader.name] = [str(n) for n in loaded.notes]
    tracks = pd.concat(tables, ignore_index=True)
    # Keys are joined across datasets: the same song may sit in two of them.
    tracks["song_key"] = song_keys(tracks, tracks["dataset"] + "/" + tracks["track_id"])
    return Discovery(tracks, roots, excluded, notes)
