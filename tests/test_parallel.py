"""Worker processes after a fork-unsafe library (TensorFlow) is loaded in the parent."""

import subprocess
import sys
import textwrap

import pytest


def test_workers_start_cleanly_after_tensorflow_is_loaded():
    """Forked children of a process running TensorFlow hang on their first TensorFlow call;
    mer-bench then starts workers from a fork server instead."""
    pytest.importorskip("tensorflow")
    code = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf
        from mer_bench.parallel import run_parallel
        from tests.parallel_work import add_one
        tf.constant(1.0) + 1.0  # start TensorFlow's thread pools in the parent
        print(sorted(r for _, r in run_parallel(add_one, [1.0, 2.0, 3.0, 4.0], jobs=2)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[2.0, 3.0, 4.0, 5.0]"
