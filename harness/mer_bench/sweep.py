"""A benchmark grid: several models, under one or several protocols, for one or several
tasks, on the same datasets, every unit job of every run scheduled together by one executor, resumable, with the run
folders as the only output.

The driver prepares each run here (discover to features, through the shared cache), then
hands all unfinished unit jobs to the executor at once and writes each result into its
run folder as it arrives. A sweep is identified by what it computes; running the same
sweep again resumes its runs (finished units are not rerun), recorded in
``<runs>/sweeps/<sweep id>.json``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from mer_bench.atomic import atomic_write
from mer_bench.config import RunConfig, build_config, read_config_file, validate_settings
from mer_bench.errors import ConfigError, RunError
from mer_bench.executors import Outcome, execute
from mer_bench.pipeline import PreparedRun, check_run, finish_run, fit_unit, prepare_run, write_unit
from mer_bench.plugin_manager import PluginSet
from mer_bench.progress import SILENT, Progress
from mer_bench.registry import Registry
from mer_bench.results import RunFolder

SWEEP_KEYS = ("models", "protocols", "tasks", "executor", "executor_settings", "retries", "model_settings")


class SweepConfig(BaseModel):
    """Which runs a sweep makes and where their unit jobs run."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    models: list[str] = Field(min_length=1)
    #: Protocol names; every model runs under each. Empty: the run's (preset's) protocol.
    protocols: list[str] = Field(default_factory=list)
    #: Task names; every model runs each task it can learn (a pair it cannot is skipped and
    #: reported; a model that learns none is an error). Empty: ``quadrants``. A single
    #: ``task = "..."`` in the file is read as ``tasks = ["..."]``.
    tasks: list[str] = Field(default_factory=list)
    executor: str = "local"
    executor_settings: dict[str, Any] = Field(default_factory=dict)
    #: How many more times a failed unit job is run before it is reported.
    retries: int = Field(1, ge=0)
    #: Run-config values every run shares: datasets, preset, seed, clip_seconds, paths, and
    #: ``protocol_settings``: the settings of the one protocol the sweep runs (``protocols``
    #: empty or naming one), or, when ``protocols`` names several, a table per protocol name
    #: (``[protocol_settings.cv] folds = 10``).
    run: dict[str, Any] = Field(default_factory=dict)
    #: Model settings by model name.
    model_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("models", "protocols", "tasks")
    @classmethod
    def _unique(cls, names: list[str], info: ValidationInfo) -> list[str]:
        repeated = sorted({m for m in names if names.count(m) > 1})
        if repeated:
            raise ValueError(f"{info.field_name} named more than once: {', '.join(repeated)}")
        return names


def build_sweep(registry: Registry, overrides: dict[str, Any], config_file: Path | None = None) -> SweepConfig:
    """The sweep of a TOML file (sweep keys, and run-config keys shared by every run) and flags on top.

    ``overrides`` holds sweep keys and run-config keys alike; None values are ignored.
    """
    values = read_config_file(config_file) if config_file else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    merged = {**values, **given}
    merged["executor_settings"] = {**values.get("executor_settings", {}), **given.get("executor_settings", {})}
    for key in ("models", "protocols", "tasks"):
        if isinstance(merged.get(key), str):
            merged[key] = [m.strip() for m in merged[key].split(",") if m.strip()]
    sweep_values = {k: merged[k] for k in SWEEP_KEYS if k in merged}
    sweep_values["run"] = {k: v for k, v in merged.items() if k not in SWEEP_KEYS}
    # One task may be named as a run names it (sweep files before `tasks` did so).
    if "task" in sweep_values["run"] and "tasks" not in sweep_values:
        sweep_values["tasks"] = [sweep_values["run"].pop("task")]
    for one, many in (("model", "models"), ("protocol", "protocols"), ("task", "tasks")):
        if one in sweep_values["run"]:
            raise ConfigError(f"a sweep names its {many} with '{many}', not '{one}'")
    try:
        return SweepConfig.model_validate(sweep_values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'sweep'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid sweep configuration: {problems}") from None


def run_configs(registry: Registry, sweep: SweepConfig) -> list[RunConfig]:
    """One run config per task, protocol and model, each built as ``mer-bench run`` would build it."""
    configs = []
    for task in sweep.tasks or [None]:
        for protocol in sweep.protocols or [None]:
            for model in sweep.models:
                values = {**sweep.run, "model": model, "protocol": protocol, "model_settings": sweep.model_settings.get(model, {})}
                if task is not None:
                    values["task"] = task
                if protocol is not None:
                    values["protocol_settings"] = _settings_of(sweep.run.get("protocol_settings", {}), protocol, sweep.protocols)
                configs.append(build_config(registry, values))
    return configs


def learnable(configs: list[RunConfig], plugins: PluginSet) -> tuple[list[RunConfig], list[str]]:
    """The runs whose model can learn their task, and a line for each run left out because it
    cannot. A model that learns none of the sweep's tasks is a ConfigError: nothing of it
    would run."""
    kept, skipped = [], []
    for config in configs:
        factory, task = plugins.model(config.model), plugins.task(config.task)
        if task.kind in tuple(factory.task_kinds):
            kept.append(config)
        else:
            skipped.append(
                f"{config.model} / {config.task}: not run, {config.task} is a {task.kind} task and {config.model} "
                f"learns {', '.join(factory.task_kinds) or 'no'} tasks"
            )
    idle = sorted({c.model for c in configs} - {c.model for c in kept})
    if idle:
        raise ConfigError(
            f"model(s) {', '.join(idle)} learn none of the sweep's tasks ({', '.join(sorted({c.task for c in configs}))}): "
            + "; ".join(line.split(": ", 1)[1] for line in skipped if line.split(" / ")[0] in idle)
        )
    return kept, skipped


def _settings_of(tables: dict[str, Any], protocol: str, protocols: list[str]) -> dict[str, Any]:
    """The settings of ``protocol`` from a sweep's ``[protocol_settings]``: the table itself when
    the sweep runs one protocol, else its table per protocol name."""
    if len(protocols) == 1 and protocol not in tables:
        return tables
    unknown = sorted(set(tables) - set(protocols))
    if unknown:
        raise ConfigError(
            f"[protocol_settings] of a sweep of protocols {', '.join(protocols)} holds a table per protocol "
            f"([protocol_settings.{protocols[0]}]); {', '.join(unknown)} is none of them"
        )
    return tables.get(protocol, {})


def run_key(config: RunConfig) -> str:
    """A run's key in the sweep's state file: its model, protocol and task."""
    return f"{config.model}/{config.protocol}/{config.task}"


def sweep_id(configs: list[RunConfig]) -> str:
    """``sweep-<12 hex>`` of what the runs compute (not where the data lies or how they are executed)."""
    text = json.dumps([c.comparable() for c in configs], sort_keys=True, default=str)
    return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class SweepResult:
    """A sweep's finished runs, its unfinished ones, the unit jobs that failed every attempt,
    and a line for each model and task pair it did not run (the model cannot learn the task)."""

    sweep_id: str
    finished: list[RunFolder]
    unfinished: list[RunFolder]
    failures: list[Outcome]
    skipped: list[str] = field(default_factory=list)


def run_sweep(
    sweep: SweepConfig,
    configs: list[RunConfig],
    plugins: PluginSet,
    runs_dir: Path,
    *,
    progress: Progress = SILENT,
    command: list[str] | None = None,
) -> SweepResult:
    """Prepare (or resume) every run, execute all unfinished unit jobs, write the summaries."""
    executor = plugins.executor(sweep.executor)
    settings = validate_settings(executor.settings_model, sweep.executor_settings, f"executor {executor.name!r}")
    executor.check(settings)
    configs, skipped = learnable(configs, plugins)
    identity = sweep_id(configs)
    state_path = Path(runs_dir) / "sweeps" / f"{identity}.json"
    state = {"sweep_id": identity, "runs": {}}
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
            state["runs"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise RunError(
                f"{state_path} is damaged ({type(exc).__name__}: {exc}); delete it to start this sweep's runs afresh"
            ) from None

    plans = [check_run(config, plugins) for config in configs]
    runs: dict[str, PreparedRun] = {}
    for config, plan in zip(configs, plans):
        # Sweeps before tasks keyed runs by model and protocol alone (one task per sweep id).
        known = state["runs"].get(run_key(config)) or state["runs"].get(f"{config.model}/{config.protocol}")
        resume = known if known and (Path(runs_dir) / known / "manifest.json").is_file() else None
        run = prepare_run(config, plugins, runs_dir, resume=resume, progress=progress, command=command, plan=plan)
        runs[run.folder.run_id] = run
        # Recorded at once, so that an interrupted sweep finds this run again.
        state["runs"][run_key(config)] = run.folder.run_id
        atomic_write(state_path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())

    jobs = [job for run in runs.values() for job in run.jobs()]
    failures = execute(
        executor,
        settings,
        jobs,
        fit_unit,
        lambda job, result: write_unit(runs[job.run_id].folder, result),
        retries=sweep.retries,
        progress=progress,
    )
    failed_runs = {o.job.run_id for o in failures}
    finished = [finish_run(run) for run_id, run in runs.items() if run_id not in failed_runs]
    unfinished = [run.folder for run_id, run in runs.items() if run_id in failed_runs]
    return SweepResult(identity, finished, unfinished, failures, skipped)
