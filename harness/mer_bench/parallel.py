"""Running one function over many items in worker processes, for the stages that read audio."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

from mer_bench.progress import SILENT, Progress

#: Libraries whose threads do not survive a fork: a forked worker of a process that has
#: loaded one can deadlock on its first call into it.
FORK_UNSAFE = ("tensorflow", "torch", "jax")

T = TypeVar("T")
R = TypeVar("R")


def die_with_parent() -> None:
    """End this worker process when the process that started it ends, however it ends.

    A pool's workers otherwise outlive a parent killed with SIGKILL (each still holds its
    end of the task pipe, so none sees it close) and stay as orphans holding their memory.
    On Linux the kernel signals the worker (``PR_SET_PDEATHSIG``); elsewhere a daemon
    thread notices that the parent changed.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0:
            # The parent may have died between fork and prctl.
            if os.getppid() != parent:
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="mer-bench-parent-watch", daemon=True).start()


def _init_worker() -> None:
    die_with_parent()
    # One BLAS thread per worker: the pool already uses every core, and two processes
    # with two OpenBLAS threads each run a Mel product slower than one process does.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _context():
    """``fork`` (workers inherit what the parent loaded), or ``forkserver`` once the parent
    has loaded a library that cannot be forked, such as TensorFlow for an embedding."""
    if any(name in sys.modules for name in FORK_UNSAFE):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("fork")


def run_parallel(
    fn: Callable[[T], R], items: Sequence[T], jobs: int | None = None, progress: Progress = SILENT, label: str = ""
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, fn(item))`` for every item, in completion order.

    ``jobs`` is the number of processes (None: one per core; 1: in this process). ``fn``
    must be picklable (a module-level function or a partial of one) and should return
    failures as values: exceptions stop the run.
    """
    workers = min(jobs or os.cpu_count() or 1, len(items))

    def results() -> Iterator[tuple[T, R]]:
        if workers <= 1:
            for item in items:
                yield item, fn(item)
            return
        # The first item runs here: it loads the libraries fn needs (and their JIT caches)
        # once, before the fork, instead of once in every worker.
        yield items[0], fn(items[0])
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, mp_context=_context())
        try:
            futures = {pool.submit(fn, item): item for item in items[1:]}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            # On an error, Ctrl-C or SIGTERM: drop the items not started instead of working
            # through them, and wait only for those under way.
            pool.shutdown(wait=True, cancel_futures=True)

    yield from progress.track(results(), label, total=len(items))
