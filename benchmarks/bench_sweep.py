"""Wall time of one demo sweep with each executor on this machine.

Run:  python benchmarks/bench_sweep.py [--models logmel-mlp,majority,chance] [--executors local,process,ray]

Every executor runs the same sweep (the quick preset on the demo dataset, 5 folds per
model) into its own fresh runs folder; the feature cache is warmed once beforehand, so
the figures time the fold jobs and what each executor adds (starting processes or a Ray
instance, shipping the features), not feature extraction. The script also checks that
every executor produced byte-identical splits, predictions and metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def unit_dirs(folder) -> list:
    """The folders of a finished run's units (``unit-K``), in unit order."""
    return [folder.unit_dir(k) for k in folder.manifest().unit_numbers()]


def fingerprint(folder) -> dict[str, bytes]:
    """Splits, per-unit predictions and metrics of one run."""
    names = ["splits.csv"] + sorted(
        str(p.relative_to(folder.path)) for d in unit_dirs(folder) for p in d.iterdir() if p.suffix in (".csv", ".json")
    )
    return {n: (folder.path / n).read_bytes() for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="logmel-mlp,majority,chance")
    parser.add_argument("--executors", default="local,process,ray")
    args = parser.parse_args()

    from mer_bench.plugin_manager import load_plugins
    from mer_bench.registry import load_registry
    from mer_bench.sweep import build_sweep, run_configs, run_sweep

    registry = load_registry()
    plugins = load_plugins(registry.builtins.plugins, entry_points=False)
    base = {"models": args.models, "datasets": "demo", "preset": "quick"}
    with tempfile.TemporaryDirectory(prefix="mer-bench-sweep-") as tmp:
        plan = build_sweep(registry, {**base, "executor": "local"})
        run_sweep(plan, run_configs(registry, plan), plugins, Path(tmp) / "warm")  # features into the cache
        rows, outputs = [], {}
        for executor in args.executors.split(","):
            plan = build_sweep(registry, {**base, "executor": executor})
            start = time.perf_counter()
            result = run_sweep(plan, run_configs(registry, plan), plugins, Path(tmp) / executor)
            seconds = time.perf_counter() - start
            jobs = sum(len(unit_dirs(f)) for f in result.finished)
            outputs[executor] = {f.read_json("summary.json")["model"]: fingerprint(f) for f in result.finished}
            rows.append({"executor": executor, "fold_jobs": jobs, "wall_s": round(seconds, 1), "failures": len(result.failures)})
        first = next(iter(outputs.values()))
        identical = all(out == first for out in outputs.values())
    print(json.dumps({"cpus": os.cpu_count(), "models": args.models, "identical_results": identical, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
