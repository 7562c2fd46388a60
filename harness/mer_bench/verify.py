"""``mer-bench datasets verify``: read each dataset, decode every audio file, report what is wrong.

Each dataset goes through the same discover, label and prepare stages as a run, on its
own, so the counts shown are the counts a run would use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_bench.discover import resolve_root
from mer_bench.errors import MerBenchError
from mer_bench.exclusions import require_tracks_left
from mer_bench.label import assign_quadrants
from mer_bench.plugin_calls import plugin_call
from mer_bench.plugin_manager import PluginSet
from mer_bench.prepare import crop_tracks
from mer_bench.progress import SILENT, Progress
from mer_bench.selection import Policy, describe, policy_for, select_tracks
from mer_bench.types import QUADRANTS, validate_tracks

#: Exclusion reasons that mean the copy of a dataset is damaged, not merely that the
#: dataset ships more audio than annotations or that preparation left a clip out.
PROBLEM_REASONS = {"audio-missing", "decode-error", "non-finite-audio", "truncated", "quadrant-conflict", "ambiguous-audio"}


@dataclass
class DatasetCheck:
    """What ``verify`` found for one dataset; :meth:`as_dict` is its JSON form."""

    name: str
    #: ``ok``; ``problems`` (usable, but damaged files or conflicts were found); ``absent``
    #: (not found); ``unusable`` (found, but it cannot be loaded or nothing is left).
    status: str = "ok"
    root: str = ""
    tracks: int = 0
    labelled: int = 0
    unlabelled: int = 0
    missing_audio: int = 0
    unreadable: int = 0
    quadrants_raw: dict[str, int] = field(default_factory=dict)
    quadrants_prepared: dict[str, int] = field(default_factory=dict)
    #: The selection policy the prepared counts follow, and how many tracks it keeps.
    selection: str = ""
    prepared: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: Corrections the loader made to the published values (:attr:`LoadedDataset.notes`).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong: the exit status of ``verify`` follows this."""
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "name"}


def _counts(quadrants) -> dict[str, int]:
    counts = quadrants.value_counts()
    return {q: int(counts.get(q, 0)) for q in QUADRANTS}


def verify_dataset(
    plugins: PluginSet,
    name: str,
    data_dir: Path | None,
    path: Path | None,
    clip_seconds: float,
    selection: dict[str, Policy],
    progress: Progress = SILENT,
) -> DatasetCheck:
    """Check one dataset; a dataset that is absent or fails to load is reported, not raised."""
    check = DatasetCheck(name)
    try:
        loader = plugins.dataset(name)
        root = resolve_root(loader, data_dir, path)
    except MerBenchError as exc:
        check.status, check.problems = "absent", [f"{name}: {exc}"]
        return check
    check.root = str(root)
    try:
        with plugin_call("dataset", name, "load", str(root), keep=(MerBenchError,)):
            loaded = loader.load(root)
        tracks = validate_tracks(loaded.tracks, name, loader.scale)
        require_tracks_left(tracks, [name], loaded.excluded, f"reading {root}")
        labelled = assign_quadrants(tracks, plugins)
    except MerBenchError as exc:
        check.status, check.problems = "unusable", [f"{name}: {exc}"]
        return check
    check.notes = [str(n) for n in loaded.notes]
    check.labelled = len(labelled)
    check.tracks = len(labelled) + len(loaded.excluded)
    check.quadrants_raw = _counts(labelled["quadrant"])
    prepared = crop_tracks(labelled, clip_seconds, progress, jobs=None)
    excluded = loaded.excluded + prepared.excluded
    check.selection = describe(policy_for(selection, name))
    try:
        prepared.tracks, left_out = select_tracks(prepared.tracks, {name: loader.scale}, selection)
    except MerBenchError as exc:  # a run with this policy would stop here too
        check.status = "unusable"
        check.problems.append(str(exc))
    else:
        excluded += left_out
    check.quadrants_prepared = _counts(prepared.tracks["quadrant"])
    check.prepared = len(prepared.tracks)
    for e in excluded:
        check.excluded[e.reason] = check.excluded.get(e.reason, 0) + 1
        if e.reason in PROBLEM_REASONS:
            check.problems.append(f"{name}/{e.track_id}: {e.reason}: {e.detail}")
    check.unlabelled = check.excluded.get("no-annotation", 0)
    check.missing_audio = check.excluded.get("audio-missing", 0)
    check.unreadable = check.excluded.get("decode-error", 0)
    if not len(prepared.tracks):
        check.status = "unusable"
        try:
            require_tracks_left(prepared.tracks, [name], excluded, "preparation")
        except MerBenchError as exc:
            check.problems.append(str(exc))
    elif check.problems and check.status == "ok":
        check.status = "problems"
    return check


def verify_datasets(
    plugins: PluginSet,
    names: list[str],
    data_dir: Path | None,
    paths: dict[str, Path],
    clip_seconds: float = 24.0,
    selection: dict[str, Policy] | None = None,
    progress: Progress = SILENT,
) -> list[DatasetCheck]:
    """Check every named dataset in turn, preparing it with ``clip_seconds`` and its ``selection`` policy."""
    return [
        verify_dataset(plugins, name, data_dir, paths.get(name), clip_seconds, selection or {}, progress)
        for name in names
    ]
