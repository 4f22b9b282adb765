"""Tests for deepfake_audio.audio: decoding, downmix, resampling, fixed length, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfake_audio.audio import SILENCE_PEAK, fix_length, load_audio, read_audio, resample, write_audio
from deepfake_audio.errors import (
    AudioError,
    CorruptAudio,
    EmptyAudio,
    NonFiniteAudio,
    SilentAudio,
    TooShortAudio,
    UnsupportedAudio,
)
from tests.conftest import channel_gains, synth

PCM16_STEP = 1.0 / 32768


# ---------------------------------------------------------------- read_audio / load_audio


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_read_mono_returns_float32_at_file_rate(make_wav, suffix: str) -> None:
    path = make_wav(kind="noise", duration_s=0.25, sample_rate=22050, seed=3, name=f"clip{suffix}")
    y, sr = read_audio(path)
    assert sr == 22050
    assert y.dtype == np.float32 and y.shape == (round(0.25 * 22050),)
    assert y.flags["C_CONTIGUOUS"]
    expected = synth("noise", n_samples=len(y), sample_rate=22050, seed=3)
    np.testing.assert_allclose(y, expected, atol=PCM16_STEP)


def test_read_ogg_is_decoded(make_wav) -> None:
    """Lossy Vorbis: only the length, rate and rough energy can be asserted."""
    path = make_wav(kind="sine", duration_s=0.5, sample_rate=16000, name="clip.ogg")
    y, sr = read_audio(path)
    assert (sr, y.dtype, len(y)) == (16000, np.float32, 8000)
    rms = float(np.sqrt(np.mean(y[1000:-1000] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize("channels", [2, 3])
def test_multichannel_is_averaged(make_wav, channels: int) -> None:
    path = make_wav(kind="harmonic", channels=channels, subtype="FLOAT", seed=1)
    y, sr = read_audio(path)
    assert y.ndim == 1 and y.dtype == np.float32
    mono = synth("harmonic", n_samples=len(y), sample_rate=sr, seed=1)
    np.testing.assert_allclose(y, mono * channel_gains(channels).mean(), atol=1e-6)


def test_stereo_with_opposite_channels_cancels(tmp_path: Path) -> None:
    """Averaging, not taking the first channel: L = -R gives silence."""
    y = synth("sine", n_samples=4000, sample_rate=16000)
    sf.write(tmp_path / "st.wav", np.stack([y, -y], axis=1), 16000, subtype="FLOAT")
    mono, _ = read_audio(tmp_path / "st.wav")
    assert np.max(np.abs(mono)) == 0.0
    with pytest.raises(SilentAudio):
        load_audio(tmp_path / "st.wav", sample_rate=16000)


@pytest.mark.parametrize("subtype,atol", [("PCM_24", 2.0**-23), ("FLOAT", 0.0), ("PCM_16", PCM16_STEP)])
def test_bit_depths_round_trip(make_wav, subtype: str, atol: float) -> None:
    path = make_wav(kind="harmonic", subtype=subtype, seed=7)
    y, _ = read_audio(path)
    expected = synth("harmonic", n_samples=len(y), sample_rate=16000, seed=7)
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)
    assert sf.info(path).subtype == subtype


def test_load_resamples_8k_to_16k(make_wav) -> None:
    """Length doubles exactly and a 440 Hz tone stays at 440 Hz."""
    path = make_wav(kind="sine", duration_s=0.5, sample_rate=8000)
    y = load_audio(path, sample_rate=16000)
    assert y.dtype == np.float32 and y.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spectrum) * 16000 / len(y)
    assert peak_hz == pytest.approx(440.0, abs=2.0)
    # No energy above the 4 kHz band edge of the source.
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    assert spectrum[freqs > 4200].max() < 1e-3 * spectrum.max()


def test_load_does_not_resample_silently(make_wav) -> None:
    path = make_wav(kind="noise", duration_s=0.5, sample_rate=22050)
    assert load_audio(path, sample_rate=22050).shape == (11025,)
    assert load_audio(path, sample_rate=16000).shape == (8000,)


def test_resample_same_rate_is_identity_and_float32() -> None:
    y = np.linspace(-0.5, 0.5, 100)  # float64 in
    out = resample(y, orig_sr=16000, target_sr=16000)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, y.astype(np.float32))
    assert resample(y.astype(np.float32), orig_sr=16000, target_sr=8000).shape == (50,)


BAD_FILE_ERRORS = {
    # name: (exception read_audio raises or None when it decodes, exception load_audio raises, reason)
    "zero_bytes": (EmptyAudio, EmptyAudio, "empty"),
    "truncated": (CorruptAudio, CorruptAudio, "corrupt"),
    "not_audio": (UnsupportedAudio, UnsupportedAudio, "unsupported"),
    "nan": (NonFiniteAudio, NonFiniteAudio, "non_finite"),
    "inf": (NonFiniteAudio, NonFiniteAudio, "non_finite"),
    "silent": (None, SilentAudio, "silent"),
    "too_short": (None, TooShortAudio, "too_short"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILE_ERRORS))
def test_bad_files_raise_their_audio_error(bad_files, name: str) -> None:
    read_exc, load_exc, reason = BAD_FILE_ERRORS[name]
    path = bad_files[name]
    if read_exc is not None:
        with pytest.raises(read_exc) as info:
            read_audio(path)
        assert info.value.reason == reason
    with pytest.raises(load_exc) as info:
        load_audio(path, sample_rate=16000, min_duration_s=0.1)
    assert isinstance(info.value, AudioError)
    assert info.value.reason == reason
    assert str(path) in str(info.value)  # the message says which file


def test_bad_file_reasons_are_distinct_slugs() -> None:
    classes = [EmptyAudio, CorruptAudio, UnsupportedAudio, NonFiniteAudio, SilentAudio, TooShortAudio]
    reasons = [c.reason for c in classes]
    assert len(set(reasons)) == len(reasons)
    assert all(issubclass(c, AudioError) and not issubclass(c, ValueError) for c in classes)


def test_missing_file_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(CorruptAudio, match="not found"):
        read_audio(tmp_path / "nope.wav")


def test_header_only_wav_is_empty(tmp_path: Path) -> None:
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(EmptyAudio):
        read_audio(tmp_path / "empty.wav")


def test_silence_threshold(tmp_path: Path) -> None:
    """A peak just under SILENCE_PEAK is silent; one just over is signal."""
    y = np.zeros(4000, dtype=np.float32)
    y[10] = SILENCE_PEAK * 0.5
    sf.write(tmp_path / "quiet.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(SilentAudio):
        load_audio(tmp_path / "quiet.wav", sample_rate=16000)
    y[10] = SILENCE_PEAK * 2
    sf.write(tmp_path / "faint.wav", y, 16000, subtype="FLOAT")
    assert load_audio(tmp_path / "faint.wav", sample_rate=16000).shape == (4000,)


def test_min_duration_is_measured_at_the_file_rate(make_wav) -> None:
    """0.1 s at 8 kHz is 800 samples: 0.09 s is too short, 0.1 s is not."""
    short = make_wav(kind="sine", duration_s=0.09, sample_rate=8000)
    ok = make_wav(kind="sine", duration_s=0.1, sample_rate=8000)
    with pytest.raises(TooShortAudio):
        load_audio(short, sample_rate=16000, min_duration_s=0.1)
    assert load_audio(ok, sample_rate=16000, min_duration_s=0.1).shape == (1600,)


@pytest.mark.parametrize("peak", [1.5, 1e20])
def test_float_samples_beyond_full_scale_are_clipped_or_rejected(tmp_path: Path, peak: float) -> None:
    """Either fix keeps the contract: samples come back in [-1, 1], or the file is an AudioError."""
    y = synth("sine", n_samples=4000, sample_rate=16000)
    y[100] = peak
    sf.write(tmp_path / "hot.wav", y, 16000, subtype="FLOAT")
    try:
        out, _ = read_audio(tmp_path / "hot.wav")
    except AudioError:
        return
    assert np.max(np.abs(out)) <= 1.0


# ---------------------------------------------------------------- fix_length


def test_fix_length_equal_returns_input() -> None:
    y = np.arange(5, dtype=np.float32)
    out = fix_length(y, 5)
    np.testing.assert_array_equal(out, y)
    assert out.dtype == np.float32


@pytest.mark.parametrize("crop,expected", [("start", [0, 1, 2, 3]), ("center", [3, 4, 5, 6])])
def test_fix_length_crop(crop: str, expected: list[int]) -> None:
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(y, 4, crop=crop), np.array(expected, dtype=np.float32))


def test_fix_length_center_crop_odd_excess() -> None:
    """Excess 3: one sample dropped at the start, two at the end."""
    y = np.arange(7, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(y, 4, crop="center"), [1, 2, 3, 4])


def test_fix_length_repeat_pad_tiles_without_silence() -> None:
    y = np.array([1, 2, 3], dtype=np.float32)
    out = fix_length(y, 8, pad="repeat")
    np.testing.assert_array_equal(out, [1, 2, 3, 1, 2, 3, 1, 2])
    assert out.dtype == np.float32


def test_fix_length_zero_pad() -> None:
    y = np.array([1, 2, 3], dtype=np.float32)
    out = fix_length(y, 6, pad="zero")
    np.testing.assert_array_equal(out, [1, 2, 3, 0, 0, 0])
    assert out.dtype == np.float32


@pytest.mark.parametrize("n", [1, 2, 7, 16000])
@pytest.mark.parametrize("pad,crop", [("repeat", "start"), ("zero", "center")])
def test_fix_length_always_gives_target_length(rng, n: int, pad: str, crop: str) -> None:
    y = rng.standard_normal(n).astype(np.float32)
    for target in (1, 5, 999, 16000, 64000):
        assert fix_length(y, target, pad=pad, crop=crop).shape == (target,)


def test_fix_length_of_empty_clip_raises() -> None:
    with pytest.raises(EmptyAudio):
        fix_length(np.zeros(0, dtype=np.float32), 10)


# ---------------------------------------------------------------- write_audio


@pytest.mark.parametrize("suffix,fmt", [(".flac", "FLAC"), (".wav", "WAV"), (".WAV", "WAV")])
def test_write_audio_round_trip(tmp_path: Path, suffix: str, fmt: str) -> None:
    y = synth("harmonic", n_samples=8000, sample_rate=16000, seed=2)
    path = tmp_path / "sub" / f"out{suffix}"
    write_audio(path, y, 16000)
    info = sf.info(path)
    assert (info.format, info.subtype, info.samplerate, info.channels) == (fmt, "PCM_16", 16000, 1)
    back, sr = read_audio(path)
    np.testing.assert_allclose(back, y, atol=PCM16_STEP)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_write_audio_clips_to_full_scale(tmp_path: Path) -> None:
    y = np.array([0.0, 2.0, -3.0, 0.5] * 100, dtype=np.float32)
    write_audio(tmp_path / "hot.wav", y, 16000)
    back, _ = read_audio(tmp_path / "hot.wav")
    assert back.max() == pytest.approx(1.0, abs=PCM16_STEP)
    assert back.min() == pytest.approx(-1.0, abs=PCM16_STEP)


@pytest.mark.parametrize("suffix", [".mp3", ".ogg", ""])
def test_write_audio_rejects_unknown_suffix(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        write_audio(tmp_path / f"out{suffix}", np.zeros(10, dtype=np.float32), 16000)
    assert list(tmp_path.iterdir()) == []


def test_write_audio_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    """A write that fails part-way keeps the previous file intact and cleans its temporary."""
    path = tmp_path / "keep.wav"
    write_audio(path, synth("sine", n_samples=1600, sample_rate=16000), 16000)
    before = path.read_bytes()
    with pytest.raises(sf.LibsndfileError):  # sample rate 0 fails inside sf.write
        write_audio(path, np.zeros(100, dtype=np.float32), 0)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


def test_written_files_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_audio(tmp_path / "out.wav", synth("sine", n_samples=160, sample_rate=16000), 16000)
    finally:
        os.umask(old)
    assert (tmp_path / "out.wav").stat().st_mode & 0o777 == 0o644
