"""RawBoost: data boosting on the raw waveform (Tak et al., ICASSP 2022).

RawBoost simulates the nuisance of telephony channels without any external data: three noise
types, each drawn anew from ranges, and their combinations.

====  =====================================================================================
algo  what it does
====  =====================================================================================
1     linear and non-linear convolutive noise: ``y = sum_j g_j (h_j * x**j)``, ``j = 1..N``,
      each ``h_j`` a random multi-band notch filter
2     impulsive signal-dependent noise: ``P`` % of the samples get ``x[n] * g_sd * u``,
      ``u ~ U(-1, 1)``, added
3     stationary signal-independent noise: white noise coloured by a random multi-band
      notch filter, added at an SNR
4-7   in series: 1+2+3, 1+2, 1+3, 2+3 (the output of one feeds the next)
8     1 and 2 in parallel: both computed from the clean signal and combined,
      ``algo1(x) + z_sd(x)`` with ``z_sd`` algorithm 2's clicks (so ``x`` is not counted twice)
====  =====================================================================================

A multi-band filter is the cascade of ``n_bands`` FIR band-stop filters (Hamming window), each
with a drawn centre frequency, width and number of coefficients, scaled to a peak gain of
``gain_db``. Band edges are kept inside ``(0, Nyquist)``, so the paper's 8 kHz upper centre
frequency works at 16 kHz.

Every function takes and returns float32 samples of shape ``(n,)``; outputs are finite, the
same length, with peak <= 1 (scaled down, never clipped). Randomness comes only from ``rng``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepfake_audio.augment import _check_audio, _check_rate, _finish
from deepfake_audio.params import RawBoostParams

# ---------------------------------------------------------------- filters


def _odd(n: int) -> int:
    return n if n % 2 else n + 1  # band-stop FIRs need an odd length (a passband at Nyquist)


def multiband_filter(
    *, sample_rate: int, params: RawBoostParams, gain_db: float, rng: np.random.Generator
) -> np.ndarray:
    """A random multi-band notch FIR: ``n_bands`` band-stops in cascade, peak gain ``gain_db``.

    Returns:
        float64 coefficients, shape ``(k,)``, ``k`` the sum of the drawn lengths minus
        ``n_bands - 1``.
    """
    from scipy import signal

    nyquist = sample_rate / 2
    taps = np.ones(1)
    for _ in range(params.n_bands):
        fc = rng.uniform(*params.freq_hz)
        bw = rng.uniform(*params.bandwidth_hz)
        n_coeffs = _odd(int(rng.integers(params.n_coeffs[0], params.n_coeffs[1] + 1)))
        low = float(np.clip(fc - bw / 2, 1.0, nyquist - 2.0))
        high = float(np.clip(fc + bw / 2, low + 1.0, nyquist - 1.0))
        band = signal.firwin(max(n_coeffs, 3), [low, high], pass_zero="bandstop", window="hamming", fs=sample_rate)
        taps = np.convolve(taps, band)
    peak = float(np.max(np.abs(np.fft.rfft(taps, 4096))))
    return taps * (10.0 ** (gain_db / 20.0) / peak)


def _filter(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Causal FIR, same length (``lfilter``'s output, by FFT)."""
    from scipy import signal

    return signal.oaconvolve(x, taps)[: len(x)]


# ---------------------------------------------------------------- the three noise types


def convolutive_noise(
    y: np.ndarray, *, sample_rate: int, params: RawBoostParams, rng: np.random.Generator
) -> np.ndarray:
    """Algorithm 1: linear and non-linear convolutive noise.

    ``out = sum_j g_j (h_j * y**j)`` for ``j = 1..nonlinear_order``: each power of the signal
    through its own multi-band filter ``h_j``. The linear term's gain is drawn from
    ``gain_db``; each higher-order term is a further ``nonlinear_bias_db`` (drawn per term)
    below it. The result is scaled to the input's peak, so the level is kept.

    Args:
        y: float32 samples, shape ``(n,)``.
        sample_rate: Hz.
        params: the ranges.
        rng: the only source of randomness.

    Returns:
        float32, shape ``(n,)``.
    """
    y = _check_audio(y, "convolutive_noise")
    _check_rate(sample_rate, "convolutive_noise")
    x = y.astype(np.float64)
    gain_db = rng.uniform(*params.gain_db)
    out = np.zeros_like(x)
    power = np.ones_like(x)
    for order in range(1, params.nonlinear_order + 1):
        power *= x  # x**order, without pow()
        g = gain_db if order == 1 else gain_db - rng.uniform(*params.nonlinear_bias_db)
        out += _filter(power, multiband_filter(sample_rate=sample_rate, params=params, gain_db=g, rng=rng))
    peak_in, peak_out = float(np.max(np.abs(x))), float(np.max(np.abs(out)))
    if peak_out > 0:
        out *= peak_in / peak_out
    return _finish(out, "convolutive_noise")


def impulsive_noise(y: np.ndarray, *, params: RawBoostParams, rng: np.random.Generator) -> np.ndarray:
    """Algorithm 2: impulsive signal-dependent additive noise.

    ``round(n * P / 100)`` samples at distinct random positions get ``y[n] * g_sd * u`` added,
    ``u ~ U(-1, 1)``: clicks whose size follows the signal (zero samples stay zero).

    Returns:
        float32, shape ``(n,)``; other samples unchanged (unless the clicks push the peak
        above 1 and all is scaled down).
    """
    y = _check_audio(y, "impulsive_noise")
    x = y.astype(np.float64)
    return _finish(x + _impulses(x, params=params, rng=rng), "impulsive_noise")


def _impulses(x: np.ndarray, *, params: RawBoostParams, rng: np.random.Generator) -> np.ndarray:
    """Algorithm 2's noise alone: float64, shape ``(n,)``, zero except at the hit samples."""
    n_hit = int(round(len(x) * params.impulsive_percent / 100))
    where = rng.choice(len(x), size=n_hit, replace=False)
    z = np.zeros_like(x)
    z[where] = x[where] * params.impulsive_gain * rng.uniform(-1.0, 1.0, size=n_hit)
    return z


def stationary_noise(
    y: np.ndarray, *, sample_rate: int, params: RawBoostParams, rng: np.random.Generator
) -> np.ndarray:
    """Algorithm 3: stationary signal-independent additive noise.

    White Gaussian noise through a random multi-band filter, added at an SNR drawn from
    ``snr_db`` against the clip's mean power (an all-zero clip gets no noise).

    Returns:
        float32, shape ``(n,)``.
    """
    y = _check_audio(y, "stationary_noise")
    _check_rate(sample_rate, "stationary_noise")
    x = y.astype(np.float64)
    taps = multiband_filter(sample_rate=sample_rate, params=params, gain_db=0.0, rng=rng)
    noise = _filter(rng.standard_normal(len(x)), taps)
    snr_db = rng.uniform(*params.snr_db)
    noise_power = float(np.mean(noise**2))
    if noise_power > 0:
        noise *= np.sqrt(float(np.mean(x**2)) / (noise_power * 10.0 ** (snr_db / 10.0)))
    return _finish(x + noise, "stationary_noise")


# ---------------------------------------------------------------- the paper's eight algorithms

_Step = Callable[[np.ndarray, int, RawBoostParams, np.random.Generator], np.ndarray]


def _conv(y, sample_rate, params, rng):
    return convolutive_noise(y, sample_rate=sample_rate, params=params, rng=rng)


def _imp(y, sample_rate, params, rng):
    return impulsive_noise(y, params=params, rng=rng)


def _stat(y, sample_rate, params, rng):
    return stationary_noise(y, sample_rate=sample_rate, params=params, rng=rng)


SERIES: dict[int, tuple[_Step, ...]] = {
    1: (_conv,),
    2: (_imp,),
    3: (_stat,),
    4: (_conv, _imp, _stat),
    5: (_conv, _imp),
    6: (_conv, _stat),
    7: (_imp, _stat),
}
"""Algorithm number -> the noise types applied in series (algorithm 8 is parallel)."""

ALGOS = (*SERIES, 8)


def rawboost(
    y: np.ndarray, *, sample_rate: int, algo: int, params: RawBoostParams, rng: np.random.Generator
) -> np.ndarray:
    """Apply RawBoost algorithm ``algo`` (1-8, numbered as in the paper).

    Args:
        y: float32 samples, shape ``(n,)``.
        sample_rate: Hz.
        algo: see the module docstring.
        params: the ranges (the paper's by default).
        rng: the only source of randomness.

    Returns:
        float32, shape ``(n,)``, finite, peak <= 1.
    """
    y = _check_audio(y, "rawboost")
    _check_rate(sample_rate, "rawboost")
    if algo == 8:
        # Parallel: each disturbance is computed from the clean signal; their sum keeps x once.
        convolved = convolutive_noise(y, sample_rate=sample_rate, params=params, rng=rng).astype(np.float64)
        return _finish(convolved + _impulses(y.astype(np.float64), params=params, rng=rng), "rawboost")
    steps = SERIES.get(algo) if not isinstance(algo, bool) else None
    if steps is None:
        raise ValueError(f"rawboost: unknown algo {algo!r}; known: {', '.join(map(str, ALGOS))}")
    for step in steps:
        y = step(y, sample_rate, params, rng)
    return y
