"""The ``mer-bench`` command line: parse, build a config, call the core, print tables.

Errors a user can act on are printed as one line with a non-zero exit; ``--verbose``
adds the traceback.
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import click

from mer_bench.errors import ConfigError, MerBenchError

FORMAT = click.Choice(["terminal", "markdown", "csv", "latex", "json"])


@dataclass
class State:
    verbose: bool = False
    strict_plugins: bool = False
    _plugins: object = field(default=None, repr=False)
    _registry: object = field(default=None, repr=False)

    def registry(self):
        from mer_bench.registry import load_registry

        if self._registry is None:
            self._registry = load_registry()
        return self._registry

    def plugins(self):
        """Load plugins once per command, warning about any that failed."""
        from mer_bench.plugin_manager import load_plugins

        if self._plugins is None:
            self._plugins = load_plugins(self.registry().builtins.plugins, strict=self.strict_plugins)
            for failure in self._plugins.failures:
                click.echo(f"warning: plugin {failure.source} failed to load: {failure.error}", err=True)
        return self._plugins


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MerBenchError as exc:
            if ctx.params.get("verbose"):
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.option("--verbose", is_flag=True, help="Show tracebacks with errors.")
@click.option("--strict-plugins", is_flag=True, help="Fail when any plugin fails to load (for plugin authors).")
@click.version_option(package_name="mer-bench")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, strict_plugins: bool) -> None:
    """mer-bench: re-run music emotion recognition models under one fair protocol."""
    ctx.obj = State(verbose=verbose, strict_plugins=strict_plugins)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def plugins(state: State, as_json: bool) -> None:
    """List every dataset, label, feature and model plugin, and any that failed."""
    loaded = state.plugins()
    rows = [
        {
            "kind": e.kind,
            "name": e.name,
            "source": {
                "plugin": e.source.plugin,
                "distribution": e.source.distribution,
                "version": e.source.version,
                "builtin": e.source.builtin,
            },
        }
        for e in loaded.all_entries()
    ]
    failures = [
        {
            "plugin": f.source.plugin,
            "distribution": f.source.distribution,
            "version": f.source.version,
            "error": f.error,
        }
        for f in loaded.failures
    ]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failures": failures}, indent=2))
        return
    import pandas as pd

    from mer_bench.report import print_table

    table = pd.DataFrame(
        [
            {"Kind": r["kind"], "Name": r["name"], "Source": f"{r['source']['distribution']} {r['source']['version']}"}
            for r in rows
        ]
    )
    print_table(table, "terminal", "mer-bench plugins")


@cli.group()
def datasets() -> None:
    """List dataset plugins or check local copies of datasets."""


@datasets.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_DATA", help="Folder holding one folder per dataset.")
@click.pass_obj
def datasets_list(state: State, data_dir: Path | None) -> None:
    """Show each dataset plugin, where to get it, whether `datasets download` fetches it, and whether it is found."""
    import pandas as pd

    from mer_bench.discover import find_in_data_dir
    from mer_bench.report import print_table

    loaded = state.plugins()
    rows = []
    for entry in sorted(loaded.entries["dataset"].values(), key=lambda e: e.name):
        loader = entry.obj
        found = find_in_data_dir(loader, data_dir)
        info = loader.describe()
        rows.append(
            {
                "Name": loader.name,
                "Title": info.title,
                "Folder names": ", ".join((loader.name, *loader.folder_names)),
                "Found under data dir": str(found or ""),
                "Download": info.download,
                "datasets download": _fetched_how(loader),
            }
        )
    print_table(pd.DataFrame(rows), "terminal", "dataset plugins")


def _fetched_how(loader) -> str:
    """What ``datasets download`` does for ``loader``, in words; a plugin's failure as a note."""
    from mer_bench.dataset_download import download_spec
    from mer_bench.errors import PluginCallError

    try:
        spec = download_spec(loader)
    except PluginCallError as exc:
        return f"broken: {exc}"
    if spec is None:
        return "no download declared"
    return "fetches it" if spec.files else "says what to fetch by hand"


@datasets.command("verify")
@click.argument("names", nargs=-1)
@click.option("--datasets", "datasets_", help="'all' or a comma-separated list (instead of NAMES).")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_DATA")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Run config: [paths], clip_seconds, [selection].")
@click.option("--preset", default="paper", show_default=True, help="Preset whose clip length and selection prepare the counts.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object keyed by dataset name.")
@click.pass_obj
def datasets_verify(state: State, names, datasets_, data_dir, config_file, preset, as_json) -> None:
    """Load datasets and decode every audio file; count what a run would prepare from them.

    Exits with 1 when a dataset is absent or unusable, or has missing or unreadable audio.
    """
    from mer_bench.config import expand_datasets, file_setting, read_config_file
    from mer_bench.progress import Progress
    from mer_bench.selection import check_names
    from mer_bench.verify import verify_datasets

    values = read_config_file(config_file) if config_file else {}
    registry = state.registry()
    # NAMES may be comma-separated too, as --datasets is.
    requested = [d.strip() for d in ",".join([*names, datasets_ or ""]).split(",") if d.strip()]
    chosen = expand_datasets(requested or ["all"], registry)
    plugins = state.plugins()
    preset_record = registry.preset(values.get("preset", preset))
    selection = file_setting(values, "selection", preset_record)
    check_names(selection, set(plugins.entries["dataset"]))
    with Progress(enabled=sys.stderr.isatty() and not as_json) as progress:
        checks = verify_datasets(
            plugins, chosen, data_dir or file_setting(values, "data_dir"), file_setting(values, "paths"),
            file_setting(values, "clip_seconds", preset_record), selection, progress,
        )
    if as_json:
        click.echo(json.dumps({c.name: c.as_dict() for c in checks}, indent=2))
    else:
        import pandas as pd

        from mer_bench.report import print_table

        def quadrants(c):
            return "  ".join(f"{q} {c.quadrants_raw.get(q, 0)}->{c.quadrants_prepared.get(q, 0)}" for q in c.quadrants_raw)

        rows = [
            {
                "Dataset": c.name,
                "Status": c.status,
                "Tracks": c.tracks,
                "Labelled": c.labelled,
                "Unlabelled audio": c.unlabelled,
                "Missing audio": c.missing_audio,
                "Unreadable": c.unreadable,
                "Quadrants (raw->prepared)": quadrants(c),
                "Selection": f"{c.selection}: {c.prepared} kept",
                "Root": c.root,
            }
            for c in checks
        ]
        print_table(pd.DataFrame(rows), "terminal", "dataset check")
        for c in checks:
            for line in c.notes:
                click.echo(f"  note: {c.name}: {line}")
            for line in c.problems:
                click.echo(f"  problem: {line}")
    if not all(c.ok for c in checks):
        raise click.exceptions.Exit(1)


@datasets.command("download")
@click.argument("names", nargs=-1, required=True)
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_DATA", required=True,
              help="Folder that gets one folder per dataset (and downloads/, the archives).")
@click.option("--yes", is_flag=True, help="Accept the terms shown without a prompt.")
@click.option("--mirror", envvar="MER_BENCH_MIRROR", help="Fetch each file from MIRROR/<host>/<path> instead of its host.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object keyed by dataset name.")
@click.pass_obj
def datasets_download(state: State, names, data_dir: Path, yes: bool, mirror: str | None, as_json: bool) -> None:
    """Fetch, check and unpack datasets into DATA_DIR, then verify them.

    NAMES are dataset names or suites ('all': the paper's four), comma-separated or not.
    Each dataset's terms are shown and accepted once. Run again after an interruption: a
    download continues where it stopped. A dataset whose source needs a browser gets the
    exact manual step. Exits with 1 unless every dataset ends present and verified.
    """
    from mer_bench.config import expand_datasets, file_setting
    from mer_bench.dataset_download import DOWNLOADED, PRESENT, download_dataset, download_spec
    from mer_bench.discover import find_in_data_dir
    from mer_bench.progress import Progress
    from mer_bench.verify import verify_datasets

    registry = state.registry()
    chosen = expand_datasets([d.strip() for d in ",".join(names).split(",") if d.strip()], registry)
    plugins = state.plugins()
    loaders = [plugins.dataset(name) for name in chosen]
    specs = {loader.name: download_spec(loader) for loader in loaders}
    absent = [l.name for l in loaders if specs[l.name] and not find_in_data_dir(l, data_dir)]
    for name in absent:
        click.echo(f"{name}: {specs[name].terms}", err=as_json)
    fetching = [name for name in absent if specs[name].files]
    if fetching:
        _accept_terms(f"Download {', '.join(fetching)} into {data_dir} on these terms?", yes)
    preset = registry.preset("paper")
    with Progress(enabled=sys.stderr.isatty() and not as_json) as progress:
        outcomes = [download_dataset(loader, data_dir, mirror=mirror, progress=progress) for loader in loaders]
        ready = [o.name for o in outcomes if o.status in (DOWNLOADED, PRESENT)]
        checks = {
            c.name: c
            for c in verify_datasets(
                plugins, ready, data_dir, {}, file_setting({}, "clip_seconds", preset),
                file_setting({}, "selection", preset), progress,
            )
        }
    if as_json:
        click.echo(json.dumps({
            o.name: {"status": o.status, "detail": o.detail, "root": str(o.root or ""),
                     "verify": checks[o.name].as_dict() if o.name in checks else None}
            for o in outcomes
        }, indent=2))
    else:
        import pandas as pd

        from mer_bench.report import print_table

        rows = [{"Dataset": o.name, "Status": o.status, "Verify": checks[o.name].status if o.name in checks else "",
                 "Where": str(o.root or "")} for o in outcomes]
        print_table(pd.DataFrame(rows), "terminal", f"datasets download into {data_dir}")
        for o in outcomes:
            click.echo(f"  {o.name}: {o.detail}")
            for line in checks[o.name].problems if o.name in checks else []:
                click.echo(f"  problem: {line}")
    if len(checks) < len(outcomes) or not all(c.ok for c in checks.values()):
        raise click.exceptions.Exit(1)


def _accept_terms(question: str, yes: bool) -> None:
    """Ask once whether the terms just shown are accepted (``--yes``: they are); no answer
    possible (standard input not a terminal) is an error, never a silent yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("pass --yes to accept the terms above without a prompt (standard input is not a terminal)")
    if not click.confirm(question, default=False, err=True):
        click.echo("nothing downloaded", err=True)
        raise click.exceptions.Exit(1)


@cli.group()
def weights() -> None:
    """Fetch the pre-trained weights files model plugins declare."""


@weights.command("download")
@click.argument("models", nargs=-1, required=True)
@click.option("--mirror", envvar="MER_BENCH_MIRROR", help="Fetch each file from MIRROR/<host>/<path> instead of its host.")
@click.option("--yes", is_flag=True, help="Accept the terms shown without a prompt.")
@click.pass_obj
def weights_download(state: State, models: tuple[str, ...], mirror: str | None, yes: bool) -> None:
    """Fetch each MODEL's weights files to where it looks for them.

    Each file is checked against the checksum its plugin declares (for effnetb3, the MD5
    Keras itself records for the ImageNet file) before it is placed; a file already there
    and right is left alone. Runs never download: this is the one way in.
    """
    from mer_bench.progress import Progress
    from mer_bench.weights_download import download_weights, in_place, remote_weights

    plugins = state.plugins()
    factories = [plugins.model(name) for name in models]
    missing = [(f.name, item) for f in factories for item in remote_weights(f) if not in_place(item)]
    for name, item in missing:
        click.echo(f"{name}: {item.terms or 'the plugin states no terms'} ({item.file.url})")
    if missing:  # files already in place and right are only checked: nothing to accept
        _accept_terms(f"Download the weights of {', '.join(sorted({name for name, _ in missing}))} on these terms?", yes)
    with Progress(enabled=sys.stderr.isatty()) as progress:
        for factory in factories:
            for outcome in download_weights(factory, mirror=mirror, progress=progress):
                click.echo(f"{outcome.model}: {outcome.status}: {outcome.path} ({outcome.detail})")


@cli.command()
@click.option("--model", help="Model plugin name.")
@click.option("--datasets", "datasets_", help="'all' (the four paper datasets) or a comma-separated list.")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_DATA", help="Folder holding one folder per dataset.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML run configuration.")
@click.option("--preset", help="Preset from registry.toml (paper, quick).")
@click.option("--protocol", help="Evaluation protocol: holdout-kfold (default), cv, lodo, cross, official, or a plugin's.")
@click.option("--task", help="What the models predict: quadrants (default), arousal, valence, va (values), or a plugin's.")
@click.option("--seed", type=int)
@click.option("--folds", type=int, help="Shortcut for --set protocol.folds=N (holdout-kfold, cv).")
@click.option("--epochs", type=int, help="Override the model's epochs setting.")
@click.option("--set", "set_", multiple=True, metavar="[model.|feature.|protocol.]KEY=VALUE", help="Set a setting of the model (KEY or model.KEY), of its feature (feature.KEY) or of the protocol (protocol.KEY), repeatable; VALUE is TOML or a bare string.")
@click.option("--mixed-precision", is_flag=True, help="Train in mixed float16 (models with a mixed_precision setting; for GPUs).")
@click.option("--jobs", type=int, help="Feature extraction processes (default: one per core).")
@click.option("--resume", "resume", metavar="RUN_ID", help="Continue an interrupted run: its unfinished units are run, finished ones kept.")
@click.option("--runs-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_RUNS", default="runs", show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--no-figures", is_flag=True, help="Do not draw the run's figures at the end.")
@click.pass_obj
def run(
    state: State, model, datasets_, data_dir, config_file, preset, protocol, task, seed, folds, epochs, set_, mixed_precision,
    jobs, resume, runs_dir, no_progress, no_figures,
) -> None:
    """Run a model on datasets under an evaluation protocol, print Tables 3, 4 and 5, and draw its figures."""
    from mer_bench.config import build_config, resume_config
    from mer_bench.pipeline import run_benchmark
    from mer_bench.progress import Progress
    from mer_bench.report import leaderboard, print_table
    from mer_bench.results import RunFolder

    overrides = {
        "model": model,
        "datasets": datasets_,
        "data_dir": data_dir,
        "preset": preset,
        "protocol": protocol,
        "task": task,
        "seed": seed,
        "jobs": jobs,
        **_plugin_settings(set_, epochs, mixed_precision, folds),
    }
    registry = state.registry()
    if resume:
        stored = RunFolder.open(runs_dir, resume).manifest().config
        config = resume_config(registry, stored, overrides, config_file)
    else:
        config = build_config(registry, overrides, config_file)
    with Progress(enabled=not no_progress) as progress:
        folder = run_benchmark(config, state.plugins(), runs_dir, resume=resume, progress=progress, command=sys.argv)
    click.echo(f"run {folder.run_id} written to {folder.path}")
    summary = folder.summary()
    manifest = folder.manifest()
    for name, why in manifest.task.left_out.items():
        click.echo(f"{name}: left out of task {manifest.task.name}: {why}")
    for name, source in manifest.data.items():
        for note in source.notes:
            click.echo(f"{name}: {note}")
    if summary.song_groups["groups"]:
        groups = summary.song_groups
        click.echo(f"{groups['groups']} songs appear under several ids; their {groups['tracks']} tracks were split together")
    rebuilt = summary.feature_cache.get("rebuilt", 0)
    if rebuilt:
        click.echo(f"feature cache: {rebuilt} damaged entries failed their checksum and were rebuilt")
    if summary.excluded:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.excluded.items()))
        click.echo(f"excluded tracks ({reasons}): see {folder.path / 'prep-report.csv'}")
    _print_run_tables(folder, "terminal")
    print_table(leaderboard(registry, [folder]), "terminal", "Table 5: published results and this run")
    if not no_figures:
        _draw_figures(folder, ("png",))


def _print_run_tables(folder, fmt: str) -> None:
    """Table 3, the shared test set or the cross-dataset matrix where the protocol has one, and Table 4."""
    from mer_bench.report import cross_matrix, print_table, regression_table, table3, table4, test_set_table

    summary = folder.summary()
    parts = [(table3(folder), f"Table 3: {folder.run_id}, scores of each unit's model ({summary.task.name}, {summary.protocol.name})")]
    regression = regression_table(folder)
    if regression is not None:
        parts.append((
            regression,
            f"{summary.task.name}: each dimension on the common scale, mean and std over units "
            f"(accuracy and F1 above: of the classes the predicted values imply)",
        ))
    test_set = test_set_table(folder)
    if test_set is not None:
        parts.append(test_set)
    for metric in ("accuracy", "macro_f1"):
        matrix = cross_matrix(folder, metric)
        if matrix is not None:
            parts.append((matrix, f"Cross-dataset {metric.replace('_', ' ')}: rows fitted on, columns scored on"))
    parts.append((table4(folder), f"Table 4: {folder.run_id}, per-class scores, mean over units"))
    for table, title in parts:
        print_table(table, fmt, title)
        if fmt != "terminal":
            click.echo("")


def _draw_figures(folder, formats: tuple[str, ...]) -> None:
    """Draw a run's figures and say where they went and which could not be drawn."""
    from mer_bench.figures import save_figures

    drawn = save_figures(folder, formats)
    click.echo(f"figures: {sum(bool(d.paths) for d in drawn)} drawn in {folder.path / 'figures'}")
    for d in drawn:
        if d.unavailable:
            click.echo(f"  {d.name}: not drawn, {d.unavailable}")


@cli.command()
@click.option("--models", help="Comma-separated model plugin names.")
@click.option("--protocols", help="Comma-separated protocol names: every model runs under each (default: the preset's).")
@click.option("--tasks", help="Comma-separated task names: every model runs each it can learn (default: quadrants).")
@click.option("--datasets", "datasets_", help="'all' or a comma-separated list, shared by every run.")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_DATA")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML sweep configuration.")
@click.option("--preset", help="Preset from registry.toml (paper, quick).")
@click.option("--seed", type=int)
@click.option("--executor", help="Where unit jobs run: local (default), process, ray, or a plugin's.")
@click.option("--address", help="Ray cluster address (auto, HOST:6379, ray://HOST:10001).")
@click.option("--workers", type=int, help="Worker processes of the process executor.")
@click.option("--retries", type=click.IntRange(min=0), help="Times a failed unit job is run again (default 1).")
@click.option("--runs-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_RUNS", default="runs", show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.pass_obj
def sweep(
    state: State, models, protocols, tasks, datasets_, data_dir, config_file, preset, seed, executor, address, workers, retries,
    runs_dir, no_progress,
) -> None:
    """Run several models (under several protocols, for several tasks) on the same datasets, all unit jobs through one executor; resumable."""
    from mer_bench.progress import Progress
    from mer_bench.report import leaderboard, print_table
    from mer_bench.sweep import build_sweep, run_configs, run_sweep

    executor_settings = {k: v for k, v in (("address", address), ("workers", workers)) if v is not None}
    overrides = {
        "models": models,
        "protocols": protocols,
        "tasks": tasks,
        "datasets": datasets_,
        "data_dir": data_dir,
        "preset": preset,
        "seed": seed,
        "executor": executor,
        "retries": retries,
        "executor_settings": executor_settings,
    }
    registry = state.registry()
    plan = build_sweep(registry, overrides, config_file)
    configs = run_configs(registry, plan)
    with Progress(enabled=not no_progress) as progress:
        result = run_sweep(plan, configs, state.plugins(), runs_dir, progress=progress, command=sys.argv)
    for line in result.skipped:
        click.echo(f"skipped: {line}")
    runs = len(result.finished) + len(result.unfinished)
    click.echo(f"{result.sweep_id}: {len(result.finished)} of {runs} runs finished in {runs_dir}")
    if result.finished:
        print_table(leaderboard(registry, result.finished), "terminal", "Table 5: published results and this sweep")
    for outcome in result.failures:
        click.echo(f"error: {outcome.job.label} failed after {plan.retries + 1} attempts: {outcome.error}", err=True)
    if result.failures:
        click.echo("run the same sweep again to retry the failed units; finished units are kept", err=True)
        sys.exit(1)


#: What ``--set`` can address, by the prefix of its key, and the config table each fills.
SET_TARGETS = {"model": "model_settings", "feature": "feature_settings", "protocol": "protocol_settings"}


def _plugin_settings(pairs: tuple[str, ...], epochs: int | None, mixed_precision: bool, folds: int | None = None) -> dict:
    """``model_settings``, ``feature_settings`` and ``protocol_settings`` from ``--set
    [model.|feature.|protocol.]KEY=VALUE`` pairs and the shortcut flags (None where nothing
    was set, so the config file's stay)."""
    import tomllib

    tables: dict[str, dict] = {table: {} for table in SET_TARGETS.values()}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        target, dot, name = key.strip().rpartition(".")
        if not sep or not name:
            raise ConfigError(f"--set takes KEY=VALUE, got {pair!r}")
        if dot and target not in SET_TARGETS:
            raise ConfigError(
                f"--set {key.strip()}: {target!r} is not something --set configures; "
                f"prefix a key with {', '.join(f'{t}.' for t in SET_TARGETS)} (no prefix: the model)"
            )
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word or path
        tables[SET_TARGETS[target or "model"]][name] = value
    if epochs is not None:
        tables["model_settings"]["epochs"] = epochs
    if mixed_precision:
        tables["model_settings"]["mixed_precision"] = True
    if folds is not None:
        tables["protocol_settings"]["folds"] = folds
    return {table: values or None for table, values in tables.items()}


@cli.command()
@click.option("--run", "run_id", required=True, help="The run whose unit models predict.")
@click.option("--unit", type=int, help="One unit's model (default: the mean over every unit's models).")
@click.option("--runs-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_RUNS", default="runs", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_obj
def predict(state: State, run_id: str, unit: int | None, runs_dir: Path, as_json: bool, files: tuple[Path, ...]) -> None:
    """What a run's models predict for audio FILEs, in the run's task.

    A classification task gives each file its class (its quadrant, by default) and the
    probability of each class; a regression task (va) gives its value on each dimension
    and the class those values imply.

    Exits with 1 when a file could not be used (missing, undecodable or too short).
    """
    from mer_bench.predict import predict_files
    from mer_bench.report import print_table
    from mer_bench.results import RunFolder

    table, excluded = predict_files(RunFolder.open(runs_dir, run_id), state.plugins(), list(files), unit)
    failed = [{"file": str(files[int(e.track_id)]), "reason": e.reason, "detail": e.detail} for e in excluded]
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "unit": unit, "predictions": table.to_dict("records"), "failed": failed}, indent=2))
    else:
        print_table(table, "terminal", f"predictions of run {run_id}" + (f", unit {unit}" if unit is not None else ""))
        for f in failed:
            click.echo(f"error: {f['file']}: {f['reason']}: {f['detail']}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


@cli.command()
@click.option("--datasets", "datasets_", required=True, help="'all' or a comma-separated list.")
@click.option("--feature", default="mel-image", show_default=True, help="Feature extractor plugin.")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_DATA")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Run config: [paths], clip_seconds, [selection], [feature_settings].")
@click.option("--preset", default="paper", show_default=True, help="Preset whose clip length and selection prepare the tracks.")
@click.option("--jobs", type=int, help="Worker processes (default: one per core).")
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def features(state: State, datasets_, feature, data_dir, config_file, preset, jobs, no_progress) -> None:
    """Extract features into the cache, so that runs start from it."""
    from mer_bench.cache import FeatureCache
    from mer_bench.config import expand_datasets, file_setting, read_config_file, validate_settings
    from mer_bench.discover import discover
    from mer_bench.features import extract_features, feature_versions
    from mer_bench.label import assign_quadrants
    from mer_bench.prepare import prepare
    from mer_bench.progress import Progress

    values = read_config_file(config_file) if config_file else {}
    registry = state.registry()
    chosen = registry.preset(values.get("preset", preset))
    names = expand_datasets([d.strip() for d in datasets_.split(",") if d.strip()], registry)
    plugins = state.plugins()
    extractor = plugins.feature(feature)
    settings = validate_settings(extractor.settings_model, file_setting(values, "feature_settings"), f"feature {feature!r}")
    with Progress(enabled=not no_progress) as progress:
        found = discover(plugins, names, data_dir or file_setting(values, "data_dir"), file_setting(values, "paths"))
        labelled = assign_quadrants(found.tracks, plugins)
        scales = {n: plugins.dataset(n).scale for n in names}
        store = FeatureCache()
        prepared = prepare(
            labelled, scales, file_setting(values, "clip_seconds", chosen), file_setting(values, "selection", chosen),
            progress, store, jobs,
        )
        result = extract_features(
            prepared.tracks, extractor, settings,
            versions=feature_versions(plugins, feature), cache=store, jobs=jobs, progress=progress,
        )
    counts = result.counts
    click.echo(
        f"{feature}: {counts['hits']} clips already cached, {counts['computed']} extracted, {counts['failed']} failed"
        + (f"; {counts['rebuilt']} damaged cache entries rebuilt" if counts.get("rebuilt") else "")
    )
    for e in result.excluded:
        click.echo(f"  excluded {e.dataset}/{e.track_id}: {e.reason}: {e.detail}")


@cli.group()
def cache() -> None:
    """Inspect or empty the feature cache (safe to delete at any time)."""


@cache.command("info")
def cache_info() -> None:
    """Where the cache is, and its entries and size per feature."""
    from mer_bench.cache import FeatureCache

    store = FeatureCache()
    click.echo(f"feature cache: {store.root}")
    stats = store.stats()
    for s in stats:
        click.echo(f"  {s.feature}: {s.entries} entries, {s.bytes / 1e6:.1f} MB")
    if not stats:
        click.echo("  empty")


@cache.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(yes: bool) -> None:
    """Delete every cached feature."""
    from mer_bench.cache import FeatureCache

    store = FeatureCache()
    if not yes:
        click.confirm(f"delete everything under {store.root}?", abort=True)
    click.echo(f"freed {store.clear() / 1e6:.1f} MB from {store.root}")


@cli.command()
@click.argument("run_id")
@click.option("--runs-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_RUNS", default="runs", show_default=True)
@click.option("--format", "fmt", type=FORMAT, default="terminal", show_default=True)
@click.option("--html", "html_file", type=click.Path(path_type=Path, dir_okay=False), help="Write one self-contained HTML report (tables and figures) instead.")
@click.pass_obj
def report(state: State, run_id: str, runs_dir: Path, fmt: str, html_file: Path | None) -> None:
    """Print Table 3 (per unit), the test set or cross-dataset matrix, and Table 4 (per class) of a run, or write its HTML report."""
    from mer_bench.report import cross_matrix, table3, table4
    from mer_bench.results import RunFolder

    folder = RunFolder.open(runs_dir, run_id)
    if html_file is not None:
        from mer_bench.html_report import run_report_html

        _write_html(html_file, run_report_html(folder))
        return
    if fmt == "json":
        summary = folder.summary()
        matrices = {m: cross_matrix(folder, m) for m in ("accuracy", "macro_f1")}
        click.echo(
            json.dumps(
                {
                    "run_id": folder.run_id,
                    "protocol": summary.protocol.model_dump(mode="json"),
                    "task": summary.task.model_dump(mode="json"),
                    "regression": summary.metrics.regression and {
                        dim: {k: s.model_dump() for k, s in stats.items()} for dim, stats in summary.metrics.regression.items()
                    },
                    "table3": json.loads(table3(folder).to_json(orient="records")),
                    "test_set": summary.test_set and summary.test_set.model_dump(mode="json"),
                    "repeats": summary.repeats and summary.repeats.model_dump(mode="json"),
                    "cross": {m: json.loads(t.to_json(orient="records")) for m, t in matrices.items() if t is not None},
                    "table4": json.loads(table4(folder).to_json(orient="records")),
                },
                indent=2,
            )
        )
        return
    _print_run_tables(folder, fmt)


@cli.command("leaderboard")
@click.argument("run_ids", nargs=-1)
@click.option("--runs-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_RUNS", default="runs", show_default=True)
@click.option("--format", "fmt", type=FORMAT, default="terminal", show_default=True)
@click.option("--html", "html_file", type=click.Path(path_type=Path, dir_okay=False), help="Write one self-contained HTML page (table and figures) instead.")
@click.pass_obj
def leaderboard_cmd(state: State, run_ids: tuple[str, ...], runs_dir: Path, fmt: str, html_file: Path | None) -> None:
    """Compare published results with re-runs (all finished runs unless RUN_IDs are given)."""
    from mer_bench.report import completed_runs, leaderboard, print_table
    from mer_bench.results import RunFolder

    folders, other_format = ([RunFolder.open(runs_dir, r) for r in run_ids], []) if run_ids else completed_runs(runs_dir)
    if other_format:
        click.echo(
            f"left out {len(other_format)} run(s) in another run-folder format (re-run them to compare): "
            + ", ".join(other_format),
            err=True,
        )
    table = leaderboard(state.registry(), folders)
    if html_file is not None:
        from mer_bench.html_report import leaderboard_html

        _write_html(html_file, leaderboard_html(table, "Table 5: published results and re-runs"))
        return
    print_table(table, fmt, "Table 5: published results and re-runs")


def _write_html(path: Path, html: str) -> None:
    from mer_bench.atomic import atomic_write

    atomic_write(path, html.encode("utf-8"))
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("run_id")
@click.option("--runs-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_RUNS", default="runs", show_default=True)
@click.option("--svg", is_flag=True, help="Write SVG beside each PNG.")
def figures(run_id: str, runs_dir: Path, svg: bool) -> None:
    """Draw (again) a run's figures into its figures/ folder."""
    from mer_bench.results import RunFolder

    _draw_figures(RunFolder.open(runs_dir, run_id), ("png", "svg") if svg else ("png",))


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--runs-dir", type=click.Path(path_type=Path), envvar="MER_BENCH_RUNS", default="runs", show_default=True)
@click.option("--format", "fmt", type=FORMAT, default="terminal", show_default=True)
@click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.pass_obj
def compare(state: State, run_a: str, run_b: str, runs_dir: Path, fmt: str, resamples: int, seed: int) -> None:
    """Paired tests of RUN_A against RUN_B on their shared splits (McNemar per unit, bootstrap of macro F1)."""
    from mer_bench.compare import compare_runs
    from mer_bench.report import print_table
    from mer_bench.results import RunFolder
    from mer_bench.task import values_to_labels

    first = RunFolder.open(runs_dir, run_a)
    label_values = None
    task = first.manifest().task
    if task.dimensions:
        # The classes a regression run's mean values imply are the task plugin's to say.
        plugin = state.plugins().task(task.name)
        label_values = lambda values: values_to_labels(plugin, values)  # noqa: E731
    result = compare_runs(first, RunFolder.open(runs_dir, run_b), label_values=label_values, resamples=resamples, seed=seed)
    low, high = result.f1_interval
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "run_a": run_a,
                    "run_b": run_b,
                    "units": json.loads(result.units.to_json(orient="records")),
                    "macro_f1_difference": result.f1_difference,
                    "interval": [low, high],
                    "confidence": result.confidence,
                    "resamples": result.resamples,
                    "values": None if result.values is None else json.loads(result.values.to_json(orient="records")),
                },
                indent=2,
            )
        )
        return
    print_table(result.units, fmt, f"McNemar's exact test: A = {run_a}, B = {run_b}")
    click.echo(
        f"macro F1, A - B: {result.f1_difference:+.3f} ({result.confidence:.0%} paired bootstrap interval "
        f"{low:+.3f} to {high:+.3f}, {result.resamples} resamples of test tracks)"
    )
    if result.values is not None:
        print_table(result.values, fmt, "Values per dimension: Wilcoxon signed-rank on paired absolute errors, bootstrap of R²")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point.

    SIGTERM (a job scheduler, ``kill``) stops a command the way Ctrl-C does: worker pools
    drop their queued work, temporary files are removed, and a run stays resumable.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    cli(prog_name="mer-bench")
