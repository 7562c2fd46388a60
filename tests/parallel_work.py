"""Jobs for worker processes (importable by name, so they pickle)."""

import os
import time
from dataclasses import dataclass

from mer_bench.executors import Resources


def add_one(x: float) -> float:
    """x + 1 computed by TensorFlow in the worker."""
    import tensorflow as tf

    return float((tf.constant(x) + 1.0).numpy())


@dataclass(frozen=True)
class GpuJob:
    """A job that asks for one GPU."""

    number: int
    resources: Resources = Resources(cpus=1, gpus=1)

    @property
    def label(self) -> str:
        return f"job {self.number}"


def visible_gpus(job: GpuJob) -> tuple[int, str]:
    """The worker's process id and the GPUs it may use, after a pause so that every worker gets jobs."""
    time.sleep(0.3)
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES", "")
