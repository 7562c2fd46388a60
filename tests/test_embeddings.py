"""The embedding baselines: musicnn (offline, an extra) and OpenL3 (weights from outside)."""

import re
import subprocess
import sys
import textwrap

import pytest

from mer_bench.errors import FeatureError
from mer_bench_plugins.features import musicnn_embedding
from tests.conftest import run_cli


def test_openl3_mlp_is_unavailable_until_package_and_weights_are_there(tiny_site, tmp_path):
    """Never random weights: the run stops before reading data and says what to put where."""
    args = ("run", "--model", "openl3-mlp", "--datasets", "demo-tiny", "--no-progress", "--runs-dir", str(tmp_path / "runs"))
    no_package = run_cli(*args, site=tiny_site)
    assert no_package.returncode == 1
    assert no_package.stderr.startswith("error: the openl3 feature needs the openl3 package, which cannot be installed offline")
    # With a package present (a stand-in here), the missing weights file is named, with its source.
    (tiny_site / "openl3").mkdir()
    (tiny_site / "openl3" / "__init__.py").write_text("")
    no_weights = run_cli(*args, site=tiny_site, env={"MER_BENCH_WEIGHTS": str(tmp_path / "weights")})
    assert no_weights.returncode == 1
    expected = tmp_path / "weights" / "openl3_audio_mel256_music.h5"
    assert no_weights.stderr.startswith(f"error: OpenL3 weights not found at {expected}: download ")
    assert "https://github.com/marl/openl3/raw/models/openl3_audio_mel256_music-v0_4_0.h5.gz" in no_weights.stderr
    assert len(no_weights.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_musicnn_without_its_packages_says_how_to_install_them(monkeypatch):
    real = musicnn_embedding.importlib.util.find_spec
    monkeypatch.setattr(
        musicnn_embedding.importlib.util, "find_spec", lambda name: None if name in ("musicnn", "tf_keras") else real(name)
    )
    with pytest.raises(FeatureError) as error:
        musicnn_embedding.MusicnnEmbedding().check(musicnn_embedding.MusicnnSettings())
    # tf-keras at the installed TensorFlow's major.minor version.
    assert re.fullmatch(
        r"the musicnn feature needs musicnn, tf_keras: pip install --no-deps musicnn==0\.0?1\.0 'tf-keras==2\.\d+\.\*'",
        str(error.value),
    ), str(error.value)


def test_musicnn_embeds_the_prepared_clip_offline(tmp_path):
    """In its own process: musicnn needs TensorFlow imported with the legacy Keras."""
    pytest.importorskip("musicnn")
    code = textwrap.dedent(
        f"""
        import socket
        import numpy as np, soundfile as sf
        def refuse(*args, **kwargs):
            raise OSError("network blocked in this test")
        socket.socket.connect = refuse
        from mer_bench.types import Clip
        from mer_bench_plugins.features.musicnn_embedding import MusicnnEmbedding, MusicnnSettings
        sr = 22050
        t = np.arange(8 * sr) / sr
        rng = np.random.default_rng(0)
        sf.write("{tmp_path}/tone.wav", (0.02 * np.sin(2 * np.pi * 330 * t)).astype("float32"), sr)
        sf.write("{tmp_path}/noise.wav", rng.normal(0, 0.05, len(t)).astype("float32"), sr)
        # Quiet signals: musicnn's float16 spectrogram overflows on loud tones (the harness then
        # excludes the clip as non-finite-features).
        feature = MusicnnEmbedding()
        tone = feature.extract(Clip("d/a", "d", "{tmp_path}/tone.wav", 1.0, 6.0), MusicnnSettings())
        noise = feature.extract(Clip("d/b", "d", "{tmp_path}/noise.wav", 1.0, 6.0), MusicnnSettings())
        print(tone.shape, bool(np.isfinite(tone).all()), bool(np.abs(tone - noise).max() > 0.1))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    # 200 penultimate values per 3 s patch: their mean and std over the clip's two patches.
    assert out.stdout.split() == ["(400,)", "True", "True"]
