"""Preparation: decoded lengths, the central crop, balancing by distance from the axes, the report."""

import os
from pathlib import Path

import pandas as pd
import pytest

from mer_bench.exclusions import exclusions_table
from mer_bench.prepare import crop_tracks, prepare
from mer_bench.types import Scale
from tests.conftest import write_tone


def tracks_for(paths: dict[str, Path], dataset="d", **columns) -> pd.DataFrame:
    return pd.DataFrame(
        {"dataset": dataset, "track_id": list(paths), "audio_path": list(paths.values()), **columns}
    )


def test_crop_uses_decoded_length_and_a_file_short_of_its_stated_length_is_truncated(tmp_path):
    long = write_tone(tmp_path / "long.wav", 30.0)
    truncated = write_tone(tmp_path / "trunc.wav", 30.0)
    with open(truncated, "r+b") as f:
        f.truncate(truncated.stat().st_size * 65 // 100)  # a download cut at 65 % of its bytes
    encoded = write_tone(tmp_path / "encoded.wav", 29.6)  # an encoder's usual shortfall: kept
    short = write_tone(tmp_path / "short.wav", 20.0)
    tracks = tracks_for(
        {"long": long, "trunc": truncated, "encoded": encoded, "short": short, "unstated": truncated},
        duration_s=[30.0, 30.0, 30.0, 20.0, float("nan")],
    )
    out = crop_tracks(tracks, 12.0)
    assert out.tracks["track_id"].tolist() == ["long", "encoded", "short", "unstated"]
    assert out.tracks.loc[0, "clip_start_s"] == pytest.approx(9.0)
    assert out.tracks.loc[0, "clip_seconds"] == 12.0
    (excluded,) = out.excluded
    assert (excluded.track_id, excluded.stage, excluded.reason) == ("trunc", "prepare", "truncated")
    assert "19.50 s decoded of the 30.00 s the dataset states" in excluded.detail
    # Without a stated length only the clip length decides: the cut file is merely too short.
    (too_short,) = crop_tracks(tracks_for({"trunc": truncated}), 24.0).excluded
    assert (too_short.reason, too_short.detail) == ("too-short", "19.50 s decoded < 24 s")


def test_missing_and_corrupt_files_are_reported_not_dropped(tmp_path):
    corrupt = tmp_path / "bad.mp3"
    corrupt.write_bytes(os.urandom(3000))
    ok = write_tone(tmp_path / "ok.wav", 25.0)
    tracks = tracks_for({"gone": tmp_path / "gone.wav", "bad": corrupt, "ok": ok})
    out = crop_tracks(tracks, 24.0)
    assert out.tracks["track_id"].tolist() == ["ok"]
    report = exclusions_table(out.excluded)
    assert report.set_index("track_id")["reason"].to_dict() == {"bad": "decode-error", "gone": "audio-missing"}
    assert "bad.mp3" in report.set_index("track_id").loc["bad", "detail"]


def grid_tracks() -> pd.DataFrame:
    """Three tracks in A+V+, two in each other quadrant, on a [-1, 1] scale."""
    rows = [
        ("p1", 0.9, 0.1),  # score 0.1
        ("p2", 0.5, 0.5),  # score 0.5: kept
        ("p3", 0.6, 0.6),  # score 0.6: kept
        ("n1", 0.4, -0.4),
        ("n2", 0.3, -0.9),
        ("m1", -0.5, -0.5),
        ("m2", -0.2, -0.3),
        ("q1", -0.3, 0.3),
        ("q2", -0.7, 0.2),
    ]
    quadrant = {"p": "A+V+", "n": "A+V-", "m": "A-V-", "q": "A-V+"}
    return pd.DataFrame(
        {
            "dataset": "d",
            "track_id": [r[0] for r in rows],
            "arousal": [r[1] for r in rows],
            "valence": [r[2] for r in rows],
            "quadrant": [quadrant[r[0][0]] for r in rows],
        }
    )


def test_prepare_reports_every_exclusion_with_its_stage(tmp_path):
    tracks = grid_tracks()
    tracks["audio_path"] = [write_tone(tmp_path / f"{t}.wav", 20.0 if t == "q2" else 25.0) for t in tracks.track_id]
    out = prepare(tracks, {"d": Scale(-1, 1)}, 24.0, {"*": "equalise"})
    report = exclusions_table(out.excluded)
    # q2 is too short, so A-V+ has one track and every quadrant is cut to one.
    assert report[report.reason == "too-short"]["track_id"].tolist() == ["q2"]
    assert len(out.tracks) == 4
    assert len(report) + len(out.tracks) == len(tracks)
    unbalanced = prepare(tracks, {"d": Scale(-1, 1)}, 24.0, {"d": "none"})
    assert len(unbalanced.tracks) == 8


def test_each_dataset_is_prepared_with_its_own_policy(tmp_path):
    first = grid_tracks()
    second = grid_tracks().assign(dataset="e")
    tracks = pd.concat([first, second], ignore_index=True)
    tracks["audio_path"] = [write_tone(tmp_path / f"{d}{t}.wav", 25.0) for d, t in zip(tracks.dataset, tracks.track_id)]
    scales = {"d": Scale(-1, 1), "e": Scale(-1, 1)}
    out = prepare(tracks, scales, 24.0, {"d": "none", "*": "equalise"})
    assert out.tracks.groupby("dataset").size().to_dict() == {"d": 9, "e": 8}
    assert [(x.dataset, x.track_id) for x in out.excluded] == [("e", "p1")]


def test_lengths_are_measured_in_worker_processes_with_the_same_result(tmp_path):
    from mer_bench.cache import FeatureCache

    corrupt = tmp_path / "bad.mp3"
    corrupt.write_bytes(os.urandom(3000))
    paths = {f"t{i}": write_tone(tmp_path / f"t{i}.wav", 20.0 + 2 * i) for i in range(5)}
    tracks = tracks_for({**paths, "bad": corrupt, "gone": tmp_path / "gone.wav"})
    serial = crop_tracks(tracks, 24.0, jobs=1)
    parallel = crop_tracks(tracks, 24.0, jobs=2, cache=FeatureCache(tmp_path / "cache"))
    pd.testing.assert_frame_equal(serial.tracks, parallel.tracks)
    assert exclusions_table(serial.excluded).equals(exclusions_table(parallel.excluded))
    assert parallel.tracks["track_id"].tolist() == ["t2", "t3", "t4"]
    again = crop_tracks(tracks, 24.0, jobs=2, cache=FeatureCache(tmp_path / "cache"))  # from the cache
    pd.testing.assert_frame_equal(again.tracks, serial.tracks)
