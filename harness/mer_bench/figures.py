"""Figures of a finished run, each a function of its run folder: the paper's Figures 2 to 5,
the test-set confusion matrix and the per-source error analysis.

Every figure function takes a :class:`RunFolder` and returns a matplotlib ``Figure`` made
without pyplot (no global state, no display needed), or raises :class:`FigureUnavailable`
saying why this run cannot show it (a model with no per-epoch loss, a feature that is not
an image). :func:`save_figures` writes them all into the run's ``figures/`` folder.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, f1_score

from mer_bench.atomic import atomic_write
from mer_bench.errors import FigureUnavailable, RunError
from mer_bench.report import cross_matrix
from mer_bench.results import RunFolder
from mer_bench.types import QUADRANTS

#: One colour per quadrant in every figure (matplotlib's tab10 red, purple, blue, green).
QUADRANT_COLOURS = {"A+V+": "#d62728", "A+V-": "#9467bd", "A-V-": "#1f77b4", "A-V+": "#2ca02c"}
EXCLUDED_COLOUR = "#7f7f7f"
FORMATS = ("png", "svg")


def _units(folder: RunFolder) -> list[int]:
    done = folder.finished_units(folder.manifest().unit_numbers())
    if not done:
        raise FigureUnavailable(f"run {folder.run_id} has no finished unit yet")
    return done


def pooled_predictions(folder: RunFolder) -> pd.DataFrame:
    """Every finished unit's test predictions (column ``unit``), with each track's dataset and genre."""
    predictions = folder.unit_predictions(_units(folder))
    tracks = folder.read_csv("tracks.csv")[["uid", "dataset", "genre"]]
    return predictions.merge(tracks, on="uid", how="left", validate="many_to_one")


def va_plane(folder: RunFolder) -> Figure:
    """Figure 2: each dataset's tracks on the valence/arousal plane, kept ones coloured by
    quadrant and those preparation excluded in grey (too short, left out by the dataset's
    selection policy, named in the title, ...), with the scale midpoints as thresholds."""
    tracks = folder.read_csv("tracks.csv")
    report = folder.read_csv("prep-report.csv")
    if "arousal" not in report.columns:  # runs from before the report carried labels
        report = report.assign(arousal=np.nan, valence=np.nan)
    manifest = folder.manifest()
    scales = manifest.scales
    policies = manifest.selection
    datasets = sorted(set(tracks["dataset"]) | set(report["dataset"]))
    fig = Figure(figsize=(4.2 * len(datasets), 5.4), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, name in zip(axes, datasets):
        kept = tracks[tracks["dataset"] == name]
        dropped = report[report["dataset"] == name]
        placed = dropped.dropna(subset=["arousal", "valence"])
        unplaced = len(dropped) - len(placed)
        note = f", {unplaced} excluded without values" if unplaced else ""
        policy = f" (selection: {policies[name]})" if name in policies else ""
        ax.set_title(f"{name}{policy}: {len(kept)} kept, {len(dropped)} excluded{note}", fontsize=9)
        if kept[["arousal", "valence"]].isna().all().all() and placed.empty:
            # A dataset that ships quadrants only (4Q): its counts instead of a plane.
            counts = ", ".join(f"{q} {int((kept['quadrant'] == q).sum())}" for q in QUADRANTS)
            ax.text(0.5, 0.5, f"quadrants given,\nno valence/arousal values\n\nkept: {counts}", ha="center",
                    va="center", transform=ax.transAxes, fontsize=9)
            ax.set_axis_off()
            continue
        for q in QUADRANTS:
            rows = kept[kept["quadrant"] == q].dropna(subset=["arousal", "valence"])
            ax.scatter(rows["valence"], rows["arousal"], s=12, color=QUADRANT_COLOURS[q], label=f"{q} kept ({len(rows)})")
        ax.scatter(
            placed["valence"], placed["arousal"], s=18, marker="x", color=EXCLUDED_COLOUR, label=f"excluded ({len(placed)})"
        )
        scale = scales.get(name)
        if scale:
            midpoint = (scale.low + scale.high) / 2
            ax.axvline(midpoint, color="black", linewidth=0.8, linestyle="--")
            ax.axhline(midpoint, color="black", linewidth=0.8, linestyle="--")
            ax.set_xlim(scale.low, scale.high)
            ax.set_ylim(scale.low, scale.high)
        ax.set_xlabel("Valence")
        ax.set_ylabel("Arousal")
        # Below the plane, so that no point hides behind it.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2)
    return fig


def _as_picture(array: np.ndarray) -> tuple[np.ndarray, str] | None:
    """An array as something imshow can show, and its origin; None for a feature vector."""
    if array.ndim == 3 and array.shape[-1] == 3:
        if array.dtype == np.uint8:
            return array, "upper"
        span = float(np.ptp(array)) or 1.0
        return ((array - array.min()) / span).astype(np.float32), "upper"
    if array.ndim == 3 and array.shape[-1] == 1:
        return array[..., 0].astype(np.float32), "upper"
    if array.ndim == 2:
        return array.astype(np.float32), "lower"
    if array.ndim == 3:  # segments x bands x frames: the segments side by side in time
        return np.concatenate(list(array.astype(np.float32)), axis=-1), "lower"
    return None


def feature_examples(folder: RunFolder) -> Figure:
    """Figure 3: one training track per quadrant as the model receives it (after the
    feature's per-dataset finishing), when the feature is an image or a spectrogram."""
    path = folder.path / "feature-examples.npz"
    if not path.is_file():
        raise FigureUnavailable("this run saved no feature examples (feature-examples.npz)")
    feature = folder.manifest().feature.name
    with np.load(path) as data:
        examples = {q: (data[q], str(data[f"{q}_uid"])) for q in QUADRANTS if q in data.files}
    if not examples:
        raise FigureUnavailable("no quadrant had a track with features")
    first = next(iter(examples.values()))[0]
    if _as_picture(first) is None:
        raise FigureUnavailable(f"the {feature} feature is a vector of {first.size} values, not an image")
    fig = Figure(figsize=(3.2 * len(examples), 3.6), layout="constrained")
    axes = fig.subplots(1, len(examples), squeeze=False)[0]
    for ax, (q, (array, uid)) in zip(axes, examples.items()):
        picture, origin = _as_picture(array)
        ax.imshow(picture, origin=origin, aspect="auto", cmap="magma", interpolation="nearest")
        ax.set_title(f"{q}\n{uid}", fontsize=9)
        ax.set_xlabel("frame" if origin == "lower" else "image column")
        ax.set_ylabel("Mel band" if origin == "lower" else "image row")
    fig.suptitle(f"{feature}, shape {'x'.join(map(str, first.shape))}", fontsize=10)
    return fig


def split_counts(folder: RunFolder) -> Figure:
    """Figure 4: tracks per quadrant and dataset that the run fits on (training and validation
    parts of any unit) and that it scores (test part of any unit)."""
    splits = folder.read_csv("splits.csv")
    datasets = sorted(splits["dataset"].unique())
    fig = Figure(figsize=(max(6.0, 2.2 * len(datasets)) * 2, 4.0), layout="constrained")
    axes = fig.subplots(1, 2)
    width = 0.8 / len(QUADRANTS)
    parts = ((("train", "val"), "fitted on (train + validation)"), (("test",), "scored (test)"))
    for ax, (roles, title) in zip(axes, parts):
        counts = (
            splits[splits["role"].isin(roles)]
            .drop_duplicates("uid")
            .groupby(["dataset", "quadrant"])
            .size()
            .unstack(fill_value=0)
            .reindex(index=datasets, columns=list(QUADRANTS), fill_value=0)
        )
        x = np.arange(len(datasets))
        for i, q in enumerate(QUADRANTS):
            bars = ax.bar(x + (i - 1.5) * width, counts[q], width, color=QUADRANT_COLOURS[q], label=q)
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(x, datasets)
        ax.set_title(f"{title}: {int(counts.to_numpy().sum())} tracks", fontsize=10)
        ax.set_xlabel("Dataset")
        ax.set_ylabel("Tracks")
        ax.margins(y=0.25)  # room for the legend above the bars
        ax.legend(fontsize=8, ncols=4, loc="upper center")
    return fig


#: Training curves of more units than this are not drawn side by side.
MAX_CURVES = 12


def training_curves(folder: RunFolder) -> Figure:
    """Figure 5: training and validation loss per epoch in each unit, with the epoch whose
    weights early stopping kept."""
    manifest = folder.manifest()
    units = _units(folder)
    if len(units) > MAX_CURVES:
        raise FigureUnavailable(f"{len(units)} units are too many to draw side by side (at most {MAX_CURVES})")
    histories = {k: folder.read_csv(f"unit-{k}/history.csv") for k in units}
    model = manifest.model.name
    if not all({"epoch", "loss", "val_loss"} <= set(h.columns) for h in histories.values()):
        columns = ", ".join(next(iter(histories.values())).columns)
        raise FigureUnavailable(f"{model} records no per-epoch loss (its history has: {columns})")
    fig = Figure(figsize=(3.4 * len(histories), 3.6), layout="constrained")
    axes = fig.subplots(1, len(histories), squeeze=False, sharey=True)[0]
    for ax, (unit, history) in zip(axes, histories.items()):
        ax.plot(history["epoch"], history["loss"], label="training", color="#1f77b4")
        ax.plot(history["epoch"], history["val_loss"], label="validation", color="#ff7f0e")
        # ``kept`` is True on one row and empty on the others.
        kept = history[history["kept"].eq(True)] if "kept" in history.columns else history.iloc[:0]
        if len(kept):
            epoch = int(kept["epoch"].iloc[0])
            ax.axvline(epoch, color="black", linestyle=":", linewidth=1, label=f"kept epoch {epoch}")
        ax.set_title(manifest.units[unit - 1], fontsize=10)
        ax.set_xlabel("Epoch")
        ax.legend(fontsize=7)
    regression = bool(manifest.task.dimensions)
    axes[0].set_ylabel("Loss (mean squared error)" if regression else "Loss (cross-entropy)")
    return fig


def confusion(folder: RunFolder) -> Figure:
    """The test-set confusion matrix pooled over units: counts, and each true class's row
    normalised to the share of its tracks predicted as each class (the run's task's classes)."""
    pooled = pooled_predictions(folder)
    classes = folder.manifest().task.classes
    counts = confusion_matrix(pooled["true"], pooled["predicted"], labels=classes)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    fig = Figure(figsize=(9.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    units = pooled["unit"].nunique()
    for ax, matrix, title, fmt in (
        (axes[0], counts, f"counts ({units} units, {len(pooled)} test predictions)", "{:d}"),
        (axes[1], shares, "row-normalised", "{:.2f}"),
    ):
        image = ax.imshow(matrix, cmap="Blues", vmin=0)
        threshold = matrix.max() / 2
        for (i, j), value in np.ndenumerate(matrix):
            colour = "white" if value > threshold else "black"
            ax.text(j, i, fmt.format(value), ha="center", va="center", color=colour, fontsize=9)
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("True")
        ax.set_title(title, fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def breakdown_table(folder: RunFolder) -> pd.DataFrame:
    """Accuracy and macro F1 on the test parts pooled over units, per source dataset and per
    genre (where the dataset gives one): columns ``by``, ``group``, ``tracks``, ``accuracy``,
    ``macro_f1``."""
    pooled = pooled_predictions(folder)
    rows = []
    for by in ("dataset", "genre"):
        for group, part in pooled.dropna(subset=[by]).groupby(by, sort=True):
            rows.append(
                {
                    "by": by,
                    "group": str(group),
                    "tracks": int(part["uid"].nunique()),
                    "accuracy": float((part["true"] == part["predicted"]).mean()),
                    "macro_f1": float(f1_score(part["true"], part["predicted"], average="macro", zero_division=0)),
                }
            )
    return pd.DataFrame(rows, columns=["by", "group", "tracks", "accuracy", "macro_f1"])


def recall_by_dataset(folder: RunFolder) -> pd.DataFrame:
    """Recall of each class of the run's task within each source dataset, pooled over units
    (NaN: no such test track)."""
    pooled = pooled_predictions(folder)
    hit = (pooled["true"] == pooled["predicted"]).astype(float)
    table = hit.groupby([pooled["dataset"], pooled["true"]]).mean().unstack()
    return table.reindex(columns=folder.manifest().task.classes)


def breakdown(folder: RunFolder) -> Figure:
    """The error analysis the paper plans: accuracy and macro F1 by source dataset and by
    genre, and each class's recall within each dataset (which sources and classes fail)."""
    table = breakdown_table(folder)
    recall = recall_by_dataset(folder)
    classes = list(recall.columns)
    fig = Figure(figsize=(14.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1, 1.4, 1])
    for ax, by in zip(axes[:2], ("dataset", "genre")):
        part = table[table["by"] == by]
        if part.empty:
            ax.text(0.5, 0.5, f"no {by} labels", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        x = np.arange(len(part))
        for offset, metric, colour in ((-0.2, "accuracy", "#1f77b4"), (0.2, "macro_f1", "#ff7f0e")):
            ax.bar(x + offset, part[metric], 0.4, label=metric.replace("_", " "), color=colour)
        ax.set_xticks(x, [f"{g}\n(n={n})" for g, n in zip(part["group"], part["tracks"])], fontsize=8)
        ax.set_ylim(0, 1)
        ax.axhline(1 / len(classes), color="black", linestyle=":", linewidth=0.8, label=f"chance ({len(classes)} classes)")
        ax.set_title(f"by {by}", fontsize=10)
        ax.legend(fontsize=7)
    ax = axes[2]
    ax.imshow(recall.to_numpy(dtype=float), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(recall.to_numpy(dtype=float)):
        ax.text(j, i, "" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(recall)), recall.index)
    ax.set_title("recall per class", fontsize=10)
    return fig


def cross_heatmap(folder: RunFolder) -> Figure:
    """The cross-dataset matrix: accuracy and macro F1 of the model fitted on each dataset
    (rows) on each dataset it was scored on (columns); the diagonal is the within-dataset
    score on held-out songs."""
    matrices = [(metric, cross_matrix(folder, metric)) for metric in ("accuracy", "macro_f1")]
    if matrices[0][1] is None:
        raise FigureUnavailable("its units do not each fit on one dataset and score another (protocol cross draws it)")
    fig = Figure(figsize=(11.0, 4.6), layout="constrained")
    for ax, (metric, table) in zip(fig.subplots(1, 2), matrices):
        values = table.set_index("Trained on").to_numpy(dtype=float)
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1)
        for (i, j), value in np.ndenumerate(values):
            text = "" if np.isnan(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", color="white" if value < 0.6 else "black", fontsize=9)
        ax.set_xticks(range(values.shape[1]), table.columns[1:], rotation=20)
        ax.set_yticks(range(values.shape[0]), table["Trained on"])
        ax.set_xlabel("Scored on")
        ax.set_ylabel("Fitted on")
        ax.set_title(metric.replace("_", " "), fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def value_predictions(folder: RunFolder) -> Figure:
    """A regression task's predicted against true values, one panel per dimension, the test
    predictions of every unit pooled and coloured by dataset, with the line of perfect
    prediction; each panel's title gives the pooled R² and Pearson r."""
    from sklearn.metrics import r2_score

    task = folder.manifest().task
    if not task.dimensions:
        raise FigureUnavailable(f"task {task.name} predicts classes, not values (task va draws it)")
    pooled = pooled_predictions(folder)
    fig = Figure(figsize=(4.6 * len(task.dimensions), 4.4), layout="constrained")
    for ax, dim in zip(fig.subplots(1, len(task.dimensions), squeeze=False)[0], task.dimensions):
        true, predicted = pooled[f"true_{dim}"], pooled[f"pred_{dim}"]
        for dataset, part in pooled.groupby("dataset", sort=True):
            ax.scatter(part[f"true_{dim}"], part[f"pred_{dim}"], s=12, alpha=0.6, label=str(dataset))
        ax.plot([-1, 1], [-1, 1], color="black", linewidth=0.8, linestyle=":")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.axvline(0, color="grey", linewidth=0.5)
        r = np.corrcoef(true, predicted)[0, 1] if true.std() > 0 and predicted.std() > 0 else 0.0
        ax.set_title(f"{dim}: R² {r2_score(true, predicted):.2f}, r {r:.2f} ({len(pooled)} predictions)", fontsize=10)
        ax.set_xlabel(f"true {dim} (common scale)")
        ax.set_ylabel(f"predicted {dim}")
        ax.legend(fontsize=7)
    return fig


#: The figures of a run, in the order a report shows them: (file name, function).
RUN_FIGURES: tuple[tuple[str, Callable[[RunFolder], Figure]], ...] = (
    ("va-plane", va_plane),
    ("feature-examples", feature_examples),
    ("split-counts", split_counts),
    ("training-curves", training_curves),
    ("confusion", confusion),
    ("breakdown", breakdown),
    ("cross-datasets", cross_heatmap),
    ("value-predictions", value_predictions),
)


@dataclass
class Drawn:
    """One figure of a run: where it was saved, or why it could not be drawn."""

    name: str
    caption: str
    paths: list[Path] = field(default_factory=list)
    unavailable: str = ""


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """A figure encoded as PNG (at 110 dpi) or SVG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=110)
    return buffer.getvalue()


def caption(fn: Callable) -> str:
    """A figure function's docstring as one line of text."""
    return " ".join((fn.__doc__ or "").split())


def save_figures(folder: RunFolder, formats: tuple[str, ...] = ("png",)) -> list[Drawn]:
    """Draw every run figure into ``<run>/figures/NAME.<fmt>`` (written atomically)."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise RunError(f"unknown figure format(s) {', '.join(sorted(unknown))}; known: {', '.join(FORMATS)}")
    drawn = []
    for name, fn in RUN_FIGURES:
        result = Drawn(name, caption(fn))
        try:
            fig = fn(folder)
        except FigureUnavailable as exc:
            result.unavailable = str(exc)
        else:
            for fmt in formats:
                path = folder.path / "figures" / f"{name}.{fmt}"
                atomic_write(path, figure_bytes(fig, fmt))
                result.paths.append(path)
        drawn.append(result)
    return drawn


def leaderboard_figure(table: pd.DataFrame, metric: str) -> Figure:
    """Each system's ``metric`` in a leaderboard table (:func:`mer_bench.report.leaderboard`):
    published values as diamonds, re-runs as dots with their std over units."""
    rows = table[table["Metric"] == metric].reset_index(drop=True)
    if rows.empty:
        raise FigureUnavailable(f"the leaderboard has no {metric} rows")
    # Runs of one model on one set of datasets differ by task or protocol: say which,
    # where the plotted rows differ in them, so no two dots share a label.
    varying = [c for c in ("Task", "Protocol") if c in rows and rows[c].nunique() > 1]
    labels = [
        f"{r['System']} [{r['Datasets']}]" + "".join(f", {r[c]}" for c in varying) for _, r in rows.iterrows()
    ]
    fig = Figure(figsize=(8.0, 0.9 + 0.32 * len(rows)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    published = (rows["Kind"] == "published").to_numpy()
    ax.scatter(rows["Value"][published], y[published], marker="D", color="#7f7f7f", label="published")
    rerun = ~published
    std = rows["Std"].astype(float).fillna(0.0)
    ax.errorbar(rows["Value"][rerun], y[rerun], xerr=std[rerun], fmt="o", color="#1f77b4", label="re-run (mean ± std)")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(metric)
    ax.legend(fontsize=8)
    return fig
