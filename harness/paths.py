"""Where mer-bench keeps files it makes: the cache and the runs folder."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MER_BENCH_CACHE"
DATA_ENV = "MER_BENCH_DATA"
RUNS_ENV = "MER_BENCH_RUNS"


def cache_dir() -> Path:
    """``$MER_BENCH_CACHE``, else the platform's user cache folder for mer-bench. Safe to delete."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mer-bench"))


def default_runs_dir() -> Path:
    """``$MER_BENCH_RUNS``, else ``./runs``."""
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser()


def default_data_dir() -> Path | None:
    """``$MER_BENCH_DATA`` if set: the folder holding one folder per dataset."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None
