"""Offline ImageNet weights for EfficientNetB3: find the Keras cache file and check it first.

Keras downloads ``efficientnetb3_notop.h5`` into ``$KERAS_HOME/models`` on first use and,
when a file there has the wrong hash and the download fails, deletes it. mer-bench never
lets Keras near the network or a user's file: it locates and checks the file itself, then
loads it into a network it built (see :mod:`mer_bench_plugins.models.effnetb3`). The file
is fetched only by ``mer-bench weights download effnetb3`` (:func:`imagenet_remote`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mer_bench.errors import ModelError
from mer_bench.types import RemoteFile, RemoteWeights

#: The file Keras' ``EfficientNetB3(include_top=False, weights="imagenet")`` loads.
IMAGENET_FILE = "efficientnetb3_notop.h5"
IMAGENET_URL = "https://storage.googleapis.com/keras-applications/efficientnetb3_notop.h5"
#: Keras' own hash for that file (keras/src/applications/efficientnet.py, WEIGHTS_HASHES).
IMAGENET_MD5 = "af6d107764bb5b1abb91932881670226"


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's initial weights come from; recorded with every saved model."""

    #: ``imagenet`` (the Keras cache file), ``file`` (a path the user gave) or ``none`` (random).
    kind: str
    path: Path | None = None
    md5: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready form for a model's metadata."""
        return {"kind": self.kind, "path": str(self.path) if self.path else None, "md5": self.md5}


def keras_home() -> Path:
    """Keras' folder, resolved the way Keras does: ``$KERAS_HOME``, else ``~/.keras``,
    else ``/tmp/.keras`` when the home folder is not writable."""
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"])
    home = Path("~").expanduser()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def imagenet_file() -> Path:
    """Where Keras keeps (and mer-bench looks for) the EfficientNetB3 ImageNet weights."""
    return keras_home() / "models" / IMAGENET_FILE


def imagenet_remote() -> RemoteWeights:
    """The ImageNet file as ``mer-bench weights download effnetb3`` fetches it: from Keras'
    own URL, checked against Keras' own MD5, to where :func:`resolve_weights` looks."""
    return RemoteWeights(
        RemoteFile(
            IMAGENET_URL,
            source="Keras' record: keras/src/applications/efficientnet.py, BASE_WEIGHTS_PATH and WEIGHTS_HASHES['b3']",
            md5=IMAGENET_MD5,
        ),
        imagenet_file(),
        terms="EfficientNetB3 ImageNet weights as Keras Applications publishes them (https://keras.io/api/applications/); "
        "they were trained on ImageNet: check its terms of use (https://image-net.org/download) for yours",
    )


def md5(path: Path) -> str:
    """The MD5 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _how_to_get(where: Path) -> str:
    return (
        f"run `mer-bench weights download effnetb3` on a machine with network access, or download {IMAGENET_URL} "
        f"(MD5 {IMAGENET_MD5}) and put it at {where} "
        "(or set KERAS_HOME to the folder above models/), pass weights=PATH to use a copy elsewhere, "
        "or weights=none to train from random initialisation"
    )


def resolve_weights(value: str) -> WeightsSource:
    """Turn the ``weights`` setting into a checked source, or raise ModelError saying what to do.

    ``imagenet`` needs the Keras cache file with Keras' MD5; ``none`` means random
    initialisation, asked for by name; anything else is a path to a weights file
    (``.h5`` as Keras ships them, or ``.weights.h5`` saved by Keras 3). A file is never
    modified or removed, whatever its state.
    """
    if value.lower() == "none":
        return WeightsSource("none")
    if value == "imagenet":
        where = imagenet_file()
        if not where.is_file():
            raise ModelError(f"EfficientNetB3 ImageNet weights not found at {where}; a run never downloads: " + _how_to_get(where))
        found = md5(where)
        if found != IMAGENET_MD5:
            raise ModelError(
                f"{where} has MD5 {found}, not Keras' {IMAGENET_MD5}: it is not the EfficientNetB3 ImageNet file "
                "(an interrupted download?). It was left untouched; replace it: " + _how_to_get(where)
            )
        return WeightsSource("imagenet", where, found)
    path = Path(value).expanduser()
    if not path.is_file():
        raise ModelError(
            f"weights file {path} not found; weights must be 'imagenet', 'none' or the path of a weights file"
        )
    return WeightsSource("file", path.resolve(), md5(path))
