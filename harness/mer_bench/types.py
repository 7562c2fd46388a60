"""The records shared by the harness and its plugins, and the plugin protocols.

The track table is a pandas DataFrame with the columns of :data:`TRACK_COLUMNS`. A
dataset plugin returns it; :func:`validate_tracks` checks it before any stage runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import BaseModel

from mer_bench.defaults import has_default
from mer_bench.errors import DatasetError
from mer_bench.executors import Resources

if TYPE_CHECKING:
    from mer_bench.registry import Measured

#: The four quadrants of Russell's valence/arousal plane, in class-index order.
QUADRANTS: tuple[str, ...] = ("A+V+", "A+V-", "A-V-", "A-V+")

#: Columns every track table has. ``arousal``/``valence`` may be NaN only where the
#: dataset gives ``quadrant`` directly; the metadata columns may be empty.
REQUIRED_COLUMNS: tuple[str, ...] = ("dataset", "track_id", "audio_path")
TRACK_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + (
    "arousal",
    "valence",
    "quadrant",
    "genre",
    "title",
    "artist",
    "duration_s",
)


@dataclass(frozen=True)
class Scale:
    """The native range of a dataset's valence and arousal values."""

    low: float
    high: float

    @property
    def midpoint(self) -> float:
        """The value that separates low from high (it counts as low)."""
        return (self.low + self.high) / 2


@dataclass(frozen=True)
class Exclusion:
    """One track left out of a run, with the stage that left it out and why."""

    dataset: str
    track_id: str
    stage: str
    reason: str
    detail: str = ""
    #: The track's labels, where the loader knows them (a track it excludes never reaches
    #: the label stage): they show in prep-report.csv and on the valence/arousal figure.
    quadrant: str | None = None
    arousal: float | None = None
    valence: float | None = None


@dataclass
class LoadedDataset:
    """What a dataset loader returns: its track table, what it could not use, and what it corrected.

    ``notes`` says, one sentence each, where the loader changed the published values and
    why (DEAM's swapped columns): runs print them and keep them in the manifest, so no
    correction is silent.
    """

    tracks: pd.DataFrame
    excluded: list[Exclusion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetInfo:
    """What a user needs to obtain a dataset and cite it."""

    title: str
    download: str
    layout: str
    license: str
    citation: str


@dataclass(frozen=True)
class Clip:
    """The part of one audio file a feature extractor reads."""

    uid: str
    dataset: str
    audio_path: Path
    start_s: float
    duration_s: float


@dataclass
class FoldData:
    """Inputs and integer class labels (indices into the task's classes; for the default task, into
    :data:`QUADRANTS`) for one part of an evaluation unit.

    ``x`` is a numpy array or a :class:`mer_bench.features.Rows` view of the feature
    cache: both have ``len``, ``shape``, ``dtype`` and ``take(indices, axis=0)``, and
    ``np.asarray(x)`` reads every row. Models that stream batches use ``take``.
    """

    x: Any
    y: np.ndarray
    uids: list[str]


@dataclass(frozen=True)
class RemoteFile:
    """A file a plugin can fetch, only when a user asks (``mer-bench datasets download``,
    ``mer-bench weights download``); runs never open a connection.

    ``source`` says where the URL (and size or checksum) was found, so a reader can check
    it. ``size`` and the checksums are checked where given; a checksum the source does not
    publish is left None rather than guessed. ``unpack_into`` is, for a dataset archive,
    the folder under the dataset's folder that its contents go to ("" for the folder itself).
    """

    url: str
    source: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    unpack_into: str = ""

    @property
    def filename(self) -> str:
        """The file's name: the last part of the URL's path."""
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class DatasetDownload:
    """How a dataset is fetched: the archives that unpack into ``folder`` (a folder name the
    loader reads under the data directory), or, where the source needs a browser (a form, a
    cloud drive), ``manual``: what to fetch by hand and where to put it.

    ``terms`` is shown before anything is fetched: the licence or terms page and what it says.
    """

    folder: str
    terms: str
    files: tuple[RemoteFile, ...] = ()
    manual: str = ""


@dataclass(frozen=True)
class RemoteWeights:
    """A weights file a model can fetch when asked, and ``path``, where the model looks for it.
    ``file`` has at least one checksum: a weights file is never placed unchecked."""

    file: RemoteFile
    path: Path
    terms: str = ""


@runtime_checkable
class DatasetLoader(Protocol):
    """Reads one dataset from its official unpacked layout.

    ``folder_names`` are the folder names accepted under the data directory besides
    ``name`` (e.g. the archive's own name). ``default_root`` returns a location to use
    when the data directory has none of them (None when the user must supply the data).
    ``download`` says how ``mer-bench datasets download`` fetches it (None: it cannot).
    An object without them gets the defaults (no other names, None, None).
    """

    name: str
    scale: Scale | None
    label_converter: str
    folder_names: tuple[str, ...] = ()

    def describe(self) -> DatasetInfo: ...

    @has_default
    def default_root(self) -> Path | None:
        """Where the data lies when the data directory does not hold it; None: the user supplies it."""
        return None

    @has_default
    def download(self) -> DatasetDownload | None:
        """The files ``mer-bench datasets download`` fetches and unpacks into the layout
        :meth:`load` reads, or the manual step; None when there is nothing to download."""
        return None

    def load(self, root: Path) -> LoadedDataset: ...


@runtime_checkable
class LabelConverter(Protocol):
    """Maps a validated track table to one quadrant name per row."""

    name: str

    def convert(self, tracks: pd.DataFrame, scale: Scale | None) -> pd.Series: ...


@runtime_checkable
class FeatureExtractor(Protocol):
    """Turns one clip into an array; ``finish_dataset`` then sees all arrays of one dataset.

    ``check`` runs once before a run reads any data, so that a missing library or
    weights file stops the run at once with a message saying what to install.
    """

    name: str
    settings_model: type[BaseModel]

    @has_default
    def check(self, settings: Any) -> None:
        """Raise :class:`~mer_bench.errors.FeatureError` if this feature cannot be computed here
        with ``settings`` (a library or weights file missing), before any data is read.
        By default nothing is checked."""

    def extract(self, clip: Clip, settings: Any) -> np.ndarray: ...

    @has_default
    def finish_dataset(self, arrays: np.ndarray, settings: Any) -> np.ndarray:
        """The arrays of one dataset's clips, transformed together (a per-dataset
        normalisation); by default unchanged."""
        return arrays


@runtime_checkable
class Model(Protocol):
    """One evaluation unit's model. ``fit`` returns one dict of metrics per epoch.

    Each dict has ``epoch`` (from 1) and the model's losses and accuracies, e.g.
    ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``; a model that keeps the
    weights of an earlier epoch (early stopping) marks that epoch's dict ``kept: True``.
    ``predict_proba`` takes the same kind of ``x`` as :class:`FoldData`.
    """

    def fit(self, train: FoldData, val: FoldData) -> list[dict[str, float]]: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...


@runtime_checkable
class Regressor(Protocol):
    """One evaluation unit's model for a regression task: like :class:`Model`, but ``fit``
    gets ``FoldData`` whose ``y`` is a float array (n, dimensions) on [-1, 1], and
    ``predict`` returns one (n, dimensions) array of finite values."""

    def fit(self, train: FoldData, val: FoldData) -> list[dict[str, float]]: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...


@runtime_checkable
class ModelFactory(Protocol):
    """Builds a fresh model for each evaluation unit and loads saved ones.

    ``check`` runs once before a run reads any data, so that a missing weights file
    or library stops the run at once with a message saying what to install.

    ``resources`` says what one unit's model needs (cores, a GPU, memory); executors that
    schedule use it. ``task_kinds`` names the kinds of :class:`Task` its models can learn
    (:data:`TASK_KINDS`); a run of a task of another kind is refused before any work. An
    object without them gets one core, classification, a ``check`` that checks nothing and a
    ``build_regressor`` that refuses.
    """

    name: str
    feature: str
    settings_model: type[BaseModel]
    resources: Resources = Resources()
    task_kinds: tuple[str, ...] = ("classification",)

    @has_default
    def check(self, settings: Any) -> None:
        """Raise :class:`~mer_bench.errors.ModelError` if no model can be built here with
        ``settings`` (a library or weights file missing), before any data is read.
        By default nothing is checked."""

    def build(self, settings: Any, n_classes: int, seed: int) -> Model:
        """A fresh, untrained model predicting ``n_classes`` classes (the task's), seeded with ``seed``."""
        ...

    @has_default
    def build_regressor(self, settings: Any, n_outputs: int, seed: int) -> Regressor:
        """A fresh, untrained model predicting ``n_outputs`` values (a regression task's
        dimensions), seeded with ``seed``; only for factories whose ``task_kinds`` include
        regression."""
        from mer_bench.errors import ModelError

        raise ModelError(f"model {self.name!r} learns no regression task")

    @has_default
    def remote_weights(self) -> tuple[RemoteWeights, ...]:
        """The weights files ``mer-bench weights download`` fetches for this model, each to
        where the model looks for it; by default none."""
        return ()

    def load(self, folder: Path) -> Model: ...


#: The kinds of task mer-bench can run. A classification task's models predict a probability
#: per class; they are scored by accuracy, F1 and the confusion matrix. A regression task's
#: models predict a value per dimension; they are scored per dimension (R², Pearson r,
#: concordance correlation, RMSE) and, through the classes the predicted values imply, like
#: a classifier.
TASK_KINDS: tuple[str, ...] = ("classification", "regression")


@runtime_checkable
class Task(Protocol):
    """What a run's models learn to predict from each prepared track.

    Every task names ``classes`` in index order (the order of the models' probability
    columns and of every table) and gives each track its class with ``labels``, from the
    prepared track table (the columns :class:`EvaluationProtocol` describes: the
    ``quadrant`` every track has, ``arousal`` and ``valence`` where the dataset gives values).

    A regression task also names its ``dimensions`` and gives each track its value on each,
    with ``values``, from the track table and each dataset's :class:`Scale`; a NaN leaves the
    track out of the task (reported), and a dataset whose loader declares no scale (quadrants
    only) is left out of every regression task before any work. ``label_values`` turns
    values (predicted ones) into classes, so a regressor is also scored like a classifier.

    Whatever the task, tracks are selected and split by quadrant, so every classification
    task of a run's datasets, seed and protocol sees the same tracks in the same units; a
    regression task leaves out tracks without values first, and its units are drawn anew.

    An object without them gets no dimensions, a ``describe`` that gives
    its name, and ``values``/``label_values`` that refuse (a classification task's).
    """

    name: str
    #: One of :data:`TASK_KINDS`.
    kind: str
    classes: tuple[str, ...]
    #: Regression: the predicted dimensions, in column order.
    dimensions: tuple[str, ...] = ()

    @has_default
    def describe(self) -> str:
        """The task in words, for tables and the HTML report; by default its name."""
        return self.name

    def labels(self, tracks: pd.DataFrame) -> pd.Series:
        """One class name (of :attr:`classes`) per row of ``tracks``, with the same index."""
        ...

    @has_default
    def values(self, tracks: pd.DataFrame, scales: dict[str, Scale]) -> pd.DataFrame:
        """Regression: one row per row of ``tracks`` (same index), a column per dimension;
        NaN where a track has no value. ``scales`` holds each dataset's native range."""
        raise NotImplementedError(f"task {self.name!r} is not a regression task")

    @has_default
    def label_values(self, values: pd.DataFrame) -> pd.Series:
        """Regression: the class (of :attr:`classes`) each row of ``values`` implies."""
        raise NotImplementedError(f"task {self.name!r} is not a regression task")


#: What a track does in an evaluation unit: the model fits on ``train``, stops early on ``val``
#: and is scored on ``test``.
ROLES: tuple[str, ...] = ("train", "val", "test")
#: Columns every unit table has (see :class:`EvaluationProtocol`).
UNIT_COLUMNS: tuple[str, ...] = ("unit", "label", "uid", "role")


@runtime_checkable
class EvaluationProtocol(Protocol):
    """Turns a run's prepared tracks into evaluation units: what each model fits, stops early
    on and is scored on.

    ``units`` gets the prepared track table, one row per track sorted by ``uid``
    (``dataset/track_id``), with ``dataset``, ``track_id``, ``quadrant``, ``song_key`` (filled:
    tracks of one song share it, across datasets too), ``genre``, ``arousal``, ``valence`` and
    any column a loader added (``official_split``). It returns a long table with the columns
    of :data:`UNIT_COLUMNS`, one row per track and unit that uses it: ``unit`` numbers the
    units 1, 2, ...; ``label`` names the unit for tables ("Fold 3", "test on pmemo");
    ``role`` is one of :data:`ROLES`. A track a unit does not use has no row for it. Other
    columns (a ``stratum``) are kept in ``splits.csv``; an integer ``repeat`` column groups
    units into repeats, and the summary then gives the mean and spread over repeats.

    The same tracks, settings and seed must give the same table. The harness checks it
    before any model is fitted: every unit has train, val and test tracks, every uid is a
    prepared track, and no song sits on two sides of a unit.

    ``check`` runs before any data is read. ``describe`` and ``measured`` say how the run was
    evaluated, in words for tables and in the fields published results carry, so that the
    leaderboard sets a re-run beside a published number only when both were measured alike.
    An object without them gets a ``check`` that checks nothing, a
    ``describe`` that gives its name and settings, and a ``measured`` of None (like no
    published protocol).
    """

    name: str
    settings_model: type[BaseModel]

    @has_default
    def check(self, settings: Any, datasets: list[str]) -> None:
        """Raise :class:`~mer_bench.errors.ProtocolError` if this protocol cannot evaluate a
        run of ``datasets`` with ``settings`` (too few datasets); by default nothing is checked."""

    @has_default
    def describe(self, settings: Any) -> str:
        """The protocol with ``settings`` in words, for tables; by default its name and settings."""
        values = ", ".join(f"{k}={v}" for k, v in settings.model_dump().items())
        return f"{self.name} ({values})" if values else self.name

    @has_default
    def measured(self, settings: Any) -> Measured | None:
        """The protocol with ``settings`` in the fields of a published result
        (:class:`mer_bench.registry.Measured`), or None when no published protocol is like it."""
        return None

    def units(self, tracks: pd.DataFrame, settings: Any, seed: int) -> pd.DataFrame: ...


def _rows(df: pd.DataFrame, mask) -> str:
    ids = df.loc[mask, "track_id"].astype(str).tolist()
    shown = ", ".join(ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def validate_tracks(tracks: pd.DataFrame, dataset: str, scale: Scale | None) -> pd.DataFrame:
    """Check a loader's track table and return it with every column of :data:`TRACK_COLUMNS`.

    Raises :class:`DatasetError` naming the dataset and the offending rows for missing
    columns, duplicate ids, missing or out-of-scale labels and unknown quadrant names.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in tracks.columns]
    if missing:
        raise DatasetError(f"dataset {dataset!r}: track table lacks column(s) {', '.join(missing)}")
    df = tracks.copy()
    for column in TRACK_COLUMNS:
        if column not in df.columns:
            df[column] = np.nan if column in ("arousal", "valence", "duration_s") else None
    df["track_id"] = df["track_id"].astype(str)
    if (df["dataset"] != dataset).any():
        raise DatasetError(f"dataset {dataset!r}: rows name another dataset: {_rows(df, df['dataset'] != dataset)}")
    dup = df["track_id"].duplicated(keep=False)
    if dup.any():
        raise DatasetError(f"dataset {dataset!r}: duplicate track ids: {_rows(df, dup)}")
    for column in ("arousal", "valence", "duration_s"):
        df[column] = pd.to_numeric(df[column], errors="coerce").astype(float)
    given = df["quadrant"].notna()
    unknown = given & ~df["quadrant"].isin(QUADRANTS)
    if unknown.any():
        raise DatasetError(
            f"dataset {dataset!r}: quadrant must be one of {', '.join(QUADRANTS)}; rows: {_rows(df, unknown)}"
        )
    if scale is None and (~given).any():
        raise DatasetError(f"dataset {dataset!r} declares no scale, so every row needs a quadrant: {_rows(df, ~given)}")
    nan_label = ~given & (df["arousal"].isna() | df["valence"].isna())
    if nan_label.any():
        raise DatasetError(f"dataset {dataset!r}: missing (NaN) arousal or valence in rows: {_rows(df, nan_label)}")
    if scale is not None:
        outside = (df[["arousal", "valence"]].lt(scale.low) | df[["arousal", "valence"]].gt(scale.high)).any(axis=1)
        if outside.any():
            raise DatasetError(
                f"dataset {dataset!r}: arousal or valence outside its scale [{scale.low}, {scale.high}] "
                f"in rows: {_rows(df, outside)}"
            )
    df["audio_path"] = df["audio_path"].map(lambda p: Path(p))
    return df.reset_index(drop=True)


def quadrant_index(names) -> np.ndarray:
    """Class indices (into :data:`QUADRANTS`) for an iterable of quadrant names."""
    lookup = {q: i for i, q in enumerate(QUADRANTS)}
    return np.array([lookup[n] for n in names], dtype=np.int64)
