"""Sweeps: the same results with every executor, failed jobs retried then reported, resume."""

import json

import pytest

from mer_bench.errors import ConfigError, ExecutorError
from mer_bench.pipeline import unit_seed
from mer_bench.plugin_manager import load_plugins
from mer_bench.registry import load_registry
from mer_bench.sweep import build_sweep, run_configs, run_sweep
from tests.conftest import BUILTINS, TINY_DEMO, run_cli

#: A test model that learns like logmel-mlp but fails on demand: while the file
#: ``poison`` exists, the fold whose seed is ``poison_seed`` raises (or kills its worker
#: with ``die``, removing the file first so that the retry succeeds). Every attempt is
#: logged in ``log``.
FLAKY_MODEL = """
import os
from pathlib import Path

from pydantic import BaseModel

from mer_bench import hookimpl
from mer_bench.types import ModelFactory
from mer_bench_plugins.models.mlp import MLPFactory, MLPSettings


class FlakySettings(MLPSettings):
    poison: str
    poison_seed: int
    log: str
    die: bool = False


class Flaky:
    def __init__(self, settings, n_classes, seed):
        self.settings, self.seed = settings, seed
        self.inner = MLPFactory("logmel-mlp", "logmel-stats").build(
            MLPSettings(**settings.model_dump(include=set(MLPSettings.model_fields))), n_classes, seed
        )

    def fit(self, train, val):
        with open(self.settings.log, "a") as log:
            log.write(f"{self.seed}\\n")
        poison = Path(self.settings.poison)
        if self.seed == self.settings.poison_seed and poison.exists():
            if self.settings.die:
                poison.unlink()
                os._exit(3)
            raise RuntimeError("poisoned fold")
        return self.inner.fit(train, val)

    def predict_proba(self, x):
        return self.inner.predict_proba(x)

    def save(self, folder):
        self.inner.save(folder)


class FlakyFactory(ModelFactory):
    name = "flaky"
    feature = "logmel-stats"
    settings_model = FlakySettings

    def build(self, settings, n_classes, seed):
        return Flaky(settings, n_classes, seed)

    def load(self, folder):
        raise NotImplementedError


@hookimpl
def mer_bench_models():
    return [FlakyFactory()]
"""

RUN = {"datasets": ["demo-tiny"], "preset": "quick", "seed": 5, "protocol_settings": {"folds": 3, "test_size": 0.25}}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "tiny_demo.py").write_text(TINY_DEMO)
    (site / "flaky_model.py").write_text(FLAKY_MODEL)
    return site


@pytest.fixture
def plugins(site, monkeypatch):
    # On sys.path and PYTHONPATH: process-pool and Ray workers import the test plugins too.
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    return load_plugins([*BUILTINS, "tiny_demo", "flaky_model"], entry_points=False)


def sweep_of(**values):
    registry = load_registry()
    plan = build_sweep(registry, {**RUN, **values})
    return plan, run_configs(registry, plan)


def fingerprint(folder):
    """What a run computed: its splits, every fold's predictions and metrics, and the summary's metrics."""
    files = ["splits.csv"] + [f"unit-{k}/{n}" for k in (1, 2, 3) for n in ("predictions.csv", "metrics.json")]
    return {name: (folder.path / name).read_bytes() for name in files} | {
        "metrics": json.dumps(folder.read_json("summary.json")["metrics"], sort_keys=True)
    }


@pytest.mark.slow
def test_local_process_and_ray_give_identical_splits_and_metrics(plugins, tmp_path):
    pytest.importorskip("ray")
    results = {}
    for executor, settings in (("local", {}), ("process", {"workers": 2}), ("ray", {"num_cpus": 2})):
        plan, configs = sweep_of(models="logmel-mlp,majority", executor=executor, executor_settings=settings)
        result = run_sweep(plan, configs, plugins, tmp_path / executor)
        assert not result.failures and not result.unfinished
        results[executor] = {f.read_json("summary.json")["model"]: fingerprint(f) for f in result.finished}
    assert set(results["local"]) == {"logmel-mlp", "majority"}
    assert results["process"] == results["local"]
    assert results["ray"] == results["local"]
    # The sweep id depends on what is computed, not on where.
    ids = {p.name for executor in results for p in (tmp_path / executor / "sweeps").iterdir()}
    assert len(ids) == 1


def flaky_settings(tmp_path, poison_fold: int, **extra):
    return {
        "flaky": {
            "poison": str(tmp_path / "poison"),
            "poison_seed": unit_seed(RUN["seed"], poison_fold),
            "log": str(tmp_path / "attempts.log"),
            **extra,
        }
    }


def attempts(tmp_path) -> list[int]:
    return [int(line) for line in (tmp_path / "attempts.log").read_text().split()]


def test_a_failing_job_is_retried_then_reported_and_the_sweep_resumes_it(plugins, tmp_path):
    (tmp_path / "poison").touch()
    plan, configs = sweep_of(models="flaky,majority", retries=2, model_settings=flaky_settings(tmp_path, 2))
    result = run_sweep(plan, configs, plugins, tmp_path / "runs")
    poisoned = unit_seed(RUN["seed"], 2)
    # Fold 2 ran three times (once and two retries); folds 1 and 3 once.
    assert sorted(attempts(tmp_path)) == sorted([unit_seed(5, 1), unit_seed(5, 3)] + [poisoned] * 3)
    (failure,) = result.failures
    assert failure.job.unit == 2 and "RuntimeError: poisoned fold" in failure.error
    assert "Traceback" in failure.traceback
    # The other jobs' results are kept: majority finished, flaky has folds 1 and 3.
    assert [f.read_json("summary.json")["model"] for f in result.finished] == ["majority"]
    (flaky,) = result.unfinished
    assert [flaky.unit_done(k) for k in (1, 2, 3)] == [True, False, True]
    assert not (flaky.path / "summary.json").exists()

    # The cause removed, the same sweep runs only the missing fold and finishes.
    (tmp_path / "poison").unlink()
    (tmp_path / "attempts.log").unlink()
    again = run_sweep(plan, configs, plugins, tmp_path / "runs")
    assert attempts(tmp_path) == [poisoned]
    assert not again.failures and {f.path for f in again.finished} == {flaky.path, result.finished[0].path}
    assert len(list((tmp_path / "runs").glob("*-flaky-*"))) == 1


@pytest.mark.parametrize("executor, settings", [("process", {"workers": 2}), ("ray", {"num_cpus": 2})])
def test_a_worker_that_dies_has_its_job_retried(plugins, tmp_path, executor, settings):
    if executor == "ray":
        pytest.importorskip("ray")
    (tmp_path / "poison").touch()
    model_settings = flaky_settings(tmp_path, 3, die=True)
    plan, configs = sweep_of(models="flaky", executor=executor, executor_settings=settings, model_settings=model_settings)
    result = run_sweep(plan, configs, plugins, tmp_path / "runs")
    assert not result.failures and len(result.finished) == 1
    assert attempts(tmp_path).count(unit_seed(5, 3)) == 2  # killed once, then done
    assert not (tmp_path / "poison").exists()
    (clean,) = run_sweep(plan, configs, plugins, tmp_path / "clean").finished
    # The same results as a sweep where nothing died: the death left nothing behind.
    assert fingerprint(result.finished[0]) == fingerprint(clean)


def test_an_interrupted_sweep_computes_only_what_is_missing(plugins, tmp_path):
    plan, configs = sweep_of(models="flaky", model_settings=flaky_settings(tmp_path, 1))
    (first,) = run_sweep(plan, configs, plugins, tmp_path / "runs").finished
    before = fingerprint(first)
    # As if stopped while fold 2 was being written, before the summary.
    (first.path / "summary.json").unlink()
    (first.unit_dir(2)).rename(first.path / "unit-2.partial")
    (tmp_path / "attempts.log").unlink()
    (again,) = run_sweep(plan, configs, plugins, tmp_path / "runs").finished
    assert again.path == first.path and attempts(tmp_path) == [unit_seed(5, 2)]
    assert fingerprint(again) == before


def test_the_process_pool_gives_each_worker_its_own_gpu():
    """No GPU is needed to check the pinning: each worker sees one device id, its own."""
    from mer_bench_plugins.executors.process import ProcessExecutor, ProcessSettings, pool_size
    from tests.parallel_work import GpuJob, visible_gpus

    jobs = [GpuJob(k) for k in range(6)]
    assert pool_size(jobs, ProcessSettings(gpus=2)) == 2
    outcomes = list(ProcessExecutor().run(visible_gpus, jobs, ProcessSettings(gpus=2)))
    assert sorted(o.job.number for o in outcomes) == list(range(6)) and all(o.ok for o in outcomes)
    devices_by_worker = {}
    for o in outcomes:
        pid, devices = o.result
        devices_by_worker.setdefault(pid, set()).add(devices)
    assert sorted(d for seen in devices_by_worker.values() for d in seen) == ["0", "1"]
    assert all(len(seen) == 1 for seen in devices_by_worker.values())
    # Without gpus, a GPU job still runs: one worker per core it asks for.
    assert pool_size(jobs, ProcessSettings()) >= 1


def test_bad_sweeps_are_one_clear_error(plugins, tmp_path):
    with pytest.raises(ConfigError, match="models named more than once: majority"):
        sweep_of(models="majority,majority")
    with pytest.raises(ConfigError, match="a sweep names its models with 'models', not 'model'"):
        sweep_of(models="majority", model="majority")
    with pytest.raises(ConfigError, match="a sweep names its protocols with 'protocols', not 'protocol'"):
        sweep_of(models="majority", protocol="lodo")
    with pytest.raises(ConfigError, match=r"protocols named more than once: cv"):
        sweep_of(models="majority", protocols="cv,cv")
    with pytest.raises(ConfigError, match=r"holds a table per protocol \(\[protocol_settings.cv\]\); folds, test_size is none of them"):
        sweep_of(models="majority", protocols="cv,lodo")
    # One protocol named: [protocol_settings] holds its settings directly, as a run's does.
    _, (config,) = sweep_of(models="majority", protocols="holdout-kfold")
    assert (config.protocol, config.protocol_settings) == ("holdout-kfold", {"folds": 3, "test_size": 0.25})
    plan, configs = sweep_of(models="majority", executor="slurm")
    with pytest.raises(Exception, match="unknown executor plugin 'slurm'; known executor plugins: local, process, ray"):
        run_sweep(plan, configs, plugins, tmp_path)
    plan, configs = sweep_of(models="majority", executor="ray", executor_settings={"adress": "x"})
    with pytest.raises(ConfigError, match=r"invalid settings for executor 'ray': adress: executor 'ray' has no such setting \(its settings: address, "):
        run_sweep(plan, configs, plugins, tmp_path)
    # A model that cannot learn the task stops the sweep before any run is prepared, even
    # when it comes last.
    plan, configs = sweep_of(models="majority,mean")
    with pytest.raises(ConfigError, match=r"model\(s\) mean learn none of the sweep's tasks \(quadrants\): not run, quadrants is a "
                       "classification task and mean learns regression tasks"):
        run_sweep(plan, configs, plugins, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_the_ray_executor_says_what_to_install_without_ray(plugins, monkeypatch):
    import importlib.util

    from mer_bench_plugins.executors.ray_executor import RayExecutor, RaySettings

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ExecutorError, match=r"the ray executor needs Ray: pip install 'mer-bench\[ray\]'"):
        RayExecutor().check(RaySettings())


def test_sweep_through_the_cli_prints_the_leaderboard_and_fails_loudly(tiny_site, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(
        'models = ["majority", "chance"]\ndatasets = ["demo-tiny"]\npreset = "quick"\nexecutor = "process"\n'
        'protocols = ["holdout-kfold", "cv"]\n[protocol_settings.holdout-kfold]\nfolds = 2\n'
        "[protocol_settings.cv]\nfolds = 3\n[executor_settings]\nworkers = 2\n"
    )
    runs = tmp_path / "runs"
    result = run_cli("sweep", "--config", str(config), "--runs-dir", str(runs), "--no-progress", site=tiny_site)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 of 4 runs finished" in result.stdout and "Table 5: published results and this sweep" in result.stdout
    summaries = [json.loads(p.read_text()) for p in runs.glob("*/summary.json")]
    assert sorted((s["model"], s["protocol"]["name"], len(s["units"])) for s in summaries) == [
        ("chance", "cv", 3), ("chance", "holdout-kfold", 2), ("majority", "cv", 3), ("majority", "holdout-kfold", 2)
    ]
    (state,) = (runs / "sweeps").iterdir()
    assert sorted(json.loads(state.read_text())["runs"]) == [
        "chance/cv/quadrants", "chance/holdout-kfold/quadrants", "majority/cv/quadrants", "majority/holdout-kfold/quadrants"
    ]
    bad = run_cli("sweep", "--models", "majority", "--datasets", "demo-tiny", "--executor", "ray", "--address",
                  "127.0.0.1:1", "--runs-dir", str(runs), site=tiny_site)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1] == (
        "error: cannot reach Ray at 127.0.0.1:1: Connection refused; start the head node with 'ray start --head' "
        "(docs/scaling.md) or leave out --address for a local instance"
    )


def test_a_sweep_over_tasks_runs_each_model_on_the_tasks_it_learns(plugins, tmp_path):
    plan, configs = sweep_of(models="majority,mean", tasks="quadrants,va")
    assert [(c.model, c.task) for c in configs] == [
        ("majority", "quadrants"), ("mean", "quadrants"), ("majority", "va"), ("mean", "va"),
    ]
    result = run_sweep(plan, configs, plugins, tmp_path / "runs")
    assert sorted((f.summary().model, f.summary().task.name) for f in result.finished) == [
        ("majority", "quadrants"), ("mean", "va"),
    ]
    assert result.skipped == [
        "mean / quadrants: not run, quadrants is a classification task and mean learns regression tasks",
        "majority / va: not run, va is a regression task and majority learns classification tasks",
    ]
    # Run again: both runs are found under their task's key, and nothing is fitted anew.
    again = run_sweep(plan, configs, plugins, tmp_path / "runs")
    assert sorted(f.path for f in again.finished) == sorted(f.path for f in result.finished)
    with pytest.raises(ConfigError, match=r"model\(s\) mean learn none of the sweep's tasks \(arousal, quadrants\)"):
        run_sweep(*sweep_of(models="majority,mean", tasks="quadrants,arousal"), plugins, tmp_path / "runs")
    # A sweep file written before `tasks` names its one task as a run does.
    plan, configs = sweep_of(models="mean", task="va")
    assert plan.tasks == ["va"] and [c.task for c in configs] == ["va"]
