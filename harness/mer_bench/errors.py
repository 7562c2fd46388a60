"""Exceptions a user can act on. The CLI prints their message as one line."""


class MerBenchError(Exception):
    """Base class of every error mer-bench reports to the user."""


class ConfigError(MerBenchError):
    """A run configuration, preset or settings table is invalid."""


class PluginError(MerBenchError):
    """A plugin failed to load, conflicts with another, or does not exist."""


class PluginCallError(PluginError):
    """A plugin raised an exception, or returned something unusable, when mer-bench called it."""


class UnknownPluginError(PluginError):
    """A plugin name was asked for that no loaded plugin provides."""

    def __init__(self, kind: str, name: str, known: list[str], failed: list[str] | None = None):
        self.kind, self.name, self.known, self.failed = kind, name, known, failed or []
        listing = ", ".join(sorted(known)) or "none"
        message = f"unknown {kind} plugin {name!r}; known {kind} plugins: {listing}"
        if self.failed:
            message += "; it may come from a plugin that did not load: " + " | ".join(self.failed)
        super().__init__(message)

    def __reduce__(self):
        return type(self), (self.kind, self.name, self.known, self.failed)


class DatasetError(MerBenchError):
    """A dataset cannot be found or its track table is malformed."""


class AudioError(MerBenchError):
    """An audio file is missing or cannot be decoded.

    ``reason`` is the human-readable cause; ``code`` the exclusion reason a run records for
    the track (``audio-missing``, ``decode-error``, ``non-finite-audio``).
    """

    def __init__(self, path, reason: str, code: str = "decode-error"):
        self.path, self.reason, self.code = path, reason, code
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        # Raised in worker processes: rebuilt from its own arguments, not from the message.
        return type(self), (self.path, self.reason, self.code)


class RunError(MerBenchError):
    """A run folder is missing, damaged, or does not match the command resuming it."""


class RunFormatError(RunError):
    """A run folder was written by another mer-bench in another run-folder format."""


class ModelError(MerBenchError):
    """A model cannot be built, trained or loaded here (a missing library or weights file, bad input)."""


class FeatureError(MerBenchError):
    """A feature cannot be computed here (a missing library or weights file)."""


class CacheError(MerBenchError):
    """The feature cache cannot be written (no permission, a full disk)."""


class FigureUnavailable(MerBenchError):
    """A run cannot show a figure (a model with no per-epoch loss, a feature that is not an image)."""


class ProtocolError(MerBenchError):
    """An evaluation protocol cannot run on these datasets or settings (``lodo`` with one dataset,
    ``official`` on a dataset that defines no split)."""


class ExecutorError(MerBenchError):
    """An executor cannot run jobs here (a missing library, an unreachable cluster)."""


class DownloadError(MerBenchError):
    """A file could not be fetched, checked or unpacked (no network, a checksum mismatch)."""
