"""``compare-functionals``: the openSMILE ComParE 2016 functionals (6,373 values per clip).

The feature set PMEmo (Zhang et al. 2018) ships as its static baseline features
(``static_features.csv``), here computed on the run's prepared clip so that every model
sees the same audio. Needs the ``opensmile`` package (``pip install 'mer-bench[opensmile]'``),
whose wheel bundles the openSMILE library and the ComParE configuration: nothing is
downloaded.

Assumption: 44100 Hz input (PMEmo's audio rate); the clip is resampled to it by soxr
before openSMILE sees it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.audio import load_clip
from mer_bench.errors import FeatureError
from mer_bench.types import Clip, FeatureExtractor

OPENSMILE_MISSING = "compare-functionals needs openSMILE: pip install 'mer-bench[opensmile]'"


def import_opensmile():
    """The ``opensmile`` module, its bundled library bound to its own symbols first.

    TensorFlow loads its core with ``RTLD_GLOBAL``. ``libSMILEapi.so`` loaded after it binds
    some of its symbols to TensorFlow's copies and corrupts the heap on the first signal
    ("malloc(): invalid size"). Loading it once with ``RTLD_DEEPBIND`` before ``opensmile``
    does makes it prefer its own symbols; the later load by ``opensmile`` gets the same
    handle. The features are identical to those of a process without TensorFlow.
    """
    if "opensmile" not in sys.modules and hasattr(os, "RTLD_DEEPBIND"):
        spec = importlib.util.find_spec("opensmile")
        if spec is not None and spec.origin is not None:
            for library in Path(spec.origin).parent.glob("core/bin/*/libSMILEapi.so"):
                try:
                    ctypes.CDLL(str(library), mode=os.RTLD_LOCAL | os.RTLD_DEEPBIND)
                except OSError:
                    continue  # another platform's build: opensmile picks its own
    import opensmile

    return opensmile


class CompareSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(44100, gt=0)


class CompareFunctionals(FeatureExtractor):
    name = "compare-functionals"
    settings_model = CompareSettings

    def check(self, settings: CompareSettings) -> None:
        """The ``opensmile`` package importable (without importing it)."""
        if importlib.util.find_spec("opensmile") is None:
            raise FeatureError(OPENSMILE_MISSING)

    def extract(self, clip: Clip, settings: CompareSettings) -> np.ndarray:
        opensmile = import_opensmile()
        smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.ComParE_2016, feature_level=opensmile.FeatureLevel.Functionals
        )
        y = load_clip(clip.audio_path, clip.start_s, clip.duration_s, settings.sample_rate)
        return smile.process_signal(y, settings.sample_rate).to_numpy(dtype=np.float32).reshape(-1)


@hookimpl
def mer_bench_feature_extractors():
    return [CompareFunctionals()]
