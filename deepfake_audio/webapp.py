"""The logic behind the web page (``app/streamlit_app.py``), as pure functions the tests call.

Nothing here imports streamlit. The page only lays out what these functions return:
- where the models and their metrics live (:func:`resolve_dirs`);
- which trained models there are, with their test EER (:func:`model_choices`);
- whether an upload is acceptable, and what it holds (:func:`analyse_upload`): checks, decoding,
  scoring, the log-mel spectrogram;
- the figures (:func:`waveform_figure`, :func:`spectrogram_figure`, :func:`timeline_figure`).

A user's mistake (a wrong type, an empty, corrupt, silent, too short or too long clip, a file over
the size limit) raises :class:`UploadError`, whose message is written for the person at the page.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfake_audio.errors import AudioError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from deepfake_audio.predict import Predictor, Window

log = logging.getLogger(__name__)

ALLOWED_TYPES = ("wav", "flac", "ogg", "mp3")
"""File suffixes the page accepts: what soundfile (libsndfile >= 1.1) decodes without ffmpeg."""

MAX_UPLOAD_MB = 20
"""Upload limit in MB, also given to Streamlit (``server.maxUploadSize`` and the widget)."""

MAX_DURATION_S = 300.0
"""Longer clips are refused: decoding and scoring must stay interactive on a CPU."""

MODELS_DIR_ENV = "DEEPFAKE_AUDIO_MODELS_DIR"
METRICS_DIR_ENV = "DEEPFAKE_AUDIO_METRICS_DIR"

DECISION_LABELS = {"bonafide": "bona fide", "spoof": "spoof", "no_speech": "no speech"}
"""How the page words each decision."""

_AUDIO_FAULT_MESSAGES = {
    "empty": "The file holds no audio samples.",
    "corrupt": "The file could not be decoded as audio: it is damaged, cut short or not really {kind} audio.",
    "unsupported": "The file was not recognised as WAV, FLAC, OGG (Vorbis/Opus) or MP3 audio: it may not be "
    "audio at all, or hold an encoding that soundfile cannot decode.",
    "non_finite": "The file holds NaN or infinite samples, so it cannot be scored.",
    "silent": "The clip is silent: there is no signal to analyse.",
    "no_speech": "The voice-activity check found no speech in the clip, so there is nothing to judge: "
    "the detector is trained on speech, and would score a tone or noise as confidently as a voice.",
}


class UploadError(ValueError):
    """An upload the page cannot analyse. ``str(exc)`` is the message for the user; ``reason`` a slug."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ------------------------------------------------------------------------------------ models


def resolve_dirs(environ: Mapping[str, str], *, root: Path) -> tuple[Path, Path]:
    """``(models_dir, metrics_dir)``: from ``DEEPFAKE_AUDIO_MODELS_DIR`` / ``..._METRICS_DIR``.

    Defaults: ``root/data/models``, and the ``metrics/`` folder of the pipeline that the models
    dir belongs to (``<repo>/data/models`` -> ``<repo>/metrics``, as dvc.yaml writes them).
    """
    models_dir = Path(environ[MODELS_DIR_ENV]) if environ.get(MODELS_DIR_ENV) else root / "data" / "models"
    if environ.get(METRICS_DIR_ENV):
        metrics_dir = Path(environ[METRICS_DIR_ENV])
    else:
        metrics_dir = models_dir.resolve().parent.parent / "metrics"
    return models_dir, metrics_dir


def read_test_eer(metrics_dir: Path, model_name: str) -> float | None:
    """The test-set EER (a fraction) in ``metrics_dir/<model_name>.json``, or ``None`` when absent.

    A missing, unreadable or malformed file is ``None`` (logged), not an error: the page then says
    "no test metrics".
    """
    path = Path(metrics_dir) / f"{model_name}.json"
    if not path.is_file():
        return None
    try:
        eer = json.loads(path.read_text(encoding="utf-8"))["test"]["eer"]
        eer = float(eer)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.warning("no usable test EER in %s: %s", path, exc)
        return None
    return eer if math.isfinite(eer) and 0.0 <= eer <= 1.0 else None


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """One trained bundle the page can pick."""

    name: str
    path: Path
    model: str
    dev_eer: float | None
    test_eer: float | None

    @property
    def label(self) -> str:
        """The selectbox text, e.g. ``cnn_lstm: test EER 17.5%`` or ``... no test metrics``."""
        return f"{self.name}: {format_eer(self.test_eer, missing='no test metrics', prefix='test EER ')}"


def format_signed(value: float, *, digits: int = 3) -> str:
    """``+0.028``, ``-1.002``; a value that rounds to zero reads ``+0.000``, never ``-0.000``."""
    text = f"{value:+.{digits}f}"
    return f"{0.0:+.{digits}f}" if float(text) == 0.0 else text


def format_seconds(value: float) -> str:
    """Seconds to at most two decimals, without trailing zeros: ``0.01``, ``1.5``, ``4``."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_eer(eer: float | None, *, missing: str = "n/a", prefix: str = "") -> str:
    """A fraction as a percentage with one decimal (``0.175 -> '17.5%'``), or ``missing``."""
    return missing if eer is None else f"{prefix}{100.0 * eer:.1f}%"


def model_choices(models_dir: Path, metrics_dir: Path) -> tuple[list[ModelChoice], int]:
    """The bundles under ``models_dir`` and the index of the best one (lowest dev EER).

    Returns ``([], 0)`` when there is no trained model (no folder, or no bundle in it).
    """
    from deepfake_audio.predict import best_bundle, list_bundles

    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return [], 0
    rows = list_bundles(models_dir)
    if not rows:
        return [], 0
    choices = [
        ModelChoice(
            name=r["name"],
            path=Path(r["path"]),
            model=str(r.get("model") or r["name"]),
            dev_eer=None if r.get("dev_eer") is None else float(r["dev_eer"]),
            test_eer=read_test_eer(metrics_dir, r["name"]),
        )
        for r in rows
    ]
    try:
        best = Path(best_bundle(models_dir)).resolve()
    except ValueError:  # no bundle has a dev EER: any is as good a default as another
        return choices, 0
    index = next((i for i, c in enumerate(choices) if c.path.resolve() == best), 0)
    return choices, index


def model_card_text(bundle_dir: Path) -> str | None:
    """The markdown of a bundle's model card (:func:`deepfake_audio.model_card.find_card`), or ``None``."""
    from deepfake_audio.model_card import find_card

    card = find_card(bundle_dir)
    return None if card is None else card.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ uploads


def allowed_types_text() -> str:
    """``WAV, FLAC, OGG or MP3``: the allowed types, for sentences."""
    names = [t.upper() for t in ALLOWED_TYPES]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def check_upload(filename: str, size_bytes: int, *, max_bytes: int = MAX_UPLOAD_MB * 1024 * 1024) -> str:
    """Check an upload's name and size before anything reads it; returns its lower-case suffix.

    Raises:
        UploadError: ``type`` (a suffix not in :data:`ALLOWED_TYPES`), ``empty`` or ``too_large``.
    """
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in ALLOWED_TYPES:
        what = f"is a .{suffix} file" if suffix else "has no file suffix"
        raise UploadError("type", f"{filename!r} {what}: upload a {allowed_types_text()} file.")
    if size_bytes <= 0:
        raise UploadError("empty", f"{filename!r} is empty (0 bytes).")
    if size_bytes > max_bytes:
        raise UploadError(
            "too_large", f"{filename!r} is {size_bytes / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB."
        )
    return suffix


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What the page shows about one clip, scored by one model.

    ``y`` is the clip at ``sample_rate`` (the model's), float32 mono; ``log_mel`` its log-mel
    spectrogram in dB, shape ``(n_mels, n_frames)``, one frame every ``hop_length`` samples.
    When the clip is longer than the model's window, ``windows`` holds the per-window results
    (:class:`~deepfake_audio.predict.Window`), ``score`` is their mean and ``min_window`` the most
    spoof-like one; otherwise ``windows`` is empty and ``min_window`` ``None``.
    """

    filename: str
    model_name: str
    duration_s: float
    sample_rate: int
    y: np.ndarray
    log_mel: np.ndarray
    hop_length: int
    score: float
    llr: float | None
    prob_bonafide: float | None
    decision: str
    threshold: float
    window_s: float
    windows: tuple[Window, ...]
    min_window: Window | None = None

    @property
    def decision_label(self) -> str:
        return DECISION_LABELS.get(self.decision, self.decision)


def _audio_fault(exc: AudioError, *, kind: str, min_duration_s: float) -> UploadError:
    if exc.reason == "too_short":
        return UploadError("too_short", f"The clip is too short: the model needs at least {min_duration_s:g} s.")
    message = _AUDIO_FAULT_MESSAGES.get(exc.reason, "The file could not be used as audio.")
    return UploadError(exc.reason, message.format(kind=kind.upper()))


def _probe_duration_s(path: Path) -> float | None:
    """The duration a file's header declares, or ``None`` when soundfile cannot read the header
    (the full decode that follows then names the fault)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        log.debug("no header duration for %s: %s", path, exc)
        return None
    return float(info.frames) / info.samplerate if info.samplerate > 0 else None


def decode_upload(
    data: bytes,
    filename: str,
    *,
    min_duration_s: float = 0.0,
    max_bytes: int = MAX_UPLOAD_MB * 1024 * 1024,
    max_duration_s: float = MAX_DURATION_S,
) -> tuple[np.ndarray, int]:
    """Check and decode an uploaded clip (the web page and ``deepfake-audio serve`` both call this).

    The bytes are written to a private temporary folder (named by us, never by the upload) and
    deleted before this returns, whatever happens. A header that declares more than
    ``max_duration_s`` is refused before the audio is decoded.

    Returns:
        ``(y, sample_rate)``: float32 mono samples at the file's own rate.

    Raises:
        UploadError: for everything that is the upload's fault (type, size, empty, corrupt,
            non-finite, silent, too short, longer than ``max_duration_s``).
    """

    suffix = check_upload(filename, len(data), max_bytes=max_bytes)
    with tempfile.TemporaryDirectory(prefix="deepfake-audio-upload-") as tmp:
        path = Path(tmp) / f"upload.{suffix}"
        path.write_bytes(data)
        return decode_file(path, kind=suffix, min_duration_s=min_duration_s, max_duration_s=max_duration_s)


def decode_file(
    path: Path, *, kind: str = "audio", min_duration_s: float = 0.0, max_duration_s: float = MAX_DURATION_S
) -> tuple[np.ndarray, int]:
    """Decode a clip on disk at its own rate, refusing one longer than ``max_duration_s`` (its
    header is read first); :class:`UploadError` for every fault."""
    from deepfake_audio.audio import read_audio

    declared = _probe_duration_s(path)
    if declared is not None and declared > max_duration_s:
        raise _too_long(declared, max_duration_s)
    try:
        y, sr = read_audio(path)
    except AudioError as exc:
        raise _audio_fault(exc, kind=kind, min_duration_s=min_duration_s) from exc
    if len(y) / sr > max_duration_s:
        raise _too_long(len(y) / sr, max_duration_s)
    return y, sr


def analyse_upload(
    data: bytes,
    filename: str,
    predictor: Predictor,
    *,
    max_bytes: int = MAX_UPLOAD_MB * 1024 * 1024,
    max_duration_s: float = MAX_DURATION_S,
) -> Analysis:
    """Check, decode and score an uploaded clip (:func:`decode_upload`, then :func:`analyse_signal`).

    Raises:
        UploadError: for everything that is the upload's fault (type, size, empty, corrupt,
            non-finite, silent, too short, longer than ``max_duration_s``, no speech).
    """
    y, sr = decode_upload(
        data,
        filename,
        min_duration_s=predictor.audio.min_duration_s,
        max_bytes=max_bytes,
        max_duration_s=max_duration_s,
    )
    return analyse_signal(y, sr, predictor, filename=filename)


def analyse_file(
    path: Path, predictor: Predictor, *, filename: str | None = None, max_duration_s: float = MAX_DURATION_S
) -> Analysis:
    """Decode and score a clip on disk (see :func:`analyse_upload`, which checks the upload first)."""
    path = Path(path)
    kind = path.suffix.lstrip(".") or "audio"
    y, sr = decode_file(path, kind=kind, min_duration_s=predictor.audio.min_duration_s, max_duration_s=max_duration_s)
    return analyse_signal(y, sr, predictor, filename=filename or path.name)


def analyse_signal(y: np.ndarray, sr: int, predictor: Predictor, *, filename: str) -> Analysis:
    """Score a decoded clip through the one scoring path (:meth:`Predictor.score_signal`: whole, in
    windows, with the speech check) and compute what the page draws.

    Raises:
        UploadError: too short, silent, non-finite, or no speech.
    """
    from deepfake_audio.audio import resample

    kind = Path(filename).suffix.lstrip(".") or "audio"
    min_duration_s = predictor.audio.min_duration_s
    # Resampled once, here: the predictor then scores at its own rate without resampling again.
    y_model = resample(y, orig_sr=sr, target_sr=int(predictor.sample_rate))
    try:
        result = predictor.score_signal(y_model, int(predictor.sample_rate))
    except AudioError as exc:
        raise _audio_fault(exc, kind=kind, min_duration_s=min_duration_s) from exc
    if result["score"] is None:
        raise UploadError("no_speech", _AUDIO_FAULT_MESSAGES["no_speech"])
    log_mel, hop_length = log_mel_of(predictor, y_model)
    windows = tuple(result["windows"]) if len(result["windows"]) > 1 else ()
    return Analysis(
        filename=filename,
        model_name=predictor.model_name,
        duration_s=len(y) / sr,
        sample_rate=int(predictor.sample_rate),
        y=y_model,
        log_mel=log_mel,
        hop_length=hop_length,
        score=float(result["score"]),
        llr=_optional_float(result.get("llr")),
        prob_bonafide=_optional_float(result.get("prob_bonafide")),
        decision=str(result["decision"]),
        threshold=float(predictor.threshold),
        window_s=float(predictor.window_s),
        windows=windows,
        min_window=result["min_window"] if windows else None,
    )


def _too_long(duration_s: float, max_duration_s: float) -> UploadError:
    return UploadError(
        "too_long",
        f"The clip is {duration_s:.0f} s long; this page analyses clips of up to "
        f"{max_duration_s:.0f} s. Cut it, or score the whole file with "
        f"`deepfake-audio predict`.",
    )


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)


def log_mel_of(predictor: Predictor, y: np.ndarray) -> tuple[np.ndarray, int]:
    """The log-mel spectrogram exactly as the model's features compute it, and its hop length.

    Args:
        y: float32 samples at ``predictor.sample_rate``, any length.

    Returns:
        ``(log_mel, hop_length)``: float32 dB, shape ``(n_mels, 1 + len(y) // hop_length)``.
    """
    extractor = predictor.extractor  # the bundle's own FeatureExtractor: its n_fft, hop and mel bands
    return extractor.log_mel(np.asarray(y, dtype=np.float32)), int(extractor.params.hop_length)


# ------------------------------------------------------------------------------------ figures

_BONAFIDE_COLOUR = "#2e7d32"
_SPOOF_COLOUR = "#c62828"


def _figure(height_in: float) -> Figure:
    from matplotlib.figure import Figure

    # A bare Figure: no pyplot, so no global state and no GUI backend in a server thread.
    fig = Figure(figsize=(10.0, height_in), dpi=100, layout="constrained")
    return fig


def waveform_envelope(
    y: np.ndarray, sample_rate: int, *, n_points: int = 2000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max envelope of ``y`` over at most ``n_points`` equal blocks, for plotting long clips.

    Returns:
        ``(t_s, lo, hi)``, each of shape ``(n_blocks,)``: block centres in seconds, and the
        minimum and maximum sample of each block.
    """
    if len(y) == 0:
        raise ValueError("waveform_envelope: empty signal")
    block = max(1, math.ceil(len(y) / n_points))
    n_blocks = math.ceil(len(y) / block)
    padded = np.pad(y, (0, n_blocks * block - len(y)), mode="edge").reshape(n_blocks, block)
    starts = np.arange(n_blocks) * block
    t_s = (starts + np.minimum(starts + block, len(y))) / (2 * sample_rate)  # the last block may be short
    return t_s, padded.min(axis=1), padded.max(axis=1)


def waveform_figure(analysis: Analysis) -> Figure:
    """The clip's waveform (a min/max envelope), time in seconds."""
    t_s, lo, hi = waveform_envelope(analysis.y, analysis.sample_rate)
    fig = _figure(2.2)
    ax = fig.add_subplot()
    ax.fill_between(t_s, lo, hi, color="#1f77b4", linewidth=0.6)
    ax.set_xlim(0.0, analysis.duration_s)
    peak = max(float(np.max(np.abs(analysis.y))), 1e-3)
    ax.set_ylim(-1.05 * peak, 1.05 * peak)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    return fig


def spectrogram_figure(analysis: Analysis) -> Figure:
    """The log-mel spectrogram (dB), mel band against time in seconds."""
    fig = _figure(3.0)
    ax = fig.add_subplot()
    n_mels, n_frames = analysis.log_mel.shape
    extent = (0.0, n_frames * analysis.hop_length / analysis.sample_rate, 0, n_mels)
    image = ax.imshow(
        analysis.log_mel, origin="lower", aspect="auto", extent=extent, cmap="magma", interpolation="nearest"
    )
    ax.set_xlim(0.0, analysis.duration_s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    fig.colorbar(image, ax=ax, label="dB", pad=0.01)
    return fig


def timeline_figure(analysis: Analysis) -> Figure:
    """The score of each window as a bar over its time span (a dot at its centre), and the threshold.

    Windows at or above the threshold (bona fide) are green, those below (spoof) red.
    """
    if not analysis.windows:
        raise ValueError("timeline_figure: the clip has no per-window scores (not longer than one window)")
    fig = _figure(2.6)
    ax = fig.add_subplot()
    # A bar over each window's span and a dot at its centre: the tail window overlaps the one
    # before it, and the dots keep the two apart.
    scored = [w for w in analysis.windows if w.score is not None]  # windows without speech are not scored
    for w in analysis.windows:
        if w.score is None:
            ax.axvspan(w.start_s, w.end_s, color="0.92", zorder=0)
    centres = [(w.start_s + w.end_s) / 2 for w in scored]
    ax.plot(centres, [w.score for w in scored], color="0.7", linewidth=0.8, zorder=1)
    for w, centre in zip(scored, centres):
        colour = _BONAFIDE_COLOUR if w.score >= analysis.threshold else _SPOOF_COLOUR
        ax.hlines(w.score, w.start_s, w.end_s, colors=colour, linewidth=3.0, alpha=0.45, zorder=2)
        ax.plot([centre], [w.score], "o", color=colour, markersize=4, zorder=3)
    ax.axhline(
        analysis.threshold,
        color="0.35",
        linestyle="--",
        linewidth=1.0,
        label=f"threshold {format_signed(analysis.threshold)}",
    )
    ax.axhline(
        analysis.score,
        color="#1f77b4",
        linestyle=":",
        linewidth=1.2,
        label=f"clip score {format_signed(analysis.score)}",
    )
    # Legend entries for the bar colours (proxies: the bars themselves would repeat per window).
    ax.plot([], [], "o-", color=_BONAFIDE_COLOUR, linewidth=3.0, markersize=4, label="window: bona fide")
    ax.plot([], [], "o-", color=_SPOOF_COLOUR, linewidth=3.0, markersize=4, label="window: spoof")
    if len(scored) < len(analysis.windows):
        ax.plot([], [], color="0.85", linewidth=6.0, label="window: no speech (not scored)")
    scores = [w.score for w in scored] + [analysis.threshold, analysis.score]
    span = max(max(scores) - min(scores), 1e-3)
    ax.set_ylim(min(scores) - 0.15 * span, max(scores) + 0.15 * span)
    ax.set_xlim(0.0, analysis.duration_s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score (higher = bona fide)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return fig


def unscored_text(analysis: Analysis) -> str:
    """`` (2 windows without speech were not scored)``, or nothing when every window had speech."""
    n = sum(w.score is None for w in analysis.windows)
    if not n:
        return ""
    return f" ({n} window{'s' if n > 1 else ''} without speech {'were' if n > 1 else 'was'} not scored)"


def windows_table(analysis: Analysis) -> list[dict[str, object]]:
    """One row per window for a table: times in seconds, score, P(bona fide) and the decision."""
    return [
        {
            "start (s)": round(float(w.start_s), 2),
            "end (s)": round(float(w.end_s), 2),
            "score": None if w.score is None else round(float(w.score), 3),
            "P(bona fide)": None if w.prob_bonafide is None else round(float(w.prob_bonafide), 3),
            "decision": DECISION_LABELS.get(w.decision, w.decision),
        }
        for w in analysis.windows
    ]
