"""``mel-segments``: the clip cut into fixed-length segments, each a standardised log-Mel spectrogram.

The input of Sarkar et al. (2020): Mel spectrograms of 5 s segments of a song. Their
exact settings are not available here; the defaults follow the third-party Keras
reimplementation named in docs/protocol.md (22050 Hz, FFT 2048, hop 512, so a 5 s
segment is 216 frames) with 128 Mel bands. Each segment's dB values are standardised
to zero mean and unit variance on their own, so loudness differences between songs do
not decide the class.

Segments do not overlap and start at the clip's start; the remainder shorter than one
segment is not used (with the paper's 24 s clip: four segments, the last 4 s unused).
The array is segments x Mel bands x frames, float16.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.audio import load_clip
from mer_bench.errors import AudioError
from mer_bench.types import Clip, FeatureExtractor


class MelSegmentsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(22050, gt=0)
    n_fft: int = Field(2048, gt=0)
    hop_length: int = Field(512, gt=0)
    n_mels: int = Field(128, gt=0)
    segment_seconds: float = Field(5.0, gt=0)


def segment_db(y: np.ndarray, settings: MelSegmentsSettings) -> np.ndarray:
    """One segment's standardised dB Mel spectrogram (n_mels x frames)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y, sr=settings.sample_rate, n_fft=settings.n_fft, hop_length=settings.hop_length, n_mels=settings.n_mels
    )
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    return (db - db.mean()) / max(float(db.std()), 1e-6)


class MelSegments(FeatureExtractor):
    name = "mel-segments"
    settings_model = MelSegmentsSettings

    def extract(self, clip: Clip, settings: MelSegmentsSettings) -> np.ndarray:
        y = load_clip(clip.audio_path, clip.start_s, clip.duration_s, settings.sample_rate)
        length = int(round(settings.segment_seconds * settings.sample_rate))
        count = len(y) // length
        if count == 0:
            raise AudioError(
                clip.audio_path, f"the {clip.duration_s:g} s clip is shorter than one {settings.segment_seconds:g} s segment"
            )
        return np.stack([segment_db(y[i * length : (i + 1) * length], settings) for i in range(count)]).astype(np.float16)


@hookimpl
def mer_bench_feature_extractors():
    return [MelSegments()]
