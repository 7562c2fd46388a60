"""``logmel-stats``: summary statistics of a log-Mel spectrogram, for fast non-deep models.

Per Mel band over the clip: the mean and standard deviation of the dB values and the
mean absolute frame-to-frame change (a cue for note density and onsets). dB values are
absolute (reference 1.0) so loudness is kept, as the source paper keeps it.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.audio import load_clip
from mer_bench.types import Clip, FeatureExtractor


class LogmelStatsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(22050, gt=0)
    n_mels: int = Field(64, gt=0)
    n_fft: int = Field(2048, gt=0)
    hop_length: int = Field(512, gt=0)


class LogmelStats(FeatureExtractor):
    name = "logmel-stats"
    settings_model = LogmelStatsSettings

    def extract(self, clip: Clip, settings: LogmelStatsSettings) -> np.ndarray:
        import librosa

        y = load_clip(clip.audio_path, clip.start_s, clip.duration_s, settings.sample_rate)
        mel = librosa.feature.melspectrogram(
            y=y, sr=settings.sample_rate, n_fft=settings.n_fft, hop_length=settings.hop_length, n_mels=settings.n_mels
        )
        db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        flux = np.abs(np.diff(db, axis=1)).mean(axis=1)
        return np.concatenate([db.mean(axis=1), db.std(axis=1), flux]).astype(np.float32)


@hookimpl
def mer_bench_feature_extractors():
    return [LogmelStats()]
