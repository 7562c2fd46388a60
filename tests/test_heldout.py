"""The shared test set: the fold ensemble and bootstrap intervals, whose unit is a test track."""

import numpy as np
import pandas as pd
import pytest

from mer_bench.heldout import fold_ensemble, heldout_summary
from mer_bench.types import QUADRANTS


def predictions(probabilities: dict[int, list[list[float]]], truth: list[str]) -> pd.DataFrame:
    """A run's fold predictions: per fold, one probability row per test track."""
    rows = []
    for fold, table in probabilities.items():
        for i, p in enumerate(table):
            row = {"fold": fold, "uid": f"t{i}", "true": truth[i], "predicted": QUADRANTS[int(np.argmax(p))]}
            rows.append(row | {f"p_{q}": v for q, v in zip(QUADRANTS, p)})
    return pd.DataFrame(rows)


def test_the_ensemble_averages_probabilities_not_votes():
    table = predictions(
        {
            1: [[0.6, 0.4, 0, 0], [0.1, 0.9, 0, 0]],
            2: [[0.0, 0.5, 0.5, 0], [0.1, 0.45, 0.44, 0.01]],  # t0: a tie, which goes to the first, A+V-
            3: [[0.45, 0.55, 0, 0], [0.0, 0.0, 1.0, 0]],
        },
        ["A+V-", "A-V-"],
    )
    ensemble = fold_ensemble(table, QUADRANTS).set_index("uid")
    # t0: means 0.35 / 0.483 / 0.167 / 0. t1: 0.067 / 0.45 / 0.48 / 0.003, A-V-, though two of
    # the three folds voted A+V-.
    assert ensemble["predicted"].to_dict() == {"t0": "A+V-", "t1": "A-V-"}
    assert ensemble.loc["t1", "p_A-V-"] == pytest.approx(1.44 / 3)
    summary = heldout_summary(table, QUADRANTS, resamples=200)
    assert summary["tracks"] == 2
    assert summary["accuracy_mean_over_folds"]["value"] == pytest.approx(np.mean([0.0, 0.5, 1.0]))  # folds 1, 2, 3
    assert summary["fold_ensemble"]["accuracy"] == 1.0 and summary["fold_ensemble"]["accuracy_interval"] == [1.0, 1.0]


def test_the_interval_covers_the_figure_narrows_with_more_tracks_and_follows_the_seed():
    rng = np.random.default_rng(0)

    def run(tracks: int) -> pd.DataFrame:
        truth = [QUADRANTS[i % 4] for i in range(tracks)]
        table = {}
        for fold in range(1, 6):
            right = rng.random(tracks) < 0.6
            table[fold] = [
                np.eye(4)[QUADRANTS.index(t) if r else (QUADRANTS.index(t) + 1) % 4].tolist() for t, r in zip(truth, right)
            ]
        return predictions(table, truth)

    small, large = heldout_summary(run(40), QUADRANTS, seed=1), heldout_summary(run(1000), QUADRANTS, seed=1)
    for summary in (small, large):
        low, high = summary["accuracy_mean_over_folds"]["interval"]
        assert low < summary["accuracy_mean_over_folds"]["value"] < high
    width = {n: np.diff(s["accuracy_mean_over_folds"]["interval"])[0] for n, s in ((40, small), (1000, large))}
    # A binomial interval's width shrinks as one over the square root of the tracks: sqrt(25) = 5.
    assert 3 < width[40] / width[1000] < 8
    assert heldout_summary(run(40), QUADRANTS, seed=1)["confidence"] == 0.95
    table = run(60)
    assert heldout_summary(table, QUADRANTS, seed=4) == heldout_summary(table, QUADRANTS, seed=4)
    assert heldout_summary(table, QUADRANTS, seed=4) != heldout_summary(table, QUADRANTS, seed=5)
