"""Tests for deepfake_audio.wave_augment: per-crop waveform augmentation and train.augment params."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deepfake_audio.augment import CODECS, add_noise, resample_chain
from deepfake_audio.errors import ParamError
from deepfake_audio.params import (
    WAVE_AUGMENT_OPS,
    WAVE_CODECS,
    TrainParams,
    WaveAugmentParams,
    from_dict,
    params_from_dict,
)
from deepfake_audio.wave_augment import (
    OPS,
    augment_waveform,
    g711,
    reverberate,
    room_impulse_response,
    speed_perturb,
)
from tests.conftest import synth
from tests.test_augment import band_energy, dominant_hz, snr_db

SR = 16000
ON = WaveAugmentParams(prob=1.0)
CHOICE_OPS = {"resample": 2, "band_limit": 2}
"""Ops that pick among listed settings only: how many distinct outputs the defaults allow."""


def only(op: str, **changes) -> WaveAugmentParams:
    """Always apply exactly ``op``."""
    return dataclasses.replace(ON, ops=(op,), max_ops=1, **changes)


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """1 s of the voice-like harmonic test signal at 16 kHz, peak 0.5."""
    return synth("harmonic", n_samples=SR, sample_rate=SR, seed=7)


def test_registry_matches_params() -> None:
    assert tuple(OPS) == WAVE_AUGMENT_OPS
    assert set(CODECS) <= set(WAVE_CODECS) and set(WAVE_CODECS) - set(CODECS) == {"mulaw", "alaw"}


# ---------------------------------------------------------------- seeded draws and the contract


@pytest.mark.parametrize("op", WAVE_AUGMENT_OPS)
def test_same_seed_is_bit_identical_and_seeds_differ(voice: np.ndarray, op: str) -> None:
    def run(seed: int) -> bytes:
        return augment_waveform(
            voice, sample_rate=SR, config=only(op), rng=np.random.default_rng([seed, 1, 2])
        ).tobytes()

    assert run(3) == run(3)
    outs = {run(s) for s in range(6)}
    assert len(outs) == CHOICE_OPS.get(op, 6)


@pytest.mark.parametrize("op", WAVE_AUGMENT_OPS)
def test_every_op_keeps_length_finiteness_and_full_scale(op: str) -> None:
    # a loud float64 clip: noise, codecs, filters, reverb and impulses would overshoot full scale
    loud = synth("harmonic", n_samples=SR // 2, sample_rate=SR, seed=1).astype(np.float64) * 1.99
    config = only(op, snr_db=(-5.0, 0.0))
    for seed in range(4):
        out = augment_waveform(loud, sample_rate=SR, config=config, rng=np.random.default_rng(seed))
        assert out.dtype == np.float32 and out.shape == loud.shape
        assert np.isfinite(out).all() and float(np.max(np.abs(out))) <= 1.0
        assert not np.allclose(out, loud / np.max(np.abs(loud)), atol=1e-4)  # not a mere rescale


@pytest.mark.parametrize("name", WAVE_CODECS)
def test_every_codec_keeps_length_and_changes_the_samples(voice: np.ndarray, name: str) -> None:
    config = only("codec", codecs=(name,))
    out = augment_waveform(voice, sample_rate=SR, config=config, rng=np.random.default_rng(0))
    assert out.shape == voice.shape and float(np.max(np.abs(out))) <= 1.0
    assert float(np.max(np.abs(out - voice))) > 1e-3
    assert np.corrcoef(voice, out)[0, 1] > 0.8  # aligned: no codec delay left in


@pytest.mark.parametrize("op", WAVE_AUGMENT_OPS)
def test_silent_crops_pass_through_every_op(op: str) -> None:
    silent = np.zeros(SR // 4, dtype=np.float32)
    out = augment_waveform(silent, sample_rate=SR, config=only(op), rng=np.random.default_rng(0))
    assert out.shape == silent.shape and np.isfinite(out).all()
    assert float(np.max(np.abs(out))) < 1e-3


def test_prob_zero_returns_the_input_and_draws_nothing(voice: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    out = augment_waveform(voice, sample_rate=SR, config=WaveAugmentParams(), rng=rng)
    np.testing.assert_array_equal(out, voice)
    assert rng.bit_generator.state == state
    assert not WaveAugmentParams().enabled and ON.enabled


def test_prob_is_the_share_of_augmented_crops(voice: np.ndarray) -> None:
    config = only("noise", prob=0.3)
    changed = [
        not np.array_equal(augment_waveform(voice, sample_rate=SR, config=config, rng=np.random.default_rng(s)), voice)
        for s in range(300)
    ]
    assert np.mean(changed) == pytest.approx(0.3, abs=0.08)


def test_chains_hold_one_to_max_ops_distinct_ops(voice: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in OPS:
        monkeypatch.setitem(OPS, name, lambda y, sr, cfg, rng, name=name: calls.append(name) or y)
    config = dataclasses.replace(ON, max_ops=3)
    lengths, seen, orders = set(), set(), set()
    for seed in range(200):
        calls.clear()
        augment_waveform(voice, sample_rate=SR, config=config, rng=np.random.default_rng(seed))
        assert len(set(calls)) == len(calls)
        lengths.add(len(calls))
        seen.update(calls)
        orders.add(tuple(calls))
    assert lengths == {1, 2, 3}
    assert seen == set(WAVE_AUGMENT_OPS)
    assert any(o[::-1] in orders for o in orders if len(o) == 2)  # the order is drawn too


def test_default_chain_is_seeded(voice: np.ndarray) -> None:
    config = dataclasses.replace(ON, max_ops=3)

    def run(seed: int) -> bytes:
        return augment_waveform(voice, sample_rate=SR, config=config, rng=np.random.default_rng([0, 2, seed])).tobytes()

    assert [run(s) for s in range(5)] == [run(s) for s in range(5)]
    assert len({run(s) for s in range(5)}) == 5


def test_a_config_that_does_not_fit_the_rate_is_a_param_error(voice: np.ndarray) -> None:
    with pytest.raises(ParamError) as err:
        augment_waveform(voice, sample_rate=8000, config=ON, rng=np.random.default_rng(0))
    assert err.value.key == "train.augment.resample_rates[0]"


# ---------------------------------------------------------------- the ops themselves


def test_noise_op_adds_noise_at_the_drawn_snr(voice: np.ndarray) -> None:
    out = augment_waveform(
        voice, sample_rate=SR, config=only("noise", snr_db=(12.0, 12.0)), rng=np.random.default_rng(0)
    )
    assert snr_db(voice, out) == pytest.approx(12.0, abs=0.05)


def test_noise_op_reuses_add_noise(voice: np.ndarray) -> None:
    config = only("noise", noise_colors=("pink",), snr_db=(20.0, 20.0))
    rng = np.random.default_rng(4)
    out = augment_waveform(voice, sample_rate=SR, config=config, rng=rng)
    rng = np.random.default_rng(4)
    rng.random(), rng.integers(1, 2), rng.choice(1, size=1, replace=False)  # the draws before the op
    rng.integers(1), rng.uniform(20.0, 20.0)  # its colour and SNR
    np.testing.assert_array_equal(out, add_noise(voice, snr_db=20.0, rng=rng, color="pink"))


def test_resample_op_reuses_resample_chain(voice: np.ndarray) -> None:
    out = augment_waveform(
        voice, sample_rate=SR, config=only("resample", resample_rates=(8000,)), rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(out, resample_chain(voice, sample_rate=SR, via_rate=8000))


def test_band_limit_op_removes_energy_outside_the_band() -> None:
    white = synth("noise", n_samples=SR, sample_rate=SR, seed=3)
    config = only("band_limit", band_limit_hz=((300.0, 3400.0),))
    out = augment_waveform(white, sample_rate=SR, config=config, rng=np.random.default_rng(0))
    assert band_energy(out, sample_rate=SR, low_hz=5000) < 1e-3 * band_energy(white, sample_rate=SR, low_hz=5000)


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
def test_g711_round_trip_is_close_but_lossy_and_narrow_band(law: str) -> None:
    sine = synth("sine", n_samples=SR, sample_rate=SR)  # 440 Hz, peak 0.5
    out = g711(sine, sample_rate=SR, law=law)
    assert out.shape == sine.shape
    # 8-bit companding gives ~38 dB; band-limiting alone (resample to 8 kHz and back) ~60 dB
    assert 30 < snr_db(sine, out) < 45
    assert snr_db(sine, out) < snr_db(sine, resample_chain(sine, sample_rate=SR, via_rate=8000)) - 10
    assert band_energy(out, sample_rate=SR, low_hz=4100) < 1e-10 * band_energy(out, sample_rate=SR)
    # companding: a sine 28 dB quieter keeps nearly the same SNR (uniform 8 bits would lose 28 dB)
    quiet = sine * 0.02
    assert snr_db(quiet, g711(quiet, sample_rate=SR, law=law)) > 30


def test_mulaw_and_alaw_differ() -> None:
    sine = synth("sine", n_samples=SR // 4, sample_rate=SR)
    assert not np.array_equal(g711(sine, sample_rate=SR, law="mulaw"), g711(sine, sample_rate=SR, law="alaw"))
    with pytest.raises(ValueError, match="unknown law 'ulaw'"):
        g711(sine, sample_rate=SR, law="ulaw")


def test_room_impulse_response_has_the_drawn_drr_and_decay() -> None:
    rir = room_impulse_response(sample_rate=SR, rt60_s=0.5, drr_db=6.0, rng=np.random.default_rng(0))
    assert len(rir) == 8000 and rir[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) == pytest.approx(6.0, abs=1e-9)
    # 60 dB over RT60: the energy of the 10 ms at t = RT60/2 lies ~30 dB below the first 10 ms
    early = np.sum(rir[1:161] ** 2)
    middle = np.sum(rir[4000:4160] ** 2)
    assert 10 * np.log10(early / middle) == pytest.approx(30.0, abs=3.0)


def test_reverb_lengthens_the_energy_decay() -> None:
    t = np.arange(SR) / SR
    burst = (0.5 * np.sin(2 * np.pi * 440 * t) * (t < 0.2)).astype(np.float32)  # 0.2 s tone, then silence

    def late_share(y: np.ndarray) -> float:
        return float(np.sum(y[int(0.3 * SR) :] ** 2) / np.sum(y**2))

    short = reverberate(burst, sample_rate=SR, rt60_s=0.3, drr_db=0.0, rng=np.random.default_rng(0))
    long = reverberate(burst, sample_rate=SR, rt60_s=1.0, drr_db=0.0, rng=np.random.default_rng(0))
    assert late_share(burst) == 0.0
    assert late_share(short) > 1e-4
    assert late_share(long) > 5 * late_share(short)
    # level-normalised: the RMS is the input's
    assert np.sqrt(np.mean(long.astype(np.float64) ** 2)) == pytest.approx(
        np.sqrt(np.mean(burst.astype(np.float64) ** 2)), rel=1e-4
    )


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_speed_scales_the_frequency_by_the_factor(factor: float) -> None:
    sine = synth("sine", n_samples=SR, sample_rate=SR)  # 440 Hz
    out = speed_perturb(sine, sample_rate=SR, factor=factor)
    assert out.shape == sine.shape
    assert dominant_hz(out[: int(SR / max(factor, 1.0)) - 10], sample_rate=SR) == pytest.approx(440 * factor, abs=3.0)


def test_speed_crops_or_repeat_pads_to_the_input_length(voice: np.ndarray) -> None:
    slow = speed_perturb(voice, sample_rate=SR, factor=0.8)  # 1.25 s of audio, cropped
    fast = speed_perturb(voice, sample_rate=SR, factor=1.25)  # 0.8 s of audio, then its start again
    assert slow.shape == fast.shape == voice.shape
    n = int(round(SR / 1.25))
    np.testing.assert_allclose(fast[n : n + 100], fast[:100], atol=1e-6)


def test_speed_op_draws_the_factor_from_its_range() -> None:
    sine = synth("sine", n_samples=SR, sample_rate=SR)
    peaks = [
        dominant_hz(
            augment_waveform(sine, sample_rate=SR, config=only("speed"), rng=np.random.default_rng(s))[: SR * 9 // 10],
            sample_rate=SR,
        )
        for s in range(8)
    ]
    assert all(396 - 3 <= p <= 484 + 3 for p in peaks) and np.ptp(peaks) > 20


# ---------------------------------------------------------------- params


def test_train_params_carry_the_augment_section_off_by_default() -> None:
    assert TrainParams().augment == WaveAugmentParams() and WaveAugmentParams().prob == 0.0
    params = from_dict(TrainParams, {"augment": {"prob": 0.5, "rawboost": {"algos": [3, 5]}}}, prefix="train")
    assert params.augment.prob == 0.5 and params.augment.rawboost.algos == (3, 5)


@pytest.mark.parametrize(
    "section, key, match",
    [
        ({"ops": ["rawboost", "chorus"]}, "train.augment.ops[1]", "known ops: rawboost, codec, resample"),
        ({"ops": []}, "train.augment.ops", "prob: 0"),
        ({"ops": ["noise", "noise"]}, "train.augment.ops", "once"),
        ({"prob": 1.5}, "train.augment.prob", r"\[0, 1\]"),
        ({"max_ops": 8}, "train.augment.max_ops", "from 1 to the number of ops \\(7\\)"),
        ({"max_ops": 0}, "train.augment.max_ops", "from 1"),
        ({"codecs": ["aac"]}, "train.augment.codecs[0]", "known: mp3, opus, vorbis, mulaw, alaw"),
        ({"speed": [1.2, 1.1]}, "train.augment.speed", "lo <= hi"),
        ({"rt60_s": [0.0, 1.0]}, "train.augment.rt60_s", r"\(0, 5\]"),
        ({"noise_colors": ["blue"]}, "train.augment.noise_colors[0]", "known: white, pink"),
        ({"resample_rates": [0]}, "train.augment.resample_rates[0]", "positive integer"),
        ({"band_limit_hz": [[3400.0, 300.0]]}, "train.augment.band_limit_hz[0]", "low_hz < high_hz"),
        ({"rawboost": {"algos": [9]}}, "train.augment.rawboost.algos[0]", "known: 1, 2, 3, 4, 5, 6, 7, 8"),
        ({"rawboost": {"impulsive_percent": 0}}, "train.augment.rawboost.impulsive_percent", r"\(0, 100\]"),
        ({"rawboost": {"n_coeffs": [10.5, 100]}}, "train.augment.rawboost.n_coeffs[0]", "integer"),
        ({"rawboost": {"nonlinear_order": 0}}, "train.augment.rawboost.nonlinear_order", ">= 1"),
        ({"rawboost": {"snr_db": [40, 10]}}, "train.augment.rawboost.snr_db", "lo <= hi"),
        ({"rawboost": {"gain": [0, 0]}}, "train.augment.rawboost.gain", "known keys"),
    ],
)
def test_bad_params_name_the_key_and_the_allowed_values(section: dict, key: str, match: str) -> None:
    with pytest.raises(ParamError, match=match) as err:
        params_from_dict({"train": {"augment": section}})
    assert err.value.key == key


def test_rates_and_bands_must_fit_the_sample_rate_at_load_time() -> None:
    with pytest.raises(ParamError) as err:
        params_from_dict(
            {
                "audio": {"sample_rate": 8000},
                "features": {"augment": {"resample_rates": [4000], "band_limit_hz": [[50.0, 3000.0]]}},
                "train": {"augment": {"resample_rates": [4000], "band_limit_hz": [[50.0, 7000.0]]}},
            }
        )
    assert err.value.key == "train.augment.band_limit_hz[0]" and "4000" in err.value.allowed
    with pytest.raises(ParamError) as err:
        params_from_dict({"train": {"augment": {"resample_rates": [16000]}}})
    assert err.value.key == "train.augment.resample_rates[0]" and "16000" in err.value.allowed
