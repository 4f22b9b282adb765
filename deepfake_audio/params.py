"""Typed, validated views of ``params.yaml``.

Each section is a frozen dataclass. ``from_dict`` rejects unknown keys and wrong types with a
:class:`~deepfake_audio.errors.ParamError` naming the dotted key, the value and what is allowed,
so a typo in ``params.yaml`` or in ``dvc exp run -S`` fails at once instead of being ignored.
The library never reads ``params.yaml`` itself: stages load it and pass these objects in.

This module imports nothing from the project, so every other module may import it. Checks that
need a registry (feature group names, model kinds) belong to the registry's owner and run when a
stage loads its params: :func:`deepfake_audio.features.check_feature_params` and
:func:`deepfake_audio.models.check_model_params`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class ParamError(ValueError):
    """A parameter that is missing, unknown or out of range."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"bad parameter {key}={value!r}: {allowed}")
        self.key = key
        self.value = value
        self.allowed = allowed

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.key, self.value, self.allowed))


def from_dict(cls: type[T], data: dict[str, Any] | None, *, prefix: str) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys, types and literal choices.

    Args:
        cls: a dataclass whose fields have defaults (or are required).
        data: the mapping from YAML; ``None`` means all defaults.
        prefix: dotted name of the section, used in error messages (e.g. ``"train"``).
    """
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ParamError(prefix or "params", data, "expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamError(
            _join(prefix, unknown[0]), data[unknown[0]], f"unknown key; known keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], _join(prefix, name))
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ParamError(prefix or "params", data, str(exc)) from exc
    check = getattr(obj, "validate", None)
    if check is not None:
        check(prefix)
    return obj


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ParamError(key, value, f"allowed: {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ParamError as exc:
                errors.append(exc.allowed)
        raise ParamError(key, value, "; or ".join(errors))
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamError(key, value, "expected a list")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ParamError(key, value, "expected a mapping")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamError(key, value, "expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(key, value, "expected an integer")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise ParamError(key, value, "expected a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(key, value, "expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamError(key, value, "expected a string")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=key)
    raise TypeError(f"unsupported type hint {hint!r} for {key}")  # a bug in this module


def _positive(prefix: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ParamError(f"{prefix}.{name}", value, "must be > 0" if not allow_zero else "must be >= 0")


@dataclasses.dataclass(frozen=True)
class DataParams:
    """``data``: what is trained on and what is only scored."""

    sources: tuple[dict, ...] = ({"kind": "demo"},)
    eval_sets: dict = dataclasses.field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        if not self.sources:
            raise ParamError(f"{prefix}.sources", list(self.sources), "at least one source spec")
        for i, spec in enumerate(self.sources):
            if not isinstance(spec, dict) or "kind" not in spec:
                raise ParamError(f"{prefix}.sources[{i}]", spec, "a mapping with a 'kind' key")
        for name, spec in self.eval_sets.items():
            if not isinstance(spec, dict) or "kind" not in spec:
                raise ParamError(f"{prefix}.eval_sets.{name}", spec, "a mapping with a 'kind' key")
            if name in ("train", "dev", "test"):
                raise ParamError(f"{prefix}.eval_sets.{name}", spec, "eval set names must not be train/dev/test")
            # The name becomes folders (data/eval/<name>), DVC stage names (eval_data@<name>) and a
            # params key (data.eval_sets.<name>): a '.' would nest it, a number DVC would skip.
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise ParamError(
                    f"{prefix}.eval_sets", name, "a set name of letters, digits and '_', starting with a letter"
                )


@dataclasses.dataclass(frozen=True)
class AudioParams:
    """``audio``: how every clip is decoded before features."""

    sample_rate: int = 16000
    duration_s: float = 4.0
    pad: Literal["repeat", "zero"] = "repeat"
    crop: Literal["start", "center"] = "start"
    min_duration_s: float = 0.1
    max_duration_s: float = 10.0  # the waveform store keeps at most this much of each clip (its start)

    def validate(self, prefix: str) -> None:
        _positive(prefix, "sample_rate", self.sample_rate)
        _positive(prefix, "duration_s", self.duration_s)
        _positive(prefix, "min_duration_s", self.min_duration_s, allow_zero=True)
        _positive(prefix, "max_duration_s", self.max_duration_s)
        if self.max_duration_s < self.min_duration_s:
            raise ParamError(
                f"{prefix}.max_duration_s", self.max_duration_s, f"at least min_duration_s ({self.min_duration_s})"
            )

    @property
    def max_samples(self) -> int:
        """Samples the waveform store keeps of a clip, at most: ``max_duration_s`` at ``sample_rate``."""
        return int(round(self.sample_rate * self.max_duration_s))

    @property
    def n_samples(self) -> int:
        return int(round(self.sample_rate * self.duration_s))


@dataclasses.dataclass(frozen=True)
class SplitParams:
    """``split``: train/dev/test fractions and how clips are assigned.

    Strategies: ``official`` (each corpus's own train/dev/eval partitions; sources without them
    are split as ``stratified_group``), ``stratified_group`` (speaker-disjoint, stratified by label and attack),
    ``unseen_attacks`` (the same, and the attacks in ``unseen_attacks`` -- or a seeded
    ``unseen_attack_fraction`` of them -- appear only in test), and ``random`` (stratified but not
    speaker-disjoint: only to reproduce leaky seed-project numbers; it logs a warning).
    """

    strategy: Literal["stratified_group", "official", "unseen_attacks", "random"] = "stratified_group"
    train: float = 0.6
    dev: float = 0.2
    test: float = 0.2
    seed: int = 0
    unseen_attacks: tuple[str, ...] = ()
    unseen_attack_fraction: float = 0.0

    def validate(self, prefix: str) -> None:
        for name in ("train", "dev", "test"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ParamError(f"{prefix}.{name}", value, "a fraction in (0, 1)")
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ParamError(
                prefix,
                {"train": self.train, "dev": self.dev, "test": self.test},
                f"train + dev + test must be 1 (got {total:g})",
            )
        if not 0 <= self.unseen_attack_fraction < 1:
            raise ParamError(f"{prefix}.unseen_attack_fraction", self.unseen_attack_fraction, "a fraction in [0, 1)")
        if self.strategy == "unseen_attacks" and not self.unseen_attacks and self.unseen_attack_fraction == 0:
            raise ParamError(
                f"{prefix}.unseen_attacks",
                [],
                "name attacks, or set unseen_attack_fraction > 0, for strategy unseen_attacks",
            )
        if self.strategy != "unseen_attacks" and (self.unseen_attacks or self.unseen_attack_fraction):
            raise ParamError(
                f"{prefix}.strategy",
                self.strategy,
                "unseen_attacks or unseen_attack_fraction only apply to strategy unseen_attacks",
            )


@dataclasses.dataclass(frozen=True)
class MfccParams:
    """``features.mfcc``: cepstra of the shared log-mel spectrogram."""

    n_mfcc: int = 40
    deltas: int = 2  # 0: coefficients only; 1: and their delta; 2: and the delta-delta too

    def validate(self, prefix: str) -> None:
        _positive(prefix, "n_mfcc", self.n_mfcc)
        _deltas(prefix, self.deltas)


@dataclasses.dataclass(frozen=True)
class LfccParams:
    """``features.lfcc``: linear-frequency cepstra, as in the ASVspoof baselines."""

    n_lfcc: int = 20
    n_filters: int = 20  # triangular filters, equally spaced in Hz from 0 to Nyquist
    deltas: int = 2

    def validate(self, prefix: str) -> None:
        _positive(prefix, "n_lfcc", self.n_lfcc)
        _positive(prefix, "n_filters", self.n_filters)
        if self.n_lfcc > self.n_filters:
            raise ParamError(f"{prefix}.n_lfcc", self.n_lfcc, f"at most n_filters ({self.n_filters})")
        _deltas(prefix, self.deltas)


@dataclasses.dataclass(frozen=True)
class ChromaParams:
    """``features.chroma``: pitch-class energy from the shared STFT (A440 tuning, not estimated)."""

    n_chroma: int = 12

    def validate(self, prefix: str) -> None:
        _positive(prefix, "n_chroma", self.n_chroma)


@dataclasses.dataclass(frozen=True)
class ContrastParams:
    """``features.spectral_contrast``: peak-to-valley ratio per octave band."""

    n_bands: int = 6

    def validate(self, prefix: str) -> None:
        _positive(prefix, "n_bands", self.n_bands)


@dataclasses.dataclass(frozen=True)
class RolloffParams:
    """``features.spectral_rolloff``."""

    roll_percent: float = 0.85

    def validate(self, prefix: str) -> None:
        if not 0 < self.roll_percent < 1:
            raise ParamError(f"{prefix}.roll_percent", self.roll_percent, "a fraction in (0, 1)")


@dataclasses.dataclass(frozen=True)
class CqtParams:
    """``features.cqt``: constant-Q log-power spectrogram (optional group; costs more than the rest)."""

    n_bins: int = 84
    bins_per_octave: int = 12
    fmin: float = 32.70  # Hz, C1

    def validate(self, prefix: str) -> None:
        _positive(prefix, "n_bins", self.n_bins)
        _positive(prefix, "bins_per_octave", self.bins_per_octave)
        _positive(prefix, "fmin", self.fmin)


# Names of the augmentation ops, noise colours and codecs that deepfake_audio/augment.py implements
# (tests/test_augment.py checks that its tables match these).
AUGMENT_OPS = ("time_stretch", "pitch_shift", "noise", "codec", "resample", "band_limit")
NOISE_COLORS = ("white", "pink")
CODEC_NAMES = ("mp3", "opus", "vorbis")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """``features.augment``: how many copies per training clip, and what each may go through.

    Each copy applies one op drawn uniformly from ``ops``; its parameter is drawn uniformly
    from the op's range (``[lo, hi]``), or from the listed choices.

    Attributes:
        copies: augmented copies per train clip; 0 turns augmentation off.
        ops: names from :data:`AUGMENT_OPS`.
        stretch_rate: tempo factor range (``> 1`` is faster).
        pitch_semitones: pitch shift range in semitones, within +-12.
        snr_db: noise SNR range in dB.
        noise_colors: choices from :data:`NOISE_COLORS`.
        codecs: choices from :data:`CODEC_NAMES`.
        codec_kbps: target bitrate range in kbps, clamped to each codec's own range (see
            :func:`codec`).
        resample_rates: intermediate rates in Hz, each below the audio's sample rate.
        band_limit_hz: ``(low_hz, high_hz)`` pass bands; ``low_hz == 0`` is a low-pass.
        seed: mixed into every copy's ``aug_seed``; change it for a different draw.
    """

    copies: int = 0
    ops: tuple[str, ...] = AUGMENT_OPS
    stretch_rate: tuple[float, float] = (0.9, 1.1)
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    snr_db: tuple[float, float] = (10.0, 40.0)
    noise_colors: tuple[str, ...] = NOISE_COLORS
    codecs: tuple[str, ...] = ("mp3", "opus")
    codec_kbps: tuple[float, float] = (16.0, 64.0)
    resample_rates: tuple[int, ...] = (8000, 11025)
    band_limit_hz: tuple[tuple[float, float], ...] = ((300.0, 3400.0), (50.0, 7000.0))
    seed: int = 0

    def validate(self, prefix: str = "features.augment", *, sample_rate: int | None = None) -> None:
        """Raise :class:`ParamError` naming the first bad key.

        Args:
            prefix: dotted name of this section in error messages.
            sample_rate: also check that resample rates and pass bands fit audio at this rate.
        """

        def key(name: str) -> str:
            return _join(prefix, name)

        if isinstance(self.copies, bool) or not isinstance(self.copies, int) or self.copies < 0:
            raise ParamError(key("copies"), self.copies, "an integer >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ParamError(key("seed"), self.seed, "an integer >= 0")
        if not self.ops:
            raise ParamError(key("ops"), list(self.ops), f"at least one of: {', '.join(AUGMENT_OPS)}")
        for i, op in enumerate(self.ops):
            if op not in AUGMENT_OPS:
                raise ParamError(f"{key('ops')}[{i}]", op, f"known ops: {', '.join(AUGMENT_OPS)}")
        if len(set(self.ops)) != len(self.ops):
            raise ParamError(key("ops"), list(self.ops), "list each op once")
        _check_range(key("stretch_rate"), self.stretch_rate, low=0.0, low_open=True)
        _check_range(key("pitch_semitones"), self.pitch_semitones, low=-12.0, high=12.0)
        _check_range(key("snr_db"), self.snr_db)
        _check_range(key("codec_kbps"), self.codec_kbps, low=6.0, high=320.0)
        used = set(self.ops)
        _check_choices(key("noise_colors"), self.noise_colors, NOISE_COLORS, required="noise" in used)
        _check_choices(key("codecs"), self.codecs, CODEC_NAMES, required="codec" in used)
        if "resample" in used and not self.resample_rates:
            raise ParamError(key("resample_rates"), [], "at least one rate when ops has resample")
        for i, rate in enumerate(self.resample_rates):
            if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
                raise ParamError(f"{key('resample_rates')}[{i}]", rate, "a positive integer (Hz)")
            if sample_rate is not None and rate >= sample_rate:
                raise ParamError(f"{key('resample_rates')}[{i}]", rate, f"below the sample rate ({sample_rate} Hz)")
        if "band_limit" in used and not self.band_limit_hz:
            raise ParamError(key("band_limit_hz"), [], "at least one [low_hz, high_hz] pair when ops has band_limit")
        for i, band in enumerate(self.band_limit_hz):
            name = f"{key('band_limit_hz')}[{i}]"
            if len(band) != 2 or not all(math.isfinite(b) for b in band) or not 0 <= band[0] < band[1]:
                raise ParamError(name, list(band), "a pair [low_hz, high_hz] with 0 <= low_hz < high_hz")
            if sample_rate is not None and band[1] >= sample_rate / 2:
                raise ParamError(name, list(band), f"high_hz below Nyquist ({sample_rate / 2:g} Hz)")


def _check_range(
    key: str, value: tuple[float, float], *, low: float = -math.inf, high: float = math.inf, low_open: bool = False
) -> None:
    bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    allowed = f"a pair [lo, hi] with lo <= hi, both finite and within {bound}"
    if len(value) != 2 or not all(math.isfinite(v) for v in value):
        raise ParamError(key, list(value), allowed)
    lo, hi = value
    if lo > hi or lo < low or hi > high or (low_open and lo == low):
        raise ParamError(key, list(value), allowed)


def _check_choices(key: str, value: tuple[str, ...], known: tuple[str, ...], *, required: bool) -> None:
    if required and not value:
        raise ParamError(key, [], f"at least one of: {', '.join(known)}")
    for i, item in enumerate(value):
        if item not in known:
            raise ParamError(f"{key}[{i}]", item, f"known: {', '.join(known)}")


# Names that deepfake_audio/rawboost.py and deepfake_audio/wave_augment.py implement
# (tests/test_wave_augment.py checks that their registries match these).
RAWBOOST_ALGOS = (1, 2, 3, 4, 5, 6, 7, 8)
WAVE_AUGMENT_OPS = ("rawboost", "codec", "resample", "band_limit", "noise", "reverb", "speed")
WAVE_CODECS = CODEC_NAMES + ("mulaw", "alaw")


@dataclasses.dataclass(frozen=True)
class RawBoostParams:
    """``train.augment.rawboost``: RawBoost (Tak et al., ICASSP 2022), with the paper's defaults.

    Algorithms, numbered as in the paper: 1 linear and non-linear convolutive noise, 2 impulsive
    signal-dependent noise, 3 stationary signal-independent noise; in series 4 = 1+2+3, 5 = 1+2,
    6 = 1+3, 7 = 2+3; and 8 = 1 and 2 in parallel (their outputs summed).

    Attributes:
        algos: choices from :data:`RAWBOOST_ALGOS`; each use draws one.
        n_bands: notch bands per multi-band filter (N_f).
        freq_hz: ``[min, max]`` centre frequency of a notch in Hz (edges are kept below Nyquist).
        bandwidth_hz: ``[min, max]`` notch width in Hz.
        n_coeffs: ``[min, max]`` FIR coefficients per notch (rounded up to odd).
        gain_db: ``[min, max]`` gain of the linear (first-order) term in dB.
        nonlinear_order: highest power of the signal filtered (N); 1 makes algorithm 1 linear.
        nonlinear_bias_db: ``[min, max]`` attenuation in dB of each higher-order term against the
            linear one.
        impulsive_percent: share of samples algorithm 2 disturbs (P, in %).
        impulsive_gain: largest relative disturbance of a sample (g_sd).
        snr_db: ``[min, max]`` SNR of algorithm 3's coloured noise in dB.
    """

    algos: tuple[int, ...] = RAWBOOST_ALGOS
    n_bands: int = 5
    freq_hz: tuple[float, float] = (20.0, 8000.0)
    bandwidth_hz: tuple[float, float] = (100.0, 1000.0)
    n_coeffs: tuple[int, int] = (10, 100)
    gain_db: tuple[float, float] = (0.0, 0.0)
    nonlinear_order: int = 5
    nonlinear_bias_db: tuple[float, float] = (5.0, 20.0)
    impulsive_percent: float = 10.0
    impulsive_gain: float = 2.0
    snr_db: tuple[float, float] = (10.0, 40.0)

    def validate(self, prefix: str = "train.augment.rawboost") -> None:
        def key(name: str) -> str:
            return _join(prefix, name)

        if not self.algos:
            raise ParamError(key("algos"), [], f"at least one of: {', '.join(map(str, RAWBOOST_ALGOS))}")
        for i, algo in enumerate(self.algos):
            if algo not in RAWBOOST_ALGOS or isinstance(algo, bool):
                raise ParamError(f"{key('algos')}[{i}]", algo, f"known: {', '.join(map(str, RAWBOOST_ALGOS))}")
        for name in ("n_bands", "nonlinear_order"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParamError(key(name), value, "an integer >= 1")
        _check_range(key("freq_hz"), self.freq_hz, low=0.0, low_open=True)
        _check_range(key("bandwidth_hz"), self.bandwidth_hz, low=0.0, low_open=True)
        _check_range(key("n_coeffs"), self.n_coeffs, low=1.0)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in self.n_coeffs):
            raise ParamError(key("n_coeffs"), list(self.n_coeffs), "a pair [lo, hi] of integers >= 1")
        _check_range(key("gain_db"), self.gain_db)
        _check_range(key("nonlinear_bias_db"), self.nonlinear_bias_db, low=0.0)
        if not (math.isfinite(self.impulsive_percent) and 0 < self.impulsive_percent <= 100):
            raise ParamError(key("impulsive_percent"), self.impulsive_percent, "a percentage in (0, 100]")
        if not (math.isfinite(self.impulsive_gain) and self.impulsive_gain > 0):
            raise ParamError(key("impulsive_gain"), self.impulsive_gain, "a finite number > 0")
        _check_range(key("snr_db"), self.snr_db)


@dataclasses.dataclass(frozen=True)
class WaveAugmentParams:
    """``train.augment``: on-the-fly waveform augmentation of each training crop (off by default).

    ``prob`` is the switch: 0 turns augmentation off (the shipped default). Otherwise each crop,
    with probability ``prob``, goes through a chain of 1 to ``max_ops`` distinct ops drawn from
    ``ops`` in random order. Each op draws its parameter uniformly from its ``[lo, hi]`` range or
    from its listed choices. See :mod:`deepfake_audio.wave_augment`.

    Attributes:
        ops: names from :data:`WAVE_AUGMENT_OPS`, each at most once.
        prob: probability in [0, 1] that a crop is augmented at all.
        max_ops: longest chain, from 1 to ``len(ops)``.
        rawboost: RawBoost's algorithms and ranges.
        codecs: choices from :data:`WAVE_CODECS` (``mulaw``/``alaw``: G.711 at 8 kHz).
        codec_kbps: bitrate range of the lossy codecs (mp3, opus, vorbis), clamped to each
            codec's own range at the rate it encodes.
        resample_rates: intermediate rates in Hz, each below the sample rate.
        band_limit_hz: ``(low_hz, high_hz)`` pass bands; ``low_hz == 0`` is a low-pass.
        snr_db: SNR range of the additive noise in dB.
        noise_colors: choices from :data:`NOISE_COLORS`.
        rt60_s: reverberation time range of the synthetic room in seconds.
        drr_db: direct-to-reverberant ratio range in dB.
        speed: speed factor range (``> 1``: faster and higher; Kaldi uses 0.9 and 1.1).
    """

    ops: tuple[str, ...] = WAVE_AUGMENT_OPS
    prob: float = 0.0
    max_ops: int = 2
    rawboost: RawBoostParams = dataclasses.field(default_factory=RawBoostParams)
    codecs: tuple[str, ...] = WAVE_CODECS
    codec_kbps: tuple[float, float] = (16.0, 64.0)
    resample_rates: tuple[int, ...] = (8000, 11025)
    band_limit_hz: tuple[tuple[float, float], ...] = ((300.0, 3400.0), (50.0, 7000.0))
    snr_db: tuple[float, float] = (5.0, 40.0)
    noise_colors: tuple[str, ...] = NOISE_COLORS
    rt60_s: tuple[float, float] = (0.2, 1.0)
    drr_db: tuple[float, float] = (0.0, 20.0)
    speed: tuple[float, float] = (0.9, 1.1)

    def validate(self, prefix: str = "train.augment", *, sample_rate: int | None = None) -> None:
        """Raise :class:`ParamError` naming the first bad key.

        Args:
            prefix: dotted name of this section in error messages.
            sample_rate: also check that resample rates and pass bands fit audio at this rate.
        """

        def key(name: str) -> str:
            return _join(prefix, name)

        if not self.ops:
            raise ParamError(
                key("ops"), [], f"at least one of: {', '.join(WAVE_AUGMENT_OPS)} (set prob: 0 to turn augmentation off)"
            )
        for i, op in enumerate(self.ops):
            if op not in WAVE_AUGMENT_OPS:
                raise ParamError(f"{key('ops')}[{i}]", op, f"known ops: {', '.join(WAVE_AUGMENT_OPS)}")
        if len(set(self.ops)) != len(self.ops):
            raise ParamError(key("ops"), list(self.ops), "list each op once")
        if not (math.isfinite(self.prob) and 0 <= self.prob <= 1):
            raise ParamError(key("prob"), self.prob, "a probability in [0, 1] (0 = off)")
        if (
            isinstance(self.max_ops, bool)
            or not isinstance(self.max_ops, int)
            or not 1 <= self.max_ops <= len(self.ops)
        ):
            raise ParamError(key("max_ops"), self.max_ops, f"an integer from 1 to the number of ops ({len(self.ops)})")
        used = set(self.ops)
        self.rawboost.validate(key("rawboost"))
        _check_choices(key("codecs"), self.codecs, WAVE_CODECS, required="codec" in used)
        _check_range(key("codec_kbps"), self.codec_kbps, low=6.0, high=320.0)
        _check_choices(key("noise_colors"), self.noise_colors, NOISE_COLORS, required="noise" in used)
        _check_range(key("snr_db"), self.snr_db)
        _check_range(key("rt60_s"), self.rt60_s, low=0.0, high=5.0, low_open=True)
        _check_range(key("drr_db"), self.drr_db)
        _check_range(key("speed"), self.speed, low=0.5, high=2.0)
        if "resample" in used and not self.resample_rates:
            raise ParamError(key("resample_rates"), [], "at least one rate when ops has resample")
        for i, rate in enumerate(self.resample_rates):
            if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
                raise ParamError(f"{key('resample_rates')}[{i}]", rate, "a positive integer (Hz)")
            if sample_rate is not None and rate >= sample_rate:
                raise ParamError(f"{key('resample_rates')}[{i}]", rate, f"below the sample rate ({sample_rate} Hz)")
        if "band_limit" in used and not self.band_limit_hz:
            raise ParamError(key("band_limit_hz"), [], "at least one [low_hz, high_hz] pair when ops has band_limit")
        for i, band in enumerate(self.band_limit_hz):
            name = f"{key('band_limit_hz')}[{i}]"
            if len(band) != 2 or not all(math.isfinite(b) for b in band) or not 0 <= band[0] < band[1]:
                raise ParamError(name, list(band), "a pair [low_hz, high_hz] with 0 <= low_hz < high_hz")
            if sample_rate is not None and band[1] >= sample_rate / 2:
                raise ParamError(name, list(band), f"high_hz below Nyquist ({sample_rate / 2:g} Hz)")

    @property
    def enabled(self) -> bool:
        return self.prob > 0


# The shipped params.yaml equals these defaults (tests/test_params.py checks it).
SEQUENCE_GROUPS = (
    "mfcc",
    "chroma",
    "tonnetz",
    "rms",
    "zcr",
    "spectral_centroid",
    "spectral_bandwidth",
    "spectral_contrast",
    "spectral_rolloff",
    "spectral_flatness",
)
DEFAULT_FRAME_GROUPS = ("mfcc", "log_mel", "lfcc") + SEQUENCE_GROUPS[1:]
DEFAULT_UTTERANCE_GROUPS = DEFAULT_FRAME_GROUPS


def stat_percentile(stat: str) -> int | None:
    """The percentile of a stat name ``p<k>`` (0 <= k <= 100), else ``None``."""
    match = re.fullmatch(r"p(\d{1,3})", stat)
    return int(match.group(1)) if match and int(match.group(1)) <= 100 else None


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    """``features``: the shared-STFT feature extractor, its feature groups and its workers."""

    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 128  # bands of the shared mel filterbank: the log_mel group and the input of mfcc
    fmin: float = 0.0  # Hz, lowest mel band edge
    frame_groups: tuple[str, ...] = DEFAULT_FRAME_GROUPS
    utterance_groups: tuple[str, ...] = DEFAULT_UTTERANCE_GROUPS
    stats: tuple[str, ...] = ("mean", "std")
    mfcc: MfccParams = dataclasses.field(default_factory=MfccParams)
    lfcc: LfccParams = dataclasses.field(default_factory=LfccParams)
    chroma: ChromaParams = dataclasses.field(default_factory=ChromaParams)
    spectral_contrast: ContrastParams = dataclasses.field(default_factory=ContrastParams)
    spectral_rolloff: RolloffParams = dataclasses.field(default_factory=RolloffParams)
    cqt: CqtParams = dataclasses.field(default_factory=CqtParams)
    n_jobs: int = 2
    chunk_size: int = 64
    max_reject_fraction: float = 0.05
    backend: Literal["joblib", "dask"] = "joblib"
    dask_address: str | None = None
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def validate(self, prefix: str) -> None:
        # Group names are checked by their registry's owner (features.check_feature_params).
        for name in ("n_fft", "hop_length", "n_mels", "chunk_size"):
            _positive(prefix, name, getattr(self, name))
        if self.mfcc.n_mfcc > self.n_mels:
            raise ParamError(f"{prefix}.mfcc.n_mfcc", self.mfcc.n_mfcc, f"at most n_mels ({self.n_mels})")
        if self.hop_length > self.n_fft:
            raise ParamError(f"{prefix}.hop_length", self.hop_length, f"at most n_fft ({self.n_fft})")
        for key in ("frame_groups", "utterance_groups"):
            groups = getattr(self, key)
            if len(set(groups)) != len(groups):
                raise ParamError(f"{prefix}.{key}", list(groups), "each group at most once")
        if not self.frame_groups and not self.utterance_groups:
            raise ParamError(
                f"{prefix}.frame_groups", [], "at least one feature group in frame_groups or utterance_groups"
            )
        if self.utterance_groups and not self.stats:
            raise ParamError(f"{prefix}.stats", [], "at least one statistic for utterance_groups")
        for stat in self.stats:
            if stat not in ("mean", "std") and stat_percentile(stat) is None:
                raise ParamError(f"{prefix}.stats", stat, "mean, std, or a percentile p0 ... p100 (e.g. p50)")
        if len(set(self.stats)) != len(self.stats):
            raise ParamError(f"{prefix}.stats", list(self.stats), "each statistic at most once")
        if not 0 <= self.max_reject_fraction <= 1:
            raise ParamError(f"{prefix}.max_reject_fraction", self.max_reject_fraction, "a fraction in [0, 1]")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ParamError(f"{prefix}.n_jobs", self.n_jobs, "a positive count, or -1 for all cores")
        if self.dask_address is not None and self.backend != "dask":
            raise ParamError(f"{prefix}.dask_address", self.dask_address, "only with backend: dask")
        self.augment.validate(f"{prefix}.augment")


def _deltas(prefix: str, value: int) -> None:
    if value not in (0, 1, 2):
        raise ParamError(f"{prefix}.deltas", value, "0, 1 (delta) or 2 (delta and delta-delta)")


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """``model``: hyper-parameters shared by the neural models; each model's docstring lists the
    keys it reads, and only those are its DVC dependencies."""

    conv_channels: int = 64
    n_conv_blocks: int = 2
    kernel_size: int = 5
    lstm_units: int = 64
    lstm_layers: int = 1
    attention_dim: int = 64
    dense_units: int = 64
    dropout: float = 0.3
    # Frame groups the 1-D sequence models (cnn_lstm, cnn_bilstm_attention, cnn, lstm) read.
    sequence_groups: tuple[str, ...] = SEQUENCE_GROUPS
    image_group: str = "log_mel"  # the (bands x frames) image cnn2d reads: log_mel, cqt or lfcc
    image_pool: int = 2  # cnn2d averages its image over pool x pool cells first (1: full resolution)

    def validate(self, prefix: str) -> None:
        # Whether the groups exist and are extracted is checked by models.check_model_params.
        for name in (
            "image_pool",
            "conv_channels",
            "n_conv_blocks",
            "kernel_size",
            "lstm_units",
            "lstm_layers",
            "attention_dim",
            "dense_units",
        ):
            _positive(prefix, name, getattr(self, name))
        if not 0 <= self.dropout < 1:
            raise ParamError(f"{prefix}.dropout", self.dropout, "a fraction in [0, 1)")
        if not self.sequence_groups:
            raise ParamError(f"{prefix}.sequence_groups", [], "at least one feature group")


@dataclasses.dataclass(frozen=True)
class SSLParams:
    """``ssl``: the self-supervised speech front-end (wav2vec 2.0 / XLS-R, WavLM, HuBERT) that the
    ``ssl_*`` model kinds share (:mod:`deepfake_audio.frontends.ssl`)."""

    # A folder with config.json and model.safetensors (or pytorch_model.bin, read weights-only), or a
    # hub id (facebook/wav2vec2-xls-r-300m) resolved from the local Hugging Face cache; nothing is
    # downloaded. Folders under models/ssl are DVC dependencies of the stages they feed.
    checkpoint: str | None = None
    layer: int | None = None  # null: a learned softmax-weighted sum of every hidden state; k: hidden state k alone
    freeze: bool = True  # true: embeddings computed once (data/embeddings); false: fine-tuned with the back-end
    lr: float = 1.0e-5  # the front-end's learning rate when fine-tuned (the back-end trains at train.lr)
    n_samples: int = 64600  # the crop each clip is embedded or trained on (about 4 s at 16 kHz)
    normalize: bool | None = (
        None  # zero-mean unit-variance input; null: as the checkpoint's preprocessor_config.json says
    )
    cache: Literal["pooled", "frames"] = "pooled"  # what data/embeddings keeps per clip and layer
    batch_size: int = 8  # clips per forward pass while embedding
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where the embeddings stage and SSL scoring run (bf16 on CUDA)
    gradient_checkpointing: bool = True  # when fine-tuned: recompute activations in backward (less memory)

    def key_params(self) -> dict:
        """The keys that change what a model trained on this front-end learns (its training key):
        not the throughput knobs, and not ``lr`` of a front-end that does not train."""
        keys = ["checkpoint", "layer", "freeze", "n_samples", "normalize"]
        keys.append("cache" if self.freeze else "lr")
        return {k: getattr(self, k) for k in keys}

    def validate(self, prefix: str) -> None:
        if self.checkpoint is not None and not self.checkpoint.strip():
            raise ParamError(f"{prefix}.checkpoint", self.checkpoint, "a folder or a hub id, or null")
        if self.layer is not None and self.layer < 0:
            raise ParamError(f"{prefix}.layer", self.layer, "null (weighted sum of all layers) or a layer >= 0")
        for name in ("lr", "n_samples", "batch_size"):
            _positive(prefix, name, getattr(self, name))


@dataclasses.dataclass(frozen=True)
class SpecAugmentParams:
    """``train.spec_augment``: random time and feature-row masks on training inputs (off by default)."""

    time_masks: int = 0  # masks per clip
    max_time_frames: int = 20  # each mask hides up to this many frames
    feature_masks: int = 0
    max_feature_rows: int = 8  # each mask hides up to this many adjacent feature rows (mel bands, ...)

    def validate(self, prefix: str) -> None:
        for name in ("time_masks", "feature_masks"):
            _positive(prefix, name, getattr(self, name), allow_zero=True)
        for name in ("max_time_frames", "max_feature_rows"):
            _positive(prefix, name, getattr(self, name))

    @property
    def enabled(self) -> bool:
        return self.time_masks > 0 or self.feature_masks > 0


@dataclasses.dataclass(frozen=True)
class OCSoftmaxParams:
    """``train.oc_softmax``: the one-class softmax of Zhang et al. (IEEE SPL 2021).

    Bona fide embeddings are pulled within angle ``acos(m_bonafide)`` of a learned centre and
    spoofs pushed beyond ``acos(m_spoof)``; ``alpha`` scales the cosine scores in the softplus.
    """

    m_bonafide: float = 0.9
    m_spoof: float = 0.2
    alpha: float = 20.0

    def validate(self, prefix: str) -> None:
        if not -1 <= self.m_spoof < self.m_bonafide <= 1:
            raise ParamError(
                f"{prefix}.m_spoof",
                self.m_spoof,
                f"cosine margins with -1 <= m_spoof < m_bonafide <= 1 (m_bonafide is {self.m_bonafide})",
            )
        _positive(prefix, "alpha", self.alpha)


LOSSES = ("cross_entropy", "oc_softmax")
"""``train.loss``: class-weighted cross-entropy on the model's logits, or OC-Softmax on its embedding."""


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """``train``: which models, and the neural training loop."""

    models: dict = dataclasses.field(
        default_factory=lambda: {
            "cnn_lstm": "model",
            "cnn_bilstm_attention": "model",
            "cnn": "model",
            "lstm": "model",
            "cnn2d": "model",
            "xgboost": "xgboost",
        }
    )
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: Literal["none", "cosine", "plateau"] = "plateau"
    patience: int = 6
    grad_clip: float = 5.0
    spec_augment: SpecAugmentParams = dataclasses.field(default_factory=SpecAugmentParams)
    augment: WaveAugmentParams = dataclasses.field(default_factory=WaveAugmentParams)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    balance: Literal["weights", "oversample", "none"] = "weights"
    num_workers: int = 0
    seed: int = 0
    loss: Literal["cross_entropy", "oc_softmax"] = "cross_entropy"
    oc_softmax: OCSoftmaxParams = dataclasses.field(default_factory=OCSoftmaxParams)
    # A bundle folder (config.json + weights) or a state-dict file (.pt/.pth) whose weights start
    # training, e.g. the published AASIST imported with `deepfake-audio import aasist`.
    init_from: str | None = None

    def validate(self, prefix: str) -> None:
        if self.init_from is not None and not self.init_from.strip():
            raise ParamError(f"{prefix}.init_from", self.init_from, "a bundle folder or weights file, or null")
        if not self.models:
            raise ParamError(f"{prefix}.models", self.models, "at least one model")
        for name in ("epochs", "batch_size", "patience"):
            _positive(prefix, name, getattr(self, name))
        _positive(prefix, "lr", self.lr)
        _positive(prefix, "weight_decay", self.weight_decay, allow_zero=True)
        _positive(prefix, "grad_clip", self.grad_clip, allow_zero=True)
        _positive(prefix, "num_workers", self.num_workers, allow_zero=True)
        for name, section in self.models.items():
            if not isinstance(section, str) or not section:
                raise ParamError(f"{prefix}.models.{name}", section, "the name of the params section it reads")


@dataclasses.dataclass(frozen=True)
class XGBoostParams:
    """``xgboost``: the gradient-boosted baseline on utterance statistics."""

    n_estimators: int = 400
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 40
    n_jobs: int = 2
    seed: int = 0

    def validate(self, prefix: str) -> None:
        for name in ("n_estimators", "max_depth", "early_stopping_rounds", "n_jobs"):
            _positive(prefix, name, getattr(self, name))
        for name in ("subsample", "colsample_bytree"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ParamError(f"{prefix}.{name}", value, "a fraction in (0, 1]")
        _positive(prefix, "learning_rate", self.learning_rate)


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    """``evaluate``: how each scored set is summarised."""

    bootstrap: int = 1000  # replicates of the stratified bootstrap behind eer_ci (0: no interval)
    ci_level: float = 0.95
    seed: int = 0

    def validate(self, prefix: str) -> None:
        if self.bootstrap < 0 or self.bootstrap == 1:
            raise ParamError(f"{prefix}.bootstrap", self.bootstrap, "0 (off) or >= 2 replicates")
        if not 0 < self.ci_level < 1:
            raise ParamError(f"{prefix}.ci_level", self.ci_level, "a fraction in (0, 1)")


@dataclasses.dataclass(frozen=True)
class GateParams:
    """``gate``: how much worse than a git revision each metric may get (absolute; null = not gated).

    How the tolerances, the seed spread and the machine stamp combine is :mod:`deepfake_audio.gate`'s.
    """

    max_eer_increase: float | None = 0.01
    max_accuracy_decrease: float | None = 0.02  # accuracy and balanced_accuracy
    max_auc_decrease: float | None = 0.01  # roc_auc
    max_min_cllr_increase: float | None = 0.05
    max_cllr_increase: float | None = 0.05
    max_min_tdcf_increase: float | None = 0.02
    max_min_dcf_increase: float | None = 0.03  # ASVspoof 5 minDCF, normalised (0 perfect, 1 uninformative)
    max_act_dcf_increase: float | None = 0.05  # actDCF also moves with the calibration
    # per_attack_eer.* and per_source_eer.*: a slice holds a few dozen spoofs, where one clip is
    # worth several points, so its own, looser tolerance (null: listed, not gated)
    max_slice_eer_increase: float | None = 0.05
    # with seed spread (DIR/seeds/): a metric may also worsen by spread_z standard errors of the
    # difference of the two seed means; 3 keeps false alarms rare with 3 seeds a side
    spread_z: float = 3.0
    # when the two sides were made on different machines (DIR/machine.json): what a metric may lose
    # to other rounding, in place of its tolerance (the spread term, if any, comes on top)
    cross_machine_eer_increase: float | None = 0.05
    cross_machine_accuracy_decrease: float | None = 0.08
    cross_machine_auc_decrease: float | None = 0.05
    cross_machine_min_cllr_increase: float | None = 0.15
    cross_machine_cllr_increase: float | None = 0.15
    cross_machine_min_tdcf_increase: float | None = 0.08
    cross_machine_min_dcf_increase: float | None = 0.12
    cross_machine_act_dcf_increase: float | None = 0.2
    # slices on another machine: with seed spread, this + the spread term; without, only reported
    cross_machine_slice_eer_increase: float | None = 0.15
    # metrics files known to give the same numbers on every machine: normal tolerances there. None
    # by default: XGBoost's per-attack EERs and Cllr differed between the committed single-run
    # baseline and a run here with the same code (its data stages include neural TTS).
    cross_machine_stable: tuple[str, ...] = ()  # fnmatch globs
    targets: tuple[str, ...] = ()  # metrics files to compare; () = every metrics file dvc.yaml declares
    ungated: tuple[str, ...] = (
        "metrics/split.json",
        "metrics/summary.json",
        "metrics/machine.json",
        "dvclive/*",
    )  # fnmatch globs

    def validate(self, prefix: str) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.startswith(("max_", "cross_machine_")) and not isinstance(value, tuple):
                if value is not None and not (math.isfinite(value) and value >= 0):
                    raise ParamError(f"{prefix}.{field.name}", value, "a number >= 0, or null to not gate it")
        if not (math.isfinite(self.spread_z) and self.spread_z >= 0):
            raise ParamError(
                f"{prefix}.spread_z",
                self.spread_z,
                "a number >= 0 (standard errors of the seed-mean difference; 0: ignore the spread)",
            )


@dataclasses.dataclass(frozen=True)
class Params:
    """The whole of ``params.yaml``.

    ``sections`` holds the sections of model kinds that bring their own (``train.models`` names
    them); the kind parses its section with its own dataclass (:func:`deepfake_audio.models.check_model_params`).
    """

    data: DataParams = dataclasses.field(default_factory=DataParams)
    audio: AudioParams = dataclasses.field(default_factory=AudioParams)
    split: SplitParams = dataclasses.field(default_factory=SplitParams)
    features: FeatureParams = dataclasses.field(default_factory=FeatureParams)
    model: ModelParams = dataclasses.field(default_factory=ModelParams)
    ssl: SSLParams = dataclasses.field(default_factory=SSLParams)
    train: TrainParams = dataclasses.field(default_factory=TrainParams)
    xgboost: XGBoostParams = dataclasses.field(default_factory=XGBoostParams)
    evaluate: EvaluateParams = dataclasses.field(default_factory=EvaluateParams)
    gate: GateParams = dataclasses.field(default_factory=GateParams)
    sections: dict = dataclasses.field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        # Rules that span sections: the augmentation of features must fit the audio's rate.
        self.features.augment.validate(_join(prefix, "features.augment"), sample_rate=self.audio.sample_rate)
        self.train.augment.validate(_join(prefix, "train.augment"), sample_rate=self.audio.sample_rate)

    def section(self, name: str) -> Any:
        """The params section ``name``: a core section's dataclass, or a model kind's raw mapping."""
        if name in CORE_SECTIONS:
            return getattr(self, name)
        return self.sections.get(name, {})


CORE_SECTIONS = tuple(f.name for f in dataclasses.fields(Params) if f.name != "sections")


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate ``params.yaml``. Sections that are absent take their defaults.

    A top-level key that is not a core section must be a section that ``train.models`` names
    (a model kind's own hyper-parameters); anything else is an error, so a typo fails at once.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: Any, *, source: str = "params") -> Params:
    """:func:`load_params` on an already-parsed mapping."""
    if not isinstance(raw, dict):
        raise ParamError(source, raw, "expected a mapping of sections")
    if "sections" in raw:
        raise ParamError("sections", raw["sections"], "a reserved name; name a model kind's section after the kind")
    core = {k: v for k, v in raw.items() if k in CORE_SECTIONS}
    extra = {k: v for k, v in raw.items() if k not in CORE_SECTIONS}
    train = from_dict(TrainParams, core.get("train"), prefix="train")
    named = {section for section in train.models.values()}
    for key, value in extra.items():
        if key not in named:
            raise ParamError(
                key,
                value,
                f"unknown section; known: {', '.join(CORE_SECTIONS)}, and the sections "
                f"train.models names ({', '.join(sorted(named - set(CORE_SECTIONS))) or 'none'})",
            )
        if value is not None and not isinstance(value, dict):
            raise ParamError(key, value, "expected a mapping")
    return from_dict(Params, {**core, "sections": {k: v or {} for k, v in extra.items()}}, prefix="")


def as_dict(obj: Any) -> Any:
    """A dataclass tree as plain JSON-serialisable data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: as_dict(v) for k, v in obj.items()}
    return obj
