"""Built-in executors: where unit jobs run (see :mod:`mer_bench.executors`)."""
