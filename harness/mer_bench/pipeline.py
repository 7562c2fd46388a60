"""One benchmark run, stage by stage: discover, label, prepare, split into units, features, fit, score.

Each stage takes a table and returns a table or arrays; this module only passes them
along and writes the run folder.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer_bench import __version__
from mer_bench.cache import FeatureCache
from mer_bench.config import RunConfig, validate_settings
from mer_bench.discover import discover
from mer_bench.errors import CacheError, DatasetError, MerBenchError, PluginCallError, ProtocolError, RunError
from mer_bench.exclusions import exclusions_table, require_tracks_left
from mer_bench.executors import Resources
from mer_bench.features import Features, extract_features, feature_versions
from mer_bench.heldout import heldout_summary
from mer_bench.label import assign_quadrants
from mer_bench.metrics import aggregate, aggregate_regression, regression_score, repeat_spread, score, score_per_dataset
from mer_bench.plugin_calls import check_history, check_probabilities, check_values, plugin_call
from mer_bench.plugin_manager import PluginSet
from mer_bench.prepare import prepare
from mer_bench.progress import SILENT, Progress
from mer_bench.protocol import make_units, merged_groups, shares_one_test_set, track_uids, unit_numbers
from mer_bench.results import RunFolder, csv_bytes, git_commit, host_info, new_run_id, package_versions
from mer_bench.run_records import FORMAT_VERSION, Manifest, ProtocolRecord, Summary, TaskRecord
from mer_bench.selection import check_names, describe, policy_for
from mer_bench.stratify import sub_seed
from mer_bench.task import (
    check_model_learns,
    regression_datasets,
    task_record,
    track_labels,
    track_values,
    values_to_labels,
)
from mer_bench.types import (
    QUADRANTS,
    ROLES,
    EvaluationProtocol,
    Exclusion,
    FeatureExtractor,
    FoldData,
    ModelFactory,
    Scale,
    Task,
)


def unit_seed(seed: int, unit: int) -> int:
    """A unit's own model seed, independent of the units before it, so a resumed run matches."""
    return sub_seed(seed, unit)


def data_fingerprints(tracks: pd.DataFrame) -> dict[str, str]:
    """Per dataset, a sha256 over what the run uses of each track: id, labels, decoded length, audio content."""
    out = {}
    for dataset, rows in tracks.groupby("dataset", sort=True):
        digest = hashlib.sha256()
        for row in rows.sort_values("track_id").itertuples(index=False):
            digest.update(
                f"{row.track_id}|{row.quadrant}|{row.arousal!r}|{row.valence!r}|{row.decoded_s:.4f}|"
                f"{row.audio_digest}\n".encode()
            )
        out[dataset] = digest.hexdigest()
    return out


def write_feature_examples(folder: RunFolder, splits: pd.DataFrame, features: Features) -> None:
    """``feature-examples.npz``: the features of one training track per quadrant, as the model gets them.

    The first training track of unit 1 of each quadrant by uid, so the choice depends only
    on the data; arrays ``<quadrant>`` with ``<quadrant>_uid`` beside each. Quadrants with
    no features are absent.
    """
    have = set(features.uids)
    train = splits[(splits["unit"] == 1) & (splits["role"] == "train") & splits["uid"].isin(have)]
    train = train.sort_values("uid", kind="mergesort")
    arrays: dict[str, np.ndarray] = {}
    for quadrant in QUADRANTS:
        rows = train[train["quadrant"] == quadrant]
        if len(rows):
            uid = str(rows["uid"].iloc[0])
            arrays[quadrant] = features.rows([uid])[0]
            arrays[f"{quadrant}_uid"] = np.array(uid)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    folder.write("feature-examples.npz", buffer.getvalue())


@dataclass(frozen=True)
class UnitJob:
    """One unit of one run: everything a worker needs to fit, predict and score it.

    Picklable (the features travel as paths to the memory-mapped cache blocks), so an
    executor can run it in another process or on another machine that sees the cache.
    """

    run_id: str
    unit: int
    name: str
    factory: ModelFactory
    settings: Any
    #: role -> uids of the unit's train, val and test parts.
    parts: dict[str, list[str]]
    #: uid -> (class of the run's task, dataset) of every track of the unit.
    tracks: dict[str, tuple[str, str]]
    features: Features
    seed: int
    repeat: int | None = None
    resources: Resources = Resources()
    #: The task's classes, in index order.
    classes: tuple[str, ...] = QUADRANTS
    #: Regression tasks: the task (it turns predicted values into classes), its dimensions,
    #: and uid -> the track's value on each.
    task: Any = None
    dimensions: tuple[str, ...] = ()
    values: dict[str, tuple[float, ...]] | None = None

    @property
    def label(self) -> str:
        return f"{self.run_id} unit {self.unit} ({self.name})"


@dataclass
class UnitResult:
    """What fitting one unit gives the driver to write: metrics, tables, the saved model's files."""

    run_id: str
    unit: int
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    history: pd.DataFrame
    #: The saved model, as relative path -> bytes, so the worker writes nothing itself.
    model_files: dict[str, bytes] = field(default_factory=dict)


def _part(uids: list[str], job: UnitJob) -> FoldData:
    have = set(job.features.uids)
    kept = [u for u in uids if u in have]
    if job.values is not None:
        y = np.array([job.values[u] for u in kept], dtype=np.float64).reshape(len(kept), len(job.dimensions))
    else:
        index = {c: i for i, c in enumerate(job.classes)}
        y = np.array([index[job.tracks[u][0]] for u in kept], dtype=np.int64)
    return FoldData(job.features.select(kept), y, kept)


def fit_unit(job: UnitJob) -> UnitResult:
    """Fit one unit on its train part (early stopping on its validation part), score it on its test part.

    The model plugin's exceptions, and outputs that are not per-track probabilities, stop
    the unit with a PluginCallError naming the plugin, the unit and the run.
    """
    parts = {role: _part(job.parts[role], job) for role in ROLES}
    name, where = job.factory.name, f"unit {job.unit} ({job.name}) of run {job.run_id}"
    owner = f"model plugin {name!r} ({where})"
    regression = job.values is not None
    seed = unit_seed(job.seed, job.unit)
    with plugin_call("model", name, "build_regressor" if regression else "build", where):
        if regression:
            model = job.factory.build_regressor(job.settings, n_outputs=len(job.dimensions), seed=seed)
        else:
            model = job.factory.build(job.settings, n_classes=len(job.classes), seed=seed)
    with plugin_call("model", name, "fit", where):
        history = check_history(model.fit(parts["train"], parts["val"]), owner)
    test = parts["test"]
    index = {c: i for i, c in enumerate(job.classes)}
    if regression:
        with plugin_call("model", name, "predict", where):
            values = check_values(model.predict(test.x), len(test.uids), len(job.dimensions), owner)
        # A regressor is also scored on the classes its values imply (the quadrants, for va).
        truth = np.array([index[job.tracks[u][0]] for u in test.uids], dtype=np.int64)
        predicted = np.array([index[c] for c in values_to_labels(job.task, values)], dtype=np.int64)
        columns = {
            **{f"true_{d}": test.y[:, j] for j, d in enumerate(job.dimensions)},
            **{f"pred_{d}": values[:, j] for j, d in enumerate(job.dimensions)},
        }
    else:
        with plugin_call("model", name, "predict_proba", where):
            proba = model.predict_proba(test.x)
        proba = check_probabilities(proba, len(test.y), len(job.classes), owner)
        truth, predicted = test.y, proba.argmax(axis=1)
        columns = {f"p_{c}": proba[:, i] for i, c in enumerate(job.classes)}
    datasets = {role: sorted({job.tracks[u][1] for u in job.parts[role]}) for role in ("train", "test")}
    metrics = {
        "unit": job.unit,
        "label": job.name,
        "repeat": job.repeat,
        **score(truth, predicted, job.classes),
        "per_dataset": score_per_dataset(truth, predicted, [job.tracks[u][1] for u in test.uids], len(job.classes)),
        "train_datasets": datasets["train"],
        "test_datasets": datasets["test"],
        "n_train": len(parts["train"].y),
        "n_val": len(parts["val"].y),
        "n_unscored": len(job.parts["test"]) - len(test.uids),
        "epochs": len(history),
    }
    if regression:
        metrics["regression"] = regression_score(test.y, values, job.dimensions)
    kept = [h["epoch"] for h in history if h.get("kept")]
    if kept:
        metrics["kept_epoch"] = int(kept[0])
    predictions = pd.DataFrame(
        {
            "uid": test.uids,
            "true": [job.classes[i] for i in truth],
            "predicted": [job.classes[i] for i in predicted],
            **columns,
        }
    )
    with tempfile.TemporaryDirectory(prefix="mer-bench-model-") as tmp, plugin_call("model", name, "save", where):
        model.save(Path(tmp) / "model")
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    return UnitResult(job.run_id, job.unit, metrics, predictions, pd.DataFrame(history), files)


def write_unit(folder: RunFolder, result: UnitResult) -> None:
    """Write a unit's result into its staging folder, then publish it as ``unit-K/``.

    RunError when the disk is full or the folder not writable; the staging folder is then
    left for a resumed run to replace.
    """
    staging = RunFolder(folder.start_unit(result.unit))
    for name, data in result.model_files.items():
        staging.write(name, data)
    try:
        (staging.path / "model").mkdir(exist_ok=True)
    except OSError as exc:
        raise RunError(f"run {folder.run_id}: cannot write unit {result.unit} ({exc.strerror or exc})") from None
    staging.write_csv("predictions.csv", result.predictions)
    staging.write_csv("history.csv", result.history)
    staging.write_json("metrics.json", result.metrics)
    folder.finish_unit(result.unit, staging.path)


def stopped(exc: MerBenchError, folder: RunFolder) -> MerBenchError:
    """``exc`` (a PluginCallError or a RunError) saying what to do next: the run is kept, and
    the command that continues it."""
    return type(exc)(f"{exc}. Run {folder.run_id} is kept: once that is fixed, `{folder.resume_command()}` continues it")


def interrupted(folder: RunFolder) -> RunError:
    """The error for Ctrl-C or SIGTERM once the run folder exists: the run is kept, and how to continue it."""
    return RunError(f"interrupted. Run {folder.run_id} is kept: `{folder.resume_command()}` continues it")


def _check_resumed_data(folder: RunFolder, fingerprints: dict[str, str], splits: pd.DataFrame) -> None:
    """Refuse to resume a run whose data changed since it started: its finished units saw the
    old audio and labels, the rest would see the new."""
    stored = {name: entry.fingerprint for name, entry in folder.manifest().data.items()}
    changed = sorted(name for name in stored.keys() | fingerprints.keys() if stored.get(name) != fingerprints.get(name))
    if changed:
        raise RunError(
            f"run {folder.run_id}: the audio or labels of {', '.join(changed)} changed since it started (the data "
            "fingerprint in its manifest differs), so its units would mix two versions of the data; start a new run"
        )
    path = folder.path / "splits.csv"
    if not path.is_file():  # lost after the manifest was written (a full disk); the same data gives it again
        folder.write_csv("splits.csv", splits)
    elif path.read_bytes() != csv_bytes(splits):
        raise RunError(
            f"run {folder.run_id}: the data no longer gives the splits this run started with; "
            "start a new run instead of resuming"
        )


def _check_resume(folder: RunFolder, config: RunConfig) -> None:
    stored = folder.manifest().config
    current = config.comparable()
    stored_cmp = {k: v for k, v in stored.items() if k in current}
    if stored_cmp != current:
        diffs = ", ".join(f"{k}: {stored_cmp.get(k)!r} -> {current[k]!r}" for k in current if stored_cmp.get(k) != current[k])
        raise RunError(f"run {folder.run_id} was started with other settings ({diffs}); resume it without changing them")


@dataclass
class PreparedRun:
    """A run with every stage before the units done and written: what its unit jobs and summary need."""

    folder: RunFolder
    config: RunConfig
    factory: ModelFactory
    model_settings: Any
    feature: str
    protocol: ProtocolRecord
    task: TaskRecord
    #: The task plugin (a regression task turns predicted values into classes in the unit jobs).
    task_plugin: Any
    #: The datasets taking part (the config's, less those the task left out).
    datasets: list[str]
    #: uid -> the class the run's task gives the track.
    targets: dict[str, str]
    #: Regression tasks: uid -> the track's value on each dimension; None for classification.
    values: dict[str, tuple[float, ...]] | None
    splits: pd.DataFrame
    features: Features
    #: The summary's facts about the data: tracks per role, exclusions, song groups, cache counts.
    facts: dict[str, Any]

    @property
    def units(self) -> list[int]:
        return unit_numbers(self.splits)

    def jobs(self) -> list[UnitJob]:
        """The units not finished yet, in unit order."""
        info = self.splits.drop_duplicates("uid").set_index("uid")
        tracks = {uid: (self.targets[uid], dataset) for uid, dataset in zip(info.index, info["dataset"])}
        jobs = []
        for unit, rows in self.splits.groupby("unit", sort=True):
            if self.folder.unit_done(int(unit)):
                continue
            parts = {role: rows.loc[rows["role"] == role, "uid"].tolist() for role in ROLES}
            repeat = int(rows["repeat"].iloc[0]) if "repeat" in rows.columns else None
            jobs.append(
                UnitJob(
                    self.folder.run_id, int(unit), str(rows["label"].iloc[0]), self.factory, self.model_settings, parts,
                    {u: tracks[u] for u in rows["uid"]}, self.features, self.config.seed, repeat,
                    self.factory.resources, tuple(self.task.classes),
                    self.task_plugin if self.values is not None else None, tuple(self.task.dimensions),
                    None if self.values is None else {u: self.values[u] for u in rows["uid"]},
                )
            )
        return jobs


def labelled_report(excluded: list[Exclusion], labelled: pd.DataFrame) -> pd.DataFrame:
    """The preparation report with each excluded track's labels: those its loader passed, else
    those the label stage gave it, so a figure can show what preparation took away."""
    keys = ["dataset", "track_id"]
    labels = labelled[keys + ["quadrant", "arousal", "valence"]]
    report = exclusions_table(excluded).merge(labels, on=keys, how="left", suffixes=("", "_labelled"))
    for column in ("quadrant", "arousal", "valence"):
        report[column] = report[column].astype(object).where(report[column].notna(), report.pop(f"{column}_labelled"))
    return report


def role_counts(splits: pd.DataFrame, prepared: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per dataset: its prepared tracks, and how many of them play each role in at least one unit."""
    counts = splits.drop_duplicates(["uid", "role"]).groupby(["dataset", "role"]).size()
    out = {}
    for dataset, n in prepared.groupby("dataset").size().items():
        out[str(dataset)] = {"prepared": int(n), **{role: int(counts.get((dataset, role), 0)) for role in ROLES}}
    return out


@dataclass(frozen=True)
class RunPlan:
    """What a run will use, checked before any data is read: its plugins, their validated
    settings, and the datasets its task keeps (``task.left_out`` says which it left out)."""

    factory: ModelFactory
    extractor: FeatureExtractor
    protocol: EvaluationProtocol
    task: Task
    record: TaskRecord
    protocol_record: ProtocolRecord
    datasets: list[str]
    scales: dict[str, Scale | None]
    model_settings: Any
    feature_settings: Any
    protocol_settings: Any


def check_run(config: RunConfig, plugins: PluginSet) -> RunPlan:
    """Every check of ``config`` that needs no data: plugin names, the model against the task,
    each plugin's settings and ``check``, the protocol against the datasets the task keeps.
    A sweep calls it for every run before preparing any, so that a mistake in its last run
    stops it before hours of work on the first."""
    factory = plugins.model(config.model)
    extractor = plugins.feature(factory.feature)
    protocol = plugins.protocol(config.protocol)
    task = plugins.task(config.task)
    record = task_record(task)
    check_model_learns(factory, task)
    check_names(config.selection, set(plugins.entries["dataset"]))
    scales = {name: plugins.dataset(name).scale for name in config.datasets}
    with_values = sorted(n for n in plugins.entries["dataset"] if plugins.dataset(n).scale is not None)
    datasets, left_out = regression_datasets(task, config.datasets, scales, with_values)
    record = record.model_copy(update={"left_out": left_out})
    model_settings = validate_settings(factory.settings_model, config.model_settings, f"model {factory.name!r}")
    feature_settings = validate_settings(
        extractor.settings_model, config.feature_settings, f"feature {extractor.name!r}"
    )
    protocol_settings = validate_settings(
        protocol.settings_model, config.protocol_settings, f"protocol {protocol.name!r}"
    )
    factory.check(model_settings)
    extractor.check(feature_settings)
    with plugin_call("protocol", protocol.name, "check", keep=(ProtocolError,)):
        protocol.check(protocol_settings, datasets)
    with plugin_call("protocol", protocol.name, "describe"):
        protocol_record = ProtocolRecord(
            name=protocol.name,
            settings=protocol_settings.model_dump(mode="json"),
            description=protocol.describe(protocol_settings),
            measured=protocol.measured(protocol_settings),
        )
    return RunPlan(
        factory, extractor, protocol, task, record, protocol_record, datasets, scales,
        model_settings, feature_settings, protocol_settings,
    )


def prepare_run(
    config: RunConfig,
    plugins: PluginSet,
    runs_dir: Path,
    *,
    resume: str | None = None,
    progress: Progress = SILENT,
    command: list[str] | None = None,
    plan: RunPlan | None = None,
) -> PreparedRun:
    """Discover, label, prepare, split into units and extract features for a new run (or one
    being resumed), writing everything but the units and the summary into its folder.
    ``plan`` is :func:`check_run`'s for ``config`` when the caller has it already."""
    plan = plan or check_run(config, plugins)
    factory, extractor, protocol, task, record = plan.factory, plan.extractor, plan.protocol, plan.task, plan.record
    datasets, scales = plan.datasets, plan.scales
    model_settings, feature_settings = plan.model_settings, plan.feature_settings
    protocol_settings, protocol_record = plan.protocol_settings, plan.protocol_record
    folder = RunFolder.open(runs_dir, resume) if resume else None
    if folder is not None:
        _check_resume(folder, config)
    else:
        RunFolder.check_runs_dir(runs_dir)

    discovery = discover(plugins, datasets, config.data_dir, config.paths)
    labelled = assign_quadrants(discovery.tracks, plugins)
    scales = {name: scales[name] for name in datasets}
    cache = FeatureCache()
    prepared = prepare(labelled, scales, config.clip_seconds, config.selection, progress, cache, config.jobs)
    require_tracks_left(prepared.tracks, datasets, discovery.excluded + prepared.excluded, "preparation")
    values = None
    if task.kind == "regression":
        table = track_values(task, prepared.tracks, scales)
        missing = table.isna().any(axis=1)
        # A track without a value on every dimension cannot be fitted or scored: reported, not used.
        prepared.excluded.extend(
            Exclusion(r.dataset, r.track_id, "task", "no-values", f"task {task.name} needs {', '.join(task.dimensions)}",
                      r.quadrant, r.arousal, r.valence)
            for r in prepared.tracks[missing].itertuples()
        )
        prepared.tracks, table = prepared.tracks[~missing].reset_index(drop=True), table[~missing].reset_index(drop=True)
        require_tracks_left(prepared.tracks, datasets, discovery.excluded + prepared.excluded, f"task {task.name}")
        values = dict(zip(track_uids(prepared.tracks), map(tuple, table.to_numpy(dtype=float))))
    splits = make_units(prepared.tracks, protocol, protocol_settings, config.seed)
    targets = dict(zip(track_uids(prepared.tracks), track_labels(task, prepared.tracks)))
    units = unit_numbers(splits)

    fingerprints = data_fingerprints(prepared.tracks)
    if folder is not None:
        _check_resumed_data(folder, fingerprints, splits)
    else:
        folder = RunFolder.create(runs_dir, new_run_id(config.comparable()))
        sources = {e.source.distribution for e in plugins.all_entries() if not e.source.builtin}
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            run_id=folder.run_id,
            mer_bench_version=__version__,
            command=command or [],
            config=config.model_dump(mode="json"),
            model={"name": factory.name, "settings": model_settings.model_dump(mode="json")},
            feature={"name": extractor.name, "settings": feature_settings.model_dump(mode="json")},
            protocol=protocol_record,
            task=record,
            units=splits.drop_duplicates("unit")["label"].astype(str).tolist(),
            seed=config.seed,
            unit_seeds=[unit_seed(config.seed, k) for k in units],
            versions=package_versions(sorted(sources)),
            git=git_commit(),
            host=host_info(),
            data={
                name: {"root": str(discovery.roots[name]), "fingerprint": fp, "notes": discovery.notes.get(name, [])}
                for name, fp in fingerprints.items()
            },
            selection={name: describe(policy_for(config.selection, name)) for name in datasets},
            scales={name: scale and {"low": scale.low, "high": scale.high} for name, scale in scales.items()},
        )
        # The manifest last: a folder with one is a run that can be resumed, splits and all.
        try:
            folder.write_csv("splits.csv", splits)
            folder.write_json("manifest.json", manifest.model_dump(mode="json"))
        except RunError:
            shutil.rmtree(folder.path, ignore_errors=True)  # nothing in it can be resumed
            raise

    try:
        features = extract_features(
            prepared.tracks,
            extractor,
            feature_settings,
            versions=feature_versions(plugins, extractor.name),
            cache=cache,
            jobs=config.jobs,
            progress=progress,
        )
        excluded = discovery.excluded + prepared.excluded + features.excluded
        report = labelled_report(excluded, labelled)
        folder.write_csv("prep-report.csv", report)
        tracks = prepared.tracks.assign(uid=track_uids(prepared.tracks))
        require_tracks_left(tracks[tracks["uid"].isin(features.uids)], datasets, excluded, "feature extraction")
        write_feature_examples(folder, splits, features)
        folder.write_csv(
            "tracks.csv",
            tracks[
                ["uid", "dataset", "track_id", "quadrant", "arousal", "valence", "genre", "song_key", "decoded_s",
                 "clip_start_s"]
            ],
        )
    except (PluginCallError, CacheError, RunError, DatasetError) as exc:
        raise stopped(exc, folder) from exc
    except KeyboardInterrupt:
        raise interrupted(folder) from None

    facts = {
        "tracks": role_counts(splits, prepared.tracks),
        "excluded": {str(k): int(v) for k, v in report["reason"].value_counts().items()},
        "song_groups": merged_groups(prepared.tracks),
        "feature_cache": {**features.counts, "rebuilt": features.counts.get("rebuilt", 0) + prepared.rebuilt},
    }
    return PreparedRun(
        folder, config, factory, model_settings, extractor.name, protocol_record, record, task, datasets, targets,
        values, splits, features, facts,
    )


def finish_run(run: PreparedRun) -> RunFolder:
    """Write ``summary.json`` once every unit is done; the run folder."""
    config, folder = run.config, run.folder
    missing = [k for k in run.units if not folder.unit_done(k)]
    if missing:
        raise RunError(f"run {folder.run_id}: units {', '.join(map(str, missing))} are not finished; resume it")
    metrics = [m.model_dump() for m in folder.unit_metrics(run.units)]
    summary = Summary(
        format_version=FORMAT_VERSION,
        run_id=folder.run_id,
        model=run.factory.name,
        feature=run.feature,
        datasets=run.datasets,
        preset=config.preset,
        seed=config.seed,
        protocol=run.protocol,
        task=run.task,
        units=[m["label"] for m in metrics],
        **run.facts,
        # Each unit's model scored on its test part, mean and std over units (the paper's figures).
        metrics={
            **aggregate(metrics, tuple(run.task.classes)),
            **({"regression": aggregate_regression(metrics, tuple(run.task.dimensions))} if run.values else {}),
        },
        repeats=repeat_spread(metrics),
        # Figures whose unit is a test track: the fold ensemble and bootstrap intervals, where
        # every unit predicted the same tracks.
        test_set=(
            heldout_summary(
                folder.unit_predictions(run.units),
                run.task.classes,
                dimensions=run.task.dimensions if run.values else (),
                label_values=lambda values: values_to_labels(run.task_plugin, values),
                seed=config.seed,
            )
            if shares_one_test_set(run.splits)
            else None
        ),
    )
    folder.write_json("summary.json", summary.model_dump(mode="json"))
    return folder


def run_benchmark(
    config: RunConfig,
    plugins: PluginSet,
    runs_dir: Path,
    *,
    resume: str | None = None,
    progress: Progress = SILENT,
    command: list[str] | None = None,
) -> RunFolder:
    """Run (or resume) a benchmark in this process and return its run folder, with ``summary.json`` written."""
    run = prepare_run(config, plugins, runs_dir, resume=resume, progress=progress, command=command)
    jobs = run.jobs()
    for job in progress.track(jobs, f"{run.factory.name}: units", total=len(jobs)):
        try:
            write_unit(run.folder, fit_unit(job))
        except (PluginCallError, RunError) as exc:
            raise stopped(exc, run.folder) from exc
        except KeyboardInterrupt:
            raise interrupted(run.folder) from None
    return finish_run(run)
