"""Decoding, resampling and fixed-length cropping of audio clips.

Every loader here returns float32 mono samples in [-1, 1] at an explicit sample rate: nothing
resamples behind the caller's back. Faults raise the :class:`~deepfake_audio.errors.AudioError`
family so that per-file workers can turn them into rejects with a reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from deepfake_audio.errors import CorruptAudio, EmptyAudio, NonFiniteAudio, SilentAudio, TooShortAudio, UnsupportedAudio

MAX_FLOAT_PEAK = 1e3
"""Float samples this far beyond full scale are garbage, not an overshoot to clip."""

SILENCE_PEAK = 1e-5
"""A clip whose absolute peak is below this (about -100 dBFS) carries no signal."""


def read_audio(path: Path | str) -> tuple[np.ndarray, int]:
    """Decode a file at its own sample rate.

    Returns:
        ``(y, sample_rate)`` with ``y`` float32 of shape ``(n_samples,)``: channels are averaged.

    Raises:
        EmptyAudio, CorruptAudio, UnsupportedAudio, NonFiniteAudio.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise CorruptAudio(f"{path}: file not found") from exc
    if size == 0:
        raise EmptyAudio(f"{path}: zero-byte file")
    try:
        data, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        text = str(exc)
        if "unimplemented format" in text or "Format not recognised" in text:
            raise UnsupportedAudio(f"{path}: {text}") from exc
        raise CorruptAudio(f"{path}: {text}") from exc
    except (RuntimeError, ValueError) as exc:  # soundfile raises these for broken headers
        raise CorruptAudio(f"{path}: {exc}") from exc
    except MemoryError as exc:  # sf.read allocates the frame count the header declares, which may be a lie
        raise CorruptAudio(f"{path}: cannot allocate the frames its header declares: {exc}") from exc
    if data.shape[0] == 0:
        raise EmptyAudio(f"{path}: no samples")
    y = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(y).all():
        raise NonFiniteAudio(f"{path}: NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak > MAX_FLOAT_PEAK:
        raise CorruptAudio(f"{path}: peak {peak:.3g} is far beyond full scale (1.0); not audio samples")
    # Float files may overshoot full scale a little; clip as a converter would.
    y = np.clip(y, -1.0, 1.0) if peak > 1.0 else y
    return np.ascontiguousarray(y, dtype=np.float32), int(sample_rate)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with soxr (deterministic, band-limited). Returns float32."""
    if orig_sr == target_sr:
        return y.astype(np.float32, copy=False)
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: Path | str, *, sample_rate: int, min_duration_s: float = 0.0) -> np.ndarray:
    """Decode, downmix and resample a clip, and reject clips that carry no usable signal.

    Returns:
        float32 samples of shape ``(n_samples,)`` at ``sample_rate`` Hz.

    Raises:
        the :class:`~deepfake_audio.errors.AudioError` family, including ``SilentAudio`` and
        ``TooShortAudio``.
    """
    y, sr = read_audio(path)
    if len(y) < min_duration_s * sr:
        raise TooShortAudio(f"{path}: {len(y) / sr:.3f} s is shorter than {min_duration_s} s")
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise SilentAudio(f"{path}: all samples are (near) zero")
    return resample(y, orig_sr=sr, target_sr=sample_rate)


def fix_length(y: np.ndarray, n_samples: int, *, pad: str = "repeat", crop: str = "start") -> np.ndarray:
    """Crop or pad a clip to exactly ``n_samples``.

    Args:
        y: float32 samples, shape ``(n,)`` with ``n >= 1``.
        n_samples: target length.
        pad: ``"repeat"`` tiles the clip (no silent tail for a model to key on) or ``"zero"``.
        crop: ``"start"`` keeps the beginning, ``"center"`` the middle.
    """
    n = len(y)
    if n == 0:
        raise EmptyAudio("cannot fix the length of an empty clip")
    if n == n_samples:
        return y
    if n > n_samples:
        start = 0 if crop == "start" else (n - n_samples) // 2
        return y[start : start + n_samples]
    if pad == "repeat":
        reps = -(-n_samples // n)  # ceil division
        return np.tile(y, reps)[:n_samples]
    out = np.zeros(n_samples, dtype=y.dtype)
    out[:n] = y
    return out


def write_audio(path: Path | str, y: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM FLAC (or WAV, by suffix) atomically. Samples are clipped to [-1, 1]."""
    from deepfake_audio.io import atomic_path

    path = Path(path)
    fmt = {".flac": "FLAC", ".wav": "WAV"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"write_audio: unsupported suffix {path.suffix!r} (use .flac or .wav)")
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(y, -1.0, 1.0), sample_rate, subtype="PCM_16", format=fmt)
