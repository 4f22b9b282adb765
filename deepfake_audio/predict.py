"""Scoring new audio with a trained bundle: files, in-memory signals and live PCM streams.

A :class:`Predictor` rebuilds the training pipeline from the bundle's ``config.json`` alone: the
feature extractor (``audio`` and ``features``), the train-fitted scaler, the model's frame rows,
the dev threshold and the dev-fitted calibration. Nothing is re-specified here, so a clip scores
exactly as the evaluate stage scored it.

Scores follow the project's convention: ``score`` is the model's raw score, higher = more bona
fide; ``llr`` its calibrated natural-log likelihood ratio of bona fide against spoof;
``prob_bonafide`` the posterior at equal priors; ``decision`` is ``bonafide`` when ``score`` is at
or above the bundle's dev EER threshold, ``spoof`` below it, and ``no_speech`` when the
voice-activity check found no speech to judge (then the scores are ``None``).

One scoring path serves ``predict``, ``stream``, the web page and ``serve``: :meth:`Predictor.prepare`
turns a signal into windows, marks those without speech and makes the model input of the others;
the caller runs the model on those inputs (batched however it likes, see :meth:`Predictor.run`);
:meth:`Predictor.finish` turns the scores into the result.

Scope (:class:`ScoringOptions`): by default (``scope="whole"``) a signal longer than the model's
clip is scored whole, in windows of that clip length (``window_s``, default the bundle's
``audio.duration_s``) every ``hop_s`` (default ``window_s``), the tail included (see
:func:`window_spans`), and the windows' scores are aggregated (``aggregate``, default ``mean``,
see :data:`AGGREGATES` and docs/serving.md for how it was chosen); ``min_window`` is the window
most likely spoofed. ``scope="first"`` scores the first clip length only, as the pipeline's
features stage crops a clip. Each window is cropped or padded to the bundle's clip length exactly
as training crops and pads clips.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from deepfake_audio.audio import SILENCE_PEAK, fix_length, load_audio, resample
from deepfake_audio.calibration import Calibration
from deepfake_audio.errors import AudioError, EmptyAudio, NonFiniteAudio, SilentAudio, TooShortAudio

if TYPE_CHECKING:
    from deepfake_audio.bundle import Bundle

log = logging.getLogger(__name__)

__all__ = [
    "AGGREGATES",
    "NO_SPEECH",
    "PCM_FORMATS",
    "SCOPES",
    "Prepared",
    "Predictor",
    "ScoringOptions",
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


NO_SPEECH = "no_speech"
"""The decision of a clip or window in which the voice-activity check found no speech."""

SCOPES = ("whole", "first")
"""``whole``: every window of the signal; ``first``: its first clip length, as the pipeline crops."""

AGGREGATES = {"mean": np.mean, "median": np.median, "min": np.min}
"""How window scores become the signal's score (over the windows with speech)."""


@dataclasses.dataclass(frozen=True)
class ScoringOptions:
    """How a signal is scored (see the module docstring).

    Attributes:
        scope: one of :data:`SCOPES`.
        window_s: window length in seconds (``None``: the bundle's clip length).
        hop_s: seconds between window starts (``None``: ``window_s``).
        aggregate: a key of :data:`AGGREGATES`.
        vad: run the voice-activity check (:mod:`deepfake_audio.vad`); windows without speech
            are not scored.
        min_speech_s: seconds of speech a window needs to be scored (at most half the window).
    """

    scope: str = "whole"
    window_s: float | None = None
    hop_s: float | None = None
    aggregate: str = "mean"
    vad: bool = True
    min_speech_s: float = 0.25

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope={self.scope!r}; known: {', '.join(SCOPES)}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate={self.aggregate!r}; known: {', '.join(AGGREGATES)}")
        for name in ("window_s", "hop_s"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and np.isfinite(value)):
                raise ValueError(f"{name}={value} must be a positive number of seconds")
        if self.scope == "first" and (self.window_s is not None or self.hop_s is not None):
            raise ValueError("scope='first' scores one crop: window_s and hop_s apply to scope='whole'")
        if not self.min_speech_s >= 0:
            raise ValueError(f"min_speech_s={self.min_speech_s} must be >= 0")


@dataclasses.dataclass
class Window:
    """The score of one window of a signal; times in seconds from the signal's start.

    ``score``, ``llr`` and ``prob_bonafide`` are ``None`` for a window without speech
    (``decision`` ``no_speech``); ``speech`` is ``None`` when no voice-activity check ran.
    """

    start_s: float
    end_s: float
    score: float | None
    llr: float | None
    prob_bonafide: float | None
    decision: str
    speech: bool | None = None


@dataclasses.dataclass
class Prepared:
    """A signal made ready for the model by :meth:`Predictor.prepare`.

    Attributes:
        n_samples: the signal's length at the bundle's rate.
        spans: the windows, sample ranges ``[start, end)``.
        speech: per window, whether it holds speech (``None``: no check ran).
        speech_s: seconds of speech in the signal (``None``: no check ran).
        inputs: the model input of each window with speech, in window order.
        options: the options it was prepared with.
    """

    n_samples: int
    spans: list[tuple[int, int]]
    speech: list[bool] | None
    speech_s: float | None
    inputs: list[np.ndarray]
    options: ScoringOptions


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
        self._detector: Any = None
        scaler = cfg["scaler"].get(bundle.input)
        self.scaler = Scaler.from_json(scaler) if scaler is not None else None
        groups = bundle.frame_groups
        # The rows the model reads, as the train stage read them from the scaled table (file order).
        self._rows = np.array(
            [i for i, g in enumerate(self.extractor.layout.frame_groups) if groups is None or g in groups],
            dtype=np.int64,
        )

    @classmethod
    def load(cls, bundle_dir: Path, *, runtime: str = "auto", threads: int | None = None) -> Predictor:
        """Load the bundle in ``bundle_dir``.

        Args:
            runtime: ``torch`` (the training stack: the kind's own ``load`` and ``score``),
                ``onnx`` or ``torchscript`` (a folder written by ``deepfake-audio export``; ONNX
                Runtime imports no torch), or ``auto``: the exported format when ``bundle_dir``
                is an export, else ``torch``.
            threads: onnxruntime's intra-op threads for an ONNX export (default: the CPUs this
                process may use); torch's thread count is global to the process and left as set.

        Raises:
            ValueError: when ``bundle_dir`` is not a bundle (no folder, no config.json, no weights,
                an unknown model kind), or has no model for ``runtime``, with a message that says which.
        """
        from deepfake_audio.export import RUNTIMES, exported_format, load_exported

        bundle_dir = Path(bundle_dir)
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime={runtime!r}; known: {', '.join(RUNTIMES)}")
        exported = exported_format(bundle_dir)
        if runtime == "auto":
            runtime = exported or "torch"
        if runtime == "torch" and exported is not None:
            raise ValueError(
                f"{bundle_dir} is a {exported} export, which has no torch weights: load it with runtime "
                f"{exported} (or auto), or load the bundle it was exported from with torch"
            )
        if runtime != "torch":
            return cls(bundle_dir, load_exported(bundle_dir, runtime, threads=threads))

        from deepfake_audio.bundle import check_bundle, load_bundle

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
        return self.run([self.features(y) for y in signals], batch_size=batch_size)

    def run(self, inputs: list[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
        """Raw scores of model inputs (from :meth:`features`), the model run on batches of ``batch_size``."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        out = [
            self.bundle.score(np.stack(inputs[i : i + batch_size]), batch_size=batch_size)
            for i in range(0, len(inputs), batch_size)
        ]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0, dtype=np.float64)

    def window_at(self, start: int, end: int, score: float | None, *, speech: bool | None = None) -> Window:
        """A :class:`Window` of samples ``[start, end)`` at :attr:`sample_rate` with this raw score
        (``None``: a window without speech)."""
        t0, t1 = start / self.sample_rate, end / self.sample_rate
        if score is None:
            return Window(t0, t1, None, None, None, NO_SPEECH, speech)
        llr, prob = self._calibrated(score)
        return Window(t0, t1, float(score), llr, prob, _decide(score, self.threshold), speech)

    def _calibrated(self, score: float) -> tuple[float | None, float | None]:
        if self.calibration is None:
            return None, None
        return float(self.calibration.llr([score])[0]), float(self.calibration.prob_bonafide([score])[0])

    # ------------------------------------------------------------------ the scoring path

    def spans(self, n_samples: int, options: ScoringOptions) -> list[tuple[int, int]]:
        """The windows of a signal of ``n_samples`` (at :attr:`sample_rate`) under ``options``."""
        if n_samples <= 0:
            raise ValueError(f"n_samples={n_samples} must be positive")
        if options.scope == "first":
            return [(0, n_samples)]
        window_s = self.window_s if options.window_s is None else options.window_s
        hop_s = window_s if options.hop_s is None else options.hop_s
        window = max(int(round(window_s * self.sample_rate)), 1)
        hop = max(int(round(hop_s * self.sample_rate)), 1)
        return window_spans(n_samples, window=window, hop=hop)

    def _scored_part(self, start: int, end: int) -> tuple[int, int]:
        """The samples of ``[start, end)`` the model reads: at most its clip length, cropped as
        :meth:`features` crops."""
        if end - start <= self.n_samples:
            return start, end
        audio_input = self.bundle.input in ("waveform", "embeddings")
        offset = (end - start - self.n_samples) // 2 if not audio_input and self.audio.crop == "center" else 0
        return start + offset, start + offset + self.n_samples

    def speech_detector(self) -> Any:
        """The voice-activity detector (:mod:`deepfake_audio.vad`), loaded on first use."""
        if self._detector is None:
            from deepfake_audio.vad import default_detector

            self._detector = default_detector()
        return self._detector

    def _speech(
        self, y: np.ndarray, spans: list[tuple[int, int]], options: ScoringOptions
    ) -> tuple[list[bool] | None, float | None]:
        if not options.vad:
            return None, None
        detector = self.speech_detector()
        sr = self.sample_rate
        probs = detector.frame_probs(y, sr)
        mask = []
        for start, end in spans:
            a, b = self._scored_part(start, end)
            need = min(options.min_speech_s, 0.5 * (b - a) / sr)
            mask.append(detector.speech_seconds(probs, a / sr, b / sr) >= need)
        return mask, float(detector.speech_seconds(probs, 0.0, len(y) / sr))

    def prepare(self, y: np.ndarray, options: ScoringOptions | None = None) -> Prepared:
        """Windows, speech marks and model inputs of a checked signal at :attr:`sample_rate`
        (from :meth:`decode` or :meth:`check_signal`)."""
        options = options or ScoringOptions()
        spans = self.spans(len(y), options)
        speech, speech_s = self._speech(y, spans, options)
        keep = [i for i in range(len(spans)) if speech is None or speech[i]]
        inputs = [self.features(y[spans[i][0] : spans[i][1]]) for i in keep]
        return Prepared(len(y), spans, speech, speech_s, inputs, options)

    def finish(self, prepared: Prepared, scores: np.ndarray) -> dict:
        """The result of a prepared signal given the raw scores of its inputs.

        Returns:
            ``score``, ``llr``, ``prob_bonafide`` (the aggregate over the windows with speech;
            ``None`` when none has speech), ``decision`` (``bonafide``, ``spoof`` or
            ``no_speech``), ``duration_s``, ``scope``, ``aggregate``, ``speech_s``, ``windows``
            (:class:`Window` each) and ``min_window`` (the window with speech most likely
            spoofed, ``None`` when none has speech).
        """
        scores = np.asarray(scores, dtype=np.float64)
        if len(scores) != len(prepared.inputs):
            raise ValueError(f"finish: {len(scores)} scores for {len(prepared.inputs)} inputs")
        it = iter(scores.tolist())
        speech = prepared.speech
        windows = [
            self.window_at(
                a, b, next(it) if speech is None or speech[i] else None, speech=None if speech is None else speech[i]
            )
            for i, (a, b) in enumerate(prepared.spans)
        ]
        options = prepared.options
        result = {
            "score": None,
            "llr": None,
            "prob_bonafide": None,
            "decision": NO_SPEECH,
            "duration_s": prepared.n_samples / self.sample_rate,
            "scope": options.scope,
            "aggregate": options.aggregate,
            "speech_s": prepared.speech_s,
            "windows": windows,
            "min_window": None,
        }
        if len(scores):
            score = float(AGGREGATES[options.aggregate](scores))
            llr, prob = self._calibrated(score)
            scored = [w for w in windows if w.score is not None]
            result.update(
                score=score,
                llr=llr,
                prob_bonafide=prob,
                decision=_decide(score, self.threshold),
                min_window=min(scored, key=lambda w: w.score),
            )
        return result

    def check_signal(self, y: np.ndarray, sample_rate: int) -> np.ndarray:
        """A mono signal checked as the pipeline checks a file, clipped to [-1, 1] and resampled
        to :attr:`sample_rate` with soxr.

        Raises:
            ValueError: a bad shape or rate.
            AudioError: a signal the pipeline would reject (empty, non-finite, silent, too short).
        """
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"expected mono samples of shape (n,), got shape {y.shape}")
        if not sample_rate > 0:
            raise ValueError(f"sample_rate={sample_rate} must be positive")
        if len(y) == 0:
            raise EmptyAudio("no samples")
        if not np.isfinite(y).all():
            raise NonFiniteAudio("NaN or infinite samples")
        if len(y) < self.audio.min_duration_s * sample_rate:
            raise TooShortAudio(f"{len(y) / sample_rate:.3f} s is shorter than {self.audio.min_duration_s} s")
        if float(np.max(np.abs(y))) < SILENCE_PEAK:
            raise SilentAudio("all samples are (near) zero")
        return resample(np.clip(y, -1.0, 1.0).astype(np.float32), orig_sr=int(sample_rate), target_sr=self.sample_rate)

    def score_signal(
        self, y: np.ndarray, sample_rate: int, options: ScoringOptions | None = None, **kwargs: Any
    ) -> dict:
        """Score one mono signal (see :meth:`finish` for the result).

        Args:
            y: float samples ``(n,)`` in [-1, 1] at ``sample_rate`` Hz (resampled here with soxr).
            options: how (default :class:`ScoringOptions`); or its fields as keyword arguments.

        Raises:
            ValueError: a bad shape, rate, window or hop.
            AudioError: a signal the pipeline would reject (empty, non-finite, silent, too short).
        """
        options = _options(options, kwargs)
        prepared = self.prepare(self.check_signal(y, sample_rate), options)
        return self.finish(prepared, self.run(prepared.inputs))

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
        options: ScoringOptions | None = None,
        *,
        batch_size: int = 32,
        progress: bool = False,
        **kwargs: Any,
    ) -> list[dict]:
        """Score files; one row per path, in order, as ``deepfake-audio predict`` prints them.

        Features are extracted per file and the model runs on batches of ``batch_size`` windows
        across files, so memory is bounded by one file's samples and one batch of features.

        Returns:
            :func:`result_row` dicts with ``path`` first; a file that could not be decoded has
            ``error`` ``"<reason>: <detail>"`` and ``None`` scores.
        """
        from tqdm.auto import tqdm

        options = _options(options, kwargs)
        rows: list[dict] = []
        prepared: dict[int, Prepared] = {}
        scores: dict[int, list[float]] = {}
        pending: list[np.ndarray] = []
        owners: list[int] = []  # the row of each pending input

        def flush() -> None:
            for row, score in zip(owners, self.run(pending, batch_size=batch_size)):
                scores[row].append(float(score))
            pending.clear()
            owners.clear()

        for i, path in enumerate(tqdm(paths, desc="predict", unit="file", disable=not progress, file=sys.stderr)):
            try:
                prepared[i] = self.prepare(self.decode(path), options)
            except AudioError as exc:
                rows.append(error_row(exc, path=path))
                continue
            rows.append({})
            scores[i] = []
            for x in prepared[i].inputs:
                pending.append(x)
                owners.append(i)
                if len(pending) >= batch_size:
                    flush()
        flush()
        for i, p in prepared.items():
            rows[i] = result_row(self.finish(p, np.array(scores[i])), path=paths[i])
        return rows

    def stream(
        self, chunks: Iterable[np.ndarray], sample_rate: int, options: ScoringOptions | None = None, **kwargs: Any
    ) -> Iterator[Window]:
        """Windows of a live signal, each yielded as soon as its last sample has arrived.

        Args:
            chunks: mono float32 chunks at ``sample_rate`` (e.g. from :func:`pcm_chunks`).
            options: window length, hop and the speech check (``scope`` and ``aggregate`` do not
                apply: a stream has no end to aggregate at).

        The windows are those :meth:`score_signal` gives for the whole signal (the same
        :func:`window_spans`), the tail window included once the chunks end.
        """
        stream = WindowStream(self, sample_rate=sample_rate, options=_options(options, kwargs))
        for chunk in chunks:
            yield from stream.push(chunk)
        yield from stream.close()


def _options(options: ScoringOptions | None, kwargs: dict) -> ScoringOptions:
    if options is not None and kwargs:
        raise TypeError("pass options or keyword options, not both")
    if options is not None:
        return options
    return ScoringOptions(**kwargs)


RESULT_FIELDS = ("score", "llr", "prob_bonafide", "decision", "duration_s", "error")
"""The fields every result row has, in this order (then ``scope``, ``aggregate``, ``speech_s``,
``n_windows``, ``min_window`` and ``windows``)."""


def result_row(result: dict, *, path: str | Path | None = None) -> dict:
    """A :meth:`Predictor.finish` result as plain JSON-ready data: windows as dicts."""
    row = {} if path is None else {"path": str(path)}
    row.update({k: result.get(k) for k in RESULT_FIELDS})
    windows = result["windows"]
    low = result["min_window"]
    row.update(
        scope=result["scope"],
        aggregate=result["aggregate"],
        speech_s=result["speech_s"],
        n_windows=len(windows),
        min_window=None if low is None else dataclasses.asdict(low),
        windows=[dataclasses.asdict(w) for w in windows],
    )
    return row


def error_row(exc: AudioError, *, path: str | Path | None = None) -> dict:
    """The row of a signal that could not be scored: ``error`` is ``"<reason>: <detail>"``."""
    row = {} if path is None else {"path": str(path)}
    row.update({k: None for k in RESULT_FIELDS})
    row.update(
        error=f"{exc.reason}: {exc}",
        scope=None,
        aggregate=None,
        speech_s=None,
        n_windows=0,
        min_window=None,
        windows=[],
    )
    return row


class WindowStream:
    """Incremental sliding-window scoring of a signal that arrives in chunks.

    ``push`` takes the next chunk and returns the windows it completed; ``close`` returns the
    last (tail) window. Samples are resampled to the bundle's rate with a streaming soxr
    resampler, and only the samples still needed by a future window are kept, so memory is
    bounded by one window plus one chunk however long the stream. With ``options.vad`` each
    window gets the speech check on its own samples, and one without speech is not scored.
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        sample_rate: int,
        window_s: float | None = None,
        hop_s: float | None = None,
        options: ScoringOptions | None = None,
    ) -> None:
        import soxr

        if not sample_rate > 0:
            raise ValueError(f"sample_rate={sample_rate} must be positive")
        if options is None:
            options = ScoringOptions(window_s=window_s, hop_s=hop_s, vad=False)
        elif window_s is not None or hop_s is not None:
            raise TypeError("pass window_s and hop_s in options")
        window_s = predictor.window_s if options.window_s is None else options.window_s
        hop_s = window_s if options.hop_s is None else options.hop_s
        self.options = options
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
        # Each window through the one scoring path, as a signal of its own; the model runs once.
        one = dataclasses.replace(self.options, scope="first", window_s=None, hop_s=None)
        predictor, sr = self.predictor, self.predictor.sample_rate
        prepared = [predictor.prepare(self._buffer[a - self._offset : b - self._offset], one) for a, b in spans]
        scores = iter(predictor.run([x for p in prepared for x in p.inputs]).tolist())
        windows = []
        for (a, b), p in zip(spans, prepared):
            w = predictor.finish(p, [next(scores) for _ in p.inputs])["windows"][0]
            windows.append(dataclasses.replace(w, start_s=a / sr, end_s=b / sr))
        self._last_end = spans[-1][1]
        self.n_windows += len(spans)
        return windows

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
