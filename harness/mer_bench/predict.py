"""Quadrant predictions for audio files from a finished run's unit models.

The files go through the run's own stages: the central crop of the run's clip length,
then the run's feature extractor and settings. They are treated as one dataset, so a
per-dataset finishing step (mel-image's dB reference) spans the files given together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mer_bench.cache import FeatureCache
from mer_bench.config import validate_settings
from mer_bench.errors import ModelError, RunError
from mer_bench.features import extract_features, feature_versions
from mer_bench.plugin_calls import check_probabilities, check_values, plugin_call
from mer_bench.plugin_manager import PluginSet
from mer_bench.prepare import crop_tracks
from mer_bench.protocol import track_uids
from mer_bench.results import RunFolder
from mer_bench.task import values_to_labels
from mer_bench.types import QUADRANTS, Exclusion

#: The dataset name the given files are prepared under.
FILES = "files"


def unit_outputs(folder: RunFolder, factory, unit: int, x, width: int, regression: bool) -> np.ndarray:
    """Unit ``unit``'s saved model loaded and its checked outputs for ``x``: ``width``
    probabilities per row, or ``width`` values per row for a regression task's model."""
    name, where = factory.name, f"unit {unit} of run {folder.run_id}"
    with plugin_call("model", name, "load", f"{where} ({folder.unit_dir(unit) / 'model'})", keep=(ModelError, RunError)):
        model = factory.load(folder.unit_dir(unit) / "model")
    owner = f"model plugin {name!r} on {where}"
    if regression:
        with plugin_call("model", name, "predict", where):
            return check_values(model.predict(x), len(x), width, owner)
    with plugin_call("model", name, "predict_proba", where):
        proba = model.predict_proba(x)
    return check_probabilities(proba, len(x), width, owner)


def predict_files(
    folder: RunFolder, plugins: PluginSet, files: list[Path], unit: int | None = None
) -> tuple[pd.DataFrame, list[Exclusion]]:
    """One row per usable file: ``file``, its class (column ``quadrant`` where the task's
    classes are the quadrants, else the task's name) and ``p_<class>`` for each class of the
    run's task, or, for a regression task, its value on each dimension (the mean over units)
    and the class those values imply.

    Probabilities come from unit ``unit``'s model, or are the mean over every unit's
    model when ``unit`` is None. Files that are missing, undecodable or shorter than the
    run's clip are returned as exclusions (``track_id`` is the file's position in ``files``).
    """
    manifest = folder.manifest()
    factory = plugins.model(manifest.model.name)
    extractor = plugins.feature(manifest.feature.name)
    settings = validate_settings(extractor.settings_model, manifest.feature.settings, f"feature {extractor.name!r}")
    every = manifest.unit_numbers()
    if unit is not None and unit not in every:
        raise RunError(f"run {folder.run_id} has units 1 to {len(every)}; there is no unit {unit}")
    units = every if unit is None else [unit]
    unfinished = [k for k in units if not folder.unit_done(k)]
    if unfinished:
        raise RunError(
            f"run {folder.run_id} has no finished unit {', '.join(map(str, unfinished))}; "
            f"finish it with `{folder.resume_command()}` or pick another --unit"
        )

    tracks = pd.DataFrame({"dataset": FILES, "track_id": [str(i) for i in range(len(files))], "audio_path": files})
    cache = FeatureCache()
    prepared = crop_tracks(tracks, manifest.config["clip_seconds"], cache=cache)
    features = extract_features(
        prepared.tracks,
        extractor,
        settings,
        versions=feature_versions(plugins, extractor.name),
        cache=cache,
        jobs=1,
    )
    excluded = prepared.excluded + features.excluded
    task = manifest.task
    column = "quadrant" if tuple(task.classes) == QUADRANTS else task.name
    outputs = task.dimensions or [f"p_{c}" for c in task.classes]
    if not features.uids:
        return pd.DataFrame(columns=["file", column, *outputs]), excluded
    x = features.select(features.uids)
    regression = bool(task.dimensions)
    mean = np.mean([unit_outputs(folder, factory, k, x, len(outputs), regression) for k in units], axis=0)
    by_uid = dict(zip(track_uids(tracks), files))
    if regression:
        labels = values_to_labels(plugins.task(task.name), mean)
    else:
        labels = [task.classes[i] for i in mean.argmax(axis=1)]
    table = pd.DataFrame(
        {
            "file": [str(by_uid[u]) for u in features.uids],
            column: labels,
            **{name: mean[:, i] for i, name in enumerate(outputs)},
        }
    )
    return table, excluded
