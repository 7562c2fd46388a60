"""``handcrafted``: clip-level audio descriptors in the manner of the Coimbra group's MER work.

Malheiro et al. (2016) and Panda et al. (2018) summarise frame descriptors from Marsyas,
MIR Toolbox and PsySound over each clip and classify with an SVM. Those toolboxes do
not run here, so this is an approximation with librosa, covering the same families:

- timbre and spectral shape: 20 MFCCs and their deltas, spectral centroid, bandwidth,
  roll-off, flatness, zero-crossing rate, spectral contrast (7 bands);
- dynamics: RMS energy;
- tonality: chroma (12) and tonnetz (6);

each summarised over the clip by mean, standard deviation, skewness and kurtosis
(71 descriptors x 4 = 284 values), then 10 clip-level values:

- rhythm: tempo, onset-strength mean and standard deviation, onsets per second, pulse
  clarity (the highest non-zero-lag peak of the mean autocorrelation tempogram);
- dynamics: low-energy rate (share of frames below the mean RMS);
- tonality: the best correlation of the mean chroma with the Krumhansl-Kessler major and
  minor key profiles over the 12 keys, and their difference (mode);
- texture: log ratio of harmonic to percussive energy (HPSS).

Assumptions where the papers' exact lists are not available: 22050 Hz, FFT 2048, hop
512, chroma at standard tuning (A = 440 Hz, not estimated per clip), tonnetz from STFT chroma (not CQT, for speed), and skewness and kurtosis of a
constant descriptor (a silent clip) taken as 0 rather than undefined.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_bench import hookimpl
from mer_bench.audio import load_clip
from mer_bench.types import Clip, FeatureExtractor

#: Krumhansl and Kessler's (1982) key profiles, starting on the tonic.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


class HandcraftedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(22050, gt=0)
    n_fft: int = Field(2048, gt=0)
    hop_length: int = Field(512, gt=0)
    n_mfcc: int = Field(20, gt=0)


def frame_descriptors(y: np.ndarray, magnitude: np.ndarray, settings: HandcraftedSettings) -> np.ndarray:
    """The frame-level descriptors of ``y`` (with ``magnitude``, its STFT magnitude), one row per descriptor."""
    import librosa

    sr, n_fft, hop = settings.sample_rate, settings.n_fft, settings.hop_length
    power = magnitude**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=settings.n_mfcc)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0)
    return np.vstack(
        [
            mfcc,
            librosa.feature.delta(mfcc, mode="nearest"),
            librosa.feature.spectral_centroid(S=magnitude, sr=sr),
            librosa.feature.spectral_bandwidth(S=magnitude, sr=sr),
            librosa.feature.spectral_rolloff(S=magnitude, sr=sr),
            librosa.feature.spectral_flatness(S=magnitude),
            librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop),
            librosa.feature.rms(S=magnitude, frame_length=n_fft),
            librosa.feature.spectral_contrast(S=magnitude, sr=sr),
            chroma,
            librosa.feature.tonnetz(chroma=chroma, sr=sr),
        ]
    )


def summarise(frames: np.ndarray) -> np.ndarray:
    """Mean, std, skewness and kurtosis of each row (skew and kurtosis 0 for a constant row)."""
    from scipy.stats import kurtosis, skew

    std = frames.std(axis=1)
    varies = std > 1e-6 * np.maximum(np.abs(frames).max(axis=1), 1e-12)
    skews, kurtoses = np.zeros(len(frames)), np.zeros(len(frames))
    skews[varies] = skew(frames[varies], axis=1)
    kurtoses[varies] = kurtosis(frames[varies], axis=1)
    return np.concatenate([frames.mean(axis=1), std, skews, kurtoses])


def key_strengths(mean_chroma: np.ndarray) -> tuple[float, float]:
    """The best correlation of ``mean_chroma`` with the major and with the minor profile, over 12 keys."""
    if mean_chroma.std() < 1e-12:
        return 0.0, 0.0
    best = []
    for profile in (KK_MAJOR, KK_MINOR):
        best.append(max(float(np.corrcoef(mean_chroma, np.roll(profile, k))[0, 1]) for k in range(12)))
    return best[0], best[1]


def clip_values(y: np.ndarray, magnitude: np.ndarray, frames: np.ndarray, settings: HandcraftedSettings) -> np.ndarray:
    """The 10 clip-level rhythm, dynamics, tonality and texture values."""
    import librosa

    sr, hop = settings.sample_rate, settings.hop_length
    onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=hop))[0])
    onsets = librosa.onset.onset_detect(onset_envelope=onset, sr=sr, hop_length=hop)
    tempogram = librosa.feature.tempogram(onset_envelope=onset, sr=sr, hop_length=hop).mean(axis=1)
    pulse_clarity = float(tempogram[1:].max() / tempogram[0]) if tempogram[0] > 0 else 0.0
    rms = frames[2 * settings.n_mfcc + 5]
    low_energy = float((rms < rms.mean()).mean())
    major, minor = key_strengths(frames[-18:-6].mean(axis=1))
    harmonic, percussive = librosa.decompose.hpss(magnitude)
    hp_ratio = float(np.log((np.sum(harmonic**2) + 1e-10) / (np.sum(percussive**2) + 1e-10)))
    seconds = len(y) / sr
    return np.array(
        [tempo, onset.mean(), onset.std(), len(onsets) / seconds, pulse_clarity, low_energy, major, minor, major - minor, hp_ratio]
    )


class Handcrafted(FeatureExtractor):
    name = "handcrafted"
    settings_model = HandcraftedSettings

    def extract(self, clip: Clip, settings: HandcraftedSettings) -> np.ndarray:
        import librosa

        y = load_clip(clip.audio_path, clip.start_s, clip.duration_s, settings.sample_rate)
        magnitude = np.abs(librosa.stft(y, n_fft=settings.n_fft, hop_length=settings.hop_length))
        frames = frame_descriptors(y, magnitude, settings)
        return np.concatenate([summarise(frames), clip_values(y, magnitude, frames, settings)]).astype(np.float32)


@hookimpl
def mer_bench_feature_extractors():
    return [Handcrafted()]
