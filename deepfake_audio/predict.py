"""Scoring new audio with a trained bundle: files, in-memory signals and live PCM streams.

A :class:`Predictor` rebuilds the training pipeline from the bundle's ``config.json`` alone: the
feature extractor (``audio`` and ``features``), the train-fitted scaler, the model's frame rows,
the dev threshold and the dev-fitted calibration. Nothing is re-specified here, so a clip scores
exactly as the evaluate stage scored it.

Scores follow the project's convention: ``score`` is the model's raw score, higher = more bona
fide; ``llr`` its calibrated natural-log likelihood ratio of bona fide against spoof;
``prob_bonafide`` the posterior at equal priors; ``decision`` is ``bonafide`` when ``score`` is at
or above the bundle's dev EER threshold, else ``spoof``.

Windows: with ``window_s`` a signal is scored in sliding windows (see :func:`window_spans`); each
window is cropped or padded to the bundle's ``audio.duration_s`` exactly as training crops and pads
clips, so a window longer than that is scored on its first ``duration_s`` seconds (with
``audio.crop: start``) and a shorter one is repeated (``audio.pad: repeat``). The default window
is the bundle's ``audio.duration_s``. The aggregate ``score`` is the mean of the window scores, and
``min_window`` the window most likely spoofed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from deepfake_audio.audio import SILENCE_PEAK, fix_length, load_audio, resample
from deepfake_audio.calibration import Calibration
from deepfake_audio.errors import AudioError, EmptyAudio, NonFiniteAudio, SilentAudio, TooShortAudio

if TYPE_CHECKING:
    from deepfake_audio.bundle import Bundle

log = logging.getLogger(__name__)

__all__ = [
    "PCM_FORMATS",
    "Predictor",
    "Window",
    "WindowStream",
    "best_bundle",
    "expand_paths",
    "list_bundles",
    "pcm_chunks",
    "window_spans",
]

PCM_FORMATS = {"s16le": ("<i2", 1.0 / 32768.0), "f32le": ("<f4", 1.0)}
"""Raw PCM sample formats read by :func:`pcm_chunks`: numpy dtype and the scale to [-1, 1]."""


@dataclasses.dataclass
class Window:
    """The score of one window of a signal; times in seconds from the signal's start."""

    start_s: float
    end_s: float
    score: float
    llr: float | None
    prob_bonafide: float | None
    decision: str


def window_spans(n_samples: int, *, window: int, hop: int) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of the sliding windows over a signal of ``n_samples``.

    Windows of ``window`` samples start every ``hop`` samples while they fit. A signal shorter
    than one window is one (short) window; when the last full window stops short of the end, one
    more window ends at the end, so the tail is scored too (a 10-s signal with 2-s windows every
    1 s has 9 windows; with 3-s windows every 2 s, 4 plus one from 7 to 10 s).
    """
    if n_samples <= 0 or window <= 0 or hop <= 0:
        raise ValueError(f"window_spans: n_samples={n_samples}, window={window} and hop={hop} must be positive")
    spans = [(s, s + window) for s in range(0, n_samples - window + 1, hop)]
    if not spans:
        return [(0, n_samples)]
    if spans[-1][1] < n_samples:
        spans.append((n_samples - window, n_samples))
    return spans


_MODEL_INPUTS = {
    # model input -> how one clip (cropped or padded to the bundle's length) becomes it, as the
    # pipeline's tables or waveform store hold it
    "frames": lambda p, y: p.scaler.transform_frames(p.extractor.extract(y)[0][None])[0, p._rows],
    "utterances": lambda p, y: p.scaler.transform_table(p.extractor.extract(y)[1][None])[0],
    "waveform": lambda p, y: y[None],  # (1, n_samples): the network reads the audio itself
    "embeddings": lambda p, y: y[None],  # audio: an SSL model runs its front-end on it (the store holds its output)
}


def _decide(score: float, threshold: float) -> str:
    return "bonafide" if score >= threshold else "spoof"


class Predictor:
    """A loaded bundle that scores signals and files through the bundle's own feature pipeline.

    Build one with :meth:`load`. Attributes: ``bundle_dir``, ``config`` (its config.json),
    ``model_name``, ``sample_rate`` (Hz, the rate every input is resampled to), ``window_s`` (the
    clip length the model was trained on, the default window), ``threshold`` (the dev EER
    threshold on raw scores) and ``calibration`` (``None`` for a bundle without one: then ``llr``
    and ``prob_bonafide`` are ``None``).
    """

    def __init__(self, bundle_dir: Path, bundle: Bundle) -> None:
        from deepfake_audio.features import FeatureExtractor
        from deepfake_audio.params import AudioParams, FeatureParams, from_dict
        from deepfake_audio.scaling import Scaler

        cfg = bundle.config
        self.bundle_dir = Path(bundle_dir)
        self.bundle = bundle
        self.config = cfg
        self.model_name = str(cfg["model"])
        self.audio = from_dict(AudioParams, cfg["audio"], prefix="audio")
        self.extractor = FeatureExtractor(self.audio, from_dict(FeatureParams, cfg["features"], prefix="features"))
        self.sample_rate = int(self.audio.sample_rate)
        self.n_samples = int(cfg.get("n_samples", self.audio.n_samples))
        self.window_s = self.n_samples / self.sample_rate
        self.threshold = float(cfg["threshold"])
        self.calibration = Calibration.from_dict(cfg["calibration"]) if "calibration" in cfg else None
        self._input = _MODEL_INPUTS[bundle.input]
        scaler = cfg["scaler"].get(bundle.input)
        self.scaler = Scaler.from_json(scaler) if scaler is not None else None
        groups = bundle.frame_groups
        # The rows the model reads, as the train stage read them from the scaled table (file order).
        self._rows = np.array(
            [i for i, g in enumerate(self.extractor.layout.frame_groups) if groups is None or g in groups],
            dtype=np.int64,
        )

    @classmethod
    def load(cls, bundle_dir: Path) -> Predictor:
        """Load the bundle in ``bundle_dir``.

        Raises:
            ValueError: when ``bundle_dir`` is not a bundle (no folder, no config.json, no weights,
                an unknown model kind), with a message that says which.
        """
        from deepfake_audio.bundle import check_bundle, load_bundle

        bundle_dir = Path(bundle_dir)
        check_bundle(bundle_dir)
        try:
            bundle = load_bundle(bundle_dir)
        except KeyError as exc:
            raise ValueError(f"{bundle_dir}/config.json lacks {exc}; is it a bundle of another version?") from exc
        return cls(bundle_dir, bundle)

    # ------------------------------------------------------------------ scoring

    def features(self, y: np.ndarray) -> np.ndarray:
        """The model input of one clip, as the pipeline's scaled table holds it.

        Args:
            y: float32 samples at :attr:`sample_rate`, any length >= 1 (cropped or padded to the
                bundle's clip length as in training).

        Returns:
            float32 ``(n_rows, n_frames)`` for frame models, ``(n_features,)`` for table models,
            ``(1, n_samples)`` audio for waveform and SSL models.
        """
        # An audio model scores the first n_samples, repeat-padded, as evaluation reads the store.
        audio_input = self.bundle.input in ("waveform", "embeddings")
        pad, crop = ("repeat", "start") if audio_input else (self.audio.pad, self.audio.crop)
        y = fix_length(np.asarray(y, dtype=np.float32), self.n_samples, pad=pad, crop=crop)
        return self._input(self, y)

    def score_signals(self, signals: list[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
        """Raw scores of mono float signals at :attr:`sample_rate`, the model run on batches.

        Each signal is cropped or padded to the bundle's clip length as in training.

        Returns:
            float64 ``(len(signals),)``; higher = more bona fide.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        out = []
        for i in range(0, len(signals), batch_size):
            x = np.stack([self.features(y) for y in signals[i : i + batch_size]])
            out.append(self.bundle.score(x, batch_size=batch_size))
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0, dtype=np.float64)

    def window_at(self, start: int, end: int, score: float) -> Window:
        """A :class:`Window` of samples ``[start, end)`` at :attr:`sample_rate` with this raw score."""
        llr, prob = self._calibrated(score)
        return Window(
            start / self.sample_rate, end / self.sample_rate, float(score), llr, prob, _decide(score, self.threshold)
        )

    def _calibrated(self, score: float) -> tuple[float | None, float | None]:
        if self.calibration is None:
            return None, None
        return float(self.calibration.llr([score])[0]), float(self.calibration.prob_bonafide([score])[0])

    def _spans(self, n_samples: int, window_s: float | None, hop_s: float | None) -> list[tuple[int, int]]:
        if window_s is None:
            if hop_s is not None:
                raise ValueError("hop_s needs window_s")
            return [(0, n_samples)]
        hop_s = window_s if hop_s is None else hop_s
        for name, value in (("window_s", window_s), ("hop_s", hop_s)):
            if not value > 0:
                raise ValueError(f"{name}={value} must be a positive number of seconds")
        window, hop = max(int(round(window_s * self.sample_rate)), 1), max(int(round(hop_s * self.sample_rate)), 1)
        return window_spans(n_samples, window=window, hop=hop)

    def _summary(self, spans: list[tuple[int, int]], scores: np.ndarray, n_samples: int, windowed: bool) -> dict:
        score = float(np.mean(scores))
        llr, prob = self._calibrated(score)
        result = {
            "score": score,
            "llr": llr,
            "prob_bonafide": prob,
            "decision": _decide(score, self.threshold),
            "duration_s": n_samples / self.sample_rate,
            "min_window": None,
        }
        if windowed:
            windows = [self.window_at(a, b, s) for (a, b), s in zip(spans, scores)]
            result["windows"] = windows
            result["min_window"] = windows[int(np.argmin(scores))]
        return result

    def score_signal(
        self, y: np.ndarray, sample_rate: int, *, window_s: float | None = None, hop_s: float | None = None
    ) -> dict:
        """Score one mono signal, whole or in sliding windows.

        Args:
            y: float samples ``(n,)`` in [-1, 1] at ``sample_rate`` Hz (resampled here with soxr).
            window_s: score windows of this length (seconds); ``None``: the whole signal as one
                clip, cropped or padded to the bundle's clip length.
            hop_s: seconds between window starts (default ``window_s``); needs ``window_s``.

        Returns:
            ``score``, ``llr``, ``prob_bonafide``, ``decision``, ``duration_s``, ``min_window``
            (a :class:`Window`, ``None`` without windows) and, with ``window_s``, ``windows``.

        Raises:
            ValueError: a bad shape, rate, window or hop.
            AudioError: a signal the pipeline would reject (empty, non-finite, silent, too short).
        """
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"score_signal: expected mono samples of shape (n,), got shape {y.shape}")
        if not sample_rate > 0:
            raise ValueError(f"score_signal: sample_rate={sample_rate} must be positive")
        if len(y) == 0:
            raise EmptyAudio("no samples")
        if not np.isfinite(y).all():
            raise NonFiniteAudio("NaN or infinite samples")
        if len(y) < self.audio.min_duration_s * sample_rate:
            raise TooShortAudio(f"{len(y) / sample_rate:.3f} s is shorter than {self.audio.min_duration_s} s")
        if float(np.max(np.abs(y))) < SILENCE_PEAK:
            raise SilentAudio("all samples are (near) zero")
        y = resample(np.clip(y, -1.0, 1.0).astype(np.float32), orig_sr=int(sample_rate), target_sr=self.sample_rate)
        spans = self._spans(len(y), window_s, hop_s)
        scores = self.score_signals([y[a:b] for a, b in spans])
        return self._summary(spans, scores, len(y), window_s is not None)

    def decode(self, path: Path | str) -> np.ndarray:
        """A file decoded, downmixed, checked and resampled exactly as the features stage does it
        (``FeatureExtractor.load`` less its crop/pad, which :meth:`features` applies per window).

        Raises:
            AudioError: the file cannot be used (the reason is in ``exc.reason``).
        """
        return load_audio(path, sample_rate=self.sample_rate, min_duration_s=self.audio.min_duration_s)

    def predict_files(
        self,
        paths: list[Path],
        *,
        window_s: float | None = None,
        hop_s: float | None = None,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[dict]:
        """Score files; one row per path, in order, as ``deepfake-audio predict`` prints them.

        Features are extracted per file and the model runs on batches of ``batch_size`` clips or
        windows, so memory is bounded by one file's samples and one batch of features.

        Returns:
            dicts with ``path``, ``score``, ``llr``, ``prob_bonafide``, ``decision``,
            ``duration_s``, ``error`` (``None``, or ``"<reason>: <detail>"`` for a file that
            could not be decoded, whose scores are then ``None``) and, with ``window_s``,
            ``windows`` (a list of :class:`Window` dicts) and ``min_window``
            (``{start_s, end_s, score}``).
        """
        from tqdm.auto import tqdm

        self._spans(1, window_s, hop_s)  # bad window options fail before any file is read
        windowed = window_s is not None
        rows: list[dict] = []
        done: dict[int, tuple[list[tuple[int, int]], np.ndarray, int]] = {}  # row -> spans, scores, n_samples
        pending: list[np.ndarray] = []
        owners: list[tuple[int, int]] = []  # (row, window) of each pending segment

        def flush() -> None:
            for (row, w), score in zip(owners, self.score_signals(pending, batch_size=batch_size)):
                done[row][1][w] = score
            pending.clear()
            owners.clear()

        for i, path in enumerate(tqdm(paths, desc="predict", unit="file", disable=not progress, file=sys.stderr)):
            rows.append(
                {
                    "path": str(path),
                    "score": None,
                    "llr": None,
                    "prob_bonafide": None,
                    "decision": None,
                    "duration_s": None,
                    "error": None,
                }
            )
            try:
                y = self.decode(path)
            except AudioError as exc:
                rows[i]["error"] = f"{exc.reason}: {exc}"
                continue
            spans = self._spans(len(y), window_s, hop_s)
            done[i] = (spans, np.zeros(len(spans)), len(y))
            for w, (a, b) in enumerate(spans):
                pending.append(y[a:b])
                owners.append((i, w))
                if len(pending) >= batch_size:
                    flush()
        flush()
        for i, (spans, scores, n_samples) in done.items():
            result = self._summary(spans, scores, n_samples, windowed)
            row = rows[i]
            row.update({k: result[k] for k in ("score", "llr", "prob_bonafide", "decision", "duration_s")})
            if windowed:
                low = result["min_window"]
                row["windows"] = [dataclasses.asdict(w) for w in result["windows"]]
                row["min_window"] = {"start_s": low.start_s, "end_s": low.end_s, "score": low.score}
        if windowed:
            for row in rows:
                row.setdefault("windows", [])
                row.setdefault("min_window", None)
        return rows

    def stream(
        self,
        chunks: Iterable[np.ndarray],
        sample_rate: int,
        *,
        window_s: float | None = None,
        hop_s: float | None = None,
    ) -> Iterator[Window]:
        """Windows of a live signal, each yielded as soon as its last sample has arrived.

        Args:
            chunks: mono float32 chunks at ``sample_rate`` (e.g. from :func:`pcm_chunks`).
            window_s: window length (default: the bundle's clip length).
            hop_s: seconds between window starts (default ``window_s``).

        The windows are those :meth:`score_signal` gives for the whole signal (the same
        :func:`window_spans`), the tail window included once the chunks end.
        """
        stream = WindowStream(self, sample_rate=sample_rate, window_s=window_s, hop_s=hop_s)
        for chunk in chunks:
            yield from stream.push(chunk)
        yield from stream.close()


class WindowStream:
    """Incremental sliding-window scoring of a signal that arrives in chunks.

    ``push`` takes the next chunk and returns the windows it completed; ``close`` returns the
    last (tail) window. Samples are resampled to the bundle's rate with a streaming soxr
    resampler, and only the samples still needed by a future window are kept, so memory is
    bounded by one window plus one chunk however long the stream.
    """

    def __init__(
        self, predictor: Predictor, *, sample_rate: int, window_s: float | None = None, hop_s: float | None = None
    ) -> None:
        import soxr

        if not sample_rate > 0:
            raise ValueError(f"sample_rate={sample_rate} must be positive")
        window_s = predictor.window_s if window_s is None else window_s
        hop_s = window_s if hop_s is None else hop_s
        for name, value in (("window_s", window_s), ("hop_s", hop_s)):
            if not value > 0:
                raise ValueError(f"{name}={value} must be a positive number of seconds")
        self.predictor = predictor
        self.window = max(int(round(window_s * predictor.sample_rate)), 1)
        self.hop = max(int(round(hop_s * predictor.sample_rate)), 1)
        self._resampler = (
            soxr.ResampleStream(sample_rate, predictor.sample_rate, 1, dtype="float32", quality="HQ")
            if sample_rate != predictor.sample_rate
            else None
        )
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = 0  # stream sample index of _buffer[0]
        self._next = 0  # start of the next full window
        self._last_end = 0  # end of the last window returned
        self.n_samples = 0  # samples received, at the bundle's rate
        self.n_windows = 0

    def _append(self, y: np.ndarray) -> None:
        if len(y):
            self._buffer = np.concatenate([self._buffer, y.astype(np.float32, copy=False)])
            self.n_samples += len(y)

    def _score(self, spans: list[tuple[int, int]]) -> list[Window]:
        if not spans:
            return []
        segments = [self._buffer[a - self._offset : b - self._offset] for a, b in spans]
        scores = self.predictor.score_signals(segments)
        self._last_end = spans[-1][1]
        self.n_windows += len(spans)
        return [self.predictor.window_at(a, b, s) for (a, b), s in zip(spans, scores)]

    def _ready(self) -> list[Window]:
        spans = []
        while self._next + self.window <= self.n_samples:
            spans.append((self._next, self._next + self.window))
            self._next += self.hop
        windows = self._score(spans)
        # Keep what the next window needs, and the last window's worth for the tail at close().
        keep = max(min(self._next, self.n_samples - self.window), self._offset)
        self._buffer = self._buffer[keep - self._offset :]
        self._offset = keep
        return windows

    def push(self, chunk: np.ndarray) -> list[Window]:
        """Add mono float samples (at the stream's input rate); returns the windows now complete.

        Raises:
            NonFiniteAudio: NaN or infinite samples.
        """
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"push: expected mono samples of shape (n,), got shape {chunk.shape}")
        if not np.isfinite(chunk).all():
            raise NonFiniteAudio(f"NaN or infinite samples after {self.n_samples / self.predictor.sample_rate:.3f} s")
        chunk = np.clip(chunk, -1.0, 1.0)
        self._append(self._resampler.resample_chunk(chunk) if self._resampler is not None else chunk)
        return self._ready()

    def close(self) -> list[Window]:
        """End of the stream: the windows still due, and the tail window (see :func:`window_spans`)."""
        if self._resampler is not None:
            self._append(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        windows = self._ready()
        if self.n_samples == 0:
            return windows
        if self._last_end == 0:  # shorter than one window: one short window
            windows += self._score([(0, self.n_samples)])
        elif self._last_end < self.n_samples:
            windows += self._score([(self.n_samples - self.window, self.n_samples)])
        return windows


def pcm_chunks(
    fh: BinaryIO,
    *,
    sample_format: str = "s16le",
    chunk_bytes: int = 1 << 14,
    follow: bool = False,
    idle_s: float = 2.0,
    poll_s: float = 0.02,
) -> Iterator[np.ndarray]:
    """Mono float32 samples in [-1, 1] from raw little-endian PCM, a chunk at a time.

    Each chunk is what the source had ready, up to ``chunk_bytes`` (``read1``: no waiting for a
    full buffer, so a slow writer's samples are scored as they come). With ``follow``, an end of
    data is not the end: the file is polled every ``poll_s`` like ``tail -f``, and the stream ends
    once nothing new arrived for ``idle_s`` seconds. A partial sample at a read boundary is kept
    for the next read; one left at the end is dropped.
    """
    if sample_format not in PCM_FORMATS:
        raise ValueError(f"sample_format={sample_format!r}; known: {', '.join(PCM_FORMATS)}")
    dtype, scale = PCM_FORMATS[sample_format]
    width = np.dtype(dtype).itemsize
    read = getattr(fh, "read1", fh.read)
    rest = b""
    last_data = time.monotonic()
    while True:
        data = read(chunk_bytes)
        if not data:
            if not follow or time.monotonic() - last_data >= idle_s:
                return
            time.sleep(poll_s)
            continue
        last_data = time.monotonic()
        data = rest + data
        usable = len(data) - len(data) % width
        rest = data[usable:]
        if usable:
            yield np.frombuffer(data[:usable], dtype=dtype).astype(np.float32) * np.float32(scale)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and the audio files under each folder (recursively, sorted by path)."""
    from deepfake_audio.sources.local import AUDIO_SUFFIXES

    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES and q.is_file()))
        else:
            out.append(p)
    return out


def list_bundles(models_dir: Path) -> list[dict]:
    """The bundles directly under ``models_dir``, sorted by name: ``name``, ``path``, ``dev_eer``
    (``None`` when the config has none) and ``model`` (the model kind). Folders without a
    config.json, or with an unreadable one, are left out."""
    out = []
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return out
    for config_path in sorted(models_dir.glob("*/config.json")):
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("skipping %s: %s", config_path.parent, exc)
            continue
        dev_eer = config.get("dev_eer")
        out.append(
            {
                "name": config_path.parent.name,
                "path": config_path.parent,
                "dev_eer": None if dev_eer is None else float(dev_eer),
                "model": config.get("model"),
            }
        )
    return sorted(out, key=lambda b: b["name"])


def best_bundle(models_dir: Path) -> Path:
    """The bundle under ``models_dir`` with the lowest dev EER (ties: the first by name).

    Raises:
        ValueError: when no bundle there has a dev EER.
    """
    scored = [b for b in list_bundles(models_dir) if b["dev_eer"] is not None]
    if not scored:
        raise ValueError(f"no trained model under {models_dir}: run `dvc repro` first, or pass --model DIR")
    best = min(scored, key=lambda b: b["dev_eer"])
    log.info(
        "model: %s (%s), the lowest dev EER under %s: %.2f%%",
        best["path"],
        best["model"],
        models_dir,
        100 * best["dev_eer"],
    )
    return best["path"]
