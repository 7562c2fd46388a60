"""``ray``: unit jobs on a Ray cluster (``pip install 'mer-bench[ray]'``), see docs/scaling.md.

``address`` names a running cluster (``auto``, ``HOST:6379`` or ``ray://HOST:10001``);
without one a private Ray instance is started on this machine for the run, bound to
the loopback interface, and stopped after it. Each job is a Ray task with the job's
resources (``num_cpus``, ``num_gpus`` where the cluster has GPUs, ``memory``). Inputs
travel once: each run's feature blocks are put into Ray's object store one time and
every unit job of that run reads them from there (``ship = "object-store"``), or jobs
carry only the paths of the memory-mapped cache for clusters whose workers share that
folder (``ship = "path"``). Ray itself never retries a task (``max_retries = 0``): a task
whose worker died comes back as a failure and the driver decides, so that a job is
retried the same bounded number of times with every executor.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.errors import ExecutorError
from mer_bench.executors import Executor, Outcome, call, failed

RAY_MISSING = "the ray executor needs Ray: pip install 'mer-bench[ray]'"
CONNECT_TIMEOUT_S = 5.0


class RaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="a running cluster; None starts a private local instance")
    ship: Literal["object-store", "path"] = Field("object-store", description="how the feature arrays reach workers")
    num_cpus: int | None = Field(None, gt=0, description="cores of a private local instance (None: all)")


def _call_shipped(fn: Callable[[Any], Any], job: Any, features: Any) -> Outcome:
    # Ray resolved ``features`` from the object store; the job travelled without it.
    return call(fn, dataclasses.replace(job, features=features))


def _outcome_job(outcome: Outcome, job: Any) -> Outcome:
    # The driver's own job object, not the copy that travelled.
    outcome.job = job
    return outcome


class RayExecutor(Executor):
    name = "ray"
    settings_model = RaySettings

    def check(self, settings: RaySettings) -> None:
        """Ray importable (without importing it), and a cluster address answering.

        Ray waits minutes for an address that does not answer; a TCP connection that
        fails within seconds says so at once.
        """
        if importlib.util.find_spec("ray") is None:
            raise ExecutorError(RAY_MISSING)
        if settings.address and settings.address != "auto":
            host, _, port = settings.address.removeprefix("ray://").rpartition(":")
            if not host or not port.isdigit():
                raise ExecutorError(f"Ray address {settings.address!r} is not auto, HOST:PORT or ray://HOST:PORT")
            try:
                socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
            except OSError as exc:
                raise ExecutorError(
                    f"cannot reach Ray at {settings.address}: {exc.strerror or exc}; start the head node with "
                    "'ray start --head' (docs/scaling.md) or leave out --address for a local instance"
                ) from None

    def _connect(self, ray, settings: RaySettings) -> bool:
        """Attach to the cluster or start a private instance; whether this call started one."""
        if ray.is_initialized():
            return False
        try:
            if settings.address:
                ray.init(address=settings.address, log_to_driver=False)
            else:
                # The driver's import path, so that workers find the same plugins.
                env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
                ray.init(
                    num_cpus=settings.num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    _node_ip_address="127.0.0.1",
                    runtime_env={"env_vars": env},
                )
        except Exception as exc:  # ConnectionError, RuntimeError, ...: all mean "no cluster here"
            where = settings.address or "a local instance"
            raise ExecutorError(f"cannot start or reach Ray at {where}: {type(exc).__name__}: {exc}") from None
        return True

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], settings: RaySettings) -> Iterator[Outcome]:
        if not jobs:
            return
        # mer-bench never reaches out to the network on its own: no usage reports to Ray's makers.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        started = self._connect(ray, settings)
        try:
            has_gpus = ray.cluster_resources().get("GPU", 0) > 0
            shipped: dict[int, Any] = {}
            pending = {}
            for job in jobs:
                resources = job.resources
                options = {
                    "num_cpus": resources.cpus,
                    "num_gpus": resources.gpus if has_gpus else 0,
                    "max_retries": 0,
                }
                if resources.memory_gb:
                    options["memory"] = int(resources.memory_gb * 2**30)
                if settings.ship == "object-store" and getattr(job, "features", None) is not None:
                    key = id(job.features)
                    if key not in shipped:  # once per run, whatever its number of units
                        shipped[key] = ray.put(job.features.in_memory())
                    travelling = dataclasses.replace(job, features=None)
                    ref = ray.remote(_call_shipped).options(**options).remote(fn, travelling, shipped[key])
                else:
                    ref = ray.remote(call).options(**options).remote(fn, job)
                pending[ref] = job
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                try:
                    yield _outcome_job(ray.get(done[0]), job)
                except Exception as exc:  # the worker died, or the task could not be run
                    yield failed(job, exc)
        finally:
            if started:
                ray.shutdown()


@hookimpl
def mer_bench_executors():
    return [RayExecutor()]
