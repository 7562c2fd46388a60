"""One benchmark run, stage by stage: discover, label, prepare, split, features, fit, score.

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
from mer_bench.config import RunConfig, upgrade_stored, validate_settings
from mer_bench.discover import discover
from mer_bench.errors import CacheError, DatasetError, MerBenchError, PluginCallError, RunError
from mer_bench.exclusions import exclusions_table, require_tracks_left
from mer_bench.executors import Resources
from mer_bench.features import Features, extract_features, feature_versions
from mer_bench.heldout import heldout_summary
from mer_bench.label import assign_quadrants
from mer_bench.metrics import aggregate, score
from mer_bench.plugin_calls import check_history, check_probabilities, plugin_call
from mer_bench.plugin_manager import PluginSet
from mer_bench.prepare import prepare
from mer_bench.progress import SILENT, Progress
from mer_bench.protocol import fold_parts, make_splits, merged_groups, track_uids
from mer_bench.results import (
    RunFolder,
    csv_bytes,
    fold_numbers,
    git_commit,
    host_info,
    new_run_id,
    package_versions,
)
from mer_bench.selection import check_names, describe, policy_for
from mer_bench.types import QUADRANTS, Exclusion, FoldData, ModelFactory, quadrant_index


def fold_seed(seed: int, fold: int) -> int:
    """A fold's own seed, independent of the folds before it, so a resumed run matches."""
    return int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])


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


def _fold_data(uids: list[str], features: Features, labels: dict[str, str]) -> FoldData:
    have = set(features.uids)
    kept = [u for u in uids if u in have]
    return FoldData(features.select(kept), quadrant_index(labels[u] for u in kept), kept)


def write_feature_examples(folder: RunFolder, splits: pd.DataFrame, features: Features) -> None:
    """``feature-examples.npz``: the features of one development track per quadrant, as the model gets them.

    The first track of each quadrant by uid, so the choice depends only on the data; arrays
    ``<quadrant>`` with ``<quadrant>_uid`` beside each. Quadrants with no features are absent.
    """
    have = set(features.uids)
    dev = splits[(splits["split"] == "dev") & splits["uid"].isin(have)].sort_values("uid", kind="mergesort")
    arrays: dict[str, np.ndarray] = {}
    for quadrant in QUADRANTS:
        rows = dev[dev["quadrant"] == quadrant]
        if len(rows):
            uid = str(rows["uid"].iloc[0])
            arrays[quadrant] = features.rows([uid])[0]
            arrays[f"{quadrant}_uid"] = np.array(uid)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    folder.write("feature-examples.npz", buffer.getvalue())


@dataclass(frozen=True)
class FoldJob:
    """One fold of one run: everything a worker needs to fit, predict and score it.

    Picklable (the features travel as paths to the memory-mapped cache blocks), so an
    executor can run it in another process or on another machine that sees the cache.
    """

    run_id: str
    fold: int
    factory: ModelFactory
    settings: Any
    splits: pd.DataFrame
    features: Features
    seed: int
    resources: Resources = Resources()

    @property
    def label(self) -> str:
        return f"{self.run_id} fold {self.fold}"


@dataclass
class FoldResult:
    """What fitting one fold gives the driver to write: metrics, tables, the saved model's files."""

    run_id: str
    fold: int
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    history: pd.DataFrame
    #: The saved model, as relative path -> bytes, so the worker writes nothing itself.
    model_files: dict[str, bytes] = field(default_factory=dict)


def fit_fold(job: FoldJob) -> FoldResult:
    """Fit one fold on its train part (early stopping on its validation part), score it on the test set.

    The model plugin's exceptions, and outputs that are not per-track probabilities, stop
    the fold with a PluginCallError naming the plugin, the fold and the run.
    """
    labels = dict(zip(job.splits["uid"], job.splits["quadrant"]))
    parts = {name: _fold_data(uids, job.features, labels) for name, uids in fold_parts(job.splits, job.fold).items()}
    name, where = job.factory.name, f"fold {job.fold} of run {job.run_id}"
    owner = f"model plugin {name!r} ({where})"
    with plugin_call("model", name, "build", where):
        model = job.factory.build(job.settings, n_classes=len(QUADRANTS), seed=fold_seed(job.seed, job.fold))
    with plugin_call("model", name, "fit", where):
        history = check_history(model.fit(parts["train"], parts["val"]), owner)
    test = parts["test"]
    with plugin_call("model", name, "predict_proba", where):
        proba = model.predict_proba(test.x)
    proba = check_probabilities(proba, len(test.y), len(QUADRANTS), owner)
    predicted = proba.argmax(axis=1)
    metrics = score(test.y, predicted)
    metrics.update(fold=job.fold, n_train=len(parts["train"].y), n_val=len(parts["val"].y), epochs=len(history))
    kept = [h["epoch"] for h in history if h.get("kept")]
    if kept:
        metrics["kept_epoch"] = int(kept[0])
    predictions = pd.DataFrame(
        {
            "uid": test.uids,
            "true": [QUADRANTS[i] for i in test.y],
            "predicted": [QUADRANTS[i] for i in predicted],
            **{f"p_{q}": proba[:, i] for i, q in enumerate(QUADRANTS)},
        }
    )
    with tempfile.TemporaryDirectory(prefix="mer-bench-model-") as tmp, plugin_call("model", name, "save", where):
        model.save(Path(tmp) / "model")
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    return FoldResult(job.run_id, job.fold, metrics, predictions, pd.DataFrame(history), files)


def write_fold(folder: RunFolder, result: FoldResult) -> None:
    """Write a fold's result into its staging folder, then publish it as ``fold-K/``.

    RunError when the disk is full or the folder not writable; the staging folder is then
    left for a resumed run to replace.
    """
    staging = RunFolder(folder.start_fold(result.fold))
    for name, data in result.model_files.items():
        staging.write(name, data)
    try:
        (staging.path / "model").mkdir(exist_ok=True)
    except OSError as exc:
        raise RunError(f"run {folder.run_id}: cannot write fold {result.fold} ({exc.strerror or exc})") from None
    staging.write_csv("predictions.csv", result.predictions)
    staging.write_csv("history.csv", result.history)
    staging.write_json("metrics.json", result.metrics)
    folder.finish_fold(result.fold, staging.path)


def stopped(exc: MerBenchError, folder: RunFolder) -> MerBenchError:
    """``exc`` (a PluginCallError or a RunError) saying what to do next: the run is kept, and
    the command that continues it."""
    return type(exc)(f"{exc}. Run {folder.run_id} is kept: once that is fixed, `{folder.resume_command()}` continues it")


def interrupted(folder: RunFolder) -> RunError:
    """The error for Ctrl-C or SIGTERM once the run folder exists: the run is kept, and how to continue it."""
    return RunError(f"interrupted. Run {folder.run_id} is kept: `{folder.resume_command()}` continues it")


def _check_resumed_data(folder: RunFolder, fingerprints: dict[str, str], splits: pd.DataFrame) -> None:
    """Refuse to resume a run whose data changed since it started: its finished folds saw the
    old audio and labels, the rest would see the new."""
    stored = {name: entry.get("fingerprint") for name, entry in folder.read_json("manifest.json").get("data", {}).items()}
    changed = sorted(name for name in stored.keys() | fingerprints.keys() if stored.get(name) != fingerprints.get(name))
    if changed:
        raise RunError(
            f"run {folder.run_id}: the audio or labels of {', '.join(changed)} changed since it started (the data "
            "fingerprint in its manifest differs), so its folds would mix two versions of the data; start a new run"
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
    stored = upgrade_stored(folder.read_json("manifest.json")["config"])
    current = config.comparable()
    stored_cmp = {k: v for k, v in stored.items() if k in current}
    if stored_cmp != current:
        diffs = ", ".join(f"{k}: {stored_cmp.get(k)!r} -> {current[k]!r}" for k in current if stored_cmp.get(k) != current[k])
        raise RunError(f"run {folder.run_id} was started with other settings ({diffs}); resume it without changing them")


@dataclass
class PreparedRun:
    """A run with every stage before the folds done and written: what its fold jobs and summary need."""

    folder: RunFolder
    config: RunConfig
    factory: ModelFactory
    model_settings: Any
    feature: str
    splits: pd.DataFrame
    features: Features
    #: The summary's facts about the data: tracks per split, exclusions, song groups, cache counts.
    facts: dict[str, Any]

    def jobs(self) -> list[FoldJob]:
        """The folds not finished yet, in fold order."""
        resources = self.factory.resources
        return [
            FoldJob(
                self.folder.run_id, k, self.factory, self.model_settings, self.splits, self.features, self.config.seed,
                resources,
            )
            for k in fold_numbers(self.config.folds)
            if not self.folder.fold_done(k)
        ]


def labelled_report(excluded: list[Exclusion], labelled: pd.DataFrame) -> pd.DataFrame:
    """The preparation report with each excluded track's labels: those its loader passed, else
    those the label stage gave it, so a figure can show what preparation took away."""
    keys = ["dataset", "track_id"]
    labels = labelled[keys + ["quadrant", "arousal", "valence"]]
    report = exclusions_table(excluded).merge(labels, on=keys, how="left", suffixes=("", "_labelled"))
    for column in ("quadrant", "arousal", "valence"):
        report[column] = report[column].astype(object).where(report[column].notna(), report.pop(f"{column}_labelled"))
    return report


def prepare_run(
    config: RunConfig,
    plugins: PluginSet,
    runs_dir: Path,
    *,
    resume: str | None = None,
    progress: Progress = SILENT,
    command: list[str] | None = None,
) -> PreparedRun:
    """Discover, label, prepare, split and extract features for a new run (or one being
    resumed), writing everything but the folds and the summary into its folder."""
    factory = plugins.model(config.model)
    extractor = plugins.feature(factory.feature)
    model_settings = validate_settings(factory.settings_model, config.model_settings, f"model {factory.name!r}")
    feature_settings = validate_settings(
        extractor.settings_model, config.feature_settings, f"feature {extractor.name!r}"
    )
    factory.check(model_settings)
    extractor.check(feature_settings)
    folder = RunFolder.open(runs_dir, resume) if resume else None
    if folder is not None:
        _check_resume(folder, config)
    else:
        RunFolder.check_runs_dir(runs_dir)

    check_names(config.selection, set(plugins.entries["dataset"]))
    discovery = discover(plugins, config.datasets, config.data_dir, config.paths)
    labelled = assign_quadrants(discovery.tracks, plugins)
    scales = {name: plugins.dataset(name).scale for name in config.datasets}
    cache = FeatureCache()
    prepared = prepare(labelled, scales, config.clip_seconds, config.selection, progress, cache, config.jobs)
    require_tracks_left(prepared.tracks, config.datasets, discovery.excluded + prepared.excluded, "preparation")
    splits = make_splits(prepared.tracks, config.folds, config.test_size, config.seed)

    fingerprints = data_fingerprints(prepared.tracks)
    if folder is not None:
        _check_resumed_data(folder, fingerprints, splits)
    else:
        folder = RunFolder.create(runs_dir, new_run_id(config.comparable()))
        sources = {e.source.distribution for e in plugins.all_entries() if not e.source.builtin}
        manifest = {
            "run_id": folder.run_id,
            "mer_bench_version": __version__,
            "command": command or [],
            "config": config.model_dump(mode="json"),
            "model": {"name": factory.name, "settings": model_settings.model_dump(mode="json")},
            "feature": {"name": extractor.name, "settings": feature_settings.model_dump(mode="json")},
            "seed": config.seed,
            "fold_seeds": [fold_seed(config.seed, k) for k in fold_numbers(config.folds)],
            "versions": package_versions(sorted(sources)),
            "git": git_commit(),
            "host": host_info(),
            "data": {
                name: {"root": str(discovery.roots[name]), "fingerprint": fp} for name, fp in fingerprints.items()
            },
            # The selection policy each dataset was prepared with.
            "selection": {name: describe(policy_for(config.selection, name)) for name in config.datasets},
            # The native valence/arousal range of each dataset (None: quadrants given).
            "scales": {name: scale and {"low": scale.low, "high": scale.high} for name, scale in scales.items()},
        }
        # The manifest last: a folder with one is a run that can be resumed, splits and all.
        try:
            folder.write_csv("splits.csv", splits)
            folder.write_json("manifest.json", manifest)
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
        require_tracks_left(tracks[tracks["uid"].isin(features.uids)], config.datasets, excluded, "feature extraction")
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

    counts = splits.groupby(["dataset", "split"]).size().unstack(fill_value=0)
    facts = {
        "tracks": {d: {k: int(v) for k, v in row.items()} for d, row in counts.iterrows()},
        "excluded": {str(k): int(v) for k, v in report["reason"].value_counts().items()},
        # Songs present under several ids, kept on one side of every split.
        "song_groups": merged_groups(prepared.tracks),
        # hits, computed, failed, and entries that failed their checksum and were rebuilt.
        "feature_cache": {**features.counts, "rebuilt": features.counts.get("rebuilt", 0) + prepared.rebuilt},
    }
    return PreparedRun(folder, config, factory, model_settings, extractor.name, splits, features, facts)


def finish_run(run: PreparedRun) -> RunFolder:
    """Write ``summary.json`` once every fold is done; the run folder."""
    config, folder = run.config, run.folder
    missing = [k for k in fold_numbers(config.folds) if not folder.fold_done(k)]
    if missing:
        raise RunError(f"run {folder.run_id}: folds {', '.join(map(str, missing))} are not finished; resume it")
    summary = {
        "run_id": folder.run_id,
        "model": run.factory.name,
        "feature": run.feature,
        "datasets": config.datasets,
        "preset": config.preset,
        "seed": config.seed,
        "folds": config.folds,
        "test_size": config.test_size,
        **run.facts,
        # The paper's figures: each fold's model scored on the test set, mean and std over folds.
        "metrics": aggregate(folder.fold_metrics(config.folds)),
        # Figures whose unit is a test track: the fold ensemble, and bootstrap intervals.
        "test_set": heldout_summary(folder.fold_predictions(config.folds), seed=config.seed),
    }
    folder.write_json("summary.json", summary)
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
    for job in progress.track(jobs, f"{run.factory.name}: folds", total=len(jobs)):
        try:
            write_fold(run.folder, fit_fold(job))
        except (PluginCallError, RunError) as exc:
            raise stopped(exc, run.folder) from exc
        except KeyboardInterrupt:
            raise interrupted(run.folder) from None
    return finish_run(run)
