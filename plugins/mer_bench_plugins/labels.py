"""Label converters of Table 2 in Cazzaniga et al. (2024).

``midpoint`` splits each axis at the middle of the dataset's native scale (PMEmo [0, 1]
at 0.5, Emotion in Music [1, 9] at 5, Bi-Modal [-4, 4] at 0); a value equal to the
midpoint counts as low. ``given`` keeps the quadrant a dataset ships (4Q).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mer_bench import hookimpl
from mer_bench.errors import DatasetError
from mer_bench.types import Scale


def quadrant_names(high_arousal: np.ndarray, high_valence: np.ndarray) -> np.ndarray:
    """``A+V+`` etc. from boolean high/low arousal and valence."""
    a = np.where(high_arousal, "A+", "A-")
    v = np.where(high_valence, "V+", "V-")
    return np.char.add(a.astype(str), v.astype(str))


class MidpointConverter:
    """High means strictly above the scale's midpoint."""

    name = "midpoint"

    def convert(self, tracks: pd.DataFrame, scale: Scale | None) -> pd.Series:
        if scale is None:
            raise DatasetError("the midpoint label converter needs a dataset with a valence/arousal scale")
        mid = scale.midpoint
        names = quadrant_names(tracks["arousal"].to_numpy() > mid, tracks["valence"].to_numpy() > mid)
        return pd.Series(names, index=tracks.index)


class GivenConverter:
    """Uses the ``quadrant`` column the dataset provides."""

    name = "given"

    def convert(self, tracks: pd.DataFrame, scale: Scale | None) -> pd.Series:
        return tracks["quadrant"]


@hookimpl
def mer_bench_label_converters():
    return [MidpointConverter(), GivenConverter()]
