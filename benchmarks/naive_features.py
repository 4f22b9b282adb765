"""The seed projects' way of computing the project's feature groups: one librosa call per feature.

:func:`naive_features` returns exactly what :meth:`deepfake_audio.features.FeatureExtractor.extract`
returns for the same params (same groups, rows, order and utterance statistics), but every group is
computed straight from the samples ``y``, as the seed projects did::

    mfcc      librosa.feature.mfcc(y=...) + delta + delta   STFT (+ mel + dB + DCT), 2 filters
    log_mel   librosa.feature.melspectrogram(y=...)         STFT (+ mel), then power_to_db
    lfcc      librosa.stft(y) + a linear filterbank + DCT   STFT (librosa has no LFCC), 2 filters
    cqt       librosa.cqt(y)                                multirate CQT
    chroma    librosa.feature.chroma_stft(y=...)            STFT (+ per-clip tuning estimate)
    tonnetz   librosa.feature.tonnetz(chroma=chroma_stft(y=...))   STFT again
    rms       librosa.feature.rms(y=...)                    time domain
    zcr       librosa.feature.zero_crossing_rate(y)         time domain
    centroid  librosa.feature.spectral_centroid(y=...)      STFT
    bandwidth librosa.feature.spectral_bandwidth(y=...)     STFT
    contrast  librosa.feature.spectral_contrast(y=...)      STFT
    rolloff   librosa.feature.spectral_rolloff(y=...)       STFT
    flatness  librosa.feature.spectral_flatness(y=...)      STFT

so the default groups compute the same STFT eleven times per clip, and each call also rebuilds
its filterbank.

``tuning=None`` (the default) is the seed behaviour: ``chroma_stft`` estimates the tuning of every
clip (a pitch-tracking pass, ``librosa.estimate_tuning``) and builds a chroma filterbank for it.
The project's extractor uses a fixed A440 filterbank (``tuning=0``), so pass ``tuning=0.0`` to get
values equal to the extractor's (``tests/test_naive_features.py`` checks it, with tolerances).

This module is a reference and a benchmark baseline, not part of the pipeline.
"""

from __future__ import annotations

import numpy as np

from deepfake_audio.features import CONTRAST_FMIN, GROUPS
from deepfake_audio.params import FeatureParams


def naive_features(
    y: np.ndarray, *, sample_rate: int, params: FeatureParams, tuning: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Frame and utterance features of one clip, one librosa call per feature.

    Args:
        y: float32 samples of shape ``(n_samples,)`` at ``sample_rate`` (already decoded, resampled
            and cropped/padded, e.g. by ``FeatureExtractor.load``).
        sample_rate: Hz.
        params: the STFT options, feature groups and their options; the worker options are ignored.
        tuning: chroma tuning in fractions of a chroma bin; ``None`` estimates it per clip (the
            seed behaviour), ``0.0`` is the project's fixed A440 filterbank.

    Returns:
        ``(frames, utterance)``: float32 arrays of shape ``(n_frame_features, n_frames)`` and
        ``(n_utterance_features,)``, in the layout of ``FeatureExtractor.layout``.
    """
    p = params
    groups = [g for g in GROUPS if g in p.frame_groups or g in p.utterance_groups]
    values = {g: _GROUP[g](y, sample_rate, p, tuning).astype(np.float32) for g in groups}
    n_frames = 1 + len(y) // p.hop_length
    frame = [values[g] for g in groups if g in p.frame_groups]
    frames = np.concatenate(frame) if frame else np.zeros((0, n_frames), np.float32)
    summarised = [values[g] for g in groups if g in p.utterance_groups]
    if not summarised:
        return frames, np.zeros(0, np.float32)
    rows = np.concatenate(summarised)
    stats = []
    for stat in p.stats:
        if stat == "mean":
            stats.append(np.mean(rows, axis=1))
        elif stat == "std":
            stats.append(np.std(rows, axis=1))
        else:
            stats.append(np.percentile(rows, float(stat[1:]), axis=1))
    # Interleaved as in FeatureExtractor.extract: <row>_<stat 1>, <row>_<stat 2>, <next row>_...
    return frames, np.stack(stats, axis=1).reshape(-1).astype(np.float32)


def _stft_kw(p: FeatureParams) -> dict:
    return {"n_fft": p.n_fft, "hop_length": p.hop_length, "window": "hann", "center": True}


def _frame_kw(p: FeatureParams) -> dict:
    return {"frame_length": p.n_fft, "hop_length": p.hop_length, "center": True}


def _with_deltas(x: np.ndarray, deltas: int) -> np.ndarray:
    import librosa

    return np.concatenate([x] + [librosa.feature.delta(x, order=k) for k in range(1, deltas + 1)])


def _mfcc(y, sr, p, tuning):
    import librosa

    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=p.mfcc.n_mfcc, n_mels=p.n_mels, fmin=p.fmin, **_stft_kw(p))
    return _with_deltas(mfcc, p.mfcc.deltas)


def _log_mel(y, sr, p, tuning):
    import librosa

    return librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=p.n_mels, fmin=p.fmin, **_stft_kw(p)))


def _lfcc(y, sr, p, tuning):
    import librosa
    from scipy.fftpack import dct

    power = np.abs(librosa.stft(y, **_stft_kw(p))) ** 2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=p.n_fft)
    n = p.lfcc.n_filters
    step = sr / 2 / (n + 1)  # filter i: from i * step up to a peak at (i + 1) * step, down to (i + 2) * step
    bank = np.zeros((n, len(freqs)))
    for i in range(n):
        up = (freqs - i * step) / step
        down = ((i + 2) * step - freqs) / step
        bank[i] = np.clip(np.minimum(up, down), 0.0, None)
    db = librosa.power_to_db(bank.astype(np.float32) @ power)
    return _with_deltas(dct(db, type=2, norm="ortho", axis=0)[: p.lfcc.n_lfcc], p.lfcc.deltas)


def _cqt(y, sr, p, tuning):
    import librosa

    c = p.cqt
    return librosa.amplitude_to_db(
        np.abs(
            librosa.cqt(
                y, sr=sr, hop_length=p.hop_length, fmin=c.fmin, n_bins=c.n_bins, bins_per_octave=c.bins_per_octave
            )
        )
    )


def _chroma(y, sr, p, tuning):
    import librosa

    return librosa.feature.chroma_stft(y=y, sr=sr, n_chroma=p.chroma.n_chroma, tuning=tuning, **_stft_kw(p))


def _tonnetz(y, sr, p, tuning):
    import librosa

    return librosa.feature.tonnetz(y=y, sr=sr, chroma=_chroma(y, sr, p, tuning))


def _rms(y, sr, p, tuning):
    import librosa

    return librosa.feature.rms(y=y, **_frame_kw(p))


def _zcr(y, sr, p, tuning):
    import librosa

    return librosa.feature.zero_crossing_rate(y, **_frame_kw(p))


def _centroid(y, sr, p, tuning):
    import librosa

    return librosa.feature.spectral_centroid(y=y, sr=sr, **_stft_kw(p))


def _bandwidth(y, sr, p, tuning):
    import librosa

    return librosa.feature.spectral_bandwidth(y=y, sr=sr, **_stft_kw(p))


def _contrast(y, sr, p, tuning):
    import librosa

    return librosa.feature.spectral_contrast(
        y=y, sr=sr, fmin=CONTRAST_FMIN, n_bands=p.spectral_contrast.n_bands, **_stft_kw(p)
    )


def _rolloff(y, sr, p, tuning):
    import librosa

    return librosa.feature.spectral_rolloff(y=y, sr=sr, roll_percent=p.spectral_rolloff.roll_percent, **_stft_kw(p))


def _flatness(y, sr, p, tuning):
    import librosa

    return librosa.feature.spectral_flatness(y=y, **_stft_kw(p))


_GROUP = {
    "mfcc": _mfcc,
    "log_mel": _log_mel,
    "lfcc": _lfcc,
    "cqt": _cqt,
    "chroma": _chroma,
    "tonnetz": _tonnetz,
    "rms": _rms,
    "zcr": _zcr,
    "spectral_centroid": _centroid,
    "spectral_bandwidth": _bandwidth,
    "spectral_contrast": _contrast,
    "spectral_rolloff": _rolloff,
    "spectral_flatness": _flatness,
}
