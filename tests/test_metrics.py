"""Fold scores and their aggregation, checked against values worked out by hand."""

import numpy as np
import pytest

from mer_bench.metrics import aggregate, score
from mer_bench.types import QUADRANTS


def test_score_matches_a_hand_computed_example():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    y_pred = np.array([0, 0, 1, 1, 1, 2, 3, 0])
    m = score(y_true, y_pred, QUADRANTS)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["micro_f1"] == pytest.approx(5 / 8)
    # class 0: p=2/3 r=2/3; class 1: p=2/3 r=1; class 2: p=1 r=1/2; class 3: p=0 r=0
    f1 = [2 / 3, 0.8, 2 / 3, 0.0]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["per_class"]["A+V-"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["confusion"] == [[2, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0]]


def test_a_class_never_predicted_scores_zero_not_nan():
    m = score(np.array([0, 1, 2, 3]), np.array([0, 0, 0, 0]), QUADRANTS)
    assert m["per_class"]["A-V+"]["precision"] == 0.0
    assert not np.isnan(m["macro_f1"])


def test_aggregate_gives_mean_and_population_std_and_sums_confusions():
    a = score(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]), QUADRANTS)
    b = score(np.array([0, 1, 2, 3]), np.array([0, 1, 0, 0]), QUADRANTS)
    agg = aggregate([a, b], QUADRANTS)
    assert agg["accuracy"] == pytest.approx({"mean": 0.75, "std": 0.25})
    assert np.array(agg["confusion"]).sum() == 8
    assert agg["per_class"]["A+V+"]["recall"]["mean"] == pytest.approx(1.0)
