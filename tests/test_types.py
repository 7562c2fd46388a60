"""The track table check that runs on every dataset plugin's output."""

import numpy as np
import pandas as pd
import pytest

from mer_bench.errors import DatasetError
from mer_bench.types import TRACK_COLUMNS, Scale, validate_tracks

SCALE = Scale(1.0, 9.0)


def table(**overrides):
    base = {
        "dataset": ["emo"] * 3,
        "track_id": ["1", "2", "3"],
        "audio_path": ["a.mp3", "b.mp3", "c.mp3"],
        "arousal": [2.0, 5.0, 8.5],
        "valence": [3.0, 6.0, 9.0],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_a_valid_table_gains_every_column():
    out = validate_tracks(table(), "emo", SCALE)
    assert set(TRACK_COLUMNS) <= set(out.columns)
    assert out["genre"].isna().all()
    assert out["arousal"].tolist() == [2.0, 5.0, 8.5]


def test_missing_columns_are_named():
    with pytest.raises(DatasetError, match=r"'emo'.*lacks column\(s\) audio_path"):
        validate_tracks(table().drop(columns=["audio_path"]), "emo", SCALE)


def test_nan_labels_name_the_rows():
    with pytest.raises(DatasetError, match=r"'emo'.*NaN.*rows: 2"):
        validate_tracks(table(valence=[3.0, np.nan, 9.0]), "emo", SCALE)


def test_duplicate_ids_are_named():
    with pytest.raises(DatasetError, match=r"'emo'.*duplicate track ids: 1, 1"):
        validate_tracks(table(track_id=["1", "1", "3"]), "emo", SCALE)


def test_values_outside_the_scale_are_named():
    with pytest.raises(DatasetError, match=r"outside its scale \[1.0, 9.0\] in rows: 3"):
        validate_tracks(table(arousal=[2.0, 5.0, 9.5]), "emo", SCALE)


def test_unknown_quadrant_names_are_refused():
    with pytest.raises(DatasetError, match=r"quadrant must be one of.*rows: 2"):
        validate_tracks(table(quadrant=[None, "Q1", None]), "emo", SCALE)


def test_quadrant_only_datasets_need_a_quadrant_on_every_row():
    rows = table(arousal=[np.nan] * 3, valence=[np.nan] * 3, quadrant=["A+V+", None, "A-V-"])
    with pytest.raises(DatasetError, match=r"no scale, so every row needs a quadrant: 2"):
        validate_tracks(rows, "emo", None)
    rows.loc[1, "quadrant"] = "A-V+"
    assert validate_tracks(rows, "emo", None)["quadrant"].tolist() == ["A+V+", "A-V+", "A-V-"]
