"""Where mer-bench keeps files: the cache, the runs folder, and pretrained weights it may not fetch."""

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


WEIGHTS_ENV = "MER_BENCH_WEIGHTS"


def weights_dir() -> Path:
    """``$MER_BENCH_WEIGHTS``, else the platform's user data folder for mer-bench + ``weights``.

    Where pretrained weights that cannot be downloaded at run time are looked for. Not a
    cache: mer-bench never deletes or writes anything there.
    """
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mer-bench")) / "weights"
