"""Saving the scikit-learn models' fitted estimators in a run folder, and loading them without running code.

Run folders are shared between people, and unpickling a file runs whatever code the file
names, so these models never write or read a pickle. The estimators go into
``model.skops`` (skops: a zip of JSON and ``.npy`` arrays) and the model's own settings
into ``sklearn-model.json``. skops rebuilds only the types it trusts: its defaults
(scikit-learn's public estimators, NumPy and SciPy containers, builtins) plus the fixed
list each model passes to :func:`load_estimators`, reviewed by hand. A file holding any
other type is refused before anything in it is built.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mer_bench.config import validate_settings
from mer_bench.errors import ModelError, RunError

ESTIMATORS = "model.skops"
META = "sklearn-model.json"
#: Bumped when the layout of these two files changes.
FORMAT = 1


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def save_estimators(folder: Path, name: str, estimators: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``estimators`` (fitted scikit-learn objects by key) with skops and ``meta`` (plain JSON) to ``folder``."""
    import skops.io

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    skops.io.dump(estimators, folder / ESTIMATORS)
    record = {
        "model": name,
        "format": FORMAT,
        **meta,
        "versions": {"scikit-learn": _version("scikit-learn"), "skops": _version("skops")},
    }
    (folder / META).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def load_estimators(
    folder: Path,
    name: str,
    trusted: Sequence[str],
    expect: dict[str, type],
    settings_model: type[BaseModel],
    legacy: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The estimators and metadata :func:`save_estimators` wrote to ``folder``.

    ``trusted`` names the types, beyond skops's defaults, that model ``name`` saves and
    that are safe to rebuild; ``expect`` gives the class each estimator must have. The
    metadata's ``settings`` come back validated by ``settings_model``. ``legacy`` is the
    pickle an older mer-bench wrote instead: it is never opened.

    Raises :class:`~mer_bench.errors.RunError` for an old pickle, a file holding an
    untrusted type or an estimator of the wrong class (the run must be re-run), and
    :class:`~mer_bench.errors.ModelError` for a missing or unreadable file.
    """
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    folder = Path(folder)
    path = folder / ESTIMATORS
    if not path.exists() and (folder / legacy).exists():
        raise RunError(
            f"{folder / legacy} was saved in an unsafe format (pickle, which can run any code when loaded) by an "
            f"older mer-bench, so it is not loaded: re-run this run with `mer-bench run` (its manifest.json has "
            f"the settings)"
        )
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ModelError(f"{folder / META} holds a {type(meta).__name__}, not a JSON object: re-run this run")
        missing = [key for key in ("n_classes", "seed") if not isinstance(meta.get(key), int)]
        if missing:
            raise ModelError(f"{folder / META} lacks an integer {', '.join(missing)}: re-run this run")
        meta["settings"] = validate_settings(settings_model, meta.get("settings", {}), f"the {name} model in {folder}")
        estimators = skops.io.load(path, trusted=list(trusted))
    except UntrustedTypesFoundException:
        # Named from the file rather than from the exception, whose message spans several lines.
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted))
        raise RunError(
            f"{path} holds types the {name} model does not trust, so it is not loaded: {', '.join(untrusted)}; "
            f"the file was changed after the run saved it, or saved by another mer-bench or scikit-learn: "
            f"re-run this run"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot load the {name} model saved in {folder}: {exc}") from None
    # Trusted types can still be put together in a shape this model never saves.
    if not isinstance(estimators, dict):
        wrong = [f"it holds a {type(estimators).__name__}, not a dict"]
    else:
        wrong = [
            f"{key} is {type(estimators.get(key)).__name__}, not {cls.__name__}"
            for key, cls in expect.items()
            if not isinstance(estimators.get(key), cls)
        ]
    if wrong:
        raise RunError(f"{path} is not a {name} model ({'; '.join(wrong)}): re-run this run")
    return estimators, meta


def saved_outputs(folder: Path) -> int:
    """How many values the model saved in ``folder`` predicts (its metadata's ``n_outputs``;
    0: a classifier). An unreadable file counts as 0 and is left for :func:`load_estimators`
    to report."""
    try:
        meta = json.loads((Path(folder) / META).read_text(encoding="utf-8"))
        return int(meta.get("n_outputs", 0)) if isinstance(meta, dict) else 0
    except (OSError, ValueError, TypeError):
        return 0
