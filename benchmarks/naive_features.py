"""The seed projects' way of computing the project's feature set: one librosa call per feature.

:func:`naive_features` returns exactly what :meth:`deepfake_audio.features.FeatureExtractor.extract`
returns (same rows, same order, same utterance statistics), but every feature is computed
straight from the samples ``y``, as the seed projects did::

    mfcc      librosa.feature.mfcc(y=...)                 STFT 1 (+ mel + dB + DCT)
    chroma    librosa.feature.chroma_stft(y=...)          STFT 2 (+ per-clip tuning estimate)
    rms       librosa.feature.rms(y=...)                  time domain
    zcr       librosa.feature.zero_crossing_rate(y)       time domain
    centroid  librosa.feature.spectral_centroid(y=...)    STFT 3
    bandwidth librosa.feature.spectral_bandwidth(y=...)   STFT 4
    rolloff   librosa.feature.spectral_rolloff(y=...)     STFT 5
    contrast  librosa.feature.spectral_contrast(y=...)    STFT 6
    log-mel   librosa.feature.melspectrogram(y=...)       STFT 7 (+ mel), then power_to_db

so the same STFT is computed seven times per clip and each call also rebuilds its filterbank.

``tuning=None`` (the default) is the seed behaviour: ``chroma_stft`` estimates the tuning of every
clip (a pitch-tracking pass, ``librosa.estimate_tuning``) and builds a chroma filterbank for it.
The project's extractor uses a fixed A440 filterbank (``tuning=0``), so pass ``tuning=0.0`` to get
values equal to the extractor's (``tests/test_naive_features.py`` checks it, with tolerances).

This module is a reference and a benchmark baseline, not part of the pipeline.
"""
from __future__ import annotations

import numpy as np

from deepfake_audio.features import CONTRAST_FMIN
from deepfake_audio.params import FeatureParams


def naive_features(y: np.ndarray, *, sample_rate: int, params: FeatureParams,
                   tuning: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame and utterance features of one clip, one librosa call per feature.

    Args:
        y: float32 samples of shape ``(n_samples,)`` at ``sample_rate`` (already decoded, resampled
            and cropped/padded, e.g. by ``FeatureExtractor.load``).
        sample_rate: Hz.
        params: the STFT and filterbank options (``n_fft``, ``hop_length``, ``n_mels``, ``n_mfcc``,
            ``n_chroma``, ``n_contrast_bands``, ``rolloff_percent``, ``fmin``); the worker options
            are ignored.
        tuning: chroma tuning in fractions of a chroma bin; ``None`` estimates it per clip (the
            seed behaviour), ``0.0`` is the project's fixed A440 filterbank.

    Returns:
        ``(frames, utterance)``: float32 arrays of shape ``(n_frame_features, n_frames)`` and
        ``(n_utterance_features,)``, in the layout of ``FeatureExtractor.layout``.
    """
    import librosa

    p, sr = params, sample_rate
    f = librosa.feature
    stft = {"n_fft": p.n_fft, "hop_length": p.hop_length, "window": "hann", "center": True}
    frame = {"frame_length": p.n_fft, "hop_length": p.hop_length, "center": True}

    mfcc = f.mfcc(y=y, sr=sr, n_mfcc=p.n_mfcc, n_mels=p.n_mels, fmin=p.fmin, **stft)
    chroma = f.chroma_stft(y=y, sr=sr, n_chroma=p.n_chroma, tuning=tuning, **stft)
    rms = f.rms(y=y, **frame)
    zcr = f.zero_crossing_rate(y, **frame)
    centroid = f.spectral_centroid(y=y, sr=sr, **stft)
    bandwidth = f.spectral_bandwidth(y=y, sr=sr, **stft)
    rolloff = f.spectral_rolloff(y=y, sr=sr, roll_percent=p.rolloff_percent, **stft)
    contrast = f.spectral_contrast(y=y, sr=sr, fmin=CONTRAST_FMIN, n_bands=p.n_contrast_bands, **stft)
    logmel = librosa.power_to_db(f.melspectrogram(y=y, sr=sr, n_mels=p.n_mels, fmin=p.fmin, **stft))

    frames = np.concatenate([mfcc, chroma, rms, zcr, centroid, bandwidth, rolloff, contrast]).astype(np.float32)
    both = np.concatenate([frames, logmel.astype(np.float32)])
    # Interleaved as in FeatureExtractor.extract: <name>_mean, <name>_std, <next name>_mean, ...
    stats = np.stack([both.mean(axis=1), both.std(axis=1)], axis=1).reshape(-1)
    return frames, stats.astype(np.float32)
