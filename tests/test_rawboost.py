"""Tests for deepfake_audio.rawboost: the three RawBoost noise types and the paper's combinations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deepfake_audio.params import RAWBOOST_ALGOS, RawBoostParams
from deepfake_audio.rawboost import (
    ALGOS,
    convolutive_noise,
    impulsive_noise,
    multiband_filter,
    rawboost,
    stationary_noise,
)
from tests.conftest import synth
from tests.test_augment import band_energy, snr_db

SR = 16000
PAPER = RawBoostParams()


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    return synth("harmonic", n_samples=SR, sample_rate=SR, seed=7)


@pytest.fixture(scope="module")
def quiet_noise() -> np.ndarray:
    """1 s of white noise with peak 0.15, so that impulses (up to 3x a sample) stay below full scale."""
    return 0.3 * synth("noise", n_samples=SR, sample_rate=SR, seed=3)


def test_algorithm_numbers_match_params() -> None:
    assert tuple(sorted(ALGOS)) == RAWBOOST_ALGOS


@pytest.mark.parametrize("algo", RAWBOOST_ALGOS)
def test_same_rng_seed_is_bit_identical_and_seeds_differ(voice: np.ndarray, algo: int) -> None:
    def run(seed: int) -> bytes:
        return rawboost(voice, sample_rate=SR, algo=algo, params=PAPER, rng=np.random.default_rng(seed)).tobytes()

    assert run(5) == run(5)
    assert len({run(s) for s in range(4)}) == 4


@pytest.mark.parametrize("algo", RAWBOOST_ALGOS)
def test_output_contract_on_a_loud_clip(algo: int) -> None:
    loud = synth("harmonic", n_samples=SR // 2, sample_rate=SR, seed=1).astype(np.float64) * 1.99
    for seed in range(3):
        out = rawboost(loud, sample_rate=SR, algo=algo, params=PAPER, rng=np.random.default_rng(seed))
        assert out.dtype == np.float32 and out.shape == loud.shape
        assert np.isfinite(out).all() and float(np.max(np.abs(out))) <= 1.0
        assert not np.allclose(out, loud / np.max(np.abs(loud)), atol=1e-4)  # not a mere rescale


@pytest.mark.parametrize("algo", RAWBOOST_ALGOS)
def test_silent_and_tiny_clips_do_not_fail(algo: int) -> None:
    for y in (np.zeros(SR // 4, dtype=np.float32), np.array([0.3], dtype=np.float32)):
        out = rawboost(y, sample_rate=SR, algo=algo, params=PAPER, rng=np.random.default_rng(0))
        assert out.shape == y.shape and np.isfinite(out).all()
    silent = rawboost(
        np.zeros(100, dtype=np.float32), sample_rate=SR, algo=algo, params=PAPER, rng=np.random.default_rng(0)
    )
    assert not silent.any()  # every noise type scales with the signal, so silence stays silent


def test_unknown_algo_is_a_clear_error(voice: np.ndarray) -> None:
    for bad in (0, 9, True):
        with pytest.raises(ValueError, match="known: 1, 2, 3, 4, 5, 6, 7, 8"):
            rawboost(voice, sample_rate=SR, algo=bad, params=PAPER, rng=np.random.default_rng(0))


# ---------------------------------------------------------------- algorithm 1


def test_multiband_filter_has_notches_and_the_drawn_peak_gain() -> None:
    params = dataclasses.replace(PAPER, n_bands=1, freq_hz=(4000.0, 4000.0), bandwidth_hz=(1000.0, 1000.0))
    taps = multiband_filter(sample_rate=SR, params=params, gain_db=-6.0, rng=np.random.default_rng(0))
    response = np.abs(np.fft.rfft(taps, 8192))
    freqs = np.fft.rfftfreq(8192, 1 / SR)
    assert 20 * np.log10(response.max()) == pytest.approx(-6.0, abs=1e-9)
    # the stop band at 3.5-4.5 kHz lies well below the pass band
    assert response[np.argmin(np.abs(freqs - 4000))] < 0.3 * response.max()


def test_convolutive_noise_changes_the_spectrum_and_keeps_the_peak(quiet_noise: np.ndarray) -> None:
    out = convolutive_noise(quiet_noise, sample_rate=SR, params=PAPER, rng=np.random.default_rng(1))
    assert float(np.max(np.abs(out))) == pytest.approx(float(np.max(np.abs(quiet_noise))), rel=1e-5)
    edges = np.linspace(100, 7900, 27)
    ratio_db = [
        10
        * np.log10(
            band_energy(out, sample_rate=SR, low_hz=lo, high_hz=hi)
            / band_energy(quiet_noise, sample_rate=SR, low_hz=lo, high_hz=hi)
        )
        for lo, hi in zip(edges[:-1], edges[1:])
    ]
    assert np.ptp(ratio_db) > 10  # white in, notched out: a flat filter would give ~0 dB spread


def test_nonlinear_terms_add_harmonics() -> None:
    sine = synth("sine", n_samples=SR, sample_rate=SR)  # 440 Hz
    wide = dict(freq_hz=(7000.0, 8000.0), bandwidth_hz=(100.0, 200.0))  # notches away from 440-2200 Hz

    def third_harmonic_share(order: int) -> float:
        params = dataclasses.replace(PAPER, nonlinear_order=order, nonlinear_bias_db=(0.0, 0.0), **wide)
        out = convolutive_noise(sine, sample_rate=SR, params=params, rng=np.random.default_rng(2))
        return band_energy(out, sample_rate=SR, low_hz=1300, high_hz=1340) / band_energy(out, sample_rate=SR)

    assert third_harmonic_share(1) < 1e-9  # linear: a sine stays a sine
    assert third_harmonic_share(5) > 1e-4  # x**3 and x**5 put energy at 3 * 440 Hz


# ---------------------------------------------------------------- algorithm 2


def test_impulsive_noise_hits_p_percent_of_samples_within_g_sd(quiet_noise: np.ndarray) -> None:
    out = impulsive_noise(quiet_noise, params=PAPER, rng=np.random.default_rng(0))
    changed = out != quiet_noise
    assert changed.mean() == pytest.approx(PAPER.impulsive_percent / 100, abs=0.002)
    rel = np.abs(out[changed] - quiet_noise[changed]) / np.abs(quiet_noise[changed])
    assert rel.max() <= PAPER.impulsive_gain * (1 + 1e-5)
    assert rel.mean() == pytest.approx(PAPER.impulsive_gain / 2, rel=0.1)  # |U(-1, 1)| averages 1/2

    half = dataclasses.replace(PAPER, impulsive_percent=5.0)
    out = impulsive_noise(quiet_noise, params=half, rng=np.random.default_rng(0))
    assert (out != quiet_noise).mean() == pytest.approx(0.05, abs=0.002)


# ---------------------------------------------------------------- algorithm 3


@pytest.mark.parametrize("target_db", [10.0, 25.0, 40.0])
def test_stationary_noise_is_added_at_the_drawn_snr(voice: np.ndarray, target_db: float) -> None:
    params = dataclasses.replace(PAPER, snr_db=(target_db, target_db))
    out = stationary_noise(voice, sample_rate=SR, params=params, rng=np.random.default_rng(4))
    assert snr_db(voice, out) == pytest.approx(target_db, abs=0.05)


def test_stationary_noise_snr_follows_its_range(voice: np.ndarray) -> None:
    measured = [
        snr_db(voice, stationary_noise(voice, sample_rate=SR, params=PAPER, rng=np.random.default_rng(s)))
        for s in range(12)
    ]
    assert min(measured) >= 10.0 - 0.05 and max(measured) <= 40.0 + 0.05
    assert np.ptp(measured) > 10  # drawn, not fixed


def test_stationary_noise_is_coloured(voice: np.ndarray) -> None:
    silent_voice = np.full(SR, 1e-3, dtype=np.float32)  # DC: the noise alone shows above 50 Hz
    params = dataclasses.replace(PAPER, snr_db=(0.0, 0.0))
    noise = stationary_noise(silent_voice, sample_rate=SR, params=params, rng=np.random.default_rng(3)) - silent_voice
    edges = np.linspace(100, 7900, 27)
    bands_db = [
        10 * np.log10(band_energy(noise, sample_rate=SR, low_hz=lo, high_hz=hi))
        for lo, hi in zip(edges[:-1], edges[1:])
    ]
    assert np.ptp(bands_db) > 10  # white noise would be within a few dB in every band


# ---------------------------------------------------------------- combinations


@pytest.mark.parametrize(
    "algo, steps",
    [
        (4, ("conv", "imp", "stat")),
        (5, ("conv", "imp")),
        (6, ("conv", "stat")),
        (7, ("imp", "stat")),
    ],
)
def test_series_algorithms_chain_the_noise_types_in_order(voice: np.ndarray, algo: int, steps: tuple[str, ...]) -> None:
    fns = {
        "conv": lambda y, rng: convolutive_noise(y, sample_rate=SR, params=PAPER, rng=rng),
        "imp": lambda y, rng: impulsive_noise(y, params=PAPER, rng=rng),
        "stat": lambda y, rng: stationary_noise(y, sample_rate=SR, params=PAPER, rng=rng),
    }
    rng = np.random.default_rng(9)
    expected = voice
    for step in steps:
        expected = fns[step](expected, rng)
    out = rawboost(voice, sample_rate=SR, algo=algo, params=PAPER, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(out, expected)


def test_parallel_algorithm_adds_both_disturbances_to_the_clean_signal(quiet_noise: np.ndarray) -> None:
    convolved = convolutive_noise(quiet_noise, sample_rate=SR, params=PAPER, rng=np.random.default_rng(9))
    parallel = rawboost(quiet_noise, sample_rate=SR, algo=8, params=PAPER, rng=np.random.default_rng(9))
    series = rawboost(quiet_noise, sample_rate=SR, algo=5, params=PAPER, rng=np.random.default_rng(9))
    clicks = parallel.astype(np.float64) - convolved
    hit = np.abs(clicks) > 1e-6
    assert hit.mean() == pytest.approx(PAPER.impulsive_percent / 100, abs=0.002)
    # the clicks scale with the clean input, not with the convolved signal (as in series)
    rel_clean = np.abs(clicks[hit]) / np.abs(quiet_noise[hit])
    assert rel_clean.max() <= PAPER.impulsive_gain * (1 + 1e-3)
    assert not np.array_equal(parallel, series)
