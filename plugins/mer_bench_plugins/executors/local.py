"""``local``: every job in this process, one after another (the default)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from mer_bench import hookimpl
from mer_bench.executors import Executor, Outcome, call


class LocalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalExecutor(Executor):
    name = "local"
    settings_model = LocalSettings

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], settings: LocalSettings) -> Iterator[Outcome]:
        for job in jobs:
            yield call(fn, job)


@hookimpl
def mer_bench_executors():
    return [LocalExecutor()]
