"""``musicnn``: pretrained musicnn embeddings of the clip (Pons and Serra 2019), pooled over time.

The one pretrained music embedding that installs and runs offline: the ``musicnn``
wheel carries its TensorFlow checkpoints. It stands in for the OpenL3 and VGGish
embeddings of Koh and Dubnov (2021), whose weights cannot be fetched here. The clip is
cut into 3 s patches (musicnn's input, 16 kHz, no overlap); the chosen layer's values
(``penultimate``: 200 per patch, from the MSD-trained musicnn by default) are summarised
by their mean and standard deviation over the patches.

musicnn 0.1.0 pins NumPy < 1.17 and TensorFlow 1.x and is written for TensorFlow 1's
graph API, which TensorFlow 2 keeps only beside the legacy Keras 2 (``tf-keras``). So:

    pip install --no-deps musicnn==0.1.0 'tf-keras==2.21.*'   # at your TensorFlow's version

(``mer-bench[musicnn]`` installs tf-keras with its dependencies, for the full
``tensorflow`` package; with ``tensorflow-cpu`` that would add a second TensorFlow.)

and this feature sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is first imported. A
process that has already imported TensorFlow with Keras 3 cannot switch; the error says so.

musicnn casts its Mel spectrogram to float16 before ``log10(10000 * S + 1)``, which
overflows to infinity on loud tonal frames (7 of the demo's 204 clips): the harness
excludes such clips as ``non-finite-features`` and reports them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from mer_bench import hookimpl
from mer_bench.audio import load_clip
from mer_bench.errors import FeatureError
from mer_bench.types import Clip, FeatureExtractor

SAMPLE_RATE = 16000  # musicnn's input rate


def install_hint() -> str:
    """The commands that install musicnn beside the TensorFlow found here (without importing it)."""
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("tensorflow", "tensorflow-cpu"):
        try:
            major_minor = ".".join(version(distribution).split(".")[:2])
        except PackageNotFoundError:
            continue
        return f"pip install --no-deps musicnn==0.1.0 'tf-keras=={major_minor}.*'"
    return "pip install 'mer-bench[musicnn]' and then pip install --no-deps musicnn==0.1.0"


class MusicnnSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Literal["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"] = "MSD_musicnn"
    layer: Literal["penultimate", "mean_pool", "max_pool"] = "penultimate"


def legacy_keras_tensorflow():
    """TensorFlow with its legacy Keras 2, as musicnn needs; a FeatureError where that cannot be had."""
    if "tensorflow" not in sys.modules:
        # TensorFlow reads it once, at import.
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    elif os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise FeatureError(
            "the musicnn feature needs TensorFlow's legacy Keras, but this process imported TensorFlow with "
            "Keras 3 first: set TF_USE_LEGACY_KERAS=1 before starting it"
        )
    import tensorflow as tf

    return tf


class MusicnnEmbedding(FeatureExtractor):
    name = "musicnn"
    settings_model = MusicnnSettings

    def check(self, settings: MusicnnSettings) -> None:
        """musicnn and tf-keras importable (without importing them)."""
        missing = [m for m in ("musicnn", "tf_keras", "tensorflow") if importlib.util.find_spec(m) is None]
        if missing:
            raise FeatureError(f"the musicnn feature needs {', '.join(missing)}: {install_hint()}")

    def extract(self, clip: Clip, settings: MusicnnSettings) -> np.ndarray:
        import soundfile as sf

        legacy_keras_tensorflow()
        from musicnn.extractor import extractor

        y = load_clip(clip.audio_path, clip.start_s, clip.duration_s, SAMPLE_RATE)
        # musicnn reads a file (with librosa, at 16 kHz): give it exactly the prepared clip.
        with tempfile.TemporaryDirectory(prefix="mer-bench-musicnn-") as tmp:
            path = Path(tmp) / "clip.wav"
            sf.write(str(path), y, SAMPLE_RATE, subtype="FLOAT")
            # It prints a line per call; a run's output is the progress bar's.
            with contextlib.redirect_stdout(io.StringIO()):
                _, _, layers = extractor(str(path), model=settings.model, input_length=3, extract_features=True)
        patches = np.asarray(layers[settings.layer], dtype=np.float64)
        return np.concatenate([patches.mean(axis=0), patches.std(axis=0)]).astype(np.float32)


@hookimpl
def mer_bench_feature_extractors():
    return [MusicnnEmbedding()]
