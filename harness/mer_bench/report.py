"""Stage 7, report: the paper's Tables 3, 4 and 5 as pandas tables, rendered in several formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mer_bench.errors import RunError
from mer_bench.heldout import heldout_summary
from mer_bench.registry import Registry
from mer_bench.results import RunFolder
from mer_bench.types import QUADRANTS

FORMATS = ("terminal", "markdown", "csv", "latex", "json")
#: Columns too long for a terminal; the other formats carry them.
TERMINAL_HIDDEN = ("Protocol", "Printed in", "Citation")


def table3(folder: RunFolder) -> pd.DataFrame:
    """Accuracy and macro F1 per fold, their mean ("All Folds") and std (Table 3 of the paper)."""
    summary = folder.read_json("summary.json")
    folds = folder.fold_metrics(summary["folds"])
    if len(folds) < summary["folds"]:
        raise RunError(f"run {folder.run_id} has {len(folds)} of {summary['folds']} folds; resume it first")
    rows = []
    for key, label in (("accuracy", "Accuracy"), ("macro_f1", "F1-score (macro)")):
        row: dict[str, Any] = {"Metric": label}
        row.update({f"Fold {m['fold']}": m[key] for m in folds})
        row["All Folds"] = summary["metrics"][key]["mean"]
        row["Std"] = summary["metrics"][key]["std"]
        rows.append(row)
    return pd.DataFrame(rows)


def test_set_table(folder: RunFolder) -> tuple[pd.DataFrame, str]:
    """The test set's figures, each named for what it is, and a title saying how many tracks
    and what the intervals are: the mean over folds (the paper's figure, Table 3's "All
    Folds") and the fold ensemble, with bootstrap intervals over test tracks."""
    held = folder.read_json("summary.json").get("test_set")
    if held is None:  # a run finished by an older mer-bench
        summary = folder.read_json("summary.json")
        held = heldout_summary(folder.fold_predictions(summary["folds"]), seed=summary["seed"])
    metrics = folder.read_json("summary.json")["metrics"]
    level = f"{held['confidence']:.0%}"

    def span(interval: list[float]) -> str:
        return f"{interval[0]:.3f} to {interval[1]:.3f}"

    table = pd.DataFrame(
        [
            {
                "Figure": "Mean over folds (the paper's; Table 3 All Folds)",
                "Accuracy": held["accuracy_mean_over_folds"]["value"],
                f"Accuracy {level} interval": span(held["accuracy_mean_over_folds"]["interval"]),
                "F1-score (macro)": metrics["macro_f1"]["mean"],
            },
            {
                "Figure": "Fold ensemble (mean of the fold models' probabilities)",
                "Accuracy": held["fold_ensemble"]["accuracy"],
                f"Accuracy {level} interval": span(held["fold_ensemble"]["accuracy_interval"]),
                "F1-score (macro)": held["fold_ensemble"]["macro_f1"],
            },
        ]
    )
    title = (
        f"The test set: {held['tracks']} tracks, each predicted by every fold's model "
        f"({level} intervals: bootstrap over test tracks, {held['resamples']} resamples)"
    )
    return table, title


def table4(folder: RunFolder) -> pd.DataFrame:
    """Per-class precision, recall and F1, averaged over folds (Table 4 of the paper)."""
    per_class = folder.read_json("summary.json")["metrics"]["per_class"]
    return pd.DataFrame(
        [
            {
                "Class": q,
                "Precision": per_class[q]["precision"]["mean"],
                "Recall": per_class[q]["recall"]["mean"],
                "F1-score": per_class[q]["f1"]["mean"],
            }
            for q in QUADRANTS
        ]
    )


def leaderboard(registry: Registry, folders: list[RunFolder]) -> pd.DataFrame:
    """Published results and re-runs side by side (Table 5 of the paper, with provenance)."""
    rows = [
        {
            "System": p.system,
            "Datasets": ", ".join(p.datasets),
            "Protocol": p.protocol,
            "Metric": p.metric,
            "Value": p.value,
            "Std": None,
            "Kind": "published",
            "Source": p.reference,
            "vs published": None,
            "Printed in": p.source,
            "Citation": p.citation,
        }
        for p in registry.published
    ]
    for folder in folders:
        summary = folder.read_json("summary.json")
        protocol = (
            f"mer-bench {summary['preset']}: {summary['test_size']:.0%} held-out test, "
            f"stratified {summary['folds']}-fold CV, seed {summary['seed']}"
        )
        for key in ("accuracy", "macro_f1"):
            value = summary["metrics"][key]["mean"]
            rows.append(
                {
                    "System": f"{summary['model']} ({summary['feature']})",
                    "Datasets": ", ".join(summary["datasets"]),
                    "Protocol": protocol,
                    "Metric": key,
                    "Value": value,
                    "Std": summary["metrics"][key]["std"],
                    "Kind": "re-run",
                    "Source": f"run {summary['run_id']}",
                    "vs published": _versus_published(registry, summary, key, value),
                    "Printed in": "",
                    "Citation": "",
                }
            )
    return pd.DataFrame(rows)


def _versus_published(registry: Registry, summary: dict, metric: str, value: float) -> str | None:
    """``+0.021 (Cazzaniga et al. 2024)`` for a re-run of a published system, else None.

    Only a published row of the same model, on the same datasets, with the same metric
    name, measured the way a run measures (a held-out test set scored by every fold's
    model, the mean over folds, with the run's number of folds and test share) is a
    counterpart: a demo run, an F1 of unstated averaging or a score of one fold is not.
    """
    for p in registry.published:
        m = p.measured
        same_protocol = (m.validation, m.aggregation, m.folds, m.test_size) == (
            "holdout+kfold", "mean over folds", summary["folds"], summary["test_size"]
        )
        if (
            p.model == summary["model"]
            and p.metric == metric
            and set(p.datasets) == set(summary["datasets"])
            and same_protocol
        ):
            return f"{value - p.value:+.3f} ({p.reference})"
    return None


def completed_runs(runs_dir: Path) -> list[RunFolder]:
    """Every run under ``runs_dir`` that has a summary, oldest first."""
    return [RunFolder(p.parent) for p in sorted(Path(runs_dir).glob("*/summary.json"))]


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
