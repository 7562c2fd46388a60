"""Calling plugin code, which is other people's code.

An exception a plugin raises becomes one :class:`~mer_bench.errors.PluginCallError` line
naming the plugin, the method and where it was called (a unit, a clip); ``--verbose``
shows the plugin's own traceback, kept as the cause. What a plugin returns is checked
before any stage uses it: a wrong shape, NaN probabilities or features that are not
numbers stop the stage with a message instead of being scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from mer_bench.errors import MerBenchError, PluginCallError

#: How far a row of probabilities may stray from [0, 1] and from summing to 1 (float16 models).
PROBABILITY_TOLERANCE = 1e-3


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type (unless it is one of mer-bench's messages) and first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1:
        text += f" [{len(lines) - 1} more lines: --verbose]"
    return text if isinstance(exc, MerBenchError) else f"{type(exc).__name__}: {text}".rstrip(": ")


@contextmanager
def plugin_call(kind: str, name: str, method: str, where: str = "", keep: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Run the block, turning an exception into a PluginCallError that names the plugin.

    ``where`` says on what the method was called ("unit 2 of run X", "clip demo/0001");
    exceptions of the types in ``keep`` (messages that already say everything, such as a
    loader's DatasetError naming its file) pass unchanged.
    """
    try:
        yield
    except PluginCallError:
        raise
    except keep:
        raise
    except Exception as exc:  # the plugin's bug, reported as one line with its traceback as the cause
        at = f" on {where}" if where else ""
        raise PluginCallError(f"{kind} plugin {name!r} failed in {method}{at}: {one_line(exc)}") from exc


def _finite_rows(output: Any, rows: int, width: int, owner: str, method: str, noun: str, per_row: str) -> np.ndarray:
    """``output`` of ``owner``'s ``method`` as a finite float array of shape (rows, width), or
    PluginCallError saying what is wrong (``noun``: what the values are; ``per_row``: what a row is)."""
    try:
        out = np.asarray(output, dtype=float)
    except (TypeError, ValueError):
        raise PluginCallError(f"{owner}: {method} returned {type(output).__name__}, not an array of numbers") from None
    if out.shape != (rows, width):
        raise PluginCallError(
            f"{owner}: {method} returned shape {out.shape}; expected ({rows}, {width}): one row of {per_row} per track"
        )
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        raise PluginCallError(
            f"{owner}: {method} returned NaN or infinite {noun} for {int((~finite).sum())} of {rows} tracks"
        )
    return out


def check_probabilities(proba: Any, rows: int, classes: int, owner: str) -> np.ndarray:
    """``proba`` as a float array of shape (rows, classes) whose rows are probability
    distributions, or PluginCallError saying what ``owner``'s predict_proba got wrong."""
    p = _finite_rows(proba, rows, classes, owner, "predict_proba", "probabilities", "class probabilities")
    tol = PROBABILITY_TOLERANCE
    off = (p < -tol).any(axis=1) | (p > 1 + tol).any(axis=1) | (np.abs(p.sum(axis=1) - 1) > tol)
    if off.any():
        first = np.array2string(p[off][0], precision=4)
        raise PluginCallError(
            f"{owner}: predict_proba returned {int(off.sum())} rows that are not probabilities (each value in "
            f"[0, 1], each row summing to 1), e.g. {first}"
        )
    return p


def check_values(values: Any, rows: int, dimensions: int, owner: str) -> np.ndarray:
    """``values`` as a float array of shape (rows, dimensions) of finite numbers, or
    PluginCallError saying what ``owner``'s predict got wrong."""
    return _finite_rows(values, rows, dimensions, owner, "predict", "values", "values")


def check_history(history: Any, owner: str) -> list[dict]:
    """``history`` if it is a list of per-epoch dicts, each with its ``epoch``, else PluginCallError."""
    if not isinstance(history, list) or not all(isinstance(h, dict) and "epoch" in h for h in history):
        raise PluginCallError(
            f"{owner}: fit returned {_describe(history)}; it must return "
            "a list with one dict of figures per epoch, each with its 'epoch' (from 1)"
        )
    return history


def _describe(value: Any) -> str:
    if isinstance(value, list):
        odd = next((h for h in value if not isinstance(h, dict) or "epoch" not in h), None)
        return f"a list holding {odd!r:.60}"
    return type(value).__name__


def check_features(array: Any, owner: str) -> np.ndarray:
    """``array`` as a numeric array of at least one dimension, else PluginCallError."""
    a = np.asarray(array)
    if a.dtype.kind not in "biuf" or a.ndim == 0:
        what = f"a {a.dtype} array of shape {a.shape}" if a.ndim else f"{type(array).__name__} {array!r:.40}"
        raise PluginCallError(f"{owner}: returned {what}; features must be an array of numbers with at least one dimension")
    return a
