"""Table 2 of the paper: midpoint splits per native scale, the midpoint itself counts as low."""

import pandas as pd
import pytest

from mer_bench.errors import DatasetError
from mer_bench.types import Scale
from mer_bench_plugins.labels import GivenConverter, MidpointConverter


@pytest.mark.parametrize(
    "scale, a, v, expected",
    [
        # PMEmo [0, 1] at 0.5
        (Scale(0, 1), [0.51, 0.51, 0.5, 0.5, 0.2], [0.51, 0.5, 0.5, 0.9, 0.1], ["A+V+", "A+V-", "A-V-", "A-V+", "A-V-"]),
        # Emotion in Music [1, 9] at 5
        (Scale(1, 9), [5.0, 5.1, 9.0, 1.0], [5.1, 5.0, 1.0, 9.0], ["A-V+", "A+V-", "A+V-", "A-V+"]),
        # Bi-Modal [-4, 4] at 0
        (Scale(-4, 4), [0.0, 0.01, -4.0, 4.0], [0.0, 0.01, 0.5, -0.5], ["A-V-", "A+V+", "A-V+", "A+V-"]),
    ],
)
def test_midpoint_split(scale, a, v, expected):
    tracks = pd.DataFrame({"arousal": a, "valence": v})
    assert MidpointConverter().convert(tracks, scale).tolist() == expected


def test_midpoint_needs_a_scale():
    with pytest.raises(DatasetError, match="needs a dataset with a valence/arousal scale"):
        MidpointConverter().convert(pd.DataFrame({"arousal": [1.0], "valence": [1.0]}), None)


def test_given_keeps_the_shipped_quadrant():
    tracks = pd.DataFrame({"quadrant": ["A+V-", "A-V+"]})
    assert GivenConverter().convert(tracks, None).tolist() == ["A+V-", "A-V+"]
