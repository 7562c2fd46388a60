"""``arousal`` and ``valence``: high or low on one dimension of the valence/arousal plane.

Two classes, high first (``A+``, ``A-``; ``V+``, ``V-``), read from each track's quadrant,
so a dataset that gives quadrants only (4Q) takes part too, and a value exactly at its
scale's midpoint is low, as for quadrants.
"""

from __future__ import annotations

import pandas as pd

from mer_bench import hookimpl
from mer_bench.types import Task


class HighLow(Task):
    """High or low ``dimension`` (arousal or valence), from the quadrant's sign on it."""

    kind = "classification"

    def __init__(self, dimension: str, letter: str):
        self.name = dimension
        self.letter = letter
        self.classes = (f"{letter}+", f"{letter}-")

    def describe(self) -> str:
        return f"high or low {self.name} ({' or '.join(self.classes)}, from the quadrant)"

    def labels(self, tracks: pd.DataFrame) -> pd.Series:
        # A quadrant name is "A" sign "V" sign: A+V- is high arousal, low valence.
        position = 0 if self.letter == "A" else 2
        return tracks["quadrant"].str.slice(position, position + 2)


@hookimpl
def mer_bench_tasks():
    return [HighLow("arousal", "A"), HighLow("valence", "V")]
