"""Run configuration: defaults, then a preset, then a TOML file, then command-line flags."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from mer_bench.errors import ConfigError
from mer_bench.registry import Preset, Registry
from mer_bench.selection import Policy

#: Run settings that became a protocol's, and where they went.
MOVED_TO_PROTOCOL = (
    "{key} is a setting of the evaluation protocol now: put it under [protocol_settings] (protocols "
    "that have it: {protocols}), or pass --set protocol.{key}=VALUE"
)
#: The built-in protocols that take each moved setting.
MOVED_KEYS = {"folds": "holdout-kfold, cv", "test_size": "holdout-kfold, cross"}
#: What an old ``balance`` setting says today.
BALANCE_REPLACED = (
    "balance was replaced by a [selection] table: per dataset \"none\", \"equalise\" or { cap = N }, "
    '"*" for the datasets not named (balance = true is "*" = "equalise", false is "*" = "none")'
)


class RunConfig(BaseModel):
    """Everything that decides what a run computes. Stored whole in the run's manifest."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    datasets: list[str] = Field(min_length=1)
    preset: str = "paper"
    #: numpy's and scikit-learn's seeds are unsigned 32-bit integers.
    seed: int = Field(0, ge=0, lt=2**32)
    #: The evaluation protocol (a protocol plugin's name) and its settings.
    protocol: str = "holdout-kfold"
    protocol_settings: dict[str, Any] = Field(default_factory=dict)
    #: What the models predict (a task plugin's name).
    task: str = "quadrants"
    clip_seconds: float = Field(24.0, gt=0, allow_inf_nan=False)
    #: Per dataset name ("*": the others), which prepared tracks to keep (mer_bench.selection).
    selection: dict[str, Policy] = Field(default_factory=dict)
    data_dir: Path | None = None
    #: Per-dataset roots that override the data directory.
    paths: dict[str, Path] = Field(default_factory=dict)
    #: Settings of the model plugin, validated by its own settings model.
    model_settings: dict[str, Any] = Field(default_factory=dict)
    #: Settings of the feature extractor the model consumes.
    feature_settings: dict[str, Any] = Field(default_factory=dict)
    #: Feature extraction processes (None: one per core). Does not change results.
    jobs: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _no_old_keys(cls, values: Any) -> Any:
        if isinstance(values, dict):
            problem = old_key_problem(values)
            if problem:
                raise ValueError(problem)
        return values

    def comparable(self) -> dict[str, Any]:
        """The fields that decide results (locations and worker counts excluded), for resume checks."""
        return self.model_dump(mode="json", exclude={"data_dir", "paths", "jobs"})


def old_key_problem(values: dict[str, Any]) -> str | None:
    """What to write instead of a setting older mer-bench versions took, if ``values`` has one."""
    if "balance" in values:
        return BALANCE_REPLACED
    for key, protocols in MOVED_KEYS.items():
        if key in values:
            return MOVED_TO_PROTOCOL.format(key=key, protocols=protocols)
    return None


def expand_datasets(names: list[str], registry: Registry) -> list[str]:
    """Replace suite names (such as ``all``) by their datasets, keeping order and dropping repeats."""
    out: list[str] = []
    for name in names:
        for item in registry.suites.get(name, [name]):
            if item not in out:
                out.append(item)
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """The values of a TOML run-config file, each one a :class:`RunConfig` field has checked
    against that field's type and limits, so that every command reading the file (``run``,
    ``sweep``, ``datasets verify``, ``features``) gets valid values or one ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return check_values(values, f"config file {path}")


@cache
def _field_adapter(name: str) -> TypeAdapter:
    field = RunConfig.model_fields[name]
    return TypeAdapter(Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation)


def check_values(values: dict[str, Any], owner: str) -> dict[str, Any]:
    """``values`` with each :class:`RunConfig` field among them validated on its own; other
    keys (a sweep's, say) pass unchanged for their own readers to check."""
    problem = old_key_problem(values)
    if problem:
        raise ConfigError(f"invalid {owner}: {problem}")
    out, problems = dict(values), []
    for name, value in values.items():
        if name not in RunConfig.model_fields or (name == "datasets" and isinstance(value, str)):  # "a,b" is expanded later
            continue
        try:
            out[name] = _field_adapter(name).validate_python(value)
        except ValidationError as exc:
            problems += [f"{'.'.join(map(str, (name, *e['loc'])))}: {e['msg']}" for e in exc.errors()]
    if problems:
        raise ConfigError(f"invalid {owner}: " + "; ".join(problems))
    return out


def file_setting(values: dict[str, Any], name: str, preset: Preset | None = None) -> Any:
    """A run setting from checked config-file ``values``, else from ``preset``, else the run's
    default for it; ``selection`` merges the preset's table and the file's, dataset by dataset."""
    from_preset = preset.run_values() if preset else {}
    if name == "selection":
        return check_values({"selection": {**from_preset.get(name, {}), **values.get(name, {})}}, "selection")[name]
    if name in values:
        return values[name]
    if name in from_preset:
        return from_preset[name]
    return RunConfig.model_fields[name].get_default(call_default_factory=True)


def build_config(
    registry: Registry,
    overrides: dict[str, Any],
    config_file: Path | None = None,
) -> RunConfig:
    """Merge defaults, the preset, the config file and ``overrides`` (None values ignored).

    ``overrides`` may hold ``model_settings``, ``feature_settings`` and ``protocol_settings``
    dicts, merged key by key. The preset's settings of a protocol apply only to runs of that
    protocol, as its settings of a model only to runs of that model.
    """
    file_values = read_config_file(config_file) if config_file else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    preset_name = given.get("preset") or file_values.get("preset") or "paper"
    preset = registry.preset(preset_name)
    values: dict[str, Any] = {**preset.run_values(), **file_values, **given, "preset": preset_name}
    values["selection"] = {**preset.selection, **file_values.get("selection", {}), **given.get("selection", {})}
    model = values.get("model")
    if not model:
        raise ConfigError("no model given: pass --model NAME or set model in the config file")
    protocol = values.get("protocol") or RunConfig.model_fields["protocol"].default
    for key, preset_part in (
        ("model_settings", preset.models.get(model, {})),
        ("feature_settings", preset.feature_settings.get(model, {})),
        ("protocol_settings", preset.protocols.get(protocol, {})),
    ):
        values[key] = {**preset_part, **file_values.get(key, {}), **given.get(key, {})}
    return _validate(values, registry)


def resume_config(
    registry: Registry,
    stored: dict[str, Any],
    overrides: dict[str, Any],
    config_file: Path | None = None,
) -> RunConfig:
    """The config of a run being resumed: the stored one, with any values given again on top.

    Values given again are kept so that the resume check can refuse ones that differ;
    the data location may change freely.
    """
    file_values = read_config_file(config_file) if config_file else {}
    given = {k: v for k, v in {**file_values, **overrides}.items() if v is not None}
    values = {**stored, **given}
    for key in ("model_settings", "feature_settings", "protocol_settings", "selection"):
        values[key] = {**stored.get(key, {}), **given.get(key, {})}
    return _validate(values, registry)


def _validate(values: dict[str, Any], registry: Registry) -> RunConfig:
    """Expand ``datasets`` ("a,b" or a list, suites allowed) and validate the whole config."""
    datasets = values.get("datasets")
    if isinstance(datasets, str):
        datasets = [d.strip() for d in datasets.split(",") if d.strip()]
    if datasets:
        values["datasets"] = expand_datasets(datasets, registry)
    try:
        return RunConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"invalid run configuration: {_problems(exc)}") from None


def validate_settings(model_cls: type[BaseModel], values: dict[str, Any], owner: str) -> BaseModel:
    """Validate a plugin's settings table, naming the plugin and field on error, and the
    settings it does have when a name is not one of them."""
    try:
        return model_cls.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(map(str, error["loc"])) or "settings"
            if error["type"] == "extra_forbidden":
                known = ", ".join(model_cls.model_fields) or "none"
                problems.append(f"{where}: {owner} has no such setting (its settings: {known})")
            else:
                problems.append(f"{where}: {error['msg']}")
        raise ConfigError(f"invalid settings for {owner}: {'; '.join(problems)}") from None


def _problems(exc: ValidationError) -> str:
    """pydantic's errors as one line: ``field: message; ...``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
