"""``openl3``: OpenL3 music embeddings of the clip, averaged over time (Koh and Dubnov 2021).

Koh and Dubnov ("Comparison and analysis of deep audio embeddings for music emotion
recognition", AffCon @ AAAI 2021) classify clips from L3-Net (OpenL3) embeddings. This
feature runs the ``openl3`` package on the prepared clip (music content, mel256 input,
512 values, one frame every ``hop_seconds``) and returns each value's mean and standard
deviation over the frames (1,024 values). Their pooling is not available here: mean and
standard deviation is this module's assumption.

OpenL3's weights cannot be fetched here: ``pip install openl3`` downloads them from GitHub
while it installs. So this feature needs both the package and a local weights file, and
reports itself unavailable (never falling back to random weights) until they are there.
It has not been run in mer-bench's own tests, which have neither.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.audio import load_clip
from mer_bench.errors import FeatureError
from mer_bench.paths import WEIGHTS_ENV, weights_dir
from mer_bench.types import Clip, FeatureExtractor

#: OpenL3's weights archive (v0.4.0), as its setup.py fetches it.
WEIGHTS_URL = "https://github.com/marl/openl3/raw/models/{stem}-v0_4_0.h5.gz"


class OpenL3Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(None, description="the .h5 file; None: weights_dir()/openl3_audio_<repr>_<content>.h5")
    input_repr: Literal["linear", "mel128", "mel256"] = "mel256"
    content_type: Literal["music", "env"] = "music"
    embedding_size: Literal[512, 6144] = 512
    hop_seconds: float = Field(0.1, gt=0)


def weights_path(settings: OpenL3Settings) -> Path:
    """The weights file the settings ask for."""
    if settings.weights:
        return Path(settings.weights).expanduser()
    return weights_dir() / f"openl3_audio_{settings.input_repr}_{settings.content_type}.h5"


def check_openl3(settings: OpenL3Settings) -> Path:
    """The weights file, once the package and the file are both there; else a FeatureError saying what to do."""
    if importlib.util.find_spec("openl3") is None:
        raise FeatureError(
            "the openl3 feature needs the openl3 package, which cannot be installed offline (its setup downloads "
            "weights from GitHub): on a machine with internet, pip install openl3, then copy its weights file here"
        )
    path = weights_path(settings)
    if not path.is_file():
        stem = f"openl3_audio_{settings.input_repr}_{settings.content_type}"
        raise FeatureError(
            f"OpenL3 weights not found at {path}: download {WEIGHTS_URL.format(stem=stem)}, gunzip it to that path "
            f"(or set the feature's weights = PATH, or {WEIGHTS_ENV} to the folder holding it)"
        )
    return path


class OpenL3Embedding(FeatureExtractor):
    name = "openl3"
    settings_model = OpenL3Settings

    def check(self, settings: OpenL3Settings) -> None:
        """The openl3 package importable and its weights file present."""
        check_openl3(settings)

    def extract(self, clip: Clip, settings: OpenL3Settings) -> np.ndarray:
        import openl3

        path = check_openl3(settings)
        model = openl3.models.load_audio_embedding_model_from_path(
            str(path), settings.input_repr, settings.embedding_size
        )
        # OpenL3 works at 48 kHz and resamples itself; reading at that rate skips a step.
        y = load_clip(clip.audio_path, clip.start_s, clip.duration_s, 48000)
        frames, _ = openl3.get_audio_embedding(y, 48000, model=model, hop_size=settings.hop_seconds, verbose=False)
        return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)


@hookimpl
def mer_bench_feature_extractors():
    return [OpenL3Embedding()]
