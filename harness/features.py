"""Stage 5, features: run a feature extractor over every prepared clip, dataset by dataset.

A clip that fails to decode is excluded with its path and reason and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mer_bench.errors import AudioError
from mer_bench.progress import SILENT, Progress
from mer_bench.protocol import track_uids
from mer_bench.types import Clip, Exclusion, FeatureExtractor


@dataclass
class Features:
    """One row of ``x`` per uid in ``uids``; ``excluded`` lists clips that yielded no features."""

    x: np.ndarray
    uids: list[str]
    excluded: list[Exclusion]

    def rows(self, uids: list[str]) -> np.ndarray:
        """The feature rows of ``uids`` that have features, in that order."""
        index = {u: i for i, u in enumerate(self.uids)}
        return self.x[[index[u] for u in uids if u in index]]


def extract_features(
    tracks: pd.DataFrame, extractor: FeatureExtractor, settings: Any, progress: Progress = SILENT
) -> Features:
    """Extract features for every prepared track; ``finish_dataset`` runs once per dataset."""
    tracks = tracks.assign(uid=track_uids(tracks))
    blocks, uids, excluded = [], [], []
    for dataset, rows in tracks.groupby("dataset", sort=False):
        arrays, kept = [], []
        for row in progress.track(list(rows.itertuples(index=False)), f"{extractor.name} features: {dataset}"):
            clip = Clip(row.uid, row.dataset, row.audio_path, float(row.clip_start_s), float(row.clip_seconds))
            try:
                arrays.append(np.asarray(extractor.extract(clip, settings)))
            except AudioError as exc:
                excluded.append(Exclusion(row.dataset, row.track_id, "features", "decode-error", str(exc)))
                continue
            kept.append(row.uid)
        if arrays:
            blocks.append(np.asarray(extractor.finish_dataset(np.stack(arrays), settings)))
            uids.extend(kept)
    x = np.concatenate(blocks) if blocks else np.empty((0,))
    return Features(x, uids, excluded)
