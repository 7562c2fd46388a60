"""The floor baselines: majority class and chance, on their own and through a run."""

import json

import numpy as np
import pandas as pd
import pytest

from mer_bench.types import QUADRANTS, FoldData
from mer_bench_plugins.models.floor import FloorFactory, NoSettings
from tests.conftest import run_cli

MAJORITY = FloorFactory("majority", "most_frequent")
CHANCE = FloorFactory("chance", "stratified")


def fold(y) -> FoldData:
    y = np.asarray(y)
    return FoldData(np.zeros((len(y), 3)), y, [str(i) for i in range(len(y))])


def test_majority_predicts_the_most_frequent_training_class_and_breaks_ties_by_order():
    model = MAJORITY.build(NoSettings(), 4, seed=0)
    history = model.fit(fold([2, 1, 2, 3]), fold([2, 0]))
    assert history == [{"epoch": 1, "val_accuracy": 0.5, "kept": True}]
    assert model.predict_proba(np.zeros((3, 3))).tolist() == [[0, 0, 1, 0]] * 3
    model.fit(fold([3, 1, 3, 1, 0]), fold([1]))
    assert model.predict_proba(np.zeros((1, 3))).argmax(axis=1).tolist() == [1]


def test_chance_guesses_with_the_training_shares_and_its_seed(tmp_path):
    train, test = fold(np.arange(4000) % 4), np.random.default_rng(5).integers(0, 4, 4000)
    model = CHANCE.build(NoSettings(), 4, seed=1)
    model.fit(train, fold([0]))
    guesses = model.predict_proba(np.zeros((4000, 3))).argmax(axis=1)
    assert float((guesses == test).mean()) == pytest.approx(0.25, abs=0.03)
    assert np.bincount(guesses, minlength=4) / 4000 == pytest.approx([0.25] * 4, abs=0.03)
    same = CHANCE.build(NoSettings(), 4, seed=1)
    same.fit(train, fold([0]))
    assert (same.predict_proba(np.zeros((4000, 3))).argmax(axis=1) == guesses).all()
    other = CHANCE.build(NoSettings(), 4, seed=2)
    other.fit(train, fold([0]))
    assert (other.predict_proba(np.zeros((4000, 3))).argmax(axis=1) != guesses).any()
    # A quadrant absent from training is never guessed; a saved model guesses the same.
    model.fit(fold([0, 1, 1]), fold([0]))
    assert model.predict_proba(np.zeros((500, 3)))[:, 2:].sum() == 0
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(CHANCE.load(tmp_path / "m").predict_proba(np.zeros((9, 3))), model.predict_proba(np.zeros((9, 3))))


def test_a_majority_run_scores_the_test_share_of_each_folds_majority(tiny_site, tmp_path):
    runs = tmp_path / "runs"
    result = run_cli(
        "run", "--model", "majority", "--datasets", "demo-tiny", "--seed", "4", "--no-progress", "--runs-dir", str(runs),
        site=tiny_site,
    )
    assert result.returncode == 0, result.stderr
    (run,) = runs.iterdir()
    splits = pd.read_csv(run / "splits.csv")
    expected = []
    for k in range(1, 6):
        unit = splits[splits["unit"] == k]
        test = unit[unit["role"] == "test"]["quadrant"]
        counts = unit[unit["role"] == "train"]["quadrant"].value_counts().reindex(QUADRANTS, fill_value=0)
        expected.append(float((test == counts.idxmax()).mean()))  # idxmax: first of tied maxima
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["accuracy"]["mean"] == pytest.approx(np.mean(expected))
    assert "majority" in result.stdout  # its row in Table 5
