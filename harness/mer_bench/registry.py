"""Reads ``registry.toml``: built-in plugins, dataset suites, presets and published results."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mer_bench.errors import ConfigError
from mer_bench.selection import Policy


class Preset(BaseModel):
    """Run settings, the protocol with its settings, and per-model settings applied before
    the config file and the command line."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    clip_seconds: float | None = None
    #: The evaluation protocol (a protocol plugin's name).
    protocol: str | None = None
    #: Per protocol name, that protocol's settings (used when a run takes that protocol).
    protocols: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Per dataset name ("*": the others), which prepared tracks to keep.
    selection: dict[str, Policy] = Field(default_factory=dict)
    #: Per model name, that model's settings.
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Per model name, settings of the feature extractor that model consumes.
    feature_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def run_values(self) -> dict[str, Any]:
        """The run-config fields this preset sets itself (those left out are not set)."""
        return self.model_dump(include={"clip_seconds", "protocol", "selection"}, exclude_none=True)


class Measured(BaseModel):
    """How a published number was measured, as far as its source says: what a re-run must
    match to be compared with it. ``None`` and ``"not stated"`` mean the source does not say."""

    model_config = ConfigDict(extra="forbid")

    #: ``holdout+kfold``: k-fold CV on the development part, every fold's model scored on one
    #: held-out test set (the paper's); ``kfold``: each fold's held-out part is its test set;
    #: ``repeated-kfold``: the same, ``repeats`` times with new folds.
    validation: Literal["holdout+kfold", "kfold", "repeated-kfold", "not stated"]
    folds: int | None = Field(None, ge=2)
    repeats: int | None = Field(None, ge=1)
    #: The held-out share of ``holdout+kfold``.
    test_size: float | None = Field(None, gt=0, lt=1)
    #: The one fold the number comes from (1 = the first); None when it summarises the folds.
    fold: int | None = Field(None, ge=1)
    #: How the folds' scores became the number.
    aggregation: Literal["mean over folds", "one fold", "not stated"] = "not stated"
    #: How an F1 averages over classes (None for accuracy).
    averaging: Literal["micro", "macro", "weighted", "not stated"] | None = None
    #: Which data chose the epoch or model kept: ``test`` makes the number optimistic.
    selection: Literal["validation", "test", "none", "not stated"] = "not stated"


class PublishedResult(BaseModel):
    """One result as its paper reports it."""

    model_config = ConfigDict(extra="forbid")

    system: str
    #: Short form shown in tables, e.g. "Cazzaniga et al. 2024".
    reference: str
    citation: str
    #: Where the number is printed: the paper and the section or table.
    source: str
    datasets: list[str]
    #: What was predicted, as the name of the mer-bench task that predicts the same.
    task: str = "quadrants"
    #: The protocol in words; :attr:`measured` is the same in fields.
    protocol: str
    measured: Measured
    metric: str
    value: float = Field(ge=0, le=1)
    model: str | None = None
    notes: str = ""


class Builtins(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugins: list[str]


class Registry(BaseModel):
    """The whole registry file."""

    model_config = ConfigDict(extra="forbid")

    builtins: Builtins
    suites: dict[str, list[str]] = Field(default_factory=dict)
    presets: dict[str, Preset] = Field(default_factory=dict)
    published: list[PublishedResult] = Field(default_factory=list)

    def preset(self, name: str) -> Preset:
        """The named preset, or a ConfigError listing the known ones."""
        try:
            return self.presets[name]
        except KeyError:
            raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(self.presets))}") from None


def registry_path() -> Path:
    """Where the registry shipped with this installation lies."""
    return Path(str(resources.files("mer_bench").joinpath("registry.toml")))


def load_registry(path: Path | None = None) -> Registry:
    """Parse and validate a registry file (by default the shipped one)."""
    path = path or registry_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Registry.model_validate(data)
    except FileNotFoundError:
        raise ConfigError(f"registry not found at {path}; reinstall mer-bench") from None
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"invalid registry {path}: {exc}") from None
