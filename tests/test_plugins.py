"""Plugin loading: built-ins and entry points through one door, failures isolated and reported."""

import pickle

import numpy as np
import pytest

from mer_bench.errors import ConfigError, ModelError, PluginError, UnknownPluginError
from mer_bench.executors import Resources
from mer_bench.plugin_manager import load_plugins
from mer_bench.task import check_model_learns
from tests.conftest import BUILTINS, TINY_DEMO, make_distribution

BROKEN = "raise ImportError('no module named tensorflow_magic')"
TYPO = """
from mer_bench import hookimpl

@hookimpl
def mer_bench_modles():
    return []
"""
HALF_A_MODEL = """
from mer_bench import hookimpl

class HalfModel:
    name = "half"
    feature = "logmel-stats"

    def check(self, settings): ...

    def build(self, settings, n_classes, seed): ...

@hookimpl
def mer_bench_models():
    return [object(), HalfModel()]
"""
DUPLICATE = """
from mer_bench import hookimpl
from mer_bench_plugins.datasets.demo import DemoDataset

@hookimpl
def mer_bench_datasets():
    return [DemoDataset(name="demo")]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_builtins_load_through_the_hooks():
    plugins = load_plugins(BUILTINS, entry_points=False)
    names = {(e.kind, e.name) for e in plugins.all_entries()}
    assert {("dataset", "demo"), ("label", "midpoint"), ("feature", "logmel-stats"), ("model", "logmel-mlp")} <= names
    assert all(e.source.builtin and e.source.distribution == "mer-bench" for e in plugins.all_entries())
    assert plugins.failures == []


def test_a_broken_entry_point_is_reported_and_the_others_load(site):
    make_distribution(site, "mer-bench-broken", "0.3.1", {"broken_plugin": BROKEN}, {"broken": "broken_plugin"})
    make_distribution(site, "mer-bench-tiny", "1.0", {"tiny_demo": TINY_DEMO}, {"tiny": "tiny_demo"})
    plugins = load_plugins(BUILTINS)
    (failure,) = plugins.failures
    assert (failure.source.plugin, failure.source.distribution, failure.source.version) == (
        "broken",
        "mer-bench-broken",
        "0.3.1",
    )
    assert "ImportError: no module named tensorflow_magic" in failure.error
    tiny = plugins.entries["dataset"]["demo-tiny"]
    assert tiny.source.distribution == "mer-bench-tiny" and not tiny.source.builtin
    assert "logmel-mlp" in plugins.entries["model"]


def test_strict_mode_turns_a_failure_into_an_error(site):
    make_distribution(site, "mer-bench-broken", "0.3.1", {"broken_plugin": BROKEN}, {"broken": "broken_plugin"})
    with pytest.raises(PluginError, match=r"broken \(entry point, mer-bench-broken 0.3.1\) failed: ImportError"):
        load_plugins(BUILTINS, strict=True)


def test_a_misspelled_hook_is_caught_by_check_pending(site):
    make_distribution(site, "mer-bench-typo", "0.1", {"typo_plugin": TYPO}, {"typo": "typo_plugin"})
    plugins = load_plugins(BUILTINS)
    (failure,) = plugins.failures
    assert failure.source.plugin == "typo" and "mer_bench_modles" in failure.error


def test_an_object_that_breaks_the_protocol_is_reported_with_what_it_lacks(site):
    make_distribution(site, "mer-bench-odd", "0.1", {"odd_plugin": HALF_A_MODEL}, {"odd": "odd_plugin"})
    plugins = load_plugins(BUILTINS)
    errors = sorted(f.error for f in plugins.failures)
    assert len(errors) == 2
    # object() lacks everything required; the half model names only what it misses. Members
    # with a default (check, resources, task_kinds, build_regressor) are never required.
    assert "lacks build, feature, load, name, settings_model, which the " \
        "ModelFactory protocol requires (subclass mer_bench.types.ModelFactory to inherit its defaults)" in errors[0]
    assert "HalfModel" in errors[1] and "lacks load, settings_model, which the ModelFactory" in errors[1]


DUCK_TYPED = """
from dataclasses import dataclass

from pydantic import BaseModel

from mer_bench import hookimpl


class Nothing(BaseModel):
    pass


class DuckFactory:
    # Written before tasks existed: no task_kinds, build_regressor, resources or check.
    name = "duck"
    feature = "logmel-stats"
    settings_model = Nothing

    def build(self, settings, n_classes, seed): ...

    def load(self, folder): ...


class Slotted:
    __slots__ = ()
    name = "slotted"
    feature = "logmel-stats"
    settings_model = Nothing

    def build(self, settings, n_classes, seed): ...

    def load(self, folder): ...


@dataclass(frozen=True)
class Frozen:
    name: str = "frozen"
    feature: str = "logmel-stats"
    settings_model: type = Nothing

    def build(self, settings, n_classes, seed): ...

    def load(self, folder): ...


@hookimpl
def mer_bench_models():
    return [DuckFactory(), Slotted(), Frozen(), DuckFactory]
"""


def test_a_duck_typed_factory_gets_the_protocols_defaults(site):
    make_distribution(site, "mer-bench-duck", "0.1", {"duck_plugin": DUCK_TYPED}, {"duck": "duck_plugin"})
    plugins = load_plugins(BUILTINS)
    duck = plugins.model("duck")
    assert duck.task_kinds == ("classification",) and duck.resources == Resources(cpus=1.0, gpus=0.0, memory_gb=0.0)
    assert duck.check(None) is None
    with pytest.raises(ModelError, match="model 'duck' learns no regression task"):
        duck.build_regressor(None, n_outputs=2, seed=0)
    check_model_learns(duck, plugins.task("quadrants"))
    with pytest.raises(ConfigError, match="model 'duck' learns classification tasks; task 'va' is a regression task"):
        check_model_learns(duck, plugins.task("va"))
    # An object that cannot take the defaults is reported with the members it lacks; a class
    # returned in place of an instance is named.
    failure, klass = plugins.failures
    assert "its hook returned the class DuckFactory, not an instance: return DuckFactory()" in klass.error
    assert "Slotted" in failure.error
    assert "cannot be given the defaults of build_regressor, check, remote_weights, resources, task_kinds" in failure.error
    # Unit jobs carry factories to worker processes: the defaults travel with the object.
    copy = pickle.loads(pickle.dumps(duck))
    assert copy.task_kinds == ("classification",) and copy.check(None) is None
    with pytest.raises(ModelError, match="model 'duck' learns no regression task"):
        copy.build_regressor(None, n_outputs=2, seed=0)
    frozen = plugins.model("frozen")
    assert frozen.task_kinds == ("classification",) and frozen.remote_weights() == ()


MINIMAL = """
import numpy as np
from pydantic import BaseModel

from mer_bench import hookimpl
from mer_bench.types import FeatureExtractor, ModelFactory


class Nothing(BaseModel):
    pass


class Length(FeatureExtractor):
    name = "length"
    settings_model = Nothing

    def extract(self, clip, settings):
        return np.array([clip.duration_s], dtype=np.float32)


class Constant(ModelFactory):
    name = "constant"
    feature = "length"
    settings_model = Nothing

    def build(self, settings, n_classes, seed): ...

    def load(self, folder): ...


@hookimpl
def mer_bench_feature_extractors():
    return [Length()]


@hookimpl
def mer_bench_models():
    return [Constant()]
"""


def test_a_minimal_plugin_subclasses_the_protocol_and_inherits_its_defaults(site):
    make_distribution(site, "mer-bench-minimal", "0.1", {"minimal_plugin": MINIMAL}, {"minimal": "minimal_plugin"})
    plugins = load_plugins(BUILTINS, strict=True)
    feature, model = plugins.feature("length"), plugins.model("constant")
    arrays = np.ones((3, 1), dtype=np.float32)
    assert feature.check(None) is None and feature.finish_dataset(arrays, None) is arrays
    assert model.check(None) is None and model.resources == Resources(cpus=1.0, gpus=0.0, memory_gb=0.0)


def test_duplicate_names_keep_the_built_in_and_refuse_only_the_contested_name(site):
    make_distribution(site, "mer-bench-dup", "2.0", {"dup_plugin": DUPLICATE}, {"dup": "dup_plugin"})
    plugins = load_plugins(BUILTINS)
    (failure,) = plugins.failures
    assert failure.source.distribution == "mer-bench-dup"
    assert "its dataset 'demo' has the name of one from mer_bench_plugins.datasets.demo (built-in" in failure.error
    assert plugins.entries["dataset"]["demo"].source.builtin
    assert plugins.model("logmel-mlp") is not None  # everything else is usable
    with pytest.raises(PluginError, match=r"2 dataset plugins are named 'demo': .*mer-bench 0.1.0.* and .*mer-bench-dup 2.0"):
        plugins.dataset("demo")
    with pytest.raises(PluginError, match="has the name of one from"):
        load_plugins(BUILTINS, strict=True)


def test_a_name_from_a_plugin_that_failed_to_load_says_so(site):
    make_distribution(site, "mer-bench-knn", "0.2", {"knn_plugin": BROKEN}, {"knn": "knn_plugin"})
    plugins = load_plugins(BUILTINS)
    with pytest.raises(UnknownPluginError, match=r"unknown model plugin 'knn'.*it may come from a plugin that did not "
                       r"load: knn \(entry point, mer-bench-knn 0.2\) failed to load: ImportError: no module named tensorflow_magic"):
        plugins.model("knn")


def test_unknown_names_list_the_known_ones():
    plugins = load_plugins(BUILTINS, entry_points=False)
    with pytest.raises(UnknownPluginError, match=r"unknown model plugin 'effnet'; known model plugins: chance, cnn10, cnn6, effnetb3, logmel-mlp, majority, mean, musicnn-mlp, openl3-mlp, opensmile-svm, sarkar-vgg, svm-handcrafted"):
        plugins.model("effnet")


def test_autoload_can_be_switched_off(site, monkeypatch):
    make_distribution(site, "mer-bench-broken", "0.3.1", {"broken_plugin": BROKEN}, {"broken": "broken_plugin"})
    monkeypatch.setenv("MER_BENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert load_plugins(BUILTINS).failures == []
