"""Example log-mel spectrograms per class and attack: what the model sees, as PNG figures.

One figure per group (``bonafide.png``, then one per spoof attack, e.g. ``A01.png``) shows
``per_group`` clips side by side; ``overview.png`` puts the first clip of every group in one grid
so the contrast between bona fide speech and each attack shows at a glance (at most
``OVERVIEW_MAX_PANELS`` panels: bona fide, then attacks present in train/dev/test, then attacks
found only in evaluation sets).

Every panel is the log-mel power in dB computed exactly as the features stage computes it
(:func:`log_mel`: the extractor's STFT and mel basis, ``librosa.power_to_db`` with its defaults,
i.e. dB re 1.0 clipped 80 dB below the clip's peak), of the clip as the extractor loads it
(decoded, resampled, cropped/padded to ``audio.duration_s``). Colours use the perceptual
``magma`` map on one dB range per figure, so panels of a figure compare directly.

Choice of clips: deterministic and independent of manifest row order. Within a group candidates
rank by split (``test``, then ``dev``, then ``train``, then evaluation-only sets ``eval:<name>``
and any other split name), and within a split by a seeded hash of ``utt_id``. Evaluation-only
clips are drawn only for a group with no usable clip in train/dev/test (typically an attack that
exists only in an evaluation set); they never fill up a group that has fewer than ``per_group``
usable train/dev/test clips. A clip that fails to load (the
:class:`~deepfake_audio.errors.AudioError` family) is skipped and the next candidate taken.
Augmented copies (rows with ``aug_seed >= 0``) are never drawn: the figures show source audio.

Figures are byte-deterministic for identical inputs and library versions (see
:mod:`deepfake_audio.plots`, whose rc style and atomic PNG writer are reused here).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from deepfake_audio.errors import AudioError
from deepfake_audio.features import FeatureExtractor
from deepfake_audio.params import AudioParams, FeatureParams
from deepfake_audio.plots import _save, _style

__all__ = [
    "BONAFIDE_GROUP",
    "LOG_MEL_KEYS",
    "OVERVIEW_NAME",
    "Example",
    "choose_examples",
    "group_names",
    "log_mel",
    "log_mel_features",
    "write_examples",
]

log = logging.getLogger(__name__)

BONAFIDE_GROUP = "bonafide"
UNKNOWN_ATTACK_GROUP = "spoof"
"""Group of spoof rows whose attack is unknown (``-``, empty or missing)."""
OVERVIEW_NAME = "overview"
CMAP = "magma"
DB_RANGE = 80.0
"""Colour range below the figure's loudest cell, the same as ``power_to_db``'s ``top_db``."""
SPLIT_RANK = {"test": 0, "dev": 1, "train": 2}
EVAL_RANK = 3
OTHER_RANK = 4
REQUIRED_COLUMNS = ("utt_id", "path", "label", "attack", "source", "split")
PANEL_SIZE_IN = (3.6, 2.6)
OVERVIEW_COLUMNS = 4
OVERVIEW_MAX_PANELS = 24
"""The overview stays readable (and a few MB at most) with hundreds of attacks: bona fide, then
attacks with train/dev/test clips, then evaluation-only ones, up to this many panels. Every group
still gets its own figure."""
TITLE_CHARS = 30
FREQ_TICKS_HZ = (0, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
LOG_MEL_KEYS = ("n_fft", "hop_length", "n_mels", "fmin")
"""The ``features`` keys the figures depend on; the ``examples`` stage's params in dvc.yaml list
exactly these (with ``audio``), so changing an MFCC option does not redraw them."""


@dataclasses.dataclass(frozen=True)
class Example:
    """One drawn clip: its manifest fields and its log-mel (float32, dB, ``(n_mels, n_frames)``)."""

    group: str
    utt_id: str
    source: str
    split: str
    duration_s: float
    """Length of the file before cropping/padding to ``audio.duration_s`` (NaN when unknown)."""
    logmel: np.ndarray


def log_mel(extractor: FeatureExtractor, y: np.ndarray) -> np.ndarray:
    """The log-mel spectrogram the features stage computes.

    Args:
        extractor: supplies the STFT (``n_fft``, ``hop_length``, Hann window, centred frames) and
            the mel basis.
        y: float32 samples at ``extractor.audio.sample_rate``, shape ``(n,)``; normally
            ``extractor.load(path)`` (``n == audio.n_samples``).

    Returns:
        float32 dB (re power 1.0, floored 80 dB below the clip's peak), shape
        ``(n_mels, 1 + n // hop_length)``; row 0 is the lowest band.
    """
    return extractor.log_mel(y).astype(np.float32)


def log_mel_features(features: FeatureParams) -> FeatureParams:
    """``features`` reduced to what the log-mel reads: :data:`LOG_MEL_KEYS`, the ``log_mel`` group alone.

    The figures are the same as with the full params (the log-mel uses nothing else), but the
    extractor then neither reads nor checks the other groups' options, so a figure can depend on
    no other key.
    """
    kept = {key: getattr(features, key) for key in LOG_MEL_KEYS}
    return FeatureParams(**kept, frame_groups=("log_mel",), utterance_groups=())


def _sanitise(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


def _short_hash(text: str, n: int = 6) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()[:n]


def _group_of(label: str, attack: object) -> str:
    if label == "bonafide":
        return BONAFIDE_GROUP
    if attack is None or (isinstance(attack, float) and np.isnan(attack)) or str(attack).strip() in ("", "-"):
        return UNKNOWN_ATTACK_GROUP
    attack = str(attack)
    # An attack named like a class must not merge into that class's group.
    return f"spoof:{attack}" if attack in (BONAFIDE_GROUP, UNKNOWN_ATTACK_GROUP) else attack


def group_names(groups: list[str]) -> dict[str, str]:
    """File stems (``[A-Za-z0-9_-]+``, unique, never ``overview``) of groups, in the given order.

    A stem that sanitising makes collide with an earlier one (or with ``overview``), ignoring
    case, gets a short hash of the raw name appended, so two attacks never share a file, not even
    on a case-insensitive file system (``no_ASR`` and ``no_asr``).
    """
    taken = {OVERVIEW_NAME}
    out: dict[str, str] = {}
    for group in groups:
        stem = _sanitise(group)
        if stem.lower() in taken:
            stem = f"{stem}-{_short_hash(group)}"
        taken.add(stem.lower())
        out[group] = stem
    return out


def _split_rank(split: str) -> int:
    if split in SPLIT_RANK:
        return SPLIT_RANK[split]
    return EVAL_RANK if split.startswith("eval:") else OTHER_RANK


def _ranked(manifest: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Rows with ``group``, in drawing order: group order, then split preference, then seeded hash."""
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}; has {list(manifest.columns)}")
    df = manifest
    if "aug_seed" in df.columns:
        df = df[df["aug_seed"] < 0]
    attacks = df["attack"].tolist()
    duration = df["duration_s"].astype(float).tolist() if "duration_s" in df.columns else [np.nan] * len(df)
    df = df.loc[:, list(REQUIRED_COLUMNS)].astype({c: str for c in ("utt_id", "path", "label", "source", "split")})
    bad = sorted(set(df["label"]) - {"bonafide", "spoof"})
    if bad:
        raise ValueError(f"manifest label must be 'bonafide' or 'spoof'; found {bad[:5]}")
    df = df.assign(
        duration_s=duration,
        group=[_group_of(lab, att) for lab, att in zip(df["label"], attacks)],
        split_rank=[_split_rank(s) for s in df["split"]],
        # blake2b rather than hash(): the same order in every process, whatever PYTHONHASHSEED.
        key=[hashlib.blake2b(f"{seed}\0{u}".encode(), digest_size=8).hexdigest() for u in df["utt_id"]],
    )
    spoof_groups = sorted(set(df["group"]) - {BONAFIDE_GROUP, UNKNOWN_ATTACK_GROUP})
    order = [g for g in [BONAFIDE_GROUP, *spoof_groups, UNKNOWN_ATTACK_GROUP] if g in set(df["group"])]
    df = df.assign(group_rank=df["group"].map({g: i for i, g in enumerate(order)}))
    # utt_id and path break the (astronomically unlikely) hash ties: still row-order independent.
    return df.sort_values(["group_rank", "split_rank", "key", "utt_id", "path"], kind="stable")


def choose_examples(
    manifest: pd.DataFrame, *, extractor: FeatureExtractor, per_group: int = 2, seed: int = 0
) -> tuple[dict[str, list[Example]], dict[str, int]]:
    """Pick, load and compute up to ``per_group`` examples of every group (see the module doc).

    Returns:
        ``(examples, skipped)``: group -> examples in drawing order (bona fide first, then spoof
        attacks sorted, then ``spoof`` for unknown attacks; a group with no loadable clip maps
        to ``[]``), and the count of unloadable clips skipped per reason.
    """
    if per_group < 1:
        raise ValueError(f"per_group must be at least 1, got {per_group}")
    examples: dict[str, list[Example]] = {}
    skipped: dict[str, int] = {}
    for _, rows in _ranked(manifest, seed).groupby("group_rank", sort=True):
        name = str(rows["group"].iloc[0])
        chosen: list[Example] = []
        cols = ["utt_id", "path", "source", "split", "duration_s", "split_rank"]
        for utt_id, path, source, split, duration_s, rank in rows[cols].itertuples(index=False):
            if rank >= EVAL_RANK and chosen and chosen[0].split in SPLIT_RANK:
                break  # evaluation-only clips stand in only for a group with no usable train/dev/test clip
            try:
                y = extractor.load(path)
            except AudioError as exc:
                skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
                log.warning("examples: skipping %s (%s): %s", utt_id, exc.reason, exc)
                continue
            chosen.append(Example(name, utt_id, source, split, float(duration_s), log_mel(extractor, y)))
            if len(chosen) == per_group:
                break
        examples[name] = chosen
    return examples, skipped


# ---------------------------------------------------------------- drawing


def _short(text: str, n: int = TITLE_CHARS) -> str:
    return text if len(text) <= n else "..." + text[-(n - 3) :]


def _hz_label(hz: float) -> str:
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def _draw_panel(
    ax,
    ex: Example,
    *,
    extractor: FeatureExtractor,
    vmin: float,
    vmax: float,
    title: str,
    xlabel: bool = True,
    ylabel: bool = True,
):
    """Draw one log-mel with a time axis in s and a mel-spaced frequency axis labelled in Hz."""
    import librosa

    sr, hop = extractor.audio.sample_rate, extractor.params.hop_length
    n_mels, n_frames = ex.logmel.shape
    fmin, fmax = extractor.params.fmin, sr / 2.0  # the mel basis's own range (librosa's default fmax)
    # Bands are equally spaced in mel: band k is centred at mel_lo + (k + 1) * step.
    mel_lo, mel_hi = librosa.hz_to_mel(fmin), librosa.hz_to_mel(fmax)
    step = (mel_hi - mel_lo) / (n_mels + 1)
    y0, y1 = mel_lo + 0.5 * step, mel_hi - 0.5 * step
    frame_s = hop / sr  # frame i is centred at i * hop / sr
    im = ax.imshow(
        ex.logmel,
        origin="lower",
        aspect="auto",
        cmap=CMAP,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        extent=(-0.5 * frame_s, (n_frames - 0.5) * frame_s, y0, y1),
    )
    im.set_label(ex.utt_id)  # not drawn; lets a test find which clip a panel shows
    ticks = [hz for hz in FREQ_TICKS_HZ if y0 <= librosa.hz_to_mel(hz) <= y1]
    ax.yaxis.set_major_locator(FixedLocator([float(librosa.hz_to_mel(hz)) for hz in ticks]))
    ax.set_yticklabels([_hz_label(hz) for hz in ticks])
    ax.set_xlim(0.0, (n_frames - 1) * frame_s)
    if xlabel:
        ax.set_xlabel("Time (s)")
    if ylabel:
        ax.set_ylabel("Frequency (Hz, mel scale)")
    ax.set_title(title, fontsize=9)
    ax.grid(False)
    return im


def _db_range(examples: list[Example]) -> tuple[float, float]:
    top = max(float(ex.logmel.max()) for ex in examples)
    return top - DB_RANGE, top


def _class_title(group: str) -> str:
    return "bona fide" if group == BONAFIDE_GROUP else f"{group} (spoof)"


def _clip_note(ex: Example, audio: AudioParams) -> str:
    """Source, split and, when the file was shorter or longer than the clip, how it was fitted."""
    note = f"{ex.source}, {ex.split}"
    if np.isfinite(ex.duration_s) and abs(ex.duration_s - audio.duration_s) > 0.5 / audio.sample_rate:
        how = f"{audio.pad}-padded" if ex.duration_s < audio.duration_s else "cropped"
        note += f", {ex.duration_s:.2f} s {how}"
    return note


def _save_group_png(
    path: Path, group: str, examples: list[Example], *, extractor: FeatureExtractor, per_group: int
) -> None:
    vmin, vmax = _db_range(examples)
    w, h = PANEL_SIZE_IN
    with _style():
        fig = Figure(figsize=(w * per_group + 1.0, h + 0.6), layout="constrained")
        axes = fig.subplots(1, per_group, squeeze=False)[0]
        im = None
        for k, ax in enumerate(axes):
            if k < len(examples):
                ex = examples[k]
                im = _draw_panel(
                    ax,
                    ex,
                    extractor=extractor,
                    vmin=vmin,
                    vmax=vmax,
                    ylabel=k == 0,
                    title=f"{_short(ex.utt_id)}\n{_clip_note(ex, extractor.audio)}",
                )
            else:
                ax.set_axis_off()
                ax.text(0.5, 0.5, "no further usable clip", ha="center", va="center", transform=ax.transAxes)
        fig.colorbar(im, ax=list(axes), label="Log-mel power (dB)", fraction=0.05, pad=0.02)
        fig.suptitle(f"{_class_title(group)} - log-mel, {extractor.params.n_mels} bands")
        _save(fig, path)


def _overview_panels(firsts: list[Example]) -> list[Example]:
    """At most ``OVERVIEW_MAX_PANELS`` examples: in-pipeline (train/dev/test) groups first."""
    in_pipeline = [ex for ex in firsts if ex.split in SPLIT_RANK]
    others = [ex for ex in firsts if ex.split not in SPLIT_RANK]
    return (in_pipeline + others)[:OVERVIEW_MAX_PANELS]


def _save_overview_png(path: Path, firsts: list[Example], *, extractor: FeatureExtractor) -> None:
    n_groups = len(firsts)
    firsts = _overview_panels(firsts)
    vmin, vmax = _db_range(firsts)
    n_cols = min(OVERVIEW_COLUMNS, len(firsts))
    n_rows = -(-len(firsts) // n_cols)
    w, h = PANEL_SIZE_IN
    with _style():
        fig = Figure(figsize=(w * n_cols + 1.0, (h + 0.3) * n_rows + 0.6), layout="constrained")
        axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
        im = None
        for k, (ax, ex) in enumerate(zip(axes, firsts)):
            im = _draw_panel(
                ax,
                ex,
                extractor=extractor,
                vmin=vmin,
                vmax=vmax,
                title=f"{_class_title(ex.group)}\n{_short(ex.utt_id)}",
                xlabel=k + n_cols >= len(firsts),
                ylabel=k % n_cols == 0,
            )
        for ax in axes[len(firsts) :]:
            ax.set_axis_off()
        fig.colorbar(
            im,
            ax=list(axes),
            label="Log-mel power (dB)",
            fraction=0.05 / n_cols,
            pad=0.02,
            shrink=min(1.0, 0.5 + 0.1 * n_rows),
            aspect=20 * min(n_rows, 3),
        )
        shown = "" if len(firsts) == n_groups else f"; {len(firsts)} of {n_groups} groups, each has its own figure"
        fig.suptitle(
            f"Bona fide vs spoof attacks - log-mel, {extractor.params.n_mels} bands "
            f"(one example each, shared dB scale{shown})"
        )
        _save(fig, path)


def write_examples(
    manifest: pd.DataFrame,
    *,
    audio: AudioParams,
    features: FeatureParams,
    out_dir: Path,
    per_group: int = 2,
    seed: int = 0,
) -> list[Path]:
    """Write example spectrogram PNGs of bona fide speech and of every spoof attack.

    Args:
        manifest: the split manifest (``utt_id``, ``path``, ``label``, ``attack``, ``source``,
            ``split``; other columns ignored). Paths are opened as given (relative to the
            working directory).
        audio: decoding options, as for the features.
        features: STFT and mel options, as for the features (only :data:`LOG_MEL_KEYS` are read).
        out_dir: created if missing. ``*.png`` files in it that this call does not write are
            deleted (nothing else is touched), so a removed attack leaves no stale figure.
        per_group: clips per group figure.
        seed: picks the clips (see the module doc).

    Returns:
        The written paths: ``<group>.png`` in group order (bona fide, attacks sorted, ``spoof``
        for spoofs of unknown attack), then ``overview.png``; a group with no loadable clip gets
        no figure (and a warning). Empty when nothing could be drawn.

    Raises:
        ValueError: a missing column, a label other than bonafide/spoof, or ``per_group < 1``.
    """
    out_dir = Path(out_dir)
    extractor = FeatureExtractor(audio, log_mel_features(features))
    examples, skipped = choose_examples(manifest, extractor=extractor, per_group=per_group, seed=seed)
    stems = group_names(list(examples))
    written: list[Path] = []
    for group, exs in examples.items():
        if not exs:
            log.warning("examples: group %s has no loadable clip; no figure", group)
            continue
        path = out_dir / f"{stems[group]}.png"
        _save_group_png(path, group, exs, extractor=extractor, per_group=per_group)
        written.append(path)
    firsts = [exs[0] for exs in examples.values() if exs]
    if firsts:
        path = out_dir / f"{OVERVIEW_NAME}.png"
        _save_overview_png(path, firsts, extractor=extractor)
        written.append(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = {p.name for p in written}
    for stale in sorted(out_dir.glob("*.png")):
        if stale.name not in keep and stale.is_file():
            stale.unlink()
    log.info(
        "examples: %d figures of %d groups in %s (%d clips drawn, unloadable skipped: %s)",
        len(written),
        len(firsts),
        out_dir,
        sum(len(e) for e in examples.values()),
        skipped or "none",
    )
    return written
