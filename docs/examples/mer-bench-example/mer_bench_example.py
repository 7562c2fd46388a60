"""An example mer-bench plugin: a dataset loader, a model and an evaluation protocol.

Dataset ``my-songs``: a folder with ``labels.csv`` (columns ``file,valence,arousal``,
values on a 1..9 scale) and the audio files under ``audio/``.

Model ``nearest-centroid``: distances to each quadrant's mean ``logmel-stats`` vector,
turned into probabilities with a softmax. It saves NumPy arrays and JSON, never a
pickle: run folders are shared, and unpickling a file runs whatever code it names.

Protocol ``shuffle-split``: ``splits`` independent stratified train/test splits (as
scikit-learn's StratifiedShuffleSplit), each with a validation part carved from its
training songs; built from the helpers of ``mer_bench.stratify``, which keep the tracks of
one song together.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.errors import DatasetError
from mer_bench.stratify import song_groups, split_off_validation, stratified_holdout, sub_seed, unit_rows
from mer_bench.types import (
    DatasetInfo,
    DatasetLoader,
    EvaluationProtocol,
    Exclusion,
    FoldData,
    LoadedDataset,
    ModelFactory,
    Scale,
)


# Subclassing the protocol gives the members a plugin may leave out their defaults:
# here default_root (None: the user supplies the data).
class MySongs(DatasetLoader):
    name = "my-songs"
    scale = Scale(1.0, 9.0)
    label_converter = "midpoint"  # built-in: high means above 5
    folder_names = ("MySongs_v1",)  # the archive's own folder name is accepted too

    def describe(self) -> DatasetInfo:
        return DatasetInfo(
            title="My lab's annotated songs",
            download="ask the lab for MySongs_v1.zip",
            layout="labels.csv (file,valence,arousal on 1..9) and audio/<file>",
            license="research use only",
            citation="Us et al. 2026",
        )

    def load(self, root: Path) -> LoadedDataset:
        path = root / "labels.csv"
        if not path.is_file():
            raise DatasetError(f"my-songs: {path} not found; unpack MySongs_v1.zip there")
        table = pd.read_csv(path)
        if list(table.columns) != ["file", "valence", "arousal"]:
            raise DatasetError(f"my-songs: {path} has columns {list(table.columns)}, expected file,valence,arousal")
        # Never drop a row silently: rows without audio are reported as exclusions.
        exists = table["file"].map(lambda f: (root / "audio" / f).is_file())
        excluded = [
            Exclusion(self.name, Path(f).stem, "discover", "audio-missing", str(root / "audio" / f))
            for f in table.loc[~exists, "file"]
        ]
        table = table[exists]
        tracks = pd.DataFrame(
            {
                "dataset": self.name,
                "track_id": table["file"].map(lambda f: Path(f).stem),
                "audio_path": table["file"].map(lambda f: root / "audio" / f),
                "valence": table["valence"],
                "arousal": table["arousal"],
            }
        )
        return LoadedDataset(tracks, excluded)


class CentroidSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, gt=0, description="softmax temperature over negative distances")


class NearestCentroid:
    def __init__(self, settings: CentroidSettings, n_classes: int):
        self.settings = settings
        self.n_classes = n_classes

    def fit(self, train: FoldData, val: FoldData) -> list[dict[str, float]]:
        x = np.asarray(train.x)  # x reads the feature cache lazily; this reads every row
        self.mean, self.std = x.mean(axis=0), x.std(axis=0) + 1e-8
        z = (x - self.mean) / self.std
        self.centroids = np.stack([z[train.y == k].mean(axis=0) for k in range(self.n_classes)])
        accuracy = float((self.predict_proba(val.x).argmax(axis=1) == val.y).mean())
        return [{"epoch": 1, "val_accuracy": accuracy}]  # one "epoch": nothing to stop early

    def predict_proba(self, x) -> np.ndarray:
        z = (np.asarray(x) - self.mean) / self.std
        distance = np.linalg.norm(z[:, None, :] - self.centroids[None], axis=2) / np.sqrt(z.shape[1])
        logits = -distance / self.settings.temperature
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "centroids.npz", mean=self.mean, std=self.std, centroids=self.centroids)
        meta = {"settings": self.settings.model_dump(mode="json"), "n_classes": self.n_classes}
        (folder / "centroids.json").write_text(json.dumps(meta))


# Inherited from ModelFactory: check (called before a run reads data; raise ModelError
# there if something the model needs is missing) and resources (one core per fold).
class NearestCentroidFactory(ModelFactory):
    name = "nearest-centroid"
    feature = "logmel-stats"  # a built-in feature extractor
    settings_model = CentroidSettings

    def build(self, settings: CentroidSettings, n_classes: int, seed: int) -> NearestCentroid:
        return NearestCentroid(settings, n_classes)  # deterministic: the seed is not needed

    def load(self, folder: Path) -> NearestCentroid:
        meta = json.loads((folder / "centroids.json").read_text())
        model = NearestCentroid(CentroidSettings.model_validate(meta["settings"]), meta["n_classes"])
        with np.load(folder / "centroids.npz", allow_pickle=False) as arrays:  # arrays only, no objects
            model.mean, model.std, model.centroids = arrays["mean"], arrays["std"], arrays["centroids"]
        return model


class ShuffleSplitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    splits: int = Field(3, ge=1, description="independent train/test splits, one unit each")
    test_size: float = Field(0.25, gt=0, lt=1)
    val_size: float = Field(0.2, gt=0, lt=1)


# Inherited from EvaluationProtocol: check (nothing to check before data is read),
# describe (the name and settings, for tables) and measured (None: like no published protocol).
class ShuffleSplit(EvaluationProtocol):
    name = "shuffle-split"
    settings_model = ShuffleSplitSettings

    def units(self, tracks: pd.DataFrame, settings: ShuffleSplitSettings, seed: int) -> pd.DataFrame:
        # tracks: one row per prepared track, sorted by uid, with quadrant, dataset and song_key.
        frames = []
        for unit in range(1, settings.splits + 1):
            split_seed = sub_seed(seed, unit)  # each split its own seed, all from the run's
            _, test, _, _ = stratified_holdout(song_groups(tracks), settings.test_size, split_seed, min_count=2)
            is_test = tracks["song_key"].isin(set(test["song_key"]))
            train, val = split_off_validation(tracks[~is_test], settings.val_size, split_seed)
            parts = [("train", train), ("val", val), ("test", tracks.loc[is_test, "uid"])]
            frames.append(unit_rows(unit, f"Split {unit}", parts))
        return pd.concat(frames, ignore_index=True)


@hookimpl
def mer_bench_datasets():
    return [MySongs()]


@hookimpl
def mer_bench_models():
    return [NearestCentroidFactory()]


@hookimpl
def mer_bench_protocols():
    return [ShuffleSplit()]
