"""The task of a run: what its models predict, checked before any work and applied to the prepared tracks.

A task plugin (:class:`mer_bench.types.Task`) is other people's code: its kind and classes
are checked when a run starts, and the class it gives each track is checked before any
model sees it.
"""

from __future__ import annotations

import pandas as pd

from mer_bench.errors import ConfigError, PluginCallError
from mer_bench.plugin_calls import plugin_call
from mer_bench.run_records import TaskRecord
from mer_bench.types import TASK_KINDS, ModelFactory, Task


def task_record(task: Task) -> TaskRecord:
    """``task`` as the manifest keeps it; PluginCallError when its kind or classes are unusable."""
    owner = f"task plugin {task.name!r}"
    if task.kind not in TASK_KINDS:
        raise PluginCallError(f"{owner} has kind {task.kind!r}; mer-bench runs {', '.join(TASK_KINDS)} tasks")
    classes = list(task.classes)
    if len(classes) < 2 or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise PluginCallError(f"{owner} must name two classes or more, each a distinct non-empty string; got {classes!r}")
    with plugin_call("task", task.name, "describe"):
        description = str(task.describe())
    return TaskRecord(name=task.name, kind=task.kind, classes=classes, description=description)


def check_model_learns(factory: ModelFactory, task: Task) -> None:
    """ConfigError, before any work, when ``factory``'s models cannot learn a task of ``task``'s kind."""
    kinds = tuple(factory.task_kinds)
    if task.kind not in kinds:
        learns = ", ".join(kinds) or "no"
        raise ConfigError(
            f"model {factory.name!r} learns {learns} tasks; task {task.name!r} is a {task.kind} task: "
            "pick another model or task"
        )


def track_labels(task: Task, tracks: pd.DataFrame) -> pd.Series:
    """The class ``task`` gives each prepared track (same index as ``tracks``), checked."""
    owner = f"task plugin {task.name!r}: labels"
    with plugin_call("task", task.name, "labels", f"{len(tracks)} tracks"):
        labels = task.labels(tracks.copy())
    if not isinstance(labels, pd.Series) or not labels.index.equals(tracks.index):
        raise PluginCallError(f"{owner} must return a pandas Series with the track table's index")
    odd = labels[~labels.isin(task.classes)]
    if len(odd):
        where = tracks.loc[odd.index[:5]]
        shown = ", ".join(f"{d}/{t}: {v!r}" for d, t, v in zip(where["dataset"], where["track_id"], odd.iloc[:5]))
        raise PluginCallError(f"{owner} gave {len(odd)} track(s) no class of {', '.join(task.classes)} ({shown})")
    return labels.astype(str)
