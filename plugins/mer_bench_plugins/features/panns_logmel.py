"""``panns-logmel``: the PANNs front end (Kong et al. 2020) over a fixed length of audio.

The input Sung and Wei (2021) give their CNN-6 and CNN-10: the first 60 s of each file,
cut or zero-padded, as a 64-band log-Mel spectrogram computed like torchlibrosa's
``Spectrogram`` + ``LogmelFilterBank``: Hann window 1024, hop 320, centred frames with
reflect padding, power spectrum, Slaney Mel filters 50..14000 Hz, 10*log10 with
reference 1.0 and floor 1e-10, no top_db. The array is frames x 64, float16.

Where this follows PANNs rather than BECMER's code: the audio is resampled to 32 kHz
(PANNs' rate). BECMER read every file at its native rate while computing filters for
44.1 kHz, which mis-scales the Mel axis of the 16, 22.05 and 32 kHz files of 4Q.

``start = "file"`` (the default) reads from the file's start, as they did; the protocol's
clip then only decides which tracks are long enough to be kept. ``start = "clip"``
reads the protocol's crop instead (cut or padded likewise), so that this model hears
what the others hear.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mer_bench import hookimpl
from mer_bench.audio import load_clip
from mer_bench.types import Clip, FeatureExtractor


class PannsLogmelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(32000, gt=0)
    window: int = Field(1024, gt=0)
    hop_length: int = Field(320, gt=0)
    n_mels: int = Field(64, gt=0)
    fmin: float = Field(50.0, ge=0)
    fmax: float = Field(14000.0, gt=0)
    seconds: float = Field(60.0, gt=0, description="audio length, cut or zero-padded")
    start: Literal["file", "clip"] = Field("file", description="read from the file's start or from the protocol's crop")

    @model_validator(mode="after")
    def _bands_below_nyquist(self) -> PannsLogmelSettings:
        if not self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need fmin < fmax <= sample_rate / 2 ({self.sample_rate / 2:g} Hz); got {self.fmin:g}..{self.fmax:g}")
        return self


def logmel(y: np.ndarray, settings: PannsLogmelSettings) -> np.ndarray:
    """frames x n_mels log-Mel spectrogram of ``y``, as torchlibrosa computes it."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y,
        sr=settings.sample_rate,
        n_fft=settings.window,
        hop_length=settings.hop_length,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=settings.n_mels,
        fmin=settings.fmin,
        fmax=settings.fmax,
    )
    return (10.0 * np.log10(np.maximum(mel, 1e-10))).T


class PannsLogmel(FeatureExtractor):
    name = "panns-logmel"
    settings_model = PannsLogmelSettings

    def extract(self, clip: Clip, settings: PannsLogmelSettings) -> np.ndarray:
        if settings.start == "file":
            # The protocol's crop says nothing of the length left after the file's start,
            # so a shorter file is read as it is and zero-padded, as the authors padded.
            y = load_clip(clip.audio_path, 0.0, settings.seconds, settings.sample_rate, allow_short=True)
        else:
            seconds = min(settings.seconds, clip.duration_s)
            y = load_clip(clip.audio_path, clip.start_s, seconds, settings.sample_rate)
        wanted = int(round(settings.seconds * settings.sample_rate))
        y = np.pad(y[:wanted], (0, max(0, wanted - len(y))))
        return logmel(y, settings).astype(np.float16)


@hookimpl
def mer_bench_feature_extractors():
    return [PannsLogmel()]
