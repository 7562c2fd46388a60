"""Loading a run folder's models runs no code from it: no pickle, and skops only with fixed trusted types."""

import importlib.util
import json
import pathlib
import pickle
import shutil

import numpy as np
import pytest

from mer_bench.config import build_config
from mer_bench.errors import ModelError, RunError
from mer_bench.pipeline import run_benchmark
from mer_bench.plugin_manager import load_plugins
from mer_bench.registry import load_registry
from mer_bench.types import FoldData
from mer_bench_plugins.models import floor, mlp, svm
from mer_bench_plugins.models.sklearn_io import ESTIMATORS, META
from tests.conftest import BUILTINS, REPO, TINY_DEMO, run_cli, write_tone

MLP = mlp.MLPFactory("logmel-mlp", "logmel-stats")
SVM = svm.SVMFactory("svm-handcrafted", "handcrafted")
MAJORITY = floor.FloorFactory("majority", "most_frequent")


def clusters(n: int, seed: int) -> FoldData:
    """Four separable quadrant clusters in 5 dimensions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.normal(0, 0.5, (n, 5))
    x[:, :4] += 3 * np.eye(4)[y]
    return FoldData(x, y, [str(i) for i in range(n)])


FITTED = {
    "mlp": lambda: MLP.build(mlp.MLPSettings(epochs=5), 4, seed=3),
    # select_k puts f_classif in the pipeline, the longest trusted list.
    "svm": lambda: SVM.build(svm.SVMSettings(c_grid=[1.0], gamma_grid=[0.1], inner_folds=2, select_k=3), 4, seed=3),
    "floor": lambda: MAJORITY.build(floor.NoSettings(), 4, seed=3),
}
FACTORIES = {"mlp": (MLP, mlp.LEGACY_FILE), "svm": (SVM, svm.LEGACY_FILE), "floor": (MAJORITY, floor.LEGACY_FILE)}


class Planted:
    """A pickle payload: unpickling it calls ``Path.touch(marker)``, as a planted model.pkl could call os.system."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


class PlantedState:
    """A skops payload: rebuilding it runs ``__setstate__``, which would create the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __setstate__(self, state):
        pathlib.Path(state["marker"]).touch()
        self.__dict__.update(state)


def planted_pickle(marker: pathlib.Path) -> bytes:
    payload = pickle.dumps(Planted(marker))
    # The payload is live: a control copy, unpickled here, does create its marker.
    control = marker.with_name(marker.name + ".control")
    pickle.loads(pickle.dumps(Planted(control)))
    assert control.exists()
    control.unlink()
    return payload


@pytest.mark.parametrize("kind", ["mlp", "svm", "floor"])
def test_a_saved_model_round_trips_through_skops_and_json_without_pickle(kind, tmp_path):
    model = FITTED[kind]()
    model.fit(clusters(40, 0), clusters(12, 1))
    test = clusters(20, 2)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [ESTIMATORS, META]
    meta = json.loads((tmp_path / "m" / META).read_text())
    assert meta["n_classes"] == 4 and meta["seed"] == 3 and meta["versions"]["skops"] != "not installed"
    loaded = FACTORIES[kind][0].load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(test.x), model.predict_proba(test.x))
    if kind != "floor":
        assert loaded.settings == model.settings


@pytest.mark.parametrize("kind", ["mlp", "svm", "floor"])
def test_an_old_pickle_is_refused_unopened_with_one_line(kind, tmp_path):
    factory, legacy = FACTORIES[kind]
    marker = tmp_path / "pwned"
    folder = tmp_path / "unit-1" / "model"
    folder.mkdir(parents=True)
    (folder / legacy).write_bytes(planted_pickle(marker))
    with pytest.raises(RunError) as caught:
        factory.load(folder)
    message = str(caught.value)
    assert "\n" not in message
    assert str(folder / legacy) in message and "unsafe format" in message and "older mer-bench" in message
    assert "re-run" in message
    assert not marker.exists()


def test_a_pickle_under_the_skops_name_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    model = FITTED["floor"]()
    model.fit(clusters(8, 0), clusters(4, 1))
    model.save(tmp_path / "m")
    (tmp_path / "m" / ESTIMATORS).write_bytes(planted_pickle(marker))
    with pytest.raises(ModelError, match="cannot load the majority model saved in") as caught:
        MAJORITY.load(tmp_path / "m")
    assert "\n" not in str(caught.value)
    assert not marker.exists()


def test_a_skops_file_with_an_untrusted_type_is_refused_naming_it(tmp_path):
    import skops.io

    marker = tmp_path / "pwned"
    model = FITTED["floor"]()
    model.fit(clusters(8, 0), clusters(4, 1))
    model.save(tmp_path / "m")
    # A real DummyClassifier next to the planted object: only the untrusted type is named.
    skops.io.dump({"dummy": model.dummy, "extra": PlantedState(str(marker))}, tmp_path / "m" / ESTIMATORS)
    with pytest.raises(RunError) as caught:
        MAJORITY.load(tmp_path / "m")
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith("re-run this run")
    assert "not trust" in message and f"{PlantedState.__module__}.PlantedState" in message
    assert "DummyClassifier" not in message
    assert not marker.exists()
    # The MLP trusts AdamOptimizer, the SVM its calibration types: neither list carries over to the floor.
    svm_model = FITTED["svm"]()
    svm_model.fit(clusters(40, 0), clusters(12, 1))
    skops.io.dump({"dummy": svm_model.pipeline}, tmp_path / "m" / ESTIMATORS)
    with pytest.raises(RunError, match="_CalibratedClassifier.*_SigmoidCalibration"):
        MAJORITY.load(tmp_path / "m")


def test_trusted_types_in_an_unexpected_shape_are_refused(tmp_path):
    import skops.io
    from sklearn.preprocessing import StandardScaler

    model = FITTED["floor"]()
    model.fit(clusters(8, 0), clusters(4, 1))
    model.save(tmp_path / "m")
    skops.io.dump({"dummy": StandardScaler()}, tmp_path / "m" / ESTIMATORS)
    with pytest.raises(RunError, match=r"is not a majority model \(dummy is StandardScaler, not DummyClassifier\)"):
        MAJORITY.load(tmp_path / "m")


def test_the_guide_example_saves_arrays_and_json_and_loads_them_back(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "mer_bench_example_under_test", REPO / "docs" / "examples" / "mer-bench-example" / "mer_bench_example.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    factory = example.NearestCentroidFactory()
    model = factory.build(example.CentroidSettings(temperature=0.5), 4, seed=0)
    model.fit(clusters(40, 0), clusters(12, 1))
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["centroids.json", "centroids.npz"]
    test = clusters(20, 2)
    loaded = factory.load(tmp_path / "m")
    assert loaded.settings.temperature == 0.5
    np.testing.assert_array_equal(loaded.predict_proba(test.x), model.predict_proba(test.x))


@pytest.fixture(scope="module")
def majority_run(tmp_path_factory, cache_root):
    """A two-fold majority run on the tiny demo (the cheapest model, and the demo shared with other tests)."""
    site = tmp_path_factory.mktemp("site")
    (site / "tiny_demo.py").write_text(TINY_DEMO)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("MER_BENCH_CACHE", str(cache_root))
    try:
        plugins = load_plugins([*BUILTINS, "tiny_demo"], entry_points=False)
        values = {"model": "majority", "datasets": "demo-tiny", "preset": "quick", "seed": 2, "protocol_settings": {"folds": 2}}
        folder = run_benchmark(build_config(load_registry(), values), plugins, tmp_path_factory.mktemp("runs"))
    finally:
        monkeypatch.undo()
    return folder.path


def test_predict_on_a_run_with_a_planted_pickle_exits_1_with_one_line(majority_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(majority_run, runs / majority_run.name)
    model = runs / majority_run.name / "unit-1" / "model"
    assert MAJORITY.load(model).predict_proba(np.zeros((1, 1))).shape == (1, 4)  # the folder loads as saved
    # An older run's pickle in place of the skops files.
    for name in (ESTIMATORS, META):
        (model / name).unlink()
    marker = tmp_path / "pwned"
    (model / floor.LEGACY_FILE).write_bytes(planted_pickle(marker))
    audio = str(write_tone(tmp_path / "song.wav", 26.0))
    bad = run_cli("predict", "--run", majority_run.name, "--runs-dir", str(runs), "--unit", "1", audio)
    assert bad.returncode == 1
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith(f"error: {model / floor.LEGACY_FILE} was saved in an unsafe format")
    assert "older mer-bench" in line and "re-run" in line
    assert not marker.exists()
