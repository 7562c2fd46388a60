"""Feature extraction through the cache, and the paper's mel-image, checked against independent sums."""

import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from pydantic import BaseModel

from mer_bench.cache import FeatureCache
from mer_bench.errors import AudioError
from mer_bench.features import Features, extract_features
from mer_bench_plugins.features.mel_image import MelImage, MelImageSettings, absolute_db
from tests.conftest import run_cli, write_tone


class NoSettings(BaseModel):
    pass


class Knob(BaseModel):
    level: int = 0


class StartExtractor:
    """Per clip: its start time; per dataset: centred on the dataset's mean."""

    name = "start"
    settings_model = NoSettings

    def __init__(self):
        self.calls = 0

    def extract(self, clip, settings):
        self.calls += 1
        if clip.audio_path.name == "bad.wav":
            raise AudioError(clip.audio_path, "cannot decode: test")
        return np.array([float(clip.start_s)])

    def finish_dataset(self, arrays, settings):
        return arrays - arrays.mean(axis=0)


def table(tmp_path, names, datasets, starts):
    for i, name in enumerate(names):
        if name != "gone.wav":
            write_tone(tmp_path / name, 1.0, freq=200.0 + 50 * i)
    return pd.DataFrame(
        {
            "dataset": datasets,
            "track_id": [str(i) for i in range(len(names))],
            "audio_path": [tmp_path / n for n in names],
            "clip_start_s": starts,
            "clip_seconds": 24.0,
        }
    )


def test_finish_runs_per_dataset_and_failures_are_excluded(tmp_path):
    tracks = table(tmp_path, ["x.wav", "y.wav", "z.wav", "bad.wav", "gone.wav", "w.wav"],
                   ["a", "a", "b", "b", "b", "b"], [1.0, 3.0, 10.0, 0.0, 0.0, 20.0])
    features = extract_features(tracks, StartExtractor(), NoSettings(), cache=FeatureCache(tmp_path / "cache"))
    assert features.uids == ["a/0", "a/1", "b/2", "b/5"]
    assert features.x[:, 0].tolist() == [-1.0, 1.0, -5.0, 5.0]
    assert features.rows(["b/5", "a/0", "b/3"])[:, 0].tolist() == [5.0, -1.0]
    reasons = {(e.track_id, e.reason) for e in features.excluded}
    assert reasons == {("3", "decode-error"), ("4", "audio-missing")}
    assert features.counts == {"hits": 0, "computed": 4, "failed": 2, "rebuilt": 0}


def test_rows_read_only_what_is_taken_in_the_order_asked(tmp_path):
    blocks = [np.arange(12, dtype=np.float32).reshape(4, 3), 100 + np.arange(6, dtype=np.float32).reshape(2, 3)]
    features = Features(blocks, ["a/0", "a/1", "a/2", "a/3", "b/0", "b/1"], [])
    rows = features.select(["b/1", "a/2", "gone/9", "a/0"])
    assert len(rows) == 3 and rows.shape == (3, 3) and rows.dtype == np.float32
    assert rows.take([2, 0], axis=0)[:, 0].tolist() == [0.0, 103.0]
    assert np.asarray(rows)[:, 0].tolist() == [103.0, 6.0, 0.0]
    assert rows[1].tolist() == [6.0, 7.0, 8.0]
    assert rows[np.array([True, False, True])][:, 0].tolist() == [103.0, 0.0]
    np.testing.assert_array_equal(features.rows(["b/1", "a/2", "a/0"]), np.asarray(rows))
    with pytest.raises(AttributeError, match="use np.asarray"):
        rows.mean()


def test_cache_hits_and_misses_follow_content_settings_and_window(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    tracks = table(tmp_path, ["x.wav", "y.wav"], ["a", "a"], [1.0, 2.0])
    extractor = StartExtractor()
    extract_features(tracks, extractor, NoSettings(), cache=cache)
    assert extractor.calls == 2
    again = extract_features(tracks, extractor, NoSettings(), cache=cache)
    assert extractor.calls == 2 and again.counts["hits"] == 2
    write_tone(tmp_path / "y.wav", 1.0, freq=999.0)  # same name, new content
    extract_features(tracks, extractor, NoSettings(), cache=cache)
    assert extractor.calls == 3
    moved = tracks.assign(clip_start_s=[1.0, 2.5])  # another window of the same file
    extract_features(moved, extractor, NoSettings(), cache=cache)
    assert extractor.calls == 4
    extract_features(tracks, extractor, NoSettings(), cache=cache, versions={"librosa": "99"})
    assert extractor.calls == 6  # another library version: every entry is stale
    extract_features(tracks, extractor, Knob(level=1), cache=cache)
    assert extractor.calls == 8  # another setting: a miss too
    extract_features(tracks, extractor, Knob(level=1), cache=cache)
    assert extractor.calls == 8


def test_damaged_entries_are_detected_and_rebuilt(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    tracks = table(tmp_path, ["x.wav", "y.wav"], ["a", "a"], [1.0, 3.0])
    extractor = StartExtractor()
    first = extract_features(tracks, extractor, NoSettings(), cache=cache).x
    (block,) = (tmp_path / "cache" / "finished").glob("*/*.npy")
    block.write_bytes(b"not an array")  # a damaged dataset block is rebuilt from the clip entries
    assert np.array_equal(extract_features(tracks, extractor, NoSettings(), cache=cache).x, first)
    assert extractor.calls == 2
    entries = sorted((tmp_path / "cache" / "start").glob("*/*.npy"))
    entries[0].write_bytes(b"\x93NUMPY garbage")
    entries[1].write_bytes(entries[1].read_bytes()[:-4])  # truncated
    shutil.rmtree(tmp_path / "cache" / "finished")  # so the clip entries are needed again
    again = extract_features(tracks, extractor, NoSettings(), cache=cache).x
    assert extractor.calls == 4 and np.array_equal(first, again)
    assert cache.get("start", entries[0].stem) is not None


def flip_bit_in_data(path, from_end: int) -> None:
    """Flip one bit of the array data, leaving the .npy header and its size intact."""
    raw = bytearray(path.read_bytes())
    raw[-from_end] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_in_a_block_or_entry_is_caught_by_its_checksum_and_rebuilt(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    tracks = table(tmp_path, ["x.wav", "y.wav", "z.wav"], ["a"] * 3, [1.0, 3.0, 8.0])
    extractor = StartExtractor()
    first = np.array(extract_features(tracks, extractor, NoSettings(), cache=cache).x)  # a copy, not the memory map
    (block,) = (tmp_path / "cache" / "finished").glob("*/*.npy")
    # The last bytes are the trailer (a marker and a 32-byte sha256); flip a float before it.
    flip_bit_in_data(block, 32 + 25 + 3)
    assert np.load(block, allow_pickle=False).shape == (3, 1)  # still a valid array, with another value
    again = extract_features(tracks, extractor, NoSettings(), cache=cache)
    assert np.array_equal(again.x, first) and again.counts["rebuilt"] == 1
    entry = sorted((tmp_path / "cache" / "start").glob("*/*.npy"))[1]
    flip_bit_in_data(entry, 32 + 25 + 3)
    shutil.rmtree(tmp_path / "cache" / "finished")
    third = extract_features(tracks, extractor, NoSettings(), cache=cache)
    assert np.array_equal(third.x, first) and third.counts["rebuilt"] == 1
    assert extractor.calls == 4  # the three clips once, and the damaged one again


def test_unchanged_files_are_hashed_once(tmp_path, monkeypatch):
    import mer_bench.cache as cache_module

    cache = FeatureCache(tmp_path / "cache")
    path = write_tone(tmp_path / "t.wav", 1.0)
    hashed = []
    real = cache_module.file_digest
    monkeypatch.setattr(cache_module, "file_digest", lambda p: hashed.append(p) or real(p))
    first = cache.digest(path)
    assert cache.digest(path) == first and len(hashed) == 1
    write_tone(path, 1.0, freq=500.0)  # rewritten: new mtime, new digest
    assert cache.digest(path) != first and len(hashed) == 2


def test_worker_processes_give_the_same_features_and_report_a_corrupt_file(tmp_path):
    names = [f"t{i}.wav" for i in range(5)] + ["bad.mp3"]
    tracks = table(tmp_path, names, ["a"] * 6, [0.0] * 6)
    (tmp_path / "bad.mp3").write_bytes(b"ID3" + b"\x00" * 100 + b"not audio" * 100)
    tracks["clip_seconds"] = 0.5
    settings = MelImageSettings(size=32)
    parallel = extract_features(tracks, MelImage(), settings, cache=FeatureCache(tmp_path / "c2"), jobs=2)
    serial = extract_features(tracks, MelImage(), settings, cache=FeatureCache(tmp_path / "c1"), jobs=1)
    assert np.array_equal(parallel.x, serial.x) and len(parallel.uids) == 5
    (excluded,) = parallel.excluded
    assert excluded.reason == "decode-error" and "bad.mp3" in excluded.detail


class LoudnessOrNaN:
    """A feature that is NaN for loud clips, as musicnn's float16 spectrogram overflows."""

    name = "loudness-or-nan"
    settings_model = MelImageSettings

    def check(self, settings) -> None:
        """Nothing to check."""

    def extract(self, clip, settings) -> np.ndarray:
        from mer_bench.audio import load_clip

        peak = float(np.abs(load_clip(clip.audio_path, clip.start_s, clip.duration_s, 8000)).max())
        return np.array([np.nan if peak > 0.5 else peak])

    def finish_dataset(self, arrays, settings):
        return arrays


def test_nan_features_exclude_their_clip_with_a_reason_and_are_not_cached(tmp_path):
    tracks = table(tmp_path, ["quiet.wav", "loud.wav"], ["a", "a"], [0.0, 0.0])
    sf.write(str(tmp_path / "loud.wav"), sine(440.0, 0.9), 22050)
    tracks["clip_seconds"] = 0.5
    cache = FeatureCache(tmp_path / "c")
    for _ in range(2):  # the second time, the NaN clip is computed (and excluded) again
        features = extract_features(tracks, LoudnessOrNaN(), MelImageSettings(), cache=cache, jobs=1)
        assert features.uids == ["a/0"] and np.isfinite(features.x).all()
        (excluded,) = features.excluded
        assert (excluded.track_id, excluded.stage, excluded.reason) == ("1", "features", "non-finite-features")
        assert "loudness-or-nan gave NaN or infinite values" in excluded.detail
    assert features.counts == {"hits": 1, "computed": 0, "failed": 1, "rebuilt": 0}


def sine(freq, amplitude, seconds=2.0, sr=22050):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_absolute_db_matches_an_independent_stft_and_filterbank():
    import librosa

    settings = MelImageSettings()
    y = sine(1000.0, 0.5)
    ours = absolute_db(y, settings)
    # Independent: frame, window and FFT by hand, then librosa's Mel filterbank as reference data.
    padded = np.pad(y, settings.n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, settings.n_fft)[:: settings.hop_length]
    window = np.hanning(settings.n_fft + 1)[:-1]  # periodic Hann, as scipy's get_window
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    bank = librosa.filters.mel(sr=settings.sample_rate, n_fft=settings.n_fft, n_mels=settings.n_mels)
    expected = 10 * np.log10(np.maximum(bank @ power.T, 1e-10))
    assert ours.shape == expected.shape == (128, 1 + len(y) // settings.hop_length)
    middle = slice(5, -5)
    assert np.abs(ours[:, middle] - expected[:, middle]).max() < 1e-3
    # The loudest band is the one whose centre is nearest 1 kHz.
    centres = librosa.mel_frequencies(n_mels=settings.n_mels + 2, fmax=settings.sample_rate / 2)[1:-1]
    assert ours[:, middle].mean(axis=1).argmax() == np.abs(centres - 1000.0).argmin()


def test_each_dataset_reaches_0_db_at_its_own_maximum_and_keeps_its_differences(tmp_path):
    sr = 22050
    specs = {("loud", "a"): 0.5, ("loud", "b"): 0.05, ("quiet", "a"): 0.05, ("quiet", "b"): 0.005}
    rows = []
    for (dataset, name), amplitude in specs.items():
        path = tmp_path / f"{dataset}-{name}.wav"
        sf.write(str(path), sine(1000.0, amplitude, 3.0, sr), sr, subtype="FLOAT")
        rows.append({"dataset": dataset, "track_id": name, "audio_path": path, "clip_start_s": 0.5, "clip_seconds": 2.0})
    settings = MelImageSettings()
    features = extract_features(pd.DataFrame(rows), MelImage(), settings, cache=FeatureCache(tmp_path / "cache"))
    images = dict(zip(features.uids, features.x))
    for dataset in ("loud", "quiet"):
        louder, softer = images[f"{dataset}/a"], images[f"{dataset}/b"]
        assert louder.shape == (300, 300, 3) and louder.dtype == np.uint8
        # 0 dB against the dataset's own maximum is 255; bilinear upsampling of 128 Mel rows
        # to 300 pixel rows samples between bands, so allow 5 levels (1.6 dB).
        assert louder.max() >= 250
        # 20 dB quieter within its dataset: 20/80 of the 255 range, at the tone's rows
        band = louder[:, :, 0].astype(float).max(axis=1).argmax()
        difference = float(louder[band, 50:250, 0].mean()) - float(softer[band, 50:250, 0].mean())
        assert difference == pytest.approx(20 / 80 * 255, abs=3)
    # Each dataset's loudest clip looks the same against its own reference (up to float16
    # rounding of the cached dB); against one shared reference the quiet one would be 20 dB down.
    assert np.abs(images["loud/a"].astype(int) - images["quiet/a"]).max() <= 1
    assert (images["loud/a"][:, :, 0] == images["loud/a"][:, :, 2]).all()


def test_the_db_floor_is_the_datasets_reference_minus_top_db_not_each_clips_own_maximum():
    import librosa

    loud = np.zeros((128, 40), dtype=np.float32)  # the dataset's reference: 0 dB
    quiet = np.full((128, 40), -30.0, dtype=np.float32)
    quiet[:64] = -100.0  # 70 dB below the quiet clip's own maximum, 100 dB below the reference
    images = MelImage().finish_dataset(np.stack([loud, quiet]), MelImageSettings(size=128))
    picture = images[1][::-1, :, 0]  # back to spectrogram row order (the image has low rows at the bottom)
    assert picture[:60].max() == 0  # below the dataset's floor (-80 dB): black
    assert abs(int(picture[70:].mean()) - round(50 / 80 * 255)) <= 1  # -30 dB: 50 of the 80 dB range
    # librosa's power_to_db floors at the clip's own maximum minus top_db: it keeps the -100 dB.
    own = librosa.power_to_db(10.0 ** (quiet / 10.0), ref=1.0, top_db=80.0)
    assert own.min() == pytest.approx(-100.0, abs=1e-3)


def test_a_colour_map_fills_three_different_channels():
    db = np.linspace(-80, 0, 128 * 50, dtype=np.float32).reshape(128, 50)
    image = MelImage().finish_dataset(db[None], MelImageSettings(channels="viridis", size=64))[0]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert not np.array_equal(image[:, :, 0], image[:, :, 1])
    # low frequencies (row 0 of the spectrogram) at the bottom of the image
    grey = MelImage().finish_dataset(db[None], MelImageSettings(size=64))[0][:, :, 0]
    assert grey[-1].mean() < grey[0].mean()


def test_the_features_command_warms_the_cache_that_cache_info_and_clear_manage(tiny_site):
    args = ("features", "--datasets", "demo-tiny", "--feature", "logmel-stats", "--jobs", "2", "--no-progress")
    run_cli("cache", "clear", "--yes")
    first = run_cli(*args, site=tiny_site)
    assert first.returncode == 0, first.stderr
    computed = int(first.stdout.split(" extracted")[0].split()[-1])
    assert computed > 30 and "0 clips already cached" in first.stdout
    second = run_cli(*args, site=tiny_site)
    assert f"{computed} clips already cached, 0 extracted, 0 failed" in second.stdout
    info = run_cli("cache", "info")
    assert f"logmel-stats: {computed} entries" in info.stdout and "decoded-duration" in info.stdout
    assert run_cli("cache", "clear", "--yes").stdout.startswith("freed")
    assert "empty" in run_cli("cache", "info").stdout
    unknown = run_cli("features", "--datasets", "demo-tiny", "--feature", "mfcc", site=tiny_site)
    assert unknown.returncode == 1 and "unknown feature plugin 'mfcc'" in unknown.stderr
