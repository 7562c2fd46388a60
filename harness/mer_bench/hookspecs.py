"""The mer-bench plugin contract: every hook a plugin may implement.

A plugin is a module or object with functions named after these hooks and marked with
``mer_bench.hookimpl``. Built-in plugins (named in ``registry.toml``) and third-party
plugins (entry points of group ``mer_bench``) go through these same hooks.

Each hook returns a list of plugin objects; one module may offer several kinds. The
objects follow the protocols in :mod:`mer_bench.types`. Names must be unique per kind
across all installed plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mer_bench.executors import Executor
    from mer_bench.types import DatasetLoader, EvaluationProtocol, FeatureExtractor, LabelConverter, ModelFactory, Task

PROJECT = "mer_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mer_bench_datasets() -> list[DatasetLoader]:
    """Return the dataset loaders this plugin provides.

    A loader finds one dataset in its official unpacked layout and returns its track
    table (see :class:`mer_bench.types.DatasetLoader`). It reports every track it had
    to leave out as an :class:`~mer_bench.types.Exclusion`, never dropping one silently.
    """


@hookspec
def mer_bench_label_converters() -> list[LabelConverter]:
    """Return the label converters this plugin provides.

    A converter turns a dataset's native annotations into the quadrant names
    ``A+V+``, ``A+V-``, ``A-V-``, ``A-V+``; a dataset names the converter it needs.
    """


@hookspec
def mer_bench_feature_extractors() -> list[FeatureExtractor]:
    """Return the feature extractors this plugin provides.

    An extractor turns one prepared clip into a numpy array, with an optional
    per-dataset finishing step (such as a dB reference shared by a dataset's clips).
    """


@hookspec
def mer_bench_models() -> list[ModelFactory]:
    """Return the model factories this plugin provides.

    A factory names the feature it consumes and builds a fresh model for every
    evaluation unit; the model fits on the unit's train part, stops early on its
    validation part, and predicts class probabilities for its test part.
    """


@hookspec
def mer_bench_protocols() -> list[EvaluationProtocol]:
    """Return the evaluation protocols this plugin provides.

    A protocol turns a run's prepared track table into evaluation units, each with its
    train, validation and test tracks and a label ("Fold 3", "test on pmemo"); one model
    is fitted and scored per unit (see :class:`mer_bench.types.EvaluationProtocol`).
    """


@hookspec
def mer_bench_tasks() -> list[Task]:
    """Return the tasks this plugin provides.

    A task says what a run's models predict from each track (the quadrant; high or low
    arousal; valence and arousal values): its kind (classification or regression), its
    classes and each track's class, and for regression its dimensions and each track's
    values (see :class:`mer_bench.types.Task`). Every classification task of a run sees
    the same tracks and units.
    """


@hookspec
def mer_bench_executors() -> list[Executor]:
    """Return the executors this plugin provides.

    An executor runs unit jobs somewhere (this process, a local pool, a cluster) and
    yields each job's outcome as it finishes; the driver writes every result into the
    run folder and retries failures (see :mod:`mer_bench.executors`).
    """
