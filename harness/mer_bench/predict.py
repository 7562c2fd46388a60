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
from mer_bench.plugin_calls import check_probabilities, plugin_call
from mer_bench.plugin_manager import PluginSet
from mer_bench.prepare import crop_tracks
from mer_bench.protocol import track_uids
from mer_bench.results import RunFolder
from mer_bench.types import Exclusion

#: The dataset name the given files are prepared under.
FILES = "files"


def unit_probabilities(folder: RunFolder, factory, unit: int, x, n_classes: int) -> np.ndarray:
    """Unit ``unit``'s saved model loaded and its checked probabilities (``n_classes`` per row) for ``x``."""
    name, where = factory.name, f"unit {unit} of run {folder.run_id}"
    with plugin_call("model", name, "load", f"{where} ({folder.unit_dir(unit) / 'model'})", keep=(ModelError, RunError)):
        model = factory.load(folder.unit_dir(unit) / "model")
    with plugin_call("model", name, "predict_proba", where):
        proba = model.predict_proba(x)
    return check_probabilities(proba, len(x), n_classes, f"model plugin {name!r} on {where}")


def predict_files(
    folder: RunFolder, plugins: PluginSet, files: list[Path], unit: int | None = None
) -> tuple[pd.DataFrame, list[Exclusion]]:
    """One row per usable file: ``file``, its class (column ``quadrant`` for the quadrants
    task, else the task's name) and ``p_<class>`` for each class of the run's task.

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
    classes = manifest.task.classes
    column = "quadrant" if manifest.task.name == "quadrants" else manifest.task.name
    if not features.uids:
        return pd.DataFrame(columns=["file", column, *(f"p_{c}" for c in classes)]), excluded
    x = features.select(features.uids)
    proba = np.mean([unit_probabilities(folder, factory, k, x, len(classes)) for k in units], axis=0)
    by_uid = dict(zip(track_uids(tracks), files))
    table = pd.DataFrame(
        {
            "file": [str(by_uid[u]) for u in features.uids],
            column: [classes[i] for i in proba.argmax(axis=1)],
            **{f"p_{c}": proba[:, i] for i, c in enumerate(classes)},
        }
    )
    return table, excluded
