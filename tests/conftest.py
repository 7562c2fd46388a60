"""Shared fixtures: an isolated cache, small audio files, and plugin distributions made on the fly."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mer_bench.registry import load_registry
from tests.no_network.sitecustomize import guard

#: The folder whose sitecustomize keeps every `mer-bench` a test runs off the network.
NO_NETWORK = Path(__file__).parent / "no_network"

# Keras reads KERAS_HOME once, when first imported: point it (here and in every CLI
# subprocess) at a folder of the test session's own, never the user's ~/.keras.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="mer-bench-keras-")
atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# librosa caches its numba functions beside its sources, and numba's cache of a guvectorized
# function is corrupted when two processes compile it at the same moment (numba/numba#10128):
# every later call then segfaults. Each xdist worker (and the CLIs it starts) gets a cache
# of its own; nothing is shared with the user's.
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"mer-bench-numba-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], True)

REPO = Path(__file__).resolve().parents[1]
BUILTINS = load_registry().builtins.plugins

#: A third-party plugin module that offers a small demo dataset (the same generator, fewer tracks).
TINY_DEMO = """
from mer_bench import hookimpl
from mer_bench_plugins.datasets.demo import DemoDataset

@hookimpl
def mer_bench_datasets():
    return [DemoDataset(name="demo-tiny", tracks_per_quadrant=12, seed=11)]
"""


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never open a connection beyond this machine (tests/no_network/sitecustomize.py)."""
    monkeypatch.setattr(socket.socket, "connect", guard(socket.socket.connect, AssertionError))


@pytest.fixture(autouse=True)
def isolated_cache(cache_root, monkeypatch):
    """One cache per test session, never the user's."""
    monkeypatch.setenv("MER_BENCH_CACHE", str(cache_root))
    monkeypatch.delenv("MER_BENCH_DATA", raising=False)
    monkeypatch.delenv("MER_BENCH_RUNS", raising=False)


@pytest.fixture
def tiny_plugins(tmp_path, monkeypatch):
    """The built-in plugins and the tiny demo dataset (``demo-tiny``), loaded in this process."""
    return load_with_module(tmp_path, monkeypatch, "tiny_demo", TINY_DEMO)


def load_with_module(tmp_path: Path, monkeypatch, module: str, source: str):
    """The built-in plugins and plugin module ``module`` (its ``source`` written to a site
    folder under ``tmp_path`` and put on sys.path), loaded in this process."""
    from mer_bench.plugin_manager import load_plugins

    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(site))
    return load_plugins([*BUILTINS, module], entry_points=False)


def write_tone(path: Path, seconds: float, sample_rate: int = 16000, channels: int = 1, freq: float = 440.0) -> Path:
    """A sine tone file (format from the suffix)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sample_rate)
    return path


def make_distribution(site: Path, dist: str, version: str, modules: dict[str, str], entry_points: dict[str, str]) -> Path:
    """Install a minimal distribution into ``site`` by hand: modules plus a dist-info with entry points.

    importlib.metadata finds it like any installed package when ``site`` is on sys.path.
    """
    site.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[mer_bench]\n{lines}\n")
    return site


@pytest.fixture
def tiny_site(tmp_path) -> Path:
    """A site folder holding the ``demo-tiny`` dataset plugin as an installed distribution."""
    return make_distribution(tmp_path / "site", "mer-bench-tiny", "1.0", {"tiny_demo": TINY_DEMO}, {"tiny": "tiny_demo"})


def pip_install_target(source: Path, target: Path) -> None:
    """``pip install`` a source folder, non-editable and without dependencies, into ``target``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )


def run_cli(*args: str, site: Path | None = None, env: dict | None = None, cwd: Path | None = None, timeout=300):
    """Run ``mer-bench`` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    # The guard's folder first: its sitecustomize keeps the command off the network.
    paths = [str(NO_NETWORK), str(site) if site is not None else "", full_env.get("PYTHONPATH", "")]
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return subprocess.run(
        [sys.executable, "-m", "mer_bench", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


#: A third-party plugin module with three small demo sources that share the emotion cues
#: but sound different (studio, lo-fi, live), for the cross-dataset protocols.
TINY_SOURCES = """
from mer_bench import hookimpl
from mer_bench_plugins.datasets.demo import DemoDataset

@hookimpl
def mer_bench_datasets():
    return [
        DemoDataset(name="src-studio", tracks_per_quadrant=12, seed=21),
        DemoDataset(name="src-lofi", tracks_per_quadrant=12, seed=22, character="lofi"),
        DemoDataset(name="src-live", tracks_per_quadrant=12, seed=23, character="live"),
    ]
"""
