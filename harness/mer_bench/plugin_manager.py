"""The plugin manager: built-ins from ``registry.toml``, then third-party entry points.

pluggy's own ``load_setuptools_entrypoints`` stops at the first plugin that fails to
import, so entry points are loaded here one at a time: a plugin that fails to import,
register or answer its hooks is recorded as a :class:`PluginFailure` and the others
still load. Two objects of one kind with one name keep the first (built-ins load first);
the second is a failure, and asking for that name is refused, since which one a user
meant is unknown. ``strict=True`` turns any failure into an error, for plugin authors.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

import pluggy

from mer_bench import hookspecs
from mer_bench.errors import PluginError, UnknownPluginError
from mer_bench.executors import Executor
from mer_bench.types import DatasetLoader, EvaluationProtocol, FeatureExtractor, LabelConverter, ModelFactory, Task

ENTRY_POINT_GROUP = "mer_bench"
#: Set to 1 to load only the built-ins (no third-party entry points).
DISABLE_AUTOLOAD_ENV = "MER_BENCH_DISABLE_PLUGIN_AUTOLOAD"

#: kind -> (hook name, protocol every object of that kind must satisfy)
KINDS: dict[str, tuple[str, type]] = {
    "dataset": ("mer_bench_datasets", DatasetLoader),
    "label": ("mer_bench_label_converters", LabelConverter),
    "feature": ("mer_bench_feature_extractors", FeatureExtractor),
    "model": ("mer_bench_models", ModelFactory),
    "protocol": ("mer_bench_protocols", EvaluationProtocol),
    "task": ("mer_bench_tasks", Task),
    "executor": ("mer_bench_executors", Executor),
}


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin came from."""

    plugin: str
    distribution: str
    version: str
    builtin: bool

    def __str__(self) -> str:
        origin = "built-in" if self.builtin else "entry point"
        return f"{self.plugin} ({origin}, {self.distribution} {self.version})"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used, and why."""

    source: PluginSource
    error: str


@dataclass(frozen=True)
class PluginEntry:
    """One object a plugin contributed."""

    kind: str
    name: str
    obj: Any
    source: PluginSource


@dataclass
class PluginSet:
    """Every loaded plugin object by kind and name, and the plugins that failed."""

    entries: dict[str, dict[str, PluginEntry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failures: list[PluginFailure] = field(default_factory=list)
    #: kind -> name -> the sources of the objects that share that name (the first is in ``entries``).
    contested: dict[str, dict[str, list[PluginSource]]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def get(self, kind: str, name: str) -> Any:
        """The object of ``kind`` called ``name``.

        PluginError when several plugins offer that name; UnknownPluginError lists the
        known ones, and names any plugin that failed to load and may have provided it.
        """
        sources = self.contested[kind].get(name)
        if sources:
            raise PluginError(
                f"{len(sources)} {kind} plugins are named {name!r}: " + " and ".join(map(str, sources))
                + "; uninstall one of them (`mer-bench plugins` lists what is installed)"
            )
        try:
            return self.entries[kind][name].obj
        except KeyError:
            raise UnknownPluginError(kind, name, list(self.entries[kind]), self._suspects(name)) from None

    def _suspects(self, name: str) -> list[str]:
        """The load failures that may explain a missing ``name``: those whose plugin or
        distribution is named like it, or else every failure."""
        def norm(text: str) -> str:
            return text.lower().replace("_", "-")

        alike = [f for f in self.failures if norm(name) in norm(f.source.plugin) or norm(name) in norm(f.source.distribution)]
        return [f"{f.source} failed to load: {f.error}" for f in (alike or self.failures)]

    def dataset(self, name: str) -> DatasetLoader:
        return self.get("dataset", name)

    def label_converter(self, name: str) -> LabelConverter:
        return self.get("label", name)

    def feature(self, name: str) -> FeatureExtractor:
        return self.get("feature", name)

    def executor(self, name: str) -> Executor:
        return self.get("executor", name)

    def model(self, name: str) -> ModelFactory:
        return self.get("model", name)

    def protocol(self, name: str) -> EvaluationProtocol:
        return self.get("protocol", name)

    def task(self, name: str) -> Task:
        return self.get("task", name)

    def all_entries(self) -> list[PluginEntry]:
        """Every entry, sorted by kind then name."""
        return [e for kind in KINDS for _, e in sorted(self.entries[kind].items())]


def _members(protocol: type) -> dict[str, Any]:
    """Every public member ``protocol`` declares, mapped to its default (``_REQUIRED`` if none):
    a class attribute's value, or a method marked :func:`~mer_bench.defaults.has_default`."""
    members: dict[str, Any] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object, Protocol) or klass.__name__ == "Generic":
            continue
        for name in getattr(klass, "__annotations__", {}):
            members.setdefault(name, _REQUIRED)
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (property, staticmethod, classmethod)):
                members[name] = _REQUIRED  # no protocol declares one with a default
            elif callable(value) and not isinstance(value, type):
                members[name] = value if getattr(value, "__mer_bench_default__", False) else _REQUIRED
            else:
                members[name] = value
    return members


_REQUIRED = object()


def missing_members(obj: Any, protocol: type) -> list[str]:
    """The members ``protocol`` requires (those without a default) that ``obj`` lacks."""
    return sorted(n for n, default in _members(protocol).items() if default is _REQUIRED and not hasattr(obj, n))


def give_defaults(obj: Any, protocol: type) -> list[str]:
    """Set on ``obj`` the defaults of the members of ``protocol`` it lacks, so that code reading
    them need not know whether a plugin subclassed the protocol; returns those it could not
    set (an object with ``__slots__``).

    A default method is bound with ``functools.partial``, which pickles with the object (unit
    jobs carry factories and tasks to worker processes). Presence is looked up statically, so
    an object whose ``__getattr__`` answers everything still gets the defaults."""
    refused = []
    for name, default in _members(protocol).items():
        if default is _REQUIRED or inspect.getattr_static(obj, name, _REQUIRED) is not _REQUIRED:
            continue
        value = functools.partial(default, obj) if callable(default) and not isinstance(default, type) else default
        try:
            # object.__setattr__ also sets an attribute of a frozen dataclass.
            object.__setattr__(obj, name, value)
        except (AttributeError, TypeError):
            refused.append(name)
    return sorted(refused)


def _builtin_source(module: str) -> PluginSource:
    from mer_bench import __version__

    return PluginSource(plugin=module, distribution="mer-bench", version=__version__, builtin=True)


def _entry_point_source(ep: metadata.EntryPoint) -> PluginSource:
    dist = ep.dist
    return PluginSource(
        plugin=ep.name,
        distribution=dist.name if dist else "unknown",
        version=dist.version if dist else "unknown",
        builtin=False,
    )


class _Loader:
    def __init__(self, strict: bool):
        self.strict = strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.result = PluginSet()
        self.sources: dict[str, PluginSource] = {}

    def fail(self, source: PluginSource, error: BaseException | str) -> None:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if self.strict:
            raise PluginError(f"plugin {source} failed: {message}")
        self.result.failures.append(PluginFailure(source, message))

    def register(self, obj: Any, source: PluginSource) -> None:
        name = source.plugin
        if self.pm.has_plugin(name):
            self.fail(source, f"a plugin named {name!r} is already loaded from {self.sources[name]}; this one is not")
            return
        try:
            self.pm.register(obj, name=name)
            # Registering one at a time lets a hook-name typo be pinned on its plugin.
            self.pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            # ValueError: the same object is already registered under another name.
            if self.pm.is_registered(obj) and self.pm.get_name(obj) == name:
                self.pm.unregister(obj)
            self.fail(source, exc)
            return
        self.sources[name] = source

    def collect(self) -> PluginSet:
        for kind, (hook_name, protocol) in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            # Called one implementation at a time, in registration order (built-ins first),
            # so each object keeps its source and one failing plugin does not hide the others.
            for impl in hook.get_hookimpls():
                source = self.sources[impl.plugin_name]
                try:
                    objects = list(impl.function() or [])
                except Exception as exc:  # a plugin's bug must not stop the harness
                    self.fail(source, exc)
                    continue
                for obj in objects:
                    self.add(kind, protocol, obj, source)
        return self.result

    def add(self, kind: str, protocol: type, obj: Any, source: PluginSource) -> None:
        if isinstance(obj, type):
            self.fail(source, f"its hook returned the class {obj.__name__}, not an instance: return {obj.__name__}()")
            return
        name = getattr(obj, "name", None)
        missing = missing_members(obj, protocol)
        refused = [] if missing else give_defaults(obj, protocol)
        if missing or refused or not isinstance(name, str) or not name:
            if refused:
                problem = f"cannot be given the defaults of {', '.join(refused)} (its class has __slots__): define them"
            else:
                lacks = f"lacks {', '.join(missing)}" if missing else "has no name (a non-empty str)"
                problem = f"{lacks}, which the {protocol.__name__} protocol requires"
            self.fail(
                source,
                f"{kind} object {obj!r:.80} {problem} "
                f"(subclass {protocol.__module__}.{protocol.__name__} to inherit its defaults)",
            )
            return
        table = self.result.entries[kind]
        if name in table:
            first = table[name].source
            self.fail(source, f"its {kind} {name!r} has the name of one from {first}; the first one loaded is kept")
            self.result.contested[kind].setdefault(name, [first]).append(source)
            return
        table[name] = PluginEntry(kind, name, obj, source)


def load_plugins(
    builtins: list[str] | None = None,
    *,
    strict: bool = False,
    entry_points: bool | None = None,
) -> PluginSet:
    """Load the built-in plugin modules, then every entry point of group ``mer_bench``.

    ``builtins`` defaults to the list in ``registry.toml``. ``entry_points`` defaults to
    true unless ``MER_BENCH_DISABLE_PLUGIN_AUTOLOAD=1``.
    """
    if builtins is None:
        from mer_bench.registry import load_registry

        builtins = load_registry().builtins.plugins
    if entry_points is None:
        entry_points = os.environ.get(DISABLE_AUTOLOAD_ENV, "") not in ("1", "true", "yes")
    loader = _Loader(strict)
    for module_name in builtins:
        source = _builtin_source(module_name)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            loader.fail(source, exc)
            continue
        loader.register(module, source)
    if entry_points:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            source = _entry_point_source(ep)
            try:
                obj = ep.load()
            except Exception as exc:
                loader.fail(source, exc)
                continue
            loader.register(obj, source)
    return loader.collect()
