"""Stage 7, report: the paper's Tables 3, 4 and 5 as pandas tables, rendered in several formats."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from mer_bench.errors import RunError, RunFormatError
from mer_bench.registry import Registry
from mer_bench.results import RunFolder
from mer_bench.run_records import Summary

FORMATS = ("terminal", "markdown", "csv", "latex", "json")
#: Columns too long for a terminal; the other formats carry them.
TERMINAL_HIDDEN = ("Kind", "Protocol in words", "Printed in", "Citation")


#: More units than this are summarised per repeat (or not listed) in Table 3.
MAX_UNIT_COLUMNS = 12


def table3(folder: RunFolder) -> pd.DataFrame:
    """Accuracy and macro F1 per unit, their mean and std (Table 3 of the paper, whose
    units are folds: "Fold 1" .. "Fold 5" and "All Folds"). A run of many units (repeated
    cross-validation) shows each repeat's mean instead of each unit."""
    summary = folder.summary()
    units = folder.unit_metrics(folder.manifest().unit_numbers())
    if len(units) < len(summary.units):
        raise RunError(f"run {folder.run_id} has {len(units)} of {len(summary.units)} units; resume it first")
    folds = all(m.label.startswith("Fold ") for m in units)
    rows = []
    for key, label in (("accuracy", "Accuracy"), ("macro_f1", "F1-score (macro)")):
        row: dict[str, Any] = {"Metric": label}
        if len(units) <= MAX_UNIT_COLUMNS:
            row.update({m.label: getattr(m, key) for m in units})
        elif summary.repeats is not None:
            for r in sorted({m.repeat for m in units}):
                row[f"Repeat {r}"] = float(pd.Series([getattr(m, key) for m in units if m.repeat == r]).mean())
        row["All Folds" if folds else "All units"] = getattr(summary.metrics, key).mean
        row["Std"] = getattr(summary.metrics, key).std
        if summary.repeats is not None:
            row["Std over repeats"] = getattr(summary.repeats, key).std
        rows.append(row)
    return pd.DataFrame(rows)


def test_set_table(folder: RunFolder) -> tuple[pd.DataFrame, str] | None:
    """The shared test set's figures, each named for what it is, and a title saying how many
    tracks and what the intervals are: the mean over folds (the paper's figure, Table 3's
    "All Folds") and the fold ensemble, with bootstrap intervals over test tracks. None
    when the run's units are scored on different tracks (no shared test set)."""
    summary = folder.summary()
    held = summary.test_set
    if held is None:
        return None
    level = f"{held.confidence:.0%}"

    def span(interval: list[float]) -> str:
        return f"{interval[0]:.3f} to {interval[1]:.3f}"

    averaged = "values" if held.regression else "probabilities"
    rows = [
        {
            "Figure": "Mean over folds (Table 3 All Folds)" if held.regression else "Mean over folds (the paper's; Table 3 All Folds)",
            "Accuracy": held.accuracy_mean_over_folds.value,
            f"Accuracy {level} interval": span(held.accuracy_mean_over_folds.interval),
            "F1-score (macro)": summary.metrics.macro_f1.mean,
        },
        {
            "Figure": f"Fold ensemble (mean of the fold models' {averaged})",
            "Accuracy": held.fold_ensemble.accuracy,
            f"Accuracy {level} interval": span(held.fold_ensemble.accuracy_interval),
            "F1-score (macro)": held.fold_ensemble.macro_f1,
        },
    ]
    for dimension, figures in (held.regression or {}).items():
        for row, r2 in zip(rows, (figures.r2_mean_over_folds, figures.ensemble_r2)):
            row[f"R² {dimension}"] = r2.value
            row[f"R² {dimension} {level} interval"] = span(r2.interval)
    implied = " (accuracy and F1 of the classes the values imply)" if held.regression else ""
    title = (
        f"The test set: {held.tracks} tracks, each predicted by every fold's model{implied} "
        f"({level} intervals: bootstrap over test tracks, {held.resamples} resamples)"
    )
    return pd.DataFrame(rows), title


def table4(folder: RunFolder) -> pd.DataFrame:
    """Per-class precision, recall and F1 (the classes of the run's task), averaged over units
    (Table 4 of the paper)."""
    summary = folder.summary()
    per_class = summary.metrics.per_class
    return pd.DataFrame(
        [
            {
                "Class": q,
                "Precision": per_class[q]["precision"].mean,
                "Recall": per_class[q]["recall"].mean,
                "F1-score": per_class[q]["f1"].mean,
            }
            for q in summary.task.classes
        ]
    )


def regression_table(folder: RunFolder) -> pd.DataFrame | None:
    """A regression task's scores per dimension (R², Pearson r, CCC, RMSE), mean and std over
    units; None for a classification task."""
    summary = folder.summary()
    regression = summary.metrics.regression
    if not regression:
        return None
    names = {"r2": "R²", "pearson_r": "Pearson r", "ccc": "CCC", "rmse": "RMSE"}
    rows = []
    for dim in summary.task.dimensions:
        stats = regression[dim]
        row = {"Dimension": dim}
        for key, name in names.items():
            row[name], row[f"{name} std"] = stats[key].mean, stats[key].std
        rows.append(row)
    return pd.DataFrame(rows)


def cross_matrix(folder: RunFolder, metric: str = "accuracy") -> pd.DataFrame | None:
    """Train x test matrix of ``metric`` (rows: the dataset trained on, columns: the dataset
    scored on), when every unit trains on one dataset and is scored on one, with two datasets
or more on each side (``cross``, ``lodo`` on two datasets); else None."""
    units = folder.unit_metrics(folder.manifest().unit_numbers())
    if not units or not all(len(m.train_datasets) == 1 and len(m.test_datasets) == 1 for m in units):
        return None
    cells = pd.DataFrame(
        [{"Trained on": m.train_datasets[0], "Tested on": m.test_datasets[0], "value": getattr(m, metric)} for m in units]
    )
    # One dataset on an axis is no matrix (official on one dataset, a one-dataset fold).
    if cells.duplicated(["Trained on", "Tested on"]).any() or min(cells.nunique()[["Trained on", "Tested on"]]) < 2:
        return None
    return cells.pivot(index="Trained on", columns="Tested on", values="value").rename_axis(columns=None).reset_index()


def data_key(folder: RunFolder) -> str:
    """Eight hex digits over a run's datasets and their data fingerprints: re-runs with the
    same key used the same tracks, audio and labels."""
    data = folder.manifest().data
    text = "\n".join(f"{name}:{data[name].fingerprint}" for name in sorted(data))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def leaderboard(registry: Registry, folders: list[RunFolder]) -> pd.DataFrame:
    """Published results and re-runs side by side (Table 5 of the paper, with provenance).

    A re-run's row is keyed by its task, protocol, datasets and data (a digest of its data
    fingerprints); re-runs are grouped by task, protocol, datasets and data, in that order,
    and never ranked against one another. "vs published" is filled only where a published row
    was measured like the re-run (:func:`_versus_published`).
    """
    rows = [
        {
            "System": p.system,
            "Task": p.task,
            "Datasets": ", ".join(p.datasets),
            "Protocol": p.measured.validation,
            "Data": "as published",
            "Metric": p.metric,
            "Value": p.value,
            "Std": None,
            "Kind": "published",
            "Source": p.reference,
            "vs published": None,
            "Protocol in words": p.protocol,
            "Printed in": p.source,
            "Citation": p.citation,
        }
        for p in registry.published
    ]
    reruns = []
    for folder in folders:
        summary = folder.summary()
        # A regressor's accuracy and F1 are those of the classes its values imply; its R² and
        # CCC per dimension follow them.
        stats = [(key, getattr(summary.metrics, key)) for key in ("accuracy", "macro_f1")] + [
            (f"{key}_{dim}", per_dim[key])
            for dim, per_dim in (summary.metrics.regression or {}).items()
            for key in ("r2", "ccc")
        ]
        for key, stat in stats:
            value = stat.mean
            reruns.append(
                {
                    "System": f"{summary.model} ({summary.feature})",
                    "Task": summary.task.name,
                    "Datasets": ", ".join(summary.datasets),
                    "Protocol": summary.protocol.name,
                    "Data": data_key(folder),
                    "Metric": key,
                    "Value": value,
                    "Std": stat.std,
                    "Kind": "re-run",
                    "Source": f"run {summary.run_id}",
                    "vs published": _versus_published(registry, summary, key, value),
                    "Protocol in words": f"mer-bench {summary.preset}: {summary.protocol.description}, seed {summary.seed}",
                    "Printed in": "",
                    "Citation": "",
                }
            )
    reruns.sort(key=lambda r: (r["Task"], r["Protocol"], r["Datasets"], r["Data"]))
    return pd.DataFrame(rows + reruns)


def _versus_published(registry: Registry, summary: Summary, metric: str, value: float) -> str | None:
    """``+0.021 (Cazzaniga et al. 2024)`` for a re-run of a published system, else None.

    Only a published row of the same model and task, on the same datasets, with the same
    metric name, measured the way the run's protocol measures (the same validation scheme, folds,
    repeats, test share and aggregation, as the protocol plugin states them) is a
    counterpart: a demo run, an F1 of unstated averaging or a score of one fold is not.
    """
    run = summary.protocol.measured
    if run is None:
        return None
    fields = ("validation", "aggregation", "folds", "repeats", "test_size")
    for p in registry.published:
        if (
            p.model == summary.model
            and p.task == summary.task.name
            and p.metric == metric
            and set(p.datasets) == set(summary.datasets)
            and all(getattr(p.measured, f) == getattr(run, f) for f in fields)
        ):
            return f"{value - p.value:+.3f} ({p.reference})"
    return None


def completed_runs(runs_dir: Path) -> tuple[list[RunFolder], list[str]]:
    """Every run under ``runs_dir`` that has a summary, oldest first, and the ids of those left
    out because another mer-bench wrote them in another run-folder format."""
    readable, other = [], []
    for path in sorted(Path(runs_dir).glob("*/summary.json")):
        folder = RunFolder(path.parent)
        try:
            folder.summary()
        except RunFormatError:
            other.append(folder.run_id)
            continue
        readable.append(folder)
    return readable, other


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render(table: pd.DataFrame, fmt: str, title: str = "") -> str:
    """Render a table as markdown, csv, latex or json text (``terminal`` is for :func:`print_table`)."""
    if fmt == "csv":
        return table.to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        return json.dumps(json.loads(table.to_json(orient="records")), indent=2)
    from tabulate import tabulate

    cells = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    tablefmt = {"markdown": "github", "latex": "latex_booktabs", "terminal": "simple"}[fmt]
    text = tabulate(cells, headers=list(table.columns), tablefmt=tablefmt, disable_numparse=True)
    if title and fmt == "markdown":
        return f"**{title}**\n\n{text}\n"
    return text + "\n"


def print_table(table: pd.DataFrame, fmt: str, title: str = "") -> None:
    """Print a table: a rich table on the terminal, otherwise the text of :func:`render`."""
    if fmt != "terminal":
        print(render(table, fmt, title), end="")
        return
    from rich.console import Console
    from rich.table import Table

    table = table.drop(columns=[c for c in TERMINAL_HIDDEN if c in table.columns])
    rich_table = Table(title=title or None)
    for column in table.columns:
        rich_table.add_column(str(column), overflow="fold")
    for row in table.itertuples(index=False):
        rich_table.add_row(*[_cell(v) for v in row])
    Console().print(rich_table)
