"""The task of a run: what its models predict, checked before any work and applied to the prepared tracks.

A task plugin (:class:`mer_bench.types.Task`) is other people's code: its kind and classes
are checked when a run starts, and the class it gives each track is checked before any
model sees it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mer_bench.errors import ConfigError, PluginCallError
from mer_bench.plugin_calls import plugin_call
from mer_bench.run_records import TaskRecord
from mer_bench.types import TASK_KINDS, ModelFactory, Scale, Task


def task_record(task: Task) -> TaskRecord:
    """``task`` as the manifest keeps it; PluginCallError when its kind or classes are unusable."""
    owner = f"task plugin {task.name!r}"
    if task.kind not in TASK_KINDS:
        raise PluginCallError(f"{owner} has kind {task.kind!r}; mer-bench runs {', '.join(TASK_KINDS)} tasks")
    classes = list(task.classes)
    if len(classes) < 2 or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise PluginCallError(f"{owner} must name two classes or more, each a distinct non-empty string; got {classes!r}")
    dimensions = list(task.dimensions)
    if task.kind == "regression" and (
        not dimensions or not all(isinstance(d, str) and d for d in dimensions) or len(set(dimensions)) != len(dimensions)
    ):
        raise PluginCallError(f"{owner} is a regression task: it must name its dimensions, each a distinct string; got {dimensions!r}")
    with plugin_call("task", task.name, "describe"):
        description = str(task.describe())
    return TaskRecord(name=task.name, kind=task.kind, classes=classes, description=description, dimensions=dimensions)


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


def regression_datasets(
    task: Task, datasets: list[str], scales: dict[str, Scale | None], with_values: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The datasets that can take part in ``task`` and those left out, with why: a regression
    task needs values, which a dataset whose loader declares no scale does not give.

    ConfigError, before any work, when none is left (naming ``with_values``, the installed
    datasets that give values).
    """
    if task.kind != "regression":
        return datasets, {}
    left_out = {
        d: f"gives quadrants only, no {' or '.join(task.dimensions)} values" for d in datasets if scales.get(d) is None
    }
    kept = [d for d in datasets if d not in left_out]
    if not kept:
        raise ConfigError(
            f"task {task.name!r} predicts {', '.join(task.dimensions)} values, and "
            + "; ".join(f"{d} {why}" for d, why in left_out.items())
            + f": it cannot take part. Run the task on datasets with values ({', '.join(with_values)}), "
            "or a classification task on it"
        )
    return kept, left_out


def track_values(task: Task, tracks: pd.DataFrame, scales: dict[str, Scale | None]) -> pd.DataFrame:
    """The values ``task`` gives each prepared track, one column per dimension (same index as
    ``tracks``; NaN where a track has none), checked."""
    owner = f"task plugin {task.name!r}: values"
    with plugin_call("task", task.name, "values", f"{len(tracks)} tracks"):
        values = task.values(tracks.copy(), {d: s for d, s in scales.items() if s is not None})
    if not isinstance(values, pd.DataFrame) or not values.index.equals(tracks.index):
        raise PluginCallError(f"{owner} must return a pandas DataFrame with the track table's index")
    if list(values.columns) != list(task.dimensions):
        raise PluginCallError(f"{owner} must have the columns {', '.join(task.dimensions)}, got {', '.join(map(str, values.columns))}")
    numbers = values.apply(pd.to_numeric, errors="coerce").astype(float)
    finite = numbers.to_numpy()[~np.isnan(numbers.to_numpy())]
    if len(finite) and (np.abs(finite) > 1).any():
        raise PluginCallError(f"{owner} gave values outside [-1, 1] (the common scale every regression head predicts on)")
    return numbers


def values_to_labels(task: Task, values: np.ndarray) -> list[str]:
    """The classes ``task`` says the rows of ``values`` (predicted values) imply, checked."""
    owner = f"task plugin {task.name!r}: label_values"
    frame = pd.DataFrame(values, columns=list(task.dimensions))
    with plugin_call("task", task.name, "label_values", f"{len(frame)} predictions"):
        labels = task.label_values(frame)
    if not isinstance(labels, pd.Series) or len(labels) != len(frame) or not labels.isin(task.classes).all():
        raise PluginCallError(f"{owner} must return one class of {', '.join(task.classes)} per row")
    return labels.astype(str).tolist()
