"""Tests for deepfake_audio.augment: the ops, the config, seeded draws and the manifest copies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from deepfake_audio.augment import (
    AUG_COLUMNS,
    CODECS,
    OPS,
    AugmentConfig,
    CodecUnavailableError,
    add_noise,
    aug_seed,
    augment,
    available_codecs,
    band_limit,
    codec,
    codec_kbps_range,
    pitch_shift,
    plan_augmentations,
    resample_chain,
    time_stretch,
)
from deepfake_audio.errors import AudioError, ParamError, SilentAudio
from deepfake_audio.params import from_dict
from tests.conftest import synth

SR = 16000
CONTINUOUS_OPS = ("time_stretch", "pitch_shift", "noise", "codec")
"""Ops whose parameter is drawn from a continuous range: two seeds never give the same copy."""


def band_energy(y: np.ndarray, *, sample_rate: int, low_hz: float = 0.0, high_hz: float = np.inf) -> float:
    """Energy of ``y`` between ``low_hz`` and ``high_hz`` (Hann-windowed FFT bins, inclusive).

    The window keeps the jump between the clip's last and first sample, which a plain FFT sees
    as a broadband click, out of narrow low bands.
    """
    power = np.abs(np.fft.rfft(y.astype(np.float64) * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / sample_rate)
    return float(power[(freqs >= low_hz) & (freqs <= high_hz)].sum())


def dominant_hz(y: np.ndarray, *, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sample_rate)[np.argmax(spectrum)])


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2)))


def needs_codec(name: str):
    return pytest.mark.skipif(
        name not in available_codecs(),
        reason=f"libsndfile {sf.__libsndfile_version__} cannot encode {name}; "
        f"formats: {sorted(sf.available_formats())}",
    )


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """1 s of the voice-like harmonic test signal at 16 kHz, peak 0.5."""
    return synth("harmonic", n_samples=SR, sample_rate=SR, seed=7)


@pytest.fixture(scope="module")
def white() -> np.ndarray:
    """1 s of white noise at 16 kHz: equal energy in every band."""
    return synth("noise", n_samples=SR, sample_rate=SR, seed=3)


# ---------------------------------------------------------------- seeded draws


@pytest.mark.parametrize("op", list(OPS))
def test_augment_same_seed_is_bit_identical(voice: np.ndarray, op: str) -> None:
    config = AugmentConfig(ops=(op,))
    first, desc1 = augment(voice, sample_rate=SR, config=config, seed=123)
    second, desc2 = augment(voice.copy(), sample_rate=SR, config=config, seed=123)
    assert desc1 == desc2 and desc1.startswith(f"{op}(")
    assert first.dtype == np.float32 and first.tobytes() == second.tobytes()


@pytest.mark.parametrize("op", list(OPS))
def test_augment_differs_across_seeds(voice: np.ndarray, op: str) -> None:
    config = AugmentConfig(ops=(op,))
    outs = {augment(voice, sample_rate=SR, config=config, seed=s)[0].tobytes() for s in range(6)}
    # resample and band_limit choose among two settings, so only "more than one" is guaranteed
    assert len(outs) == (6 if op in CONTINUOUS_OPS else 2)


def test_augment_draws_every_op_and_describes_it(voice: np.ndarray) -> None:
    clip = voice[:4000]
    config = AugmentConfig()
    descriptions = [augment(clip, sample_rate=SR, config=config, seed=s)[1] for s in range(40)]
    drawn = {d.split("(")[0] for d in descriptions}
    assert drawn == set(config.ops)
    assert all(d.endswith(")") for d in descriptions)


def test_augment_description_names_the_drawn_parameter(voice: np.ndarray) -> None:
    config = AugmentConfig(ops=("pitch_shift",), pitch_semitones=(1.0, 1.0))
    out, desc = augment(voice, sample_rate=SR, config=config, seed=0)
    assert desc == "pitch_shift(n_steps=+1.00)"
    np.testing.assert_array_equal(out, pitch_shift(voice, sample_rate=SR, n_steps=1.0))


def test_augment_rejects_a_config_that_does_not_fit_the_rate(voice: np.ndarray) -> None:
    with pytest.raises(ParamError) as err:
        augment(voice, sample_rate=8000, config=AugmentConfig(), seed=0)
    assert err.value.key == "features.augment.resample_rates[0]"


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_augment_rejects_bad_seeds(voice: np.ndarray, seed) -> None:
    with pytest.raises(ValueError, match="seed"):
        augment(voice, sample_rate=SR, config=AugmentConfig(), seed=seed)


# ---------------------------------------------------------------- output contract of every op


@pytest.mark.parametrize("op", list(OPS))
def test_every_op_returns_finite_float32_within_full_scale(op: str) -> None:
    # a loud clip, given as float64: noise, codecs and filters would overshoot full scale
    loud = synth("harmonic", n_samples=SR // 2, sample_rate=SR, seed=1).astype(np.float64) * 1.99
    config = AugmentConfig(ops=(op,), snr_db=(-5.0, 0.0))
    for seed in range(3):
        out, _ = augment(loud, sample_rate=SR, config=config, seed=seed)
        assert out.dtype == np.float32 and out.ndim == 1
        assert np.isfinite(out).all()
        assert float(np.max(np.abs(out))) <= 1.0
        if op != "time_stretch":
            assert len(out) == len(loud)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 100), dtype=np.float32), "shape"),
        (np.zeros(0, dtype=np.float32), "shape"),
        (np.zeros(100, dtype=np.int16), "dtype"),
        (np.array([0.0, np.nan, 0.1], dtype=np.float32), "finite"),
    ],
)
def test_ops_reject_bad_input(bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        band_limit(bad, sample_rate=SR, low_hz=300.0, high_hz=3400.0)
    with pytest.raises(ValueError, match=match):
        augment(bad, sample_rate=SR, config=AugmentConfig(), seed=0)


# ---------------------------------------------------------------- time_stretch and pitch_shift


@pytest.mark.parametrize("rate", [0.8, 0.9, 1.1, 1.25])
def test_time_stretch_scales_length_and_keeps_pitch(rate: float) -> None:
    y = synth("sine", n_samples=SR, sample_rate=SR)  # 440 Hz
    out = time_stretch(y, rate=rate)
    assert len(out) == pytest.approx(len(y) / rate, rel=0.02)
    assert dominant_hz(out, sample_rate=SR) == pytest.approx(440.0, rel=0.02)


@pytest.mark.parametrize("rate", [0.0, -1.0, np.inf])
def test_time_stretch_rejects_bad_rates(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        time_stretch(np.zeros(1000, dtype=np.float32), rate=rate)


@pytest.mark.parametrize("n_steps", [-2.0, 1.5, 3.0])
def test_pitch_shift_moves_a_sine_by_the_semitone_ratio(n_steps: float) -> None:
    y = synth("sine", n_samples=SR, sample_rate=SR)  # 440 Hz
    out = pitch_shift(y, sample_rate=SR, n_steps=n_steps)
    assert len(out) == len(y)
    assert dominant_hz(out, sample_rate=SR) == pytest.approx(440.0 * 2 ** (n_steps / 12), rel=0.02)


# ---------------------------------------------------------------- add_noise


@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("target_db", [0.0, 10.0, 25.0])
def test_add_noise_hits_the_snr(voice: np.ndarray, color: str, target_db: float) -> None:
    out = add_noise(voice, snr_db=target_db, rng=np.random.default_rng(0), color=color)
    assert out.dtype == np.float32 and len(out) == len(voice)
    assert snr_db(voice, out) == pytest.approx(target_db, abs=0.5)


def test_add_noise_is_seeded(voice: np.ndarray) -> None:
    a = add_noise(voice, snr_db=10.0, rng=np.random.default_rng(5))
    b = add_noise(voice, snr_db=10.0, rng=np.random.default_rng(5))
    c = add_noise(voice, snr_db=10.0, rng=np.random.default_rng(6))
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


@pytest.mark.parametrize("color, high_over_low_db", [("white", 9.0), ("pink", 0.0)])
def test_noise_color_sets_the_spectral_slope(voice: np.ndarray, color: str, high_over_low_db: float) -> None:
    """Octave 2-4 kHz against octave 250-500 Hz: white gains 3 dB per octave, pink is flat per octave."""
    noise = add_noise(voice, snr_db=0.0, rng=np.random.default_rng(1), color=color).astype(np.float64) - voice
    ratio = band_energy(noise, sample_rate=SR, low_hz=2000, high_hz=4000) / band_energy(
        noise, sample_rate=SR, low_hz=250, high_hz=500
    )
    assert 10 * np.log10(ratio) == pytest.approx(high_over_low_db, abs=1.5)


def test_add_noise_refuses_an_all_zero_clip() -> None:
    with pytest.raises(SilentAudio, match="all zeros"):
        add_noise(np.zeros(1000, dtype=np.float32), snr_db=20.0, rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs, match", [({"snr_db": np.nan}, "snr_db"), ({"snr_db": 10.0, "color": "brown"}, "color")]
)
def test_add_noise_rejects_bad_options(voice: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        add_noise(voice, rng=np.random.default_rng(0), **kwargs)


# ---------------------------------------------------------------- codec


def test_known_codecs_are_available_here() -> None:
    """This project's libsndfile (>= 1.1) encodes both; a skip below would hide a lost codec."""
    assert set(available_codecs()) == set(CODECS), f"formats: {sorted(sf.available_formats())}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_codec(n)) for n in CODECS])
@pytest.mark.parametrize("sample_rate", [16000, 22050])  # 22.05 kHz is resampled around Opus
def test_codec_keeps_length_and_alignment_but_changes_samples(name: str, sample_rate: int) -> None:
    y = synth("harmonic", n_samples=sample_rate, sample_rate=sample_rate, seed=2)
    kbps = float(np.clip(24.0, *codec_kbps_range(name, sample_rate=sample_rate)))  # Vorbis starts higher
    out = codec(y, sample_rate=sample_rate, format=name, bitrate_kbps=kbps)
    assert out.dtype == np.float32 and out.shape == y.shape
    assert float(np.max(np.abs(out - y))) > 1e-3  # lossy, not a pass-through
    # zero-lag correlation: a codec delay left in (~1100 samples for LAME) would break it
    assert np.corrcoef(y, out)[0, 1] > 0.8


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_codec(n)) for n in CODECS])
def test_codec_bitrate_controls_the_error(voice: np.ndarray, name: str) -> None:
    errors = [
        float(np.mean((codec(voice, sample_rate=SR, format=name, bitrate_kbps=kbps) - voice) ** 2))
        for kbps in np.clip((12.0, 64.0), *codec_kbps_range(name, sample_rate=SR))
    ]
    assert errors[0] > 2 * errors[1]


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_codec(n)) for n in CODECS])
def test_codec_is_deterministic(voice: np.ndarray, name: str) -> None:
    a = codec(voice, sample_rate=SR, format=name, bitrate_kbps=32.0)
    b = codec(voice, sample_rate=SR, format=name, bitrate_kbps=32.0)
    assert a.tobytes() == b.tobytes()


def test_codec_rejects_unknown_formats_and_bitrates(voice: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown format 'aac'"):
        codec(voice, sample_rate=SR, format="aac", bitrate_kbps=32.0)
    with pytest.raises(ValueError, match="8-160 kbps"):  # MPEG-2 at 16 kHz
        codec(voice, sample_rate=SR, format="mp3", bitrate_kbps=192.0)


def test_codec_missing_from_libsndfile_is_a_clear_error(voice: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    formats = {k: v for k, v in sf.available_formats().items() if k != "MP3"}
    monkeypatch.setattr(sf, "available_formats", lambda: formats)
    with pytest.raises(CodecUnavailableError, match="cannot encode mp3"):
        codec(voice, sample_rate=SR, format="mp3", bitrate_kbps=32.0)
    assert not issubclass(CodecUnavailableError, AudioError)  # workers must stop, not reject every clip


# ---------------------------------------------------------------- resample_chain and band_limit


def test_resample_chain_through_8k_removes_energy_above_4k(white: np.ndarray) -> None:
    out = resample_chain(white, sample_rate=SR, via_rate=8000)
    assert out.shape == white.shape and out.dtype == np.float32
    above = band_energy(out, sample_rate=SR, low_hz=4000) / band_energy(white, sample_rate=SR, low_hz=4000)
    below = band_energy(out, sample_rate=SR, high_hz=3000) / band_energy(white, sample_rate=SR, high_hz=3000)
    assert above < 0.01
    assert below == pytest.approx(1.0, abs=0.02)


def test_resample_chain_must_go_down(white: np.ndarray) -> None:
    with pytest.raises(ValueError, match="via_rate=16000"):
        resample_chain(white, sample_rate=SR, via_rate=16000)


@pytest.mark.parametrize("low_hz, high_hz", [(300.0, 3400.0), (50.0, 7000.0), (0.0, 2000.0)])
def test_band_limit_removes_energy_outside_the_band(white: np.ndarray, low_hz: float, high_hz: float) -> None:
    out = band_limit(white, sample_rate=SR, low_hz=low_hz, high_hz=high_hz)
    assert out.shape == white.shape and out.dtype == np.float32

    def kept(lo: float, hi: float) -> float:
        return band_energy(out, sample_rate=SR, low_hz=lo, high_hz=hi) / band_energy(
            white, sample_rate=SR, low_hz=lo, high_hz=hi
        )

    assert kept(high_hz, np.inf) < 0.05
    if low_hz > 0:
        assert kept(0.0, low_hz) < 0.05
    assert kept(1.5 * low_hz + 100, 0.8 * high_hz) > 0.9


def test_band_limit_is_zero_phase() -> None:
    y = (0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(SR) / SR)).astype(np.float32)
    out = band_limit(y, sample_rate=SR, low_hz=300.0, high_hz=3400.0)
    # a causal filter would delay a 1 kHz tone; forward-backward filtering leaves it in place
    np.testing.assert_allclose(out[1000:-1000], y[1000:-1000], atol=0.01)


def test_band_limit_rejects_bands_beyond_nyquist(white: np.ndarray) -> None:
    with pytest.raises(ValueError, match="high_hz=9000"):
        band_limit(white, sample_rate=SR, low_hz=300.0, high_hz=9000.0)
    with pytest.raises(ValueError, match="low_hz=3400"):
        band_limit(white, sample_rate=SR, low_hz=3400.0, high_hz=300.0)


# ---------------------------------------------------------------- config


def test_default_config_is_valid_and_off() -> None:
    config = AugmentConfig()
    config.validate("features.augment", sample_rate=SR)
    assert config.copies == 0
    assert set(config.ops) == set(OPS)


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"copies": -1}, "copies"),
        ({"copies": 1.5}, "copies"),
        ({"seed": -3}, "seed"),
        ({"ops": ()}, "ops"),
        ({"ops": ("time_stretch", "echo")}, "ops[1]"),
        ({"ops": ("noise", "noise")}, "ops"),
        ({"stretch_rate": (1.1, 0.9)}, "stretch_rate"),
        ({"stretch_rate": (0.0, 1.0)}, "stretch_rate"),
        ({"pitch_semitones": (-20.0, 2.0)}, "pitch_semitones"),
        ({"snr_db": (np.nan, 10.0)}, "snr_db"),
        ({"snr_db": (10.0,)}, "snr_db"),
        ({"noise_colors": ("brown",)}, "noise_colors[0]"),
        ({"codecs": ("mp3", "aac")}, "codecs[1]"),
        ({"codecs": ()}, "codecs"),
        ({"codec_kbps": (2.0, 10.0)}, "codec_kbps"),
        ({"resample_rates": (8000, 0)}, "resample_rates[1]"),
        ({"band_limit_hz": ((3400.0, 300.0),)}, "band_limit_hz[0]"),
        ({"band_limit_hz": ()}, "band_limit_hz"),
    ],
)
def test_config_errors_name_the_key(changes: dict, key: str) -> None:
    config = dataclasses.replace(AugmentConfig(), **changes)
    with pytest.raises(ParamError) as err:
        config.validate("features.augment")
    assert err.value.key == f"features.augment.{key}"
    assert f"features.augment.{key}=" in str(err.value)


def test_config_lists_of_an_unused_op_may_be_empty() -> None:
    AugmentConfig(ops=("noise",), codecs=(), resample_rates=(), band_limit_hz=()).validate("augment")


def test_config_checks_rates_against_the_audio() -> None:
    config = AugmentConfig(band_limit_hz=((300.0, 3400.0), (50.0, 7000.0)), resample_rates=(4000,))
    with pytest.raises(ParamError) as err:
        config.validate("augment", sample_rate=8000)
    assert err.value.key == "augment.band_limit_hz[1]"


def test_config_loads_from_yaml_mappings() -> None:
    config = from_dict(
        AugmentConfig, {"copies": 2, "snr_db": [5, 20], "band_limit_hz": [[300, 3400]]}, prefix="features.augment"
    )
    assert config.copies == 2 and config.snr_db == (5.0, 20.0) and config.band_limit_hz == ((300.0, 3400.0),)
    with pytest.raises(ParamError) as err:
        from_dict(AugmentConfig, {"copies": 2, "stretch_rate": [1.2, 0.8]}, prefix="features.augment")
    assert err.value.key == "features.augment.stretch_rate"
    with pytest.raises(ParamError, match="unknown key"):
        from_dict(AugmentConfig, {"copy": 2}, prefix="features.augment")


# ---------------------------------------------------------------- plan_augmentations


def tiny_manifest() -> pd.DataFrame:
    splits = ["train", "train", "dev", "test", "train", "eval:bench", "excluded", "test"]
    return pd.DataFrame(
        {
            "utt_id": [f"u{i}" for i in range(len(splits))],
            "path": [f"wav/u{i}.wav" for i in range(len(splits))],
            "label": ["bonafide", "spoof", "spoof", "bonafide", "spoof", "spoof", "spoof", "spoof"],
            "speaker": ["s1", "s1", "s2", "s3", "s4", "s5", "s2", "s3"],
            "attack": ["-", "A01", "A02", "-", "A02", "A09", "A01", "A01"],
            "source": ["demo"] * len(splits),
            "split": splits,
        }
    )


def test_plan_copies_train_rows_only_and_inherits_their_columns() -> None:
    manifest = tiny_manifest()
    plan = plan_augmentations(manifest, config=AugmentConfig(copies=3))
    train_ids = set(manifest.loc[manifest["split"] == "train", "utt_id"])
    assert len(plan) == 3 * len(train_ids)
    assert (plan["split"] == "train").all()
    assert plan["source_utt_id"].value_counts().to_dict() == {u: 3 for u in train_ids}
    sources = manifest.set_index("utt_id").loc[plan["source_utt_id"]].reset_index(drop=True)
    for col in ("path", "label", "speaker", "attack", "source", "split"):
        assert plan[col].tolist() == sources[col].tolist(), col
    assert plan["utt_id"].tolist()[:3] == ["u0#aug0", "u0#aug1", "u0#aug2"]
    assert plan["utt_id"].is_unique and not plan["utt_id"].isin(manifest["utt_id"]).any()
    assert list(plan.columns) == list(manifest.columns) + list(AUG_COLUMNS)
    assert plan["aug_seed"].dtype == np.int64 and plan["aug_seed"].is_unique and (plan["aug_seed"] >= 0).all()


def test_plan_seeds_are_stable_across_calls_and_row_order() -> None:
    manifest = tiny_manifest()
    config = AugmentConfig(copies=2, seed=11)
    first = plan_augmentations(manifest, config=config).set_index("utt_id")["aug_seed"]
    shuffled = manifest.sample(frac=1.0, random_state=3).reset_index(drop=True)
    second = plan_augmentations(shuffled, config=config).set_index("utt_id")["aug_seed"]
    pd.testing.assert_series_equal(first.sort_index(), second.sort_index())
    other = plan_augmentations(manifest, config=dataclasses.replace(config, seed=12)).set_index("utt_id")["aug_seed"]
    assert not (other.sort_index() == first.sort_index()).any()


def test_aug_seed_does_not_depend_on_the_process() -> None:
    """Pinned: Python's salted hash() would change this value in every process."""
    assert aug_seed("LA_T_1000137", 0, seed=0) == 2576625822926938328
    assert aug_seed("LA_T_1000137", 1, seed=0) != aug_seed("LA_T_1000137", 0, seed=0)


def test_plan_without_copies_or_train_rows_is_empty_with_columns() -> None:
    manifest = tiny_manifest()
    expected = list(manifest.columns) + list(AUG_COLUMNS)
    for frame, copies in ((manifest, 0), (manifest[manifest["split"] != "train"], 2)):
        plan = plan_augmentations(frame, config=AugmentConfig(copies=copies))
        assert plan.empty and list(plan.columns) == expected


def test_plan_refuses_bad_manifests() -> None:
    manifest = tiny_manifest()
    with pytest.raises(ValueError, match="split"):
        plan_augmentations(manifest.drop(columns="split"), config=AugmentConfig(copies=1))
    plan = plan_augmentations(manifest, config=AugmentConfig(copies=1))
    with pytest.raises(ValueError, match="already has"):
        plan_augmentations(pd.concat([manifest, plan]), config=AugmentConfig(copies=1))
    with pytest.raises(ValueError, match="unique"):
        plan_augmentations(pd.concat([manifest, manifest]), config=AugmentConfig(copies=1))
    clash = pd.concat([manifest, manifest.iloc[[0]].assign(utt_id="u0#aug0", split="dev")])
    with pytest.raises(ValueError, match="u0#aug0"):
        plan_augmentations(clash, config=AugmentConfig(copies=1))


def test_the_ops_and_codecs_match_the_names_params_validate() -> None:
    """params.py validates op and codec names without importing this module; the two must agree."""
    from deepfake_audio.params import AUGMENT_OPS, CODEC_NAMES

    assert tuple(OPS) == AUGMENT_OPS
    assert tuple(CODECS) == CODEC_NAMES
