"""``mel-image``: the input of Cazzaniga et al. (2024), a 300x300x3 image of a dB Mel spectrogram.

Per clip (cached): the central crop resampled to 22050 Hz by soxr, with no loudness
normalisation, a Mel power spectrogram (librosa), and its absolute dB values
10*log10(S) as float16. Per dataset (each run): the reference is the largest dB value
over all clips of the dataset, as the paper does, since
10*log10(S/ref) = 10*log10(S) - 10*log10(ref); values are then clipped to
``top_db`` below the reference, scaled to 0..255, resized to 300x300 and made
three-channel. The floor is the dataset's, not each clip's own maximum minus ``top_db``
as librosa's ``power_to_db`` would clip it: every image of a dataset shares one scale.

Choices where the paper is silent (settings, documented in docs/protocol.md): 128 Mel
bands, FFT 2048, hop 512 (librosa's defaults), an 80 dB range, low frequencies at the
bottom of the image, bilinear resizing, and the grey image repeated on three channels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.audio import load_clip
from mer_bench.types import Clip, FeatureExtractor

AMIN = 1e-10  # librosa's floor for power before the log


class MelImageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(22050, gt=0)
    n_fft: int = Field(2048, gt=0)
    hop_length: int = Field(512, gt=0)
    n_mels: int = Field(128, gt=0)
    fmin: float = Field(0.0, ge=0)
    fmax: float | None = Field(None, gt=0, description="None: half the sample rate")
    top_db: float = Field(80.0, gt=0, description="dynamic range below the dataset's maximum")
    size: int = Field(300, gt=0, description="the image is size x size")
    channels: Literal["repeat", "viridis"] = Field("repeat", description="grey on 3 channels, or a colour map")


def absolute_db(y: np.ndarray, settings: MelImageSettings) -> np.ndarray:
    """10*log10 of the Mel power spectrogram of ``y`` (n_mels x frames), as float32."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y,
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        n_mels=settings.n_mels,
        fmin=settings.fmin,
        fmax=settings.fmax,
        power=2.0,
    )
    return (10.0 * np.log10(np.maximum(mel, AMIN))).astype(np.float32)


def to_image(db: np.ndarray, reference_db: float, settings: MelImageSettings) -> np.ndarray:
    """One clip's dB spectrogram as a uint8 image (size x size x 3) against ``reference_db``."""
    from PIL import Image

    relative = np.clip(db.astype(np.float32) - reference_db, -settings.top_db, 0.0)
    scaled = (relative + settings.top_db) * (255.0 / settings.top_db)
    # Row 0 of an image is its top: flip so that low frequencies sit at the bottom.
    picture = Image.fromarray(np.ascontiguousarray(scaled[::-1]), mode="F")
    resized = np.asarray(picture.resize((settings.size, settings.size), Image.Resampling.BILINEAR))
    grey = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    if settings.channels == "repeat":
        return np.repeat(grey[:, :, None], 3, axis=2)
    from matplotlib import colormaps

    lut = (colormaps[settings.channels](np.arange(256))[:, :3] * 255).round().astype(np.uint8)
    return lut[grey]


class MelImage(FeatureExtractor):
    name = "mel-image"
    settings_model = MelImageSettings

    def extract(self, clip: Clip, settings: MelImageSettings) -> np.ndarray:
        y = load_clip(clip.audio_path, clip.start_s, clip.duration_s, settings.sample_rate)
        return absolute_db(y, settings).astype(np.float16)

    def finish_dataset(self, arrays: np.ndarray, settings: MelImageSettings) -> np.ndarray:
        """Images against the dataset's own maximum, assembled as uint8 one clip at a time."""
        reference = float(max(np.max(a) for a in arrays))
        out = np.empty((len(arrays), settings.size, settings.size, 3), dtype=np.uint8)
        for i, db in enumerate(arrays):
            out[i] = to_image(db, reference, settings)
        return out


@hookimpl
def mer_bench_feature_extractors():
    return [MelImage()]
