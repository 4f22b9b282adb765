"""Shared fixtures: seeded synthetic audio, deliberately broken files and a tiny labelled corpus.

Everything here is cheap (numpy + soundfile); nothing touches the network or ``data/``.
"""

from __future__ import annotations

import csv
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SIGNAL_KINDS = ("sine", "noise", "silence", "harmonic", "speech")


def _arctic() -> tuple[np.ndarray, int]:
    """CMU ARCTIC utterance a0007 (a real recorded voice, 16 kHz), shipped in the pinned pysptk wheel."""
    import importlib.util

    spec = importlib.util.find_spec("pysptk")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pysptk (which ships the real speech clip) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "example_audio_data" / "arctic_a0007.wav"
    y, sr = sf.read(path, dtype="float32")
    return y, int(sr)


_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def synth(kind: str, *, n_samples: int, sample_rate: int, seed: int = 0, f0: float = 140.0) -> np.ndarray:
    """A seeded mono test signal.

    Args:
        kind: ``sine`` (440 Hz, peak 0.5), ``noise`` (white Gaussian, std 0.1, clipped to
            +-0.5), ``silence`` (zeros), ``harmonic`` (voice-like: 1/k harmonics of an ``f0``
            with 5 Hz vibrato and a syllable envelope, peak about 0.5; not speech to a
            voice-activity detector) or ``speech`` (a real recorded utterance, looped and
            starting ``seed`` x 0.37 s in, peak 0.5; ``f0`` is ignored).
        n_samples: length.
        sample_rate: Hz.
        seed: seeds the noise and the harmonic phase jitter.
        f0: fundamental of ``harmonic`` in Hz.

    Returns:
        float32, shape ``(n_samples,)``, values in [-0.5, 0.5].
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    if kind == "sine":
        y = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    elif kind == "noise":
        y = np.clip(0.1 * rng.standard_normal(n_samples), -0.5, 0.5)
    elif kind == "silence":
        y = np.zeros(n_samples)
    elif kind == "speech":
        from deepfake_audio.audio import resample

        voice, sr = _arctic()
        voice = resample(voice, orig_sr=sr, target_sr=sample_rate)
        voice = voice[int(0.2 * sample_rate) :]  # the recording's leading pause
        start = int(seed * 0.37 * sample_rate) % len(voice)
        y = np.resize(np.roll(voice, -start), n_samples)
        y = 0.5 * y / max(float(np.max(np.abs(y))), 1e-9)
    elif kind == "harmonic":
        f = f0 * (1.0 + 0.03 * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 2 * np.pi)))
        phase = 2 * np.pi * np.cumsum(f) / sample_rate
        ks = [k for k in range(1, 40) if k * f0 * 1.05 < 0.45 * sample_rate]
        y = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in ks)
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t) ** 2
        y = y * envelope
        y = 0.5 * y / max(float(np.max(np.abs(y))), 1e-9) + 0.002 * rng.standard_normal(n_samples)
        y = np.clip(y, -0.5, 0.5)
    else:
        raise ValueError(f"unknown signal kind {kind!r}; known: {SIGNAL_KINDS}")
    return y.astype(np.float32)


def channel_gains(channels: int) -> np.ndarray:
    """Gain of each channel written by ``make_wav``: 1, 1/2, 1/3, ... (so a downmix is predictable)."""
    return 1.0 / np.arange(1, channels + 1, dtype=np.float64)


def write_signal(path: Path, y: np.ndarray, sample_rate: int, *, subtype: str | None = None) -> Path:
    """Write ``y`` (``(n,)`` or ``(n, channels)``) with the format its suffix names."""
    fmt = _FORMATS[path.suffix.lower()]
    if fmt == "OGG":
        subtype = "VORBIS"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sample_rate, format=fmt, subtype=subtype or "PCM_16")
    return path


MakeWav = Callable[..., Path]


@pytest.fixture
def make_wav(tmp_path: Path) -> MakeWav:
    """Factory writing a synthetic clip into ``tmp_path`` and returning its path.

    Keyword-only options: ``kind`` (see :func:`synth`), ``duration_s``, ``sample_rate``,
    ``channels`` (channel c is the mono signal times ``channel_gains(channels)[c]``),
    ``subtype`` (``PCM_16``, ``PCM_24``, ``FLOAT``...; ignored for ``.ogg``), ``seed`` and
    ``name`` (its suffix picks the format: ``.wav``, ``.flac`` or ``.ogg``).
    """
    counter = iter(range(10**6))

    def factory(
        *,
        kind: str = "sine",
        duration_s: float = 0.5,
        sample_rate: int = 16000,
        channels: int = 1,
        subtype: str = "PCM_16",
        seed: int = 0,
        name: str | None = None,
    ) -> Path:
        n = int(round(duration_s * sample_rate))
        y = synth(kind, n_samples=n, sample_rate=sample_rate, seed=seed)
        if channels > 1:
            y = (y[:, None] * channel_gains(channels)[None, :]).astype(np.float32)
        name = name or f"{kind}_{next(counter)}.wav"
        return write_signal(tmp_path / name, y, sample_rate, subtype=subtype)

    return factory


BAD_FILE_NAMES = ("zero_bytes", "truncated", "not_audio", "nan", "inf", "silent", "too_short")


def write_bad_files(root: Path) -> dict[str, Path]:
    """Write one file of each kind in ``BAD_FILE_NAMES`` under ``root``; returns name -> path.

    ``zero_bytes``; ``truncated`` (a WAV cut inside its header); ``not_audio`` (text named
    .wav); ``nan`` and ``inf`` (FLOAT WAVs with one non-finite sample); ``silent`` (all zeros,
    valid otherwise); ``too_short`` (10 samples at 16 kHz).
    """
    root.mkdir(parents=True, exist_ok=True)
    sr = 16000
    y = synth("sine", n_samples=sr // 2, sample_rate=sr)
    out: dict[str, Path] = {}

    out["zero_bytes"] = root / "zero_bytes.wav"
    out["zero_bytes"].write_bytes(b"")

    good = write_signal(root / "good_source.wav", y, sr)
    header_cut = good.read_bytes()[:30]  # RIFF/WAVE and part of the fmt chunk, no data chunk
    good.unlink()
    out["truncated"] = root / "truncated.wav"
    out["truncated"].write_bytes(header_cut)

    out["not_audio"] = root / "not_audio.wav"
    out["not_audio"].write_text("this is a text file, not audio\n" * 20, encoding="utf-8")

    for name, value in (("nan", np.nan), ("inf", np.inf)):
        bad = y.copy()
        bad[100] = value
        out[name] = write_signal(root / f"{name}.wav", bad, sr, subtype="FLOAT")

    out["silent"] = write_signal(root / "silent.wav", np.zeros(sr // 2, dtype=np.float32), sr)
    out["too_short"] = write_signal(root / "too_short.wav", y[:10], sr)
    assert tuple(out) == BAD_FILE_NAMES
    return out


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """Broken or unusable files under ``tmp_path/bad``, name -> path (see :func:`write_bad_files`)."""
    return write_bad_files(tmp_path / "bad")


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator per test."""
    return np.random.default_rng(12345)


# ---------------------------------------------------------------- tiny labelled corpus

CORPUS_SAMPLE_RATE = 16000
CORPUS_DURATION_S = 1.0
CORPUS_ATTACKS = ("A01", "A02")


def _spoof_signal(attack: str, *, n_samples: int, sample_rate: int, f0: float, seed: int) -> np.ndarray:
    """Synthetic "spoofs" that differ clearly from the harmonic bona fide clips.

    ``A01``: a flat-spectrum odd-harmonic buzz at a fixed ``f0`` (no vibrato, no envelope) in
    white noise. ``A02``: white noise band-limited to 2-6 kHz.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    if attack == "A01":
        ks = [k for k in range(1, 60, 2) if k * f0 < 0.45 * sample_rate]
        y = sum(np.sin(2 * np.pi * k * f0 * t) for k in ks) / len(ks)
        y = y + 0.05 * rng.standard_normal(n_samples)
    else:
        spec = np.fft.rfft(rng.standard_normal(n_samples))
        freqs = np.fft.rfftfreq(n_samples, 1 / sample_rate)
        spec[(freqs < 2000) | (freqs > 6000)] = 0
        y = np.fft.irfft(spec, n_samples)
    y = 0.4 * y / max(float(np.max(np.abs(y))), 1e-9)
    return y.astype(np.float32)


def make_corpus(root: Path, *, n_speakers: int = 6, per_speaker: int = 4, seed: int = 0) -> Path:
    """Write a tiny labelled corpus under ``root`` and return its ``labels.csv``.

    Each speaker has ``per_speaker`` bona fide clips (harmonic, voice-like, a per-speaker f0
    between 100 and 220 Hz) and ``per_speaker`` spoofs of that speaker (attacks ``A01``/``A02``
    alternating, see :func:`_spoof_signal`). Clips are 1 s, 16 kHz, 16-bit WAV under
    ``root/wav/<speaker>/``. ``labels.csv`` has columns ``path,label,speaker,attack`` with
    paths relative to ``root`` (the ``manifest`` source kind's convention), ``bonafide``/``spoof``
    labels and ``-`` as the attack of bona fide rows.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    sr = CORPUS_SAMPLE_RATE
    n = int(round(CORPUS_DURATION_S * sr))
    rows = []
    for s in range(n_speakers):
        speaker = f"spk{s:02d}"
        f0 = float(rng.uniform(100.0, 220.0))
        for i in range(per_speaker):
            clip_seed = int(rng.integers(2**31))
            y = synth("harmonic", n_samples=n, sample_rate=sr, seed=clip_seed, f0=f0 * (1 + 0.02 * i))
            rel = f"wav/{speaker}/{speaker}_bona_{i:02d}.wav"
            write_signal(root / rel, y, sr)
            rows.append({"path": rel, "label": "bonafide", "speaker": speaker, "attack": "-"})
        for i in range(per_speaker):
            attack = CORPUS_ATTACKS[i % len(CORPUS_ATTACKS)]
            y = _spoof_signal(attack, n_samples=n, sample_rate=sr, f0=f0, seed=int(rng.integers(2**31)))
            rel = f"wav/{speaker}/{speaker}_spoof_{i:02d}.wav"
            write_signal(root / rel, y, sr)
            rows.append({"path": rel, "label": "spoof", "speaker": speaker, "attack": attack})
    csv_path = root / "labels.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "speaker", "attack"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``labels.csv`` of a session-wide tiny corpus (6 speakers x 4 bona fide + 4 spoof clips).

    Read-only: tests must not modify or add files under its folder.
    """
    return make_corpus(tmp_path_factory.mktemp("corpus"))


# ---------------------------------------------------------------- a local HTTP file server


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` (name -> bytes) at any URL ending in ``/<name>``, like a download mirror.

    Honours HTTP Range requests (unless ``honour_range`` is off), can cut the next response after
    ``cut_after`` bytes, and logs every request as ``(name, Range header or None)``.
    """

    files: dict[str, bytes]
    requests: list[tuple[str, str | None]]
    cut_after: int | None = None
    honour_range: bool = True

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path.lstrip('/')}"


class _FileHandler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        name = self.path.rsplit("/", 1)[-1]
        rng = self.headers.get("Range")
        self.server.requests.append((name, rng))
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and self.server.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None:
            cut, self.server.cut_after = self.server.cut_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A :class:`FileServer` on a free local port, serving nothing until ``files`` is filled."""
    srv = FileServer(("127.0.0.1", 0), _FileHandler)
    srv.files, srv.requests = {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
