"""The run folder's JSON files as typed records: ``manifest.json``, ``summary.json`` and each
unit's ``metrics.json``, in run-folder format :data:`FORMAT_VERSION`.

Every reader (report, figures, HTML, compare, predict, leaderboard, resume) goes through
these models, so a field is named once and a damaged or foreign file is one clear line.
A folder written in another format is refused by :meth:`mer_bench.results.RunFolder.read_record` with the version of
mer-bench that wrote it; the format changes only when a field changes meaning.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from mer_bench.registry import Measured

#: The run-folder format this mer-bench writes and reads. 1: mer-bench before protocol
#: plugins (``fold-K`` folders, ``folds`` and ``test_size`` in the config); 2: units.
FORMAT_VERSION = 3


class Record(BaseModel):
    """A record of the run folder: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class PluginChoice(Record):
    """A plugin a run used, by name, and the settings it was validated with."""

    name: str
    settings: dict[str, Any]


class ProtocolRecord(PluginChoice):
    """The evaluation protocol of a run, with what its plugin said of it."""

    #: The protocol in words, for tables.
    description: str
    #: The protocol in the fields published results carry; None: like no published protocol.
    measured: Measured | None


class TaskRecord(Record):
    """What a run's models predicted (a task plugin's name, kind and classes)."""

    name: str
    kind: str
    #: The classes in index order: the order of the ``p_<class>`` columns and of the tables
    #: (for a regression task, the classes its predicted values imply).
    classes: list[str]
    description: str
    #: Regression: the predicted dimensions, in column order.
    dimensions: list[str] = []
    #: Datasets of the run's config the task left out, and why (quadrants only, no values).
    left_out: dict[str, str] = {}


class DataSource(Record):
    """Where a dataset was read, the fingerprint of what the run used of it, and the
    corrections its loader made to the published values."""

    root: str
    fingerprint: str
    notes: list[str] = []


class ValueRange(Record):
    """A dataset's native valence/arousal range."""

    low: float
    high: float


class Manifest(Record):
    """What a run is: written once its units are known, before any model is fitted."""

    format_version: int
    run_id: str
    mer_bench_version: str
    command: list[str]
    #: The run configuration (:class:`mer_bench.config.RunConfig`), whole.
    config: dict[str, Any]
    model: PluginChoice
    feature: PluginChoice
    protocol: ProtocolRecord
    task: TaskRecord
    #: The label of each unit, in unit order (unit k is ``units[k - 1]``).
    units: list[str]
    seed: int
    #: The seed each unit's model was built with, in unit order.
    unit_seeds: list[int]
    versions: dict[str, str]
    git: dict[str, Any] | None
    host: dict[str, Any]
    data: dict[str, DataSource]
    #: The selection policy each dataset was prepared with.
    selection: dict[str, str]
    #: The native valence/arousal range of each dataset (None: quadrants given).
    scales: dict[str, ValueRange | None]

    def unit_numbers(self) -> list[int]:
        """The run's units: 1 to n."""
        return list(range(1, len(self.units) + 1))


class ClassScores(Record):
    precision: float
    recall: float
    f1: float
    support: int


class DatasetScores(Record):
    """A unit's scores on the test tracks of one dataset."""

    n: int
    accuracy: float
    macro_f1: float


class UnitMetrics(Record):
    """One unit's scores on its test part, and what it was fitted on."""

    unit: int
    label: str
    #: The repeat the unit belongs to, for protocols that repeat their split.
    repeat: int | None = None
    n: int
    accuracy: float
    macro_f1: float
    micro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    per_dataset: dict[str, DatasetScores]
    train_datasets: list[str]
    test_datasets: list[str]
    n_train: int
    n_val: int
    #: Test tracks the unit names that have no features (excluded during extraction).
    n_unscored: int = 0
    epochs: int
    kept_epoch: int | None = None
    #: Regression tasks: R², Pearson r, CCC and RMSE per dimension (the classification
    #: scores above are then those of the classes the predicted values imply).
    regression: dict[str, dict[str, float]] | None = None


class Stat(Record):
    mean: float
    std: float


class Aggregate(Record):
    """Mean and (population) std over units of every headline and per-class metric."""

    units: int
    accuracy: Stat
    macro_f1: Stat
    micro_f1: Stat
    per_class: dict[str, dict[str, Stat]]
    #: Summed over units.
    confusion: list[list[int]]
    #: Regression tasks: each regression metric of each dimension, mean and std over units.
    regression: dict[str, dict[str, Stat]] | None = None


class RepeatSpread(Record):
    """Mean and std over repeats of each repeat's mean over its units."""

    repeats: int
    accuracy: Stat
    macro_f1: Stat


class Interval(Record):
    value: float
    interval: list[float]


class Ensemble(Record):
    accuracy: float
    accuracy_interval: list[float]
    macro_f1: float


class DimensionHeldOut(Record):
    """A regression dimension on the shared test set (mer_bench.heldout), computed on the
    ``tracks`` every unit scored."""

    tracks: int | None = None
    r2_mean_over_folds: Interval
    ensemble_r2: Interval
    ensemble_ccc: float
    ensemble_rmse: float


class HeldOut(Record):
    """Figures of a test set every unit shares, whose unit is a test track (mer_bench.heldout).
    For a regression task the accuracies are of the classes the values imply, and
    ``regression`` holds each dimension's figures."""

    tracks: int
    confidence: float
    resamples: int
    accuracy_mean_over_folds: Interval
    fold_ensemble: Ensemble
    regression: dict[str, DimensionHeldOut] | None = None


class Summary(Record):
    """A finished run's results: written when its last unit is done."""

    format_version: int
    run_id: str
    model: str
    feature: str
    datasets: list[str]
    preset: str
    seed: int
    protocol: ProtocolRecord
    task: TaskRecord
    #: Unit labels, in unit order.
    units: list[str]
    #: Per dataset, how many of its tracks play each role in at least one unit.
    tracks: dict[str, dict[str, int]]
    excluded: dict[str, int]
    #: Songs present under several ids, kept on one side of every unit.
    song_groups: dict[str, int]
    #: Feature cache hits, computed, failed, and entries rebuilt after a failed checksum.
    feature_cache: dict[str, int]
    metrics: Aggregate
    repeats: RepeatSpread | None = None
    #: Present when every unit is scored on the same test set (``holdout-kfold``).
    test_set: HeldOut | None = None


def stored_format(data: Any) -> int:
    """The format a run-folder JSON file says it has (1: written before formats were recorded)."""
    version = data.get("format_version", 1) if isinstance(data, dict) else 1
    return version if isinstance(version, int) else 1
