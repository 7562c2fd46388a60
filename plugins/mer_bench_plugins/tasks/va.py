"""``va``: valence and arousal regression on a common [-1, 1] scale.

Each dataset's values are mapped linearly from its own scale (the loader's ``Scale``:
PMEmo [0, 1], Emotion in Music and DEAM [1, 9], Bi-Modal [-4, 4]) onto [-1, 1], so the
midpoint that separates low from high becomes 0. A dataset that gives quadrants only (4Q)
has no values and is left out. The predicted values imply a quadrant by their signs (0
counts as low, as the midpoint does), so a regressor also appears in the quadrant tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mer_bench import hookimpl
from mer_bench.types import QUADRANTS, Scale, Task

DIMENSIONS = ("valence", "arousal")


def to_common_scale(values: pd.Series, datasets: pd.Series, scales: dict[str, Scale]) -> pd.Series:
    """``values`` mapped from each row's dataset's scale onto [-1, 1] (NaN where it has none)."""
    low = datasets.map(lambda d: scales[d].low if scales.get(d) else np.nan)
    high = datasets.map(lambda d: scales[d].high if scales.get(d) else np.nan)
    return 2 * (values.astype(float) - low) / (high - low) - 1


class ValenceArousal(Task):
    """Valence and arousal values, each on [-1, 1]."""

    name = "va"
    kind = "regression"
    classes = QUADRANTS
    dimensions = DIMENSIONS

    def describe(self) -> str:
        return "valence and arousal regression on [-1, 1] (each dataset's scale mapped linearly)"

    def labels(self, tracks: pd.DataFrame) -> pd.Series:
        return tracks["quadrant"]

    def values(self, tracks: pd.DataFrame, scales: dict[str, Scale]) -> pd.DataFrame:
        return pd.DataFrame(
            {d: to_common_scale(tracks[d], tracks["dataset"], scales) for d in DIMENSIONS}, index=tracks.index
        )

    def label_values(self, values: pd.DataFrame) -> pd.Series:
        arousal = np.where(values["arousal"] > 0, "A+", "A-")
        valence = np.where(values["valence"] > 0, "V+", "V-")
        return pd.Series(np.char.add(arousal, valence), index=values.index)


@hookimpl
def mer_bench_tasks():
    return [ValenceArousal()]
