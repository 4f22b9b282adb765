"""On-the-fly waveform augmentation of training crops, drawn per clip from a numpy Generator.

Unlike :mod:`deepfake_audio.augment`, which adds fixed augmented copies to the manifest, this
runs inside the training Dataset on every crop, every epoch: with probability ``prob`` a crop
goes through a chain of 1 to ``max_ops`` distinct ops drawn from ``train.augment.ops``.

==============  =============================================================================
op              what it does
==============  =============================================================================
``rawboost``    one RawBoost algorithm (1-8) drawn from ``rawboost.algos``
``codec``       MP3, Opus or Vorbis round trip at a drawn bitrate, or G.711 mu-law / A-law
                at 8 kHz
``resample``    down to a drawn lower rate and back (loses everything above its Nyquist)
``band_limit``  zero-phase Butterworth band-pass to a drawn pass band
``noise``       white or pink Gaussian noise at a drawn SNR
``reverb``      a synthetic room: direct path plus exponentially decaying noise (RT60, DRR)
``speed``       Kaldi/sox-style speed perturbation (tempo and pitch together), same length
==============  =============================================================================

:func:`augment_waveform` keeps the length; its output is float32, finite, with peak <= 1
(scaled down, never clipped). The same Generator state gives bit-identical output.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepfake_audio.audio import fix_length, resample
from deepfake_audio.augment import (
    _check_audio,
    _check_rate,
    _choice,
    _finish,
    _fit_length,
    add_noise,
    band_limit,
    codec,
    codec_kbps_range,
    resample_chain,
)
from deepfake_audio.params import WaveAugmentParams
from deepfake_audio.rawboost import rawboost

G711_RATE = 8000
"""Hz: G.711 is a narrow-band (300-3400 Hz) telephone codec."""

MU = 255.0
"""mu-law compression parameter (ITU-T G.711, North America and Japan)."""

A = 87.6
"""A-law compression parameter (ITU-T G.711, Europe)."""

G711_LEVELS = 127
"""Quantisation steps per polarity of the companded value: 8 bits, with zero exact."""


# ---------------------------------------------------------------- ops not in augment.py


def _compress(x: np.ndarray, law: str) -> np.ndarray:
    mag = np.abs(x)
    if law == "mulaw":
        return np.sign(x) * np.log1p(MU * mag) / np.log1p(MU)
    small = mag < 1.0 / A
    safe = np.where(small, 1.0, mag)  # keeps log() off zeros in the branch not taken
    return np.sign(x) * np.where(small, A * mag, 1.0 + np.log(A * safe)) / (1.0 + np.log(A))


def _expand(c: np.ndarray, law: str) -> np.ndarray:
    mag = np.abs(c)
    if law == "mulaw":
        return np.sign(c) * np.expm1(mag * np.log1p(MU)) / MU
    scaled = mag * (1.0 + np.log(A))
    return np.sign(c) * np.where(scaled < 1.0, scaled, np.exp(scaled - 1.0)) / A


def g711(y: np.ndarray, *, sample_rate: int, law: str) -> np.ndarray:
    """G.711 round trip: resample to 8 kHz, compand, quantise to 8 bits, expand, resample back.

    The compander is the continuous law of G.711 (mu = 255, or A = 87.6), quantised uniformly
    to 255 levels; the standard's segmented tables approximate the same curves. A clip louder
    than full scale is scaled down before and up after, so the codec adds no clipping.

    Args:
        y: float32 samples, shape ``(n,)``.
        sample_rate: Hz.
        law: ``"mulaw"`` or ``"alaw"``.

    Returns:
        float32, shape ``(n,)``; nothing above 4 kHz.
    """
    y = _check_audio(y, "g711")
    _check_rate(sample_rate, "g711")
    if law not in ("mulaw", "alaw"):
        raise ValueError(f"g711: unknown law {law!r}; known: mulaw, alaw")
    x = resample(y, orig_sr=sample_rate, target_sr=G711_RATE).astype(np.float64)
    scale = max(float(np.max(np.abs(x))), 1.0)
    code = np.round(_compress(x / scale, law) * G711_LEVELS)  # the 8-bit code word
    x = _expand(code / G711_LEVELS, law) * scale
    out = resample(x.astype(np.float32), orig_sr=G711_RATE, target_sr=sample_rate)
    return _finish(_fit_length(out, len(y)), "g711")


def room_impulse_response(*, sample_rate: int, rt60_s: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path, then decaying Gaussian noise.

    The tail's amplitude falls 60 dB over ``rt60_s`` (the response is that long), and its
    energy is set so that ``10 * log10(direct energy / tail energy) == drr_db``.

    Returns:
        float64, shape ``(max(2, round(rt60_s * sample_rate)),)``; element 0 is 1.
    """
    if not (np.isfinite(rt60_s) and rt60_s > 0):
        raise ValueError(f"room_impulse_response: rt60_s must be > 0, got {rt60_s!r}")
    if not np.isfinite(drr_db):
        raise ValueError(f"room_impulse_response: drr_db must be finite, got {drr_db!r}")
    length = max(2, int(round(rt60_s * sample_rate)))
    t = np.arange(1, length) / sample_rate
    tail = rng.standard_normal(length - 1) * 10.0 ** (-3.0 * t / rt60_s)  # -60 dB at rt60_s
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / float(np.sum(tail**2)))
    return np.concatenate([[1.0], tail])


def reverberate(
    y: np.ndarray, *, sample_rate: int, rt60_s: float, drr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """Convolve with :func:`room_impulse_response`, keep the first ``n`` samples, keep the RMS.

    Returns:
        float32, shape ``(n,)``, with the input's RMS (unless that would exceed full scale).
    """
    from scipy import signal

    y = _check_audio(y, "reverberate")
    _check_rate(sample_rate, "reverberate")
    x = y.astype(np.float64)
    rir = room_impulse_response(sample_rate=sample_rate, rt60_s=rt60_s, drr_db=drr_db, rng=rng)
    out = signal.fftconvolve(x, rir)[: len(x)]
    rms_in, rms_out = np.sqrt(np.mean(x**2)), np.sqrt(np.mean(out**2))
    if rms_out > 0:
        out *= rms_in / rms_out
    return _finish(out, "reverberate")


def speed_perturb(y: np.ndarray, *, sample_rate: int, factor: float) -> np.ndarray:
    """Play ``factor`` times faster, like sox ``speed`` (Kaldi's speed perturbation).

    Resampled from ``sample_rate * factor`` to ``sample_rate`` Hz (soxr), so tempo and pitch
    both scale by ``factor``; the result is cropped (``factor > 1`` makes it shorter) or
    repeat-padded back to ``n`` samples.

    Returns:
        float32, shape ``(n,)``; a sine at ``f`` Hz comes out at ``f * factor``.
    """
    y = _check_audio(y, "speed_perturb")
    _check_rate(sample_rate, "speed_perturb")
    if not (np.isfinite(factor) and factor > 0):
        raise ValueError(f"speed_perturb: factor must be > 0, got {factor!r}")
    out = resample(y, orig_sr=sample_rate * float(factor), target_sr=sample_rate)
    if len(out) == 0:  # a 1-sample clip sped up
        out = y
    return _finish(fix_length(out, len(y), pad="repeat", crop="start"), "speed_perturb")


# ---------------------------------------------------------------- the registry

_Op = Callable[[np.ndarray, int, WaveAugmentParams, np.random.Generator], np.ndarray]

OPS: dict[str, _Op] = {}
"""Op name -> ``(y, sample_rate, config, rng) -> augmented``, same length."""


def _register(name: str) -> Callable[[_Op], _Op]:
    def deco(fn: _Op) -> _Op:
        if name in OPS:
            raise ValueError(f"waveform augmentation op {name!r} is already registered")
        OPS[name] = fn
        return fn

    return deco


@_register("rawboost")
def _op_rawboost(y, sample_rate, config, rng):
    algo = int(_choice(rng, config.rawboost.algos))
    return rawboost(y, sample_rate=sample_rate, algo=algo, params=config.rawboost, rng=rng)


@_register("codec")
def _op_codec(y, sample_rate, config, rng):
    name = _choice(rng, config.codecs)
    if name in ("mulaw", "alaw"):
        return g711(y, sample_rate=sample_rate, law=name)
    kbps = float(np.clip(rng.uniform(*config.codec_kbps), *codec_kbps_range(name, sample_rate=sample_rate)))
    return codec(y, sample_rate=sample_rate, format=name, bitrate_kbps=kbps)


@_register("resample")
def _op_resample(y, sample_rate, config, rng):
    return resample_chain(y, sample_rate=sample_rate, via_rate=int(_choice(rng, config.resample_rates)))


@_register("band_limit")
def _op_band_limit(y, sample_rate, config, rng):
    low, high = _choice(rng, config.band_limit_hz)
    return band_limit(y, sample_rate=sample_rate, low_hz=low, high_hz=high)


@_register("noise")
def _op_noise(y, sample_rate, config, rng):
    color = _choice(rng, config.noise_colors)
    snr_db = float(rng.uniform(*config.snr_db))
    if not np.any(y):  # a silent crop has no SNR; leave it silent rather than fail the batch
        return y
    return add_noise(y, snr_db=snr_db, rng=rng, color=color)


@_register("reverb")
def _op_reverb(y, sample_rate, config, rng):
    rt60_s = float(rng.uniform(*config.rt60_s))
    drr_db = float(rng.uniform(*config.drr_db))
    return reverberate(y, sample_rate=sample_rate, rt60_s=rt60_s, drr_db=drr_db, rng=rng)


@_register("speed")
def _op_speed(y, sample_rate, config, rng):
    return speed_perturb(y, sample_rate=sample_rate, factor=float(rng.uniform(*config.speed)))


# ---------------------------------------------------------------- one training crop


def augment_waveform(
    y: np.ndarray, *, sample_rate: int, config: WaveAugmentParams, rng: np.random.Generator
) -> np.ndarray:
    """Augment one training crop.

    With probability ``config.prob``, applies 1 to ``config.max_ops`` distinct ops (count drawn
    uniformly) from ``config.ops``, in random order; otherwise returns the crop as it is. With
    ``prob == 0`` nothing is drawn from ``rng``.

    Args:
        y: float samples, shape ``(n,)``, finite.
        sample_rate: Hz.
        config: ``train.augment``.
        rng: the only source of randomness, e.g. ``np.random.default_rng([seed, epoch, index])``.

    Returns:
        float32, shape ``(n,)``, finite, with peak <= 1 when augmented (scaled down, never
        clipped).

    Raises:
        ParamError: ``config`` does not fit ``sample_rate`` (a resample rate or pass band too high).
    """
    y = _check_audio(y, "augment_waveform")
    _check_rate(sample_rate, "augment_waveform")
    config.validate(sample_rate=sample_rate)
    if config.prob == 0 or rng.random() >= config.prob:
        return y
    n_ops = int(rng.integers(1, config.max_ops + 1))
    for i in rng.choice(len(config.ops), size=n_ops, replace=False):
        y = OPS[config.ops[i]](y, sample_rate, config, rng)
    return _finish(y, "augment_waveform")
