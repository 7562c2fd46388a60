"""Reads ``registry.toml``: built-in plugins, dataset suites, presets and published results."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mer_bench.errors import ConfigError
from mer_bench.selection import Policy


class Preset(BaseModel):
    """Protocol settings and per-model settings applied before the config file and CLI."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    test_size: float | None = None
    folds: int | None = None
    clip_seconds: float | None = None
    #: Per dataset name ("*": the others), which prepared tracks to keep.
    selection: dict[str, Policy] = Field(default_factory=dict)
    #: Per model name, that model's settings.
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Per model name, settings of the feature extractor that model consumes.
    feature_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def protocol_values(self) -> dict[str, Any]:
        """The protocol fields this preset sets (those left out are not set)."""
        return self.model_dump(exclude={"description", "models", "feature_settings"}, exclude_none=True)


class PublishedResult(BaseModel):
    """One result as its paper reports it."""

    model_config = ConfigDict(extra="forbid")

    system: str
    #: Short form shown in tables, e.g. "Cazzaniga et al. 2024".
    reference: str
    citation: str
    datasets: list[str]
    protocol: str
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
