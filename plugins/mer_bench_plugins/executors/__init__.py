"""Built-in executors: where fold jobs run (see :mod:`mer_bench.executors`)."""
