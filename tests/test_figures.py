"""The run figures, drawn from small real run folders: what each one shows."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage
from sklearn.metrics import confusion_matrix

from mer_bench.config import build_config
from mer_bench.errors import FigureUnavailable
from mer_bench.figures import (
    breakdown,
    breakdown_table,
    confusion,
    feature_examples,
    leaderboard_figure,
    save_figures,
    split_counts,
    training_curves,
    va_plane,
)
from mer_bench.pipeline import run_benchmark
from mer_bench.plugin_manager import load_plugins
from mer_bench.registry import load_registry
from mer_bench.report import leaderboard
from mer_bench.types import QUADRANTS
from tests.conftest import BUILTINS, TINY_DEMO

# Image pixels that are the same in every clip of a class (the silent top rows): harmless.
pytestmark = pytest.mark.filterwarnings("ignore:self.within_class_std_dev_:UserWarning")

#: A test plugin: nearest centroid on small Mel-spectrogram images. It learns, keeps no
#: per-epoch loss, and gives the run an image feature to show.
CENTROID_MODEL = """
import pickle
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from mer_bench import hookimpl
from mer_bench.types import ModelFactory


class NoSettings(BaseModel):
    pass


class Centroid:
    def fit(self, train, val):
        from sklearn.neighbors import NearestCentroid

        self.model = NearestCentroid().fit(np.asarray(train.x, dtype=float).reshape(len(train.y), -1), train.y)
        return [{"epoch": 1, "kept": True}]

    def predict_proba(self, x):
        predicted = self.model.predict(np.asarray(x, dtype=float).reshape(len(x), -1))
        return np.eye(4)[predicted]

    def save(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "centroid.pkl").write_bytes(pickle.dumps(self))


class CentroidFactory(ModelFactory):
    name = "centroid-image"
    feature = "mel-image"
    settings_model = NoSettings

    def build(self, settings, n_classes, seed):
        return Centroid()

    def load(self, folder):
        return pickle.loads((Path(folder) / "centroid.pkl").read_bytes())


@hookimpl
def mer_bench_models():
    return [CentroidFactory()]
"""


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "tiny_demo.py").write_text(TINY_DEMO)
    (site / "centroid_model.py").write_text(CENTROID_MODEL)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        yield load_plugins([*BUILTINS, "tiny_demo", "centroid_model"], entry_points=False)


def tiny_run(plugins, runs, **values):
    config = {"datasets": "demo-tiny", "preset": "quick", "seed": 5, "protocol_settings": {"test_size": 0.25, "folds": 3}, **values}
    return run_benchmark(build_config(load_registry(), config), plugins, runs)


@pytest.fixture(scope="module")
def mlp_run(plugins, tmp_path_factory):
    """logmel-mlp: a model with a loss per epoch, on a feature vector."""
    return tiny_run(plugins, tmp_path_factory.mktemp("runs"), model="logmel-mlp")


@pytest.fixture(scope="module")
def image_run(plugins, tmp_path_factory):
    """The centroid test model on 48x48 Mel images: no loss per epoch, an image feature."""
    return tiny_run(
        plugins, tmp_path_factory.mktemp("runs"), model="centroid-image", feature_settings={"size": 48, "n_mels": 48}
    )


def points(ax, label_start: str) -> int:
    """How many points the scatter whose legend label starts with ``label_start`` draws."""
    found = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_label().startswith(label_start)]
    return sum(len(c.get_offsets()) for c in found)


def test_va_plane_shows_kept_tracks_by_quadrant_and_the_excluded_ones(mlp_run):
    fig = va_plane(mlp_run)
    (ax,) = fig.axes
    tracks = pd.read_csv(mlp_run.path / "tracks.csv")
    report = pd.read_csv(mlp_run.path / "prep-report.csv")
    assert len(report) > 0, "the tiny demo has too-short and balancing exclusions"
    for q in QUADRANTS:
        assert points(ax, f"{q} kept") == (tracks["quadrant"] == q).sum()
    assert points(ax, "excluded") == report["valence"].notna().sum() == len(report)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Valence", "Arousal")
    assert ax.get_title() == f"demo-tiny (selection: equalise): {len(tracks)} kept, {len(report)} excluded"
    # The demo's scale is -1..1: the quadrant thresholds sit at 0.
    lines = [line.get_xdata()[0] for line in ax.lines] + [line.get_ydata()[0] for line in ax.lines]
    assert lines.count(0.0) >= 2 and ax.get_xlim() == (-1.0, 1.0)


def test_split_counts_has_a_bar_per_quadrant_and_dataset_for_fitted_and_scored_tracks(mlp_run):
    splits = pd.read_csv(mlp_run.path / "splits.csv")
    fig = split_counts(mlp_run)
    fitted, scored = fig.axes
    for ax, roles in ((fitted, ("train", "val")), (scored, ("test",))):
        heights = [int(bar.get_height()) for bar in ax.patches]
        tracks = splits[splits["role"].isin(roles)].drop_duplicates("uid")
        assert heights == [int((tracks["quadrant"] == q).sum()) for q in QUADRANTS]
        assert ax.get_xticklabels()[0].get_text() == "demo-tiny"
    assert "scored (test)" in scored.get_title()


def test_training_curves_show_each_folds_losses_and_kept_epoch(mlp_run):
    fig = training_curves(mlp_run)
    assert [ax.get_title() for ax in fig.axes] == ["Fold 1", "Fold 2", "Fold 3"]
    for fold, ax in enumerate(fig.axes, start=1):
        history = pd.read_csv(mlp_run.path / f"unit-{fold}" / "history.csv")
        training, validation, kept = ax.lines
        np.testing.assert_allclose(training.get_ydata(), history["loss"])
        np.testing.assert_allclose(validation.get_ydata(), history["val_loss"])
        kept_epoch = int(history.loc[history["kept"].eq(True), "epoch"].iloc[0])
        assert kept.get_xdata()[0] == kept_epoch and kept.get_label() == f"kept epoch {kept_epoch}"
        assert kept_epoch == history["val_loss"].idxmin() + 1  # the best validation epoch


def test_confusion_counts_every_folds_test_predictions(mlp_run):
    fig = confusion(mlp_run)
    counts_ax, shares_ax = fig.axes[:2]  # then their colour bars
    shown = counts_ax.images[0].get_array()
    predictions = pd.concat(pd.read_csv(mlp_run.path / f"unit-{k}" / "predictions.csv") for k in (1, 2, 3))
    expected = confusion_matrix(predictions["true"], predictions["predicted"], labels=list(QUADRANTS))
    np.testing.assert_array_equal(shown, expected)
    assert int(shown.sum()) == 3 * len(pd.read_csv(mlp_run.path / "unit-1" / "predictions.csv"))
    # The same as the summary's confusion matrix, which the metrics stage summed.
    summary = mlp_run.read_json("summary.json")
    np.testing.assert_array_equal(shown, summary["metrics"]["confusion"])
    np.testing.assert_allclose(shares_ax.images[0].get_array().sum(axis=1), 1.0)
    texts = [t.get_text() for t in counts_ax.texts]
    assert texts == [str(v) for v in expected.ravel()]
    assert (counts_ax.get_xlabel(), counts_ax.get_ylabel()) == ("Predicted", "True")


def test_breakdown_scores_each_source_and_genre(mlp_run):
    table = breakdown_table(mlp_run)
    predictions = pd.concat(pd.read_csv(mlp_run.path / f"unit-{k}" / "predictions.csv") for k in (1, 2, 3))
    overall = table[table["by"] == "dataset"].iloc[0]
    assert overall["group"] == "demo-tiny" and overall["tracks"] == predictions["uid"].nunique()
    assert overall["accuracy"] == pytest.approx((predictions["true"] == predictions["predicted"]).mean())
    genres = table[table["by"] == "genre"]
    assert set(genres["group"]) <= {"ambient", "folk", "pop", "rock"} and genres["tracks"].sum() == overall["tracks"]
    fig = breakdown(mlp_run)
    by_dataset, by_genre, recall = fig.axes[:3]
    assert len(by_dataset.patches) == 2 and len(by_genre.patches) == 2 * len(genres)
    np.testing.assert_allclose([p.get_height() for p in by_genre.patches[: len(genres)]], genres["accuracy"])
    assert [t.get_text() for t in recall.get_xticklabels()] == list(QUADRANTS)


def test_feature_examples_show_one_image_per_quadrant_as_the_model_gets_it(image_run):
    fig = feature_examples(image_run)
    assert len(fig.axes) == 4
    with np.load(image_run.path / "feature-examples.npz") as data:
        for ax, q in zip(fig.axes, QUADRANTS):
            (image,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
            np.testing.assert_array_equal(image.get_array(), data[q])
            assert image.get_array().shape == (48, 48, 3)
            assert ax.get_title().startswith(f"{q}\n") and str(data[f"{q}_uid"]) in ax.get_title()
    summary = image_run.read_json("summary.json")
    assert summary["metrics"]["accuracy"]["mean"] > 0.4  # nearest centroid does learn the demo


def test_unavailable_figures_say_why(mlp_run, image_run):
    with pytest.raises(FigureUnavailable, match="logmel-stats feature is a vector of 192 values, not an image"):
        feature_examples(mlp_run)
    with pytest.raises(FigureUnavailable, match="centroid-image records no per-epoch loss"):
        training_curves(image_run)


def test_save_figures_writes_png_and_svg_and_lists_what_it_could_not_draw(image_run):
    drawn = {d.name: d for d in save_figures(image_run, ("png", "svg"))}
    assert list(drawn) == [
        "va-plane", "feature-examples", "split-counts", "training-curves", "confusion", "breakdown", "cross-datasets",
        "value-predictions",
    ]
    assert drawn["training-curves"].unavailable and not drawn["training-curves"].paths
    assert "protocol cross draws it" in drawn["cross-datasets"].unavailable
    assert "predicts classes, not values (task va draws it)" in drawn["value-predictions"].unavailable
    for name in ("va-plane", "feature-examples", "confusion"):
        png, svg = drawn[name].paths
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in svg.read_bytes()[:500]
    assert sorted(p.name for p in (image_run.path / "figures").iterdir()) == sorted(
        p.name for d in drawn.values() for p in d.paths
    )


def test_leaderboard_figure_marks_published_and_rerun_values(mlp_run):
    table = leaderboard(load_registry(), [mlp_run])
    fig = leaderboard_figure(table, "accuracy")
    (ax,) = fig.axes
    rows = table[table["Metric"] == "accuracy"]
    assert len(ax.get_yticklabels()) == len(rows)
    published = ax.collections[0].get_offsets()
    assert len(published) == (rows["Kind"] == "published").sum()
    np.testing.assert_allclose(sorted(published[:, 0]), sorted(rows.loc[rows["Kind"] == "published", "Value"]))
    with pytest.raises(FigureUnavailable):
        leaderboard_figure(table, "no-such-metric")


def test_leaderboard_figure_labels_say_which_task_and_protocol_a_dot_is(mlp_run):
    table = leaderboard(load_registry(), [mlp_run])
    rerun = table[(table["Metric"] == "accuracy") & (table["Kind"] != "published")]
    # The same model on the same datasets, run again for another task.
    other = rerun.assign(Task="arousal", Value=rerun["Value"] - 0.1)
    fig = leaderboard_figure(pd.concat([table, other], ignore_index=True), "accuracy")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == len(set(labels))
    assert any(label.endswith(", arousal, " + rerun["Protocol"].iloc[0]) for label in labels)
