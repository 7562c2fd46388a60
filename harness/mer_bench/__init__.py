"""mer-bench: a benchmark harness for four-quadrant music emotion recognition.

Plugin authors need only what this module exports: the ``hookimpl`` marker and the
records of :mod:`mer_bench.types`.
"""

from mer_bench.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
