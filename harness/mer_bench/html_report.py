"""Self-contained HTML pages of a run and of a leaderboard, rendered with Jinja2.

Figures are embedded as PNG data URIs and the style sheet is inline: the file refers to
nothing outside itself, so it opens anywhere, offline, with no server.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from mer_bench import __version__
from mer_bench.errors import FigureUnavailable
from mer_bench.figures import RUN_FIGURES, breakdown_table, caption, figure_bytes, leaderboard_figure
from mer_bench.report import cross_matrix, regression_table, table3, table4, test_set_table
from mer_bench.results import RunFolder
from mer_bench.run_records import Manifest

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Embedded:
    """A figure for a page: its image as a data URI, or why there is none."""

    name: str
    caption: str
    src: str = ""
    unavailable: str = ""


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )


def _html_table(table: pd.DataFrame) -> Markup:
    """A table as escaped HTML, numbers to three decimals, missing values blank."""

    def number(value: float) -> str:
        return f"{value:.3f}"

    return Markup(table.to_html(index=False, border=0, float_format=number, na_rep="", classes="numbers"))


def _embed(name: str, text: str, draw) -> Embedded:
    try:
        fig = draw()
    except FigureUnavailable as exc:
        return Embedded(name, text, unavailable=str(exc))
    return Embedded(name, text, src="data:image/png;base64," + base64.b64encode(figure_bytes(fig)).decode("ascii"))


def _facts(manifest: Manifest) -> list[tuple[str, str]]:
    """The manifest entries a reader checks first, as (label, text) rows."""
    config = manifest.config
    git = manifest.git or {}
    return [
        ("Command", " ".join(manifest.command) or "(not recorded)"),
        ("Model", f"{manifest.model.name} {json.dumps(manifest.model.settings, sort_keys=True)}"),
        ("Feature", f"{manifest.feature.name} {json.dumps(manifest.feature.settings, sort_keys=True)}"),
        (
            "Datasets",
            "; ".join(f"{name} at {d.root} (fingerprint {d.fingerprint[:12]})" for name, d in sorted(manifest.data.items())),
        ),
        (
            "Protocol",
            f"{manifest.protocol.name} {json.dumps(manifest.protocol.settings, sort_keys=True)}: "
            f"{manifest.protocol.description}; preset {config['preset']}, clips {config['clip_seconds']} s, selection "
            + ", ".join(f"{name} {policy}" for name, policy in manifest.selection.items()),
        ),
        (
            "Task",
            f"{manifest.task.name}: {manifest.task.description}; classes {', '.join(manifest.task.classes)}"
            + "".join(f"; left out {name}: {why}" for name, why in manifest.task.left_out.items()),
        ),
        ("Units", "; ".join(f"{k} {label}" for k, label in zip(manifest.unit_numbers(), manifest.units))),
        ("Seeds", f"run {manifest.seed}; units {', '.join(map(str, manifest.unit_seeds))}"),
        ("Versions", ", ".join(f"{k} {v}" for k, v in sorted(manifest.versions.items()))),
        ("Source", f"git {git.get('commit', 'unknown')}{' (uncommitted changes)' if git.get('dirty') else ''}"),
        ("Host", ", ".join(f"{k} {v}" for k, v in sorted(manifest.host.items()))),
    ]


def run_report_html(folder: RunFolder) -> str:
    """One HTML page of a finished run: manifest, Tables 3 and 4, the test set or the
    cross-dataset matrix, every figure, the preparation report."""
    manifest = folder.manifest()
    summary = folder.summary()
    report = folder.read_csv("prep-report.csv")
    kept = pd.DataFrame([{"dataset": name, **counts} for name, counts in summary.tracks.items()])
    excluded = (
        report.groupby(["dataset", "stage", "reason"]).size().rename("tracks").reset_index()
        if len(report)
        else pd.DataFrame(columns=["dataset", "stage", "reason", "tracks"])
    )
    figures = [_embed(name, caption(fn), lambda fn=fn: fn(folder)) for name, fn in RUN_FIGURES]
    test_set = test_set_table(folder)
    regression = regression_table(folder)
    cross = [(metric, cross_matrix(folder, metric)) for metric in ("accuracy", "macro_f1")]
    return (
        _environment()
        .get_template("run.html.j2")
        .render(
            version=__version__,
            title=f"mer-bench run {folder.run_id}",
            manifest=manifest,
            manifest_json=json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True),
            summary=summary,
            # The datasets the task kept, not the config's list: a regression task leaves out
            # datasets without values, and _facts says which and why.
            run_datasets=summary.datasets,
            facts=_facts(manifest),
            table3=_html_table(table3(folder)),
            regression=_html_table(regression) if regression is not None else None,
            test_set=_html_table(test_set[0]) if test_set else None,
            test_set_title=test_set[1] if test_set else "",
            cross=[(metric.replace("_", " "), _html_table(table)) for metric, table in cross if table is not None],
            table4=_html_table(table4(folder)),
            figures=figures,
            breakdown=_html_table(breakdown_table(folder)),
            kept_total=sum(counts["prepared"] for counts in summary.tracks.values()),
            excluded_total=len(report),
            kept=_html_table(kept),
            excluded_summary=_html_table(excluded),
            excluded_all=_html_table(report),
        )
    )


def leaderboard_html(table: pd.DataFrame, title: str = "mer-bench leaderboard") -> str:
    """One HTML page of a leaderboard (:func:`mer_bench.report.leaderboard`) with a figure per metric."""
    metrics = list(dict.fromkeys(table["Metric"]))
    figures = [
        _embed(
            metric,
            f"{metric}: published values (diamonds) and re-runs (dots, with their std over folds).",
            lambda metric=metric: leaderboard_figure(table, metric),
        )
        for metric in metrics
    ]
    return (
        _environment()
        .get_template("leaderboard.html.j2")
        .render(
            version=__version__,
            title=title,
            published=int((table["Kind"] == "published").sum()),
            reruns=int((table["Kind"] == "re-run").sum()),
            table=_html_table(table),
            figures=figures,
        )
    )
