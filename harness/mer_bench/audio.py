"""Audio decoding for every stage: exact decoded length, and mono clips at a chosen rate.

soundfile (libsndfile >= 1.1) decodes WAV, FLAC, OGG and MP3; soxr resamples with an
anti-aliasing filter. Errors name the file and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mer_bench.errors import AudioError

_BLOCK = 1 << 16


def require_file(path: Path) -> None:
    """AudioError unless ``path`` is a regular file: a device such as /dev/zero, a pipe or a
    folder would make hashing or decoding read forever or fail obscurely."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found", code="audio-missing")
    if not path.is_file():
        raise AudioError(path, "not a regular file (a folder, device or pipe)", code="audio-missing")


def _open(path: Path):
    import soundfile as sf

    require_file(path)
    try:
        return sf.SoundFile(str(path))
    except Exception as exc:  # libsndfile raises LibsndfileError/RuntimeError by version
        raise AudioError(path, f"cannot decode: {exc}") from None


def _read_whole_mp3(f) -> np.ndarray:
    """Decode an MP3 in one call.

    A seek, or a second read call, makes libsndfile resynchronise libmpg123, which then
    prints "part2_3_length ... too large" errors to stderr for every file (the samples
    are right). One call is silent, and at most a few tens of MB for a 90 s stereo clip.
    :func:`load_clip` likewise reads an MP3 in one call, up to the end of its crop.
    """
    return f.read(dtype="float32", always_2d=True)


def _blocks(f):
    """The decoded frames of ``f`` in blocks (an MP3 in one, see :func:`_read_whole_mp3`)."""
    if f.format == "MP3":
        yield _read_whole_mp3(f)
        return
    while len(block := f.read(_BLOCK, dtype="float32", always_2d=True)):
        yield block


def _non_finite(path: Path, at_s: float) -> AudioError:
    # Float WAV/FLAC can hold NaN or infinity; every feature would turn them into NaN.
    return AudioError(path, f"samples are NaN or infinite (first at {at_s:.2f} s)", code="non-finite-audio")


def decoded_duration(path: Path) -> float:
    """The length in seconds of the audio actually decoded from ``path``.

    Decodes the whole file block by block rather than trusting the header or a
    dataset's metadata, so truncated and corrupt files are caught here, and so are
    samples that are not finite numbers.
    """
    with _open(path) as f:
        frames = 0
        try:
            for block in _blocks(f):
                if not np.isfinite(block).all():
                    bad = int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
                    raise _non_finite(path, (frames + bad) / f.samplerate)
                frames += len(block)
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(path, f"decoding failed after {frames / f.samplerate:.2f} s: {exc}") from None
        if frames == 0:
            raise AudioError(path, "no audio frames decoded")
        return frames / f.samplerate


def load_clip(
    path: Path, start_s: float, duration_s: float, sample_rate: int, *, allow_short: bool = False
) -> np.ndarray:
    """Decode ``duration_s`` seconds from ``start_s`` as mono float32 at ``sample_rate``.

    Channels are averaged; resampling uses soxr's high-quality anti-aliasing filter.
    Raises AudioError if the file yields less audio than asked for, unless
    ``allow_short``: then what there is comes back (a feature that pads says so).
    """
    import soxr

    with _open(path) as f:
        native = f.samplerate
        start = int(round(start_s * native))
        want = int(round(duration_s * native))
        try:
            if f.format == "MP3":
                # One call from the start up to the crop's end: no seek, no second read.
                x = f.read(start + want, dtype="float32", always_2d=True)[start:]
            else:
                f.seek(start)
                x = f.read(want, dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioError(path, f"cannot decode {duration_s:g} s from {start_s:g} s: {exc}") from None
    if len(x) == 0 or (len(x) < want and not allow_short):
        raise AudioError(path, f"only {len(x) / native:.2f} s decoded from {start_s:g} s, {duration_s:g} s needed")
    if not np.isfinite(x).all():
        raise _non_finite(path, start_s + int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0]) / native)
    # Adding whole columns is several times faster than x.mean(axis=1) on frames-major data.
    mono = x[:, 0].copy()
    for channel in range(1, x.shape[1]):
        mono += x[:, channel]
    if x.shape[1] > 1:
        mono /= x.shape[1]
    if native != sample_rate:
        mono = soxr.resample(mono, native, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(mono, dtype=np.float32)
