"""The run folder: manifest, splits, preparation report, one folder per unit, summary.

Every file is written atomically (a temporary file, then a rename). A unit is written
into ``unit-K.partial/`` and renamed to ``unit-K/`` when complete, so a ``unit-K``
folder is a finished unit and an interrupted run resumes at the missing ones. Units are
numbered from 1, in the order of ``manifest.json``'s ``units`` (their labels). The JSON
files are read through the typed records of :mod:`mer_bench.run_records`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from pydantic import BaseModel, ValidationError

from mer_bench.atomic import atomic_write
from mer_bench.cache import library_versions
from mer_bench.errors import RunError, RunFormatError
from mer_bench.plugin_calls import one_line
from mer_bench.run_records import FORMAT_VERSION, Manifest, Summary, UnitMetrics, stored_format

RecordT = TypeVar("RecordT", bound=BaseModel)

#: Libraries whose versions can change a run's numbers.
KEY_PACKAGES = ("mer-bench", "numpy", "pandas", "scikit-learn", "scipy", "librosa", "soundfile", "soxr", "pluggy")


def to_json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def csv_bytes(table: pd.DataFrame) -> bytes:
    """A table as CSV with fixed float formatting, so equal tables give equal bytes.

    Ten significant digits keep clip offsets exact to the sample at any audio rate.
    """
    return table.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode()


#: Libraries the model and feature plugins may use; recorded when installed.
OPTIONAL_PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "opensmile", "musicnn", "openl3", "torch")


def package_versions(extra: list[str] | None = None) -> dict[str, str]:
    """Installed versions of the key libraries (and ``extra`` distributions), the optional
    ones that are installed, and Python's."""
    optional = {k: v for k, v in library_versions(OPTIONAL_PACKAGES).items() if v != "not installed"}
    return {**library_versions((*KEY_PACKAGES, *(extra or []))), **optional, "python": platform.python_version()}


def git_commit() -> dict[str, Any] | None:
    """The commit of the mer-bench source tree, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def host_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def new_run_id(config: dict[str, Any], now: datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-<model>-<6 hex of the config>``."""
    now = now or datetime.now(timezone.utc)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{now:%Y%m%d-%H%M%S}-{config['model']}-{digest}"


class RunFolder:
    """One run's folder under the runs directory."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @staticmethod
    def check_runs_dir(runs_dir: Path) -> None:
        """RunError unless run folders can be made in ``runs_dir``: checked before a run reads any
        data, so a wrong ``--runs-dir`` costs no preparation. Creates nothing: the folder (and
        its missing parents) is made with the first run folder."""
        runs_dir = Path(runs_dir)
        if runs_dir.exists() and not runs_dir.is_dir():
            raise RunError(f"the runs folder {runs_dir} is a file, not a folder; pass another --runs-dir")
        existing = runs_dir
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise RunError(f"cannot create a run folder in {runs_dir}: {os.strerror(errno.ENOTDIR)}; pass another --runs-dir")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RunError(f"cannot create a run folder in {runs_dir}: {existing} is not writable; pass another --runs-dir")

    @classmethod
    def create(cls, runs_dir: Path, run_id: str) -> RunFolder:
        """A new, empty folder ``run_id`` (or ``run_id-2``, ``-3``, ... when taken).

        ``mkdir`` either creates a folder or fails, so two runs started at the same moment
        never share one: the second takes the next suffix.
        """
        cls.check_runs_dir(runs_dir)
        try:
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
            for suffix in range(1, 10_000):
                path = Path(runs_dir) / (run_id if suffix == 1 else f"{run_id}-{suffix}")
                try:
                    path.mkdir()
                except FileExistsError:
                    continue
                return cls(path)
        except OSError as exc:
            raise RunError(f"cannot create a run folder in {runs_dir}: {exc.strerror or exc}; pass another --runs-dir") from None
        raise RunError(f"cannot create a run folder in {runs_dir}: {run_id} and its next 9,999 suffixes are taken")

    @classmethod
    def open(cls, runs_dir: Path, run_id: str) -> RunFolder:
        """An existing run; RunError names the runs folder when it is not there."""
        path = Path(runs_dir) / run_id
        if not (path / "manifest.json").is_file():
            known = sorted(p.name for p in Path(runs_dir).glob("*") if (p / "manifest.json").is_file())
            hint = f"; runs there: {', '.join(known[-5:])}" if known else ""
            raise RunError(f"no run {run_id!r} in {runs_dir}{hint}")
        return cls(path)

    def resume_command(self) -> str:
        """The command that continues this run."""
        where = "" if self.path.parent == Path("runs") else f" --runs-dir {shlex.quote(str(self.path.parent))}"
        return f"mer-bench run --resume {self.run_id}{where}"

    def write(self, name: str, data: bytes) -> None:
        """Write ``name`` atomically; RunError when the disk is full or the folder is not writable."""
        try:
            atomic_write(self.path / name, data)
        except OSError as exc:
            raise RunError(f"run {self.run_id}: cannot write {name} ({exc.strerror or exc})") from None

    def write_json(self, name: str, obj: Any) -> None:
        self.write(name, to_json_bytes(obj))

    def read_json(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RunError(f"run {self.run_id}: {name} is missing") from None
        except json.JSONDecodeError as exc:
            raise RunError(f"run {self.run_id}: {name} is damaged ({exc})") from None

    def write_csv(self, name: str, table: pd.DataFrame) -> None:
        self.write(name, csv_bytes(table))

    def read_csv(self, name: str) -> pd.DataFrame:
        """A table of the run (track ids and uids as text); RunError when it is missing, empty or
        not CSV."""
        try:
            return pd.read_csv(self.path / name, dtype={"track_id": str, "uid": str})
        except FileNotFoundError:
            raise RunError(f"run {self.run_id}: {name} is missing") from None
        except pd.errors.EmptyDataError:
            raise RunError(f"run {self.run_id}: {name} is empty (a damaged run folder)") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise RunError(f"run {self.run_id}: {name} is not a readable CSV table: {one_line(exc)}") from None

    def read_record(self, name: str, record: type[RecordT]) -> RecordT:
        """``name`` as a ``record`` (:mod:`mer_bench.run_records`); RunError when the file is
        missing or damaged, or the folder was written in another run-folder format."""
        data = self.read_json(name)
        version = stored_format(data)
        # The manifest and the summary carry the folder's format; a unit's files follow them.
        if "format_version" in record.model_fields and version != FORMAT_VERSION:
            written = self._written_by()
            by = f" by mer-bench {written}" if written else " by an older mer-bench"
            raise RunFormatError(
                f"run {self.run_id} was written{by} in run-folder format {version}; this mer-bench reads format "
                f"{FORMAT_VERSION}: re-run it, or read it with the mer-bench that wrote it"
            )
        try:
            return record.model_validate(data)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            raise RunError(f"run {self.run_id}: {name} is damaged ({problem})") from None

    def _written_by(self) -> str | None:
        """The mer-bench version the manifest names, however old its format."""
        try:
            data = json.loads((self.path / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        version = data.get("mer_bench_version") if isinstance(data, dict) else None
        return version if isinstance(version, str) else None

    def manifest(self) -> Manifest:
        return self.read_record("manifest.json", Manifest)

    def summary(self) -> Summary:
        """The summary of a finished run; RunError naming ``--resume`` when it is unfinished."""
        if not (self.path / "summary.json").is_file() and (self.path / "manifest.json").is_file():
            raise RunError(f"run {self.run_id} is unfinished; `{self.resume_command()}` finishes it")
        return self.read_record("summary.json", Summary)

    def unit_dir(self, unit: int) -> Path:
        return self.path / f"unit-{unit}"

    def unit_done(self, unit: int) -> bool:
        return (self.unit_dir(unit) / "metrics.json").is_file()

    def start_unit(self, unit: int) -> Path:
        """A fresh staging folder for ``unit``; anything an interrupted attempt left is removed."""
        staging = self.path / f"unit-{unit}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir()
        except OSError as exc:
            raise RunError(f"run {self.run_id}: cannot create {staging.name} ({exc.strerror or exc})") from None
        return staging

    def finish_unit(self, unit: int, staging: Path) -> None:
        """Publish a completed unit by renaming its staging folder (over what is left of an
        unfinished one, which has no metrics.json)."""
        if self.unit_dir(unit).exists():
            shutil.rmtree(self.unit_dir(unit))
        os.replace(staging, self.unit_dir(unit))

    def finished_units(self, units: list[int]) -> list[int]:
        """Those of ``units`` that are done, in order."""
        return [k for k in units if self.unit_done(k)]

    def unit_metrics(self, units: list[int]) -> list[UnitMetrics]:
        """The metrics of every finished unit of ``units``, in order."""
        return [self.read_record(f"unit-{k}/metrics.json", UnitMetrics) for k in self.finished_units(units)]

    def unit_predictions(self, units: list[int]) -> pd.DataFrame:
        """The test predictions of every finished unit of ``units``, one table with a ``unit`` column."""
        parts = [self.read_csv(f"unit-{k}/predictions.csv").assign(unit=k) for k in self.finished_units(units)]
        if not parts:
            raise RunError(f"run {self.run_id} has no finished unit yet")
        return pd.concat(parts, ignore_index=True)
