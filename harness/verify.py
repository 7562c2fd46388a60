"""``mer-bench datasets verify``: load each dataset and decode every audio file it names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mer_bench.audio import decoded_duration
from mer_bench.discover import resolve_root
from mer_bench.errors import AudioError, MerBenchError
from mer_bench.plugins import PluginSet
from mer_bench.progress import SILENT, Progress
from mer_bench.types import validate_tracks


@dataclass
class VerifyReport:
    """One summary row per dataset and one line per problem found."""

    summary: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    #: Tracks the loaders left out on purpose (reported, but not a failure).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_datasets(
    plugins: PluginSet,
    names: list[str],
    data_dir: Path | None,
    paths: dict[str, Path],
    progress: Progress = SILENT,
) -> VerifyReport:
    """Check every named dataset; a dataset that fails to load is a problem, not a crash."""
    rows, problems, notes = [], [], []
    for name in names:
        row = {"Dataset": name, "Root": "", "Tracks": 0, "Loader excluded": 0, "Unreadable audio": 0, "Status": "ok"}
        try:
            loader = plugins.dataset(name)
            root = resolve_root(loader, data_dir, paths.get(name))
            row["Root"] = str(root)
            loaded = loader.load(root)
            tracks = validate_tracks(loaded.tracks, name, loader.scale)
        except MerBenchError as exc:
            row["Status"] = "failed"
            problems.append(f"{name}: {exc}")
            rows.append(row)
            continue
        row["Tracks"] = len(tracks)
        row["Loader excluded"] = len(loaded.excluded)
        for e in loaded.excluded:
            notes.append(f"{name}/{e.track_id}: excluded by the loader ({e.reason}) {e.detail}".rstrip())
        for track in progress.track(list(tracks.itertuples(index=False)), f"decoding {name}"):
            try:
                decoded_duration(track.audio_path)
            except AudioError as exc:
                row["Unreadable audio"] += 1
                problems.append(f"{name}/{track.track_id}: {exc}")
        if row["Unreadable audio"]:
            row["Status"] = "unreadable audio"
        rows.append(row)
    return VerifyReport(pd.DataFrame(rows), problems, notes)
