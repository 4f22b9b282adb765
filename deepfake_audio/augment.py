"""Seeded data augmentation: tempo, pitch, noise and the channel effects that break detectors.

Detectors trained on clean studio audio fail on the channel conditions of ASVspoof 2021 LA/DF
(lossy codecs, telephone bands, resampling), so each augmented copy of a training clip goes
through one randomly drawn effect:

==================  ===========================================================================
op                  what it does
==================  ===========================================================================
``time_stretch``    phase-vocoder tempo change, length ``round(n / rate)``
``pitch_shift``     phase vocoder + soxr resampling, length unchanged
``noise``           white or pink Gaussian noise at an SNR (dB) against the clip's mean power
``codec``           MP3 (LAME, average bitrate), Opus or Vorbis through libsndfile, in memory
``resample``        down to a lower rate and back with soxr (loses everything above its Nyquist)
``band_limit``      zero-phase Butterworth band-pass (300-3400 Hz is the telephone band)
==================  ===========================================================================

Every op takes and returns float32 mono samples of shape ``(n,)``; outputs are finite with
peak <= 1 (a louder result is scaled down, never clipped, so no op adds clipping distortion of
its own). Randomness comes only from the ``np.random.Generator`` or seed passed in: the same
seed gives bit-identical audio.

:func:`plan_augmentations` adds the copies to the manifest. A copy keeps every column of its
source clip, so it has the source's speaker and split: augmented audio of a training clip can
never reach dev or test.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from deepfake_audio.audio import resample
from deepfake_audio.errors import SilentAudio
from deepfake_audio.params import NOISE_COLORS, AugmentConfig

"""``white``: flat spectrum. ``pink``: power falling as 1/f (3 dB per octave)."""

STFT_SIZE = 1024
"""Phase-vocoder window for tempo and pitch: 64 ms at 16 kHz. librosa's default 2048 (128 ms
at 16 kHz) smears speech onsets."""


class CodecUnavailableError(RuntimeError):
    """The installed libsndfile cannot encode a codec.

    Deliberately not an :class:`~deepfake_audio.errors.AudioError`: a missing codec is a broken
    installation, and per-file workers must stop rather than reject every clip.
    """


# ---------------------------------------------------------------- input and output checks


def _check_audio(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{where}: expected mono samples of shape (n,) with n >= 1, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{where}: expected float samples in [-1, 1], got dtype {y.dtype}")
    if not np.isfinite(y).all():
        raise ValueError(f"{where}: samples must be finite (got NaN or inf)")
    return y.astype(np.float32, copy=False)


def _check_rate(sample_rate: int, where: str) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"{where}: sample_rate must be a positive integer, got {sample_rate!r}")


def _finish(y: np.ndarray, where: str) -> np.ndarray:
    """float32, contiguous, peak <= 1 by scaling down (clipping would add harmonics of its own)."""
    y = np.asarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise FloatingPointError(f"{where}: produced non-finite samples")  # a bug: inputs are checked
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:
        y = np.clip(y / np.float32(peak), -1.0, 1.0)  # clip only absorbs float32 rounding
    return np.ascontiguousarray(y, dtype=np.float32)


def _fit_length(y: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad the end to exactly ``n_samples``."""
    if len(y) >= n_samples:
        return y[:n_samples]
    return np.concatenate([y, np.zeros(n_samples - len(y), dtype=y.dtype)])


# ---------------------------------------------------------------- the ops


def time_stretch(y: np.ndarray, *, rate: float, n_fft: int = STFT_SIZE) -> np.ndarray:
    """Change tempo without changing pitch (librosa phase vocoder).

    Args:
        y: float32 samples, shape ``(n,)``.
        rate: speed factor; ``> 1`` is faster (shorter), ``< 1`` slower.
        n_fft: phase-vocoder window in samples (hop ``n_fft // 4``).

    Returns:
        float32, shape ``(round(n / rate),)``.
    """
    import librosa

    y = _check_audio(y, "time_stretch")
    if not np.isfinite(rate) or rate <= 0:
        raise ValueError(f"time_stretch: rate must be > 0, got {rate!r}")
    out = librosa.effects.time_stretch(y, rate=float(rate), n_fft=n_fft, hop_length=n_fft // 4)
    return _finish(out, "time_stretch")


def pitch_shift(y: np.ndarray, *, sample_rate: int, n_steps: float, n_fft: int = STFT_SIZE) -> np.ndarray:
    """Shift pitch by ``n_steps`` semitones, keeping the length (librosa, soxr resampling).

    Returns:
        float32, shape ``(n,)``; a sine at ``f`` Hz comes out at ``f * 2 ** (n_steps / 12)``.
    """
    import librosa

    y = _check_audio(y, "pitch_shift")
    _check_rate(sample_rate, "pitch_shift")
    if not np.isfinite(n_steps):
        raise ValueError(f"pitch_shift: n_steps must be finite, got {n_steps!r}")
    out = librosa.effects.pitch_shift(
        y, sr=sample_rate, n_steps=float(n_steps), res_type="soxr_hq", n_fft=n_fft, hop_length=n_fft // 4
    )
    return _finish(out, "pitch_shift")


def _noise(n_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n_samples)
    if color == "white":
        return white
    spec = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n_samples)
    gain = np.zeros_like(freqs)
    gain[1:] = 1.0 / np.sqrt(freqs[1:])  # amplitude 1/sqrt(f) is power 1/f; no DC offset
    return np.fft.irfft(spec * gain, n_samples)


def add_noise(y: np.ndarray, *, snr_db: float, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """Add Gaussian noise at a signal-to-noise ratio.

    The SNR is measured against the clip's mean power over all its samples (pauses included),
    so ``10 * log10(mean(y**2) / mean(noise**2)) == snr_db`` exactly, before float32 rounding.

    Args:
        y: float32 samples, shape ``(n,)``.
        snr_db: dB; any finite value (negative means more noise than signal).
        rng: the only source of randomness.
        color: one of :data:`NOISE_COLORS`.

    Returns:
        float32, shape ``(n,)``. If the sum exceeds full scale, signal and noise are scaled down
        together, which keeps the SNR.

    Raises:
        SilentAudio: ``y`` is all zeros, so no SNR can be defined. The loaders reject such clips
            (reason ``silent``) before augmentation, and a worker that sees it rejects the clip.
    """
    y = _check_audio(y, "add_noise")
    if not np.isfinite(snr_db):
        raise ValueError(f"add_noise: snr_db must be finite, got {snr_db!r}")
    if color not in NOISE_COLORS:
        raise ValueError(f"add_noise: unknown color {color!r}; known: {', '.join(NOISE_COLORS)}")
    signal_power = float(np.mean(np.square(y, dtype=np.float64)))
    if signal_power == 0.0:
        raise SilentAudio("add_noise: the clip is all zeros, so an SNR is undefined")
    noise = _noise(len(y), color, rng)
    noise_power = float(np.mean(noise**2))
    if noise_power == 0.0:  # pink noise of a 1- or 2-sample clip is just DC, which is removed
        return _finish(y, "add_noise")
    noise *= np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return _finish(y.astype(np.float64) + noise, "add_noise")


class _Codec(NamedTuple):
    """How libsndfile encodes one codec."""

    format: str
    subtype: str
    rates: tuple[int, ...]  # sample rates the codec accepts, ascending
    bitrate_mode: str | None
    kbps_range: Callable[[int], tuple[float, float]]  # encoding rate -> (lowest, highest) kbps

    def compression_level(self, bitrate_kbps: float, rate: int) -> float:
        lo, hi = self.kbps_range(rate)
        return (hi - bitrate_kbps) / (hi - lo)


def _mp3_kbps(rate: int) -> tuple[float, float]:
    # libsndfile's mpeg_l3_encoder_set_quality: MPEG-1, MPEG-2 and MPEG-2.5 bitrate ranges.
    if rate >= 32000:
        return 32.0, 320.0
    if rate >= 16000:
        return 8.0, 160.0
    return 8.0, 64.0


def _vorbis_kbps(rate: int) -> tuple[float, float]:
    if rate < 11025:
        return 20.0, 40.0
    if rate < 16000:
        return 25.0, 55.0
    if rate < 22050:
        return 28.0, 70.0
    if rate < 32000:
        return 34.0, 95.0
    return 45.0, 230.0


CODECS: dict[str, _Codec] = {
    # Average bitrate, not CBR: libsndfile's low-bitrate CBR files lose the LAME gapless header,
    # and their decoded audio then starts ~1105 samples late.
    "mp3": _Codec(
        "MP3", "MPEG_LAYER_III", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), "AVERAGE", _mp3_kbps
    ),
    # libsndfile's ogg_opus.c maps compression_level c to (1 - c) * 250 + 6 kbps.
    "opus": _Codec("OGG", "OPUS", (8000, 12000, 16000, 24000, 48000), None, lambda rate: (6.0, 256.0)),
    # libsndfile's ogg_vorbis.c encodes VBR at quality 1 - compression_level; the kbps range is
    # what that spans on mono speech (measured), so a bitrate here is approximate.
    "vorbis": _Codec(
        "OGG", "VORBIS", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), None, _vorbis_kbps
    ),
}
"""Codec name -> libsndfile format, subtype, accepted rates and bitrate range."""


def available_codecs() -> tuple[str, ...]:
    """Names in :data:`CODECS` that the installed libsndfile can encode."""
    import soundfile as sf

    formats = sf.available_formats()
    return tuple(
        name for name, c in CODECS.items() if c.format in formats and c.subtype in sf.available_subtypes(c.format)
    )


def _codec_spec(format: str) -> _Codec:  # noqa: A002
    spec = CODECS.get(format)
    if spec is None:
        raise ValueError(f"codec: unknown format {format!r}; known: {', '.join(CODECS)}")
    return spec


def codec_rate(format: str, *, sample_rate: int) -> int:  # noqa: A002
    """The rate :func:`codec` encodes ``format`` at for audio at ``sample_rate`` Hz."""
    spec = _codec_spec(format)
    return next((r for r in spec.rates if r >= sample_rate), spec.rates[-1])


def codec_kbps_range(format: str, *, sample_rate: int) -> tuple[float, float]:  # noqa: A002
    """``(lowest, highest)`` bitrate in kbps that :func:`codec` accepts for audio at ``sample_rate``."""
    return _codec_spec(format).kbps_range(codec_rate(format, sample_rate=sample_rate))


def codec(y: np.ndarray, *, sample_rate: int, format: str, bitrate_kbps: float) -> np.ndarray:  # noqa: A002
    """Encode to a lossy codec in memory and decode back.

    The clip is resampled (soxr) to the lowest rate the codec accepts at or above
    ``sample_rate`` (Opus: 8/12/16/24/48 kHz; MP3: 8-48 kHz) and back. libsndfile removes the
    encoder delay and padding itself (LAME gapless header, Opus pre-skip); any remainder is
    trimmed or zero-padded at the end, so the output stays aligned with the input.

    Args:
        y: float32 samples, shape ``(n,)``.
        sample_rate: Hz.
        format: ``"mp3"`` (LAME, average bitrate), ``"opus"`` (Ogg Opus) or ``"vorbis"``
            (Ogg Vorbis, VBR).
        bitrate_kbps: target bitrate. Allowed: Opus 6-256; MP3 8-64 below 16 kHz, 8-160 at
            16-24 kHz, 32-320 at 32-48 kHz (libsndfile's ranges); Vorbis 28-70 at 16 kHz (see
            :func:`codec_kbps_range`; approximate, since Vorbis is encoded by quality).

    Returns:
        float32, shape ``(n,)``.

    Raises:
        CodecUnavailableError: the installed libsndfile cannot encode ``format``.
    """
    import soundfile as sf

    y = _check_audio(y, "codec")
    _check_rate(sample_rate, "codec")
    spec = _codec_spec(format)
    if format not in available_codecs():
        raise CodecUnavailableError(
            f"codec: libsndfile {sf.__libsndfile_version__} cannot encode {format} "
            f"({spec.format}/{spec.subtype}); available: {', '.join(available_codecs()) or 'none'}"
        )
    rate = codec_rate(format, sample_rate=sample_rate)
    lo, hi = spec.kbps_range(rate)
    if not lo <= bitrate_kbps <= hi:
        raise ValueError(
            f"codec: bitrate_kbps={bitrate_kbps!r} is outside {lo:g}-{hi:g} kbps, the range of {format} at {rate} Hz"
        )
    # libsndfile refuses an MP3 compression level of exactly 1, so the lowest bitrate is approached.
    level = min(spec.compression_level(bitrate_kbps, rate), 0.999)
    x = resample(y, orig_sr=sample_rate, target_sr=rate)
    buf = io.BytesIO()
    try:
        sf.write(
            buf,
            x,
            rate,
            format=spec.format,
            subtype=spec.subtype,
            compression_level=level,
            bitrate_mode=spec.bitrate_mode,
        )
        buf.seek(0)
        decoded, _ = sf.read(buf, dtype="float32", always_2d=False)
    except sf.LibsndfileError as exc:
        raise RuntimeError(f"codec: {format} at {rate} Hz, {bitrate_kbps} kbps failed: {exc}") from exc
    decoded = _fit_length(decoded, len(x))
    out = _fit_length(resample(decoded, orig_sr=rate, target_sr=sample_rate), len(y))
    return _finish(out, "codec")


def resample_chain(y: np.ndarray, *, sample_rate: int, via_rate: int) -> np.ndarray:
    """Resample down to ``via_rate`` and back with soxr, as a low-rate channel would.

    Energy above ``via_rate / 2`` is removed.

    Returns:
        float32, shape ``(n,)`` at ``sample_rate``.
    """
    y = _check_audio(y, "resample_chain")
    _check_rate(sample_rate, "resample_chain")
    _check_rate(via_rate, "resample_chain")
    if via_rate >= sample_rate:
        raise ValueError(f"resample_chain: via_rate={via_rate} must be below sample_rate={sample_rate}")
    down = resample(y, orig_sr=sample_rate, target_sr=via_rate)
    up = resample(down, orig_sr=via_rate, target_sr=sample_rate)
    return _finish(_fit_length(up, len(y)), "resample_chain")


def band_limit(y: np.ndarray, *, sample_rate: int, low_hz: float, high_hz: float, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass (forward-backward, so the slopes are ``2 * order``).

    Args:
        y: float32 samples, shape ``(n,)``.
        sample_rate: Hz.
        low_hz: lower edge in Hz; 0 makes it a low-pass.
        high_hz: upper edge in Hz, below Nyquist.
        order: Butterworth order of each edge.

    Returns:
        float32, shape ``(n,)``.
    """
    from scipy import signal

    y = _check_audio(y, "band_limit")
    _check_rate(sample_rate, "band_limit")
    if not 0 <= low_hz < high_hz < sample_rate / 2:
        raise ValueError(
            f"band_limit: need 0 <= low_hz < high_hz < Nyquist ({sample_rate / 2:g} Hz), "
            f"got low_hz={low_hz!r}, high_hz={high_hz!r}"
        )
    if low_hz > 0:
        sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    else:
        sos = signal.butter(order, high_hz, btype="lowpass", fs=sample_rate, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), len(y) - 1)  # scipy's default, shortened for tiny clips
    out = signal.sosfiltfilt(sos, y.astype(np.float64), padlen=padlen)
    return _finish(out, "band_limit")


# ---------------------------------------------------------------- one augmented copy

_Op = Callable[[np.ndarray, int, AugmentConfig, np.random.Generator], tuple[np.ndarray, str]]

OPS: dict[str, _Op] = {}
"""Op name -> ``(y, sample_rate, config, rng) -> (augmented, description)``."""


def _register(name: str) -> Callable[[_Op], _Op]:
    def deco(fn: _Op) -> _Op:
        if name in OPS:
            raise ValueError(f"augmentation op {name!r} is already registered")
        OPS[name] = fn
        return fn

    return deco


def _choice(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


@_register("time_stretch")
def _op_time_stretch(y, sample_rate, config, rng):
    rate = float(rng.uniform(*config.stretch_rate))
    return time_stretch(y, rate=rate), f"time_stretch(rate={rate:.3f})"


@_register("pitch_shift")
def _op_pitch_shift(y, sample_rate, config, rng):
    n_steps = float(rng.uniform(*config.pitch_semitones))
    return pitch_shift(y, sample_rate=sample_rate, n_steps=n_steps), f"pitch_shift(n_steps={n_steps:+.2f})"


@_register("noise")
def _op_noise(y, sample_rate, config, rng):
    color = _choice(rng, config.noise_colors)
    snr_db = float(rng.uniform(*config.snr_db))
    return add_noise(y, snr_db=snr_db, rng=rng, color=color), f"noise(color={color}, snr_db={snr_db:.1f})"


@_register("codec")
def _op_codec(y, sample_rate, config, rng):
    name = _choice(rng, config.codecs)
    kbps = float(np.clip(rng.uniform(*config.codec_kbps), *codec_kbps_range(name, sample_rate=sample_rate)))
    return (
        codec(y, sample_rate=sample_rate, format=name, bitrate_kbps=kbps),
        f"codec(format={name}, bitrate_kbps={kbps:.1f})",
    )


@_register("resample")
def _op_resample(y, sample_rate, config, rng):
    via = int(_choice(rng, config.resample_rates))
    return resample_chain(y, sample_rate=sample_rate, via_rate=via), f"resample(via_rate={via})"


@_register("band_limit")
def _op_band_limit(y, sample_rate, config, rng):
    low, high = _choice(rng, config.band_limit_hz)
    return (
        band_limit(y, sample_rate=sample_rate, low_hz=low, high_hz=high),
        f"band_limit(low_hz={low:g}, high_hz={high:g})",
    )


def augment(y: np.ndarray, *, sample_rate: int, config: AugmentConfig, seed: int) -> tuple[np.ndarray, str]:
    """One augmented copy: one op drawn uniformly from ``config.ops``, with a drawn parameter.

    Args:
        y: float32 samples, shape ``(n,)``.
        sample_rate: Hz.
        config: the op set and parameter ranges (``copies`` and ``seed`` are not used here).
        seed: the copy's ``aug_seed`` (see :func:`plan_augmentations`); the same seed gives
            bit-identical output.

    Returns:
        ``(augmented, description)``: float32 of shape ``(n,)``, or ``(round(n / rate),)``
        after a time stretch, and e.g. ``"pitch_shift(n_steps=+1.37)"``.
    """
    config.validate(sample_rate=sample_rate)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"augment: seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    name = _choice(rng, config.ops)
    return OPS[name](_check_audio(y, "augment"), sample_rate, config, rng)


# ---------------------------------------------------------------- manifest rows

AUG_COLUMNS = ("source_utt_id", "aug_seed")
"""Columns :func:`plan_augmentations` adds to the manifest's."""


def aug_seed(utt_id: str, k: int, *, seed: int) -> int:
    """The seed of copy ``k`` of clip ``utt_id``: stable across runs, processes and row order.

    A keyed BLAKE2b hash (Python's ``hash()`` is salted per process), cut to 63 bits so that it
    fits an int64 column.
    """
    digest = hashlib.blake2b(f"{seed}:{k}:{utt_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def plan_augmentations(manifest: pd.DataFrame, *, config: AugmentConfig) -> pd.DataFrame:
    """Manifest rows for the augmented copies of the training clips.

    Only rows with ``split == "train"`` get copies. Each copy repeats every column of its source
    row (speaker, split, label, attack, source, path...), so it stays in the source's split.

    Args:
        manifest: rows with at least ``utt_id`` and ``split`` columns, ``utt_id`` unique.
        config: ``copies`` per train row and the ``seed`` of the draws.

    Returns:
        ``config.copies`` rows per train row, in manifest order, with ``utt_id`` set to
        ``"<utt_id>#aug<k>"`` and the added columns ``source_utt_id`` (str) and ``aug_seed``
        (int64, see :func:`aug_seed`). Empty, with the same columns, when there is nothing to copy.
    """
    config.validate()
    missing = [c for c in ("utt_id", "split") if c not in manifest.columns]
    if missing:
        raise ValueError(f"plan_augmentations: manifest lacks columns {missing}")
    present = [c for c in AUG_COLUMNS if c in manifest.columns]
    if present:
        raise ValueError(f"plan_augmentations: manifest already has {present}: augment source clips only")
    if manifest["utt_id"].duplicated().any():
        dup = manifest.loc[manifest["utt_id"].duplicated(), "utt_id"].iloc[0]
        raise ValueError(f"plan_augmentations: utt_id must be unique, {dup!r} appears more than once")

    train = manifest[manifest["split"] == "train"]
    copies = train.loc[train.index.repeat(config.copies)].reset_index(drop=True)  # source-major
    ks = np.tile(np.arange(config.copies), len(train))
    sources = copies["utt_id"].astype(str)
    copies["source_utt_id"] = sources
    copies["utt_id"] = [f"{u}#aug{k}" for u, k in zip(sources, ks)]
    copies["aug_seed"] = pd.Series([aug_seed(u, int(k), seed=config.seed) for u, k in zip(sources, ks)], dtype="int64")
    clash = copies["utt_id"][copies["utt_id"].isin(manifest["utt_id"])]
    if len(clash):
        raise ValueError(f"plan_augmentations: copy id {clash.iloc[0]!r} is already a utt_id in the manifest")
    return copies
