"""Where unit jobs run: the executor interface, and the driver loop that retries and collects.

An executor (a plugin, hook ``mer_bench_executors``) runs picklable jobs with a function
and yields one :class:`Outcome` per job as each finishes, a result or an error, never
raising for one job's failure. :func:`execute` is the driver: it hands every result to
the caller (who writes it into the run folder, on this machine only), runs failed jobs
again up to ``retries`` times, and returns the jobs that still failed.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from mer_bench.defaults import has_default
from mer_bench.progress import SILENT, Progress


@dataclass(frozen=True)
class Resources:
    """What one job asks of a machine. Ray schedules by it; the process pool sizes itself by it.

    ``gpus`` is what the job can use: executors ask for it only where GPUs exist, so a
    deep model still runs on a CPU-only machine.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0


@dataclass
class Outcome:
    """One job's end: its result, or the error that stopped it (one line, and the traceback)."""

    job: Any
    result: Any = None
    error: str = ""
    traceback: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def failed(job: Any, exc: BaseException) -> Outcome:
    """The outcome of ``job`` stopped by ``exc``."""
    return Outcome(
        job, error=f"{type(exc).__name__}: {exc}", traceback="".join(traceback.format_exception(exc)).rstrip()
    )


def call(fn: Callable[[Any], Any], job: Any) -> Outcome:
    """``fn(job)`` as an outcome: what executors run for each job, wherever they run it."""
    try:
        return Outcome(job, result=fn(job))
    except Exception as exc:  # one job's failure is reported, never fatal to the others
        return failed(job, exc)


@runtime_checkable
class Executor(Protocol):
    """Runs jobs somewhere and yields their outcomes as they finish.

    ``check`` runs before any work starts and raises
    :class:`~mer_bench.errors.ExecutorError` saying what to install or start. ``run`` gets
    jobs that each have a ``resources`` (:class:`Resources`) and a ``label``; it yields
    exactly one :class:`Outcome` per job, in any order, also for a job whose worker died.
    """

    name: str
    settings_model: type[BaseModel]

    @has_default
    def check(self, settings: Any) -> None:
        """Raise ExecutorError if jobs cannot run here; by default nothing is checked."""

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], settings: Any) -> Iterator[Outcome]: ...


def execute(
    executor: Executor,
    settings: Any,
    jobs: Sequence[Any],
    fn: Callable[[Any], Any],
    on_result: Callable[[Any, Any], None],
    *,
    retries: int = 1,
    progress: Progress = SILENT,
) -> list[Outcome]:
    """Run ``fn`` on every job with ``executor``; ``on_result(job, result)`` as each succeeds.

    A job that fails is run again, up to ``retries`` more times (a worker that died, a
    node that left); the outcomes of the jobs that failed every attempt are returned,
    and the others' results have been delivered whatever happened to those.
    """
    pending = list(jobs)
    last: list[Outcome] = []
    for attempt in range(retries + 1):
        if not pending:
            break
        label = f"{executor.name}: {len(pending)} jobs" + (f" (retry {attempt})" if attempt else "")
        last = []
        for outcome in progress.track(executor.run(fn, pending, settings), label, total=len(pending)):
            if outcome.ok:
                on_result(outcome.job, outcome.result)
            else:
                last.append(outcome)
        pending = [o.job for o in last]
    return last
