"""``process``: a pool of worker processes on this machine, one job per core or per GPU.

Workers start from a fork server (never a fork of a process that may hold TensorFlow's
threads) and import the plugins they need; the features reach them as paths to the
memory-mapped cache, the results come back to the driver, which alone writes the run
folder. A worker that dies fails the jobs it held (and the pool): the driver retries them
in a fresh pool.

With ``gpus = N`` the pool has N workers and each sees one GPU (``CUDA_VISIBLE_DEVICES``),
for jobs that ask for a GPU; otherwise it has one worker per ``cpus`` of the most demanding
job, over the cores of this machine.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.executors import Executor, Outcome, call, failed


class ProcessSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: int | None = Field(None, gt=0, description="None: the cores divided by the cpus each job asks for")
    gpus: int = Field(0, ge=0, description="GPUs on this machine to give one to each worker (0: none used)")


def _pin_gpu(devices) -> None:
    # Each worker takes one GPU id from the queue before TensorFlow is imported.
    os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


def pins_gpus(jobs: Sequence[Any], settings: ProcessSettings) -> bool:
    """Whether each worker gets one of the machine's GPUs: some are given and some job wants one."""
    return bool(settings.gpus) and any(job.resources.gpus for job in jobs)


def pool_size(jobs: Sequence[Any], settings: ProcessSettings) -> int:
    """How many workers: one per GPU, or the cores divided by the largest per-job cpu need."""
    if pins_gpus(jobs, settings):
        return settings.gpus
    if settings.workers:
        return settings.workers
    cpus = max((job.resources.cpus for job in jobs), default=1.0)
    return max(1, int((os.cpu_count() or 1) // max(cpus, 1.0)))


class ProcessExecutor(Executor):
    name = "process"
    settings_model = ProcessSettings

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], settings: ProcessSettings) -> Iterator[Outcome]:
        if not jobs:
            return
        context = multiprocessing.get_context("forkserver")
        workers = min(pool_size(jobs, settings), len(jobs))
        with contextlib.ExitStack() as stack:
            initializer, initargs = None, ()
            if pins_gpus(jobs, settings):
                devices = stack.enter_context(context.Manager()).Queue()
                for device in range(workers):
                    devices.put(device)
                initializer, initargs = _pin_gpu, (devices,)
            pool = stack.enter_context(
                ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
            )
            futures = {pool.submit(partial(call, fn), job): job for job in jobs}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # the worker died (BrokenProcessPool) or the job did not pickle
                    yield failed(futures[future], exc)


@hookimpl
def mer_bench_executors():
    return [ProcessExecutor()]
