"""``quadrants``: the four quadrants of Russell's valence/arousal plane, the paper's task and the default.

Classes in the order of :data:`mer_bench.types.QUADRANTS` (A+V+, A+V-, A-V-, A-V+); each
track's class is the quadrant its dataset's label converter gave it.
"""

from __future__ import annotations

import pandas as pd

from mer_bench import hookimpl
from mer_bench.types import QUADRANTS, Task


class Quadrants(Task):
    """Four-class quadrant classification."""

    name = "quadrants"
    kind = "classification"
    classes = QUADRANTS

    def describe(self) -> str:
        return "quadrant classification (A+V+, A+V-, A-V-, A-V+)"

    def labels(self, tracks: pd.DataFrame) -> pd.Series:
        return tracks["quadrant"]


@hookimpl
def mer_bench_tasks():
    return [Quadrants()]
