"""Decoding: exact decoded lengths, mono mixdown, anti-aliased resampling, clear errors."""

import os

import numpy as np
import pytest
import soundfile as sf

from mer_bench.audio import decoded_duration, load_clip
from mer_bench.errors import AudioError
from tests.conftest import write_tone


def test_decoded_duration_ignores_a_header_that_claims_more(tmp_path):
    path = write_tone(tmp_path / "t.wav", 30.0)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    assert decoded_duration(path) == pytest.approx(15.0, abs=0.01)


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_every_archive_format_decodes(tmp_path, suffix):
    path = write_tone(tmp_path / f"t.{suffix}", 3.0, sample_rate=22050, channels=2)
    assert decoded_duration(path) == pytest.approx(3.0, abs=0.06)


def test_load_clip_resamples_and_keeps_pitch(tmp_path):
    path = write_tone(tmp_path / "t.wav", 10.0, sample_rate=16000, channels=2, freq=1000.0)
    y = load_clip(path, 2.0, 4.0, 22050)
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) == 4 * 22050
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / 22050)[spectrum.argmax()] == pytest.approx(1000.0, abs=1.0)


def test_load_clip_averages_channels(tmp_path):
    x = np.stack([np.full(16000, 0.5), np.full(16000, -0.1)], axis=1).astype(np.float32)
    sf.write(str(tmp_path / "s.wav"), x, 16000, subtype="FLOAT")
    assert load_clip(tmp_path / "s.wav", 0.0, 1.0, 16000) == pytest.approx(np.full(16000, 0.2), abs=1e-6)


def test_resampling_filters_what_the_new_rate_cannot_hold(tmp_path):
    # 15 kHz at 44.1 kHz would alias to 7.05 kHz at 22.05 kHz without an anti-aliasing filter.
    path = write_tone(tmp_path / "hi.wav", 2.0, sample_rate=44100, freq=15000.0)
    y = load_clip(path, 0.5, 1.0, 22050)
    assert np.sqrt(np.mean(y**2)) < 1e-3


def test_mp3_decoding_prints_nothing_to_stderr(tmp_path, capfd):
    # Music-like content with a bit reservoir in use: a seek or a second read call made
    # libmpg123 print "part2_3_length ... too large" for such files.
    from mer_bench_plugins.datasets.demo import piece_parameters, synthesize

    rng = np.random.default_rng(0)
    audio = synthesize(piece_parameters(0.6, -0.4, rng), 30.0, 16000, rng)
    path = tmp_path / "music.mp3"
    sf.write(str(path), audio, 16000, format="MP3")
    whole, _ = sf.read(str(path), dtype="float32")
    capfd.readouterr()
    seconds = decoded_duration(path)
    clip = load_clip(path, 3.0, 24.0, 16000)
    assert capfd.readouterr().err == ""
    assert seconds == pytest.approx(len(whole) / 16000)
    assert clip == pytest.approx(whole[48000 : 48000 + 24 * 16000], abs=1e-6)


def test_errors_name_the_file_and_reason(tmp_path):
    bad = tmp_path / "corrupt.mp3"
    bad.write_bytes(os.urandom(4000))
    with pytest.raises(AudioError, match="corrupt.mp3: cannot decode"):
        decoded_duration(bad)
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        decoded_duration(tmp_path / "missing.wav")
    short = write_tone(tmp_path / "short.wav", 2.0)
    with pytest.raises(AudioError, match=r"only 1.00 s decoded from 1 s, 5 s needed"):
        load_clip(short, 1.0, 5.0, 16000)
