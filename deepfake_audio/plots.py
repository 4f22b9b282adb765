"""Plot data for DVC and PNG figures for reports.

Conventions as in :mod:`deepfake_audio.metrics`: label 1 = bona fide, 0 = spoof, higher score =
more bona fide, a clip is predicted spoof when ``score < threshold``. All rates are fractions.

The ``*_table`` functions return small DataFrames meant to be written as CSV/JSON and drawn by
``dvc plots`` (ROC: ``fpr``/``tpr``; DET: ``fpr_probit``/``fnr_probit``; confusion:
``actual``/``predicted``).

The ``save_*_png`` functions draw on :class:`matplotlib.figure.Figure` objects rather than pyplot:
such figures never enter pyplot's global figure registry (nothing to close, nothing leaks, no
interactive backend is touched) and are rendered by Agg when saved as PNG. Output is
byte-deterministic for identical inputs and library versions: the rc style is pinned to
matplotlib's defaults and no software/date metadata is written. Files are written atomically.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, PercentFormatter
from scipy.stats import norm
from sklearn.metrics import roc_auc_score, roc_curve

from deepfake_audio.metrics import ArrayLike, compute_eer, det_curve, validate_scores

__all__ = [
    "CLASS_NAMES",
    "DET_TICKS_PERCENT",
    "confusion_table",
    "det_table",
    "roc_table",
    "save_attack_eer_png",
    "save_comparison_png",
    "save_confusion_png",
    "save_cross_corpus_png",
    "save_det_png",
    "save_models_roc_det_png",
    "save_roc_png",
    "save_score_hist_png",
]

DPI = 120
CLASS_NAMES = ("bonafide", "spoof")
"""Class names in display order; index 0 is label 1 (bona fide), index 1 is label 0 (spoof)."""
DET_TICKS_PERCENT = (0.1, 0.5, 1, 2, 5, 10, 20, 40)
DET_LIMITS = (0.0005, 0.6)
"""DET axis range as fractions: a little beyond the outer ticks on both sides."""

Curves = Mapping[str, tuple[ArrayLike, ArrayLike]]

_RC = {
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.3,
    "grid.linestyle": ":",
    "legend.fontsize": 8,
    "legend.framealpha": 0.9,
    "axes.titlesize": 11,
}


# ---------------------------------------------------------------- tables


def _downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` points spread evenly along a polyline.

    Spacing is by cumulative path length in the given coordinates, so steep and flat parts of a
    curve both keep detail. The first and last points are always kept; indices are increasing.
    """
    n = x.size
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    step = np.hypot(np.diff(x), np.diff(y))
    dist = np.concatenate([[0.0], np.cumsum(step)])
    inner = np.linspace(0.0, dist[-1], max_points)[1:-1]
    picked = np.searchsorted(dist, inner, side="left").clip(0, n - 1)
    return np.unique(np.concatenate([[0], picked, [n - 1]]))


def _finite_thresholds(thresholds: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Replace infinite thresholds by the nearest float that makes the same decisions.

    ``+inf`` (accept nothing) becomes the next float above the highest score and ``-inf`` (accept
    everything) the lowest score, so tables stay valid JSON.
    """
    out = thresholds.astype(np.float64, copy=True)
    out[np.isposinf(out)] = np.nextafter(scores.max(), np.inf)
    out[np.isneginf(out)] = scores.min()
    return out


def roc_table(labels: ArrayLike, scores: ArrayLike, *, max_points: int = 400) -> pd.DataFrame:
    """ROC curve with bona fide as the positive class.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, higher = more bona fide.
        max_points: upper bound on the number of rows (at least 2).

    Returns:
        DataFrame with columns ``fpr`` (spoof accepted), ``tpr`` (bona fide accepted) and
        ``threshold`` (accept when ``score >= threshold``; finite), at most ``max_points``
        rows, from (0, 0) to (1, 1), non-decreasing in ``fpr`` and ``tpr``.
    """
    y, s = validate_scores(labels, scores)
    fpr, tpr, thr = roc_curve(y, s, pos_label=1, drop_intermediate=True)
    keep = _downsample(fpr, tpr, max_points)
    return pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep], "threshold": _finite_thresholds(thr, s)[keep]})


def _probit(p: np.ndarray, eps: float) -> np.ndarray:
    return norm.ppf(np.clip(p, eps, 1.0 - eps))


def det_table(labels: ArrayLike, scores: ArrayLike, *, max_points: int = 400) -> pd.DataFrame:
    """DET curve: both error rates against each other, plus normal-deviate coordinates.

    Rates of exactly 0 or 1 have no finite normal deviate; they are clipped to half a trial of
    the class concerned (``0.5 / n_spoof`` for ``fpr``, ``0.5 / n_bonafide`` for ``fnr``), which
    lies beyond every attainable non-zero rate and so never moves a real point.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, higher = more bona fide.
        max_points: upper bound on the number of rows (at least 2).

    Returns:
        DataFrame with columns ``fpr`` (false acceptance of spoof), ``fnr`` (false rejection of
        bona fide), ``fpr_probit``, ``fnr_probit`` (``scipy.stats.norm.ppf`` of the clipped
        rates, finite) and ``threshold`` (finite); rows ordered by increasing ``fpr``, at most
        ``max_points`` of them, first and last kept.
    """
    y, s = validate_scores(labels, scores)
    frr, far, thr = det_curve(y, s)
    # det_curve runs from low to high thresholds (far falling); flip so fpr rises as in ROC.
    fpr, fnr, thr = far[::-1], frr[::-1], _finite_thresholds(thr[::-1], s)
    n_bona = int(np.sum(y == 1))
    fpr_probit = _probit(fpr, 0.5 / (y.size - n_bona))
    fnr_probit = _probit(fnr, 0.5 / n_bona)
    keep = _downsample(fpr_probit, fnr_probit, max_points)
    return pd.DataFrame(
        {
            "fpr": fpr[keep],
            "fnr": fnr[keep],
            "fpr_probit": fpr_probit[keep],
            "fnr_probit": fnr_probit[keep],
            "threshold": thr[keep],
        }
    )


def _check_threshold(threshold: float) -> float:
    thr = float(threshold)
    if not np.isfinite(thr):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    return thr


def confusion_table(labels: ArrayLike, scores: ArrayLike, *, threshold: float) -> pd.DataFrame:
    """Per-clip actual and predicted class names for DVC's ``confusion`` template.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, higher = more bona fide.
        threshold: predicted spoof when ``score < threshold`` (score units).

    Returns:
        DataFrame of ``n`` rows in input order, columns ``actual`` and ``predicted`` holding
        ``"bonafide"`` or ``"spoof"``.
    """
    y, s = validate_scores(labels, scores)
    thr = _check_threshold(threshold)
    bona, spoof = CLASS_NAMES
    return pd.DataFrame(
        {
            "actual": np.where(y == 1, bona, spoof),
            "predicted": np.where(s < thr, spoof, bona),
        }
    )


# ---------------------------------------------------------------- figures


@contextmanager
def _style() -> Iterator[None]:
    # Pinning to matplotlib's defaults keeps figures independent of any user matplotlibrc.
    with mpl.style.context("default"), mpl.rc_context(_RC):
        yield


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` as PNG to ``path`` atomically (temp file in the same folder, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fig.savefig(
                fh,
                format="png",
                dpi=DPI,
                bbox_inches="tight",
                # No "Software" chunk: the same figure gives the same bytes.
                metadata={"Software": None},
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        fig.clear()


def _check_curves(curves: Curves) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if not curves:
        raise ValueError("curves is empty: need at least one name -> (labels, scores)")
    return [(str(name), *validate_scores(lab, sc)) for name, (lab, sc) in curves.items()]


def _draw_roc(ax: Axes, checked: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """ROC lines (labelled with AUC and EER), the chance diagonal, limits and axis labels."""
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance")
    for k, (name, y, s) in enumerate(checked):
        fpr, tpr, _ = roc_curve(y, s, pos_label=1)
        auc = roc_auc_score(y, s)
        eer, _ = compute_eer(y, s)
        ax.plot(fpr, tpr, color=f"C{k % 10}", linewidth=1.5, label=f"{name} (AUC {auc:.3f}, EER {eer:.2%})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (spoof accepted as bona fide)")
    ax.set_ylabel("True positive rate (bona fide accepted)")


def _draw_det(ax: Axes, checked: list[tuple[str, np.ndarray, np.ndarray]]) -> list[Line2D]:
    """DET lines (labelled with EER) on normal-deviate axes, EER points, FAR = FRR diagonal.

    Returns:
        The curve of each score set, in order (for a legend without the diagonal or markers).
    """
    lo, hi = norm.ppf(DET_LIMITS)
    # Zero rates go far outside the axes so the line runs off the edge instead of stopping short.
    eps = 1e-9
    ax.plot([lo, hi], [lo, hi], color="0.6", linestyle="--", linewidth=1, label="FAR = FRR")
    lines = []
    for k, (name, y, s) in enumerate(checked):
        frr, far, _ = det_curve(y, s)
        eer, _ = compute_eer(y, s)
        colour = f"C{k % 10}"  # explicit, so a model has the same colour in every panel
        (line,) = ax.plot(
            _probit(far, eps), _probit(frr, eps), color=colour, linewidth=1.5, label=f"{name} (EER {eer:.2%})"
        )
        lines.append(line)
        ax.plot(
            _probit(np.array([eer]), eps),
            _probit(np.array([eer]), eps),
            marker="o",
            markersize=6,
            markerfacecolor="white",
            markeredgewidth=1.5,
            color=colour,
            linestyle="none",
            clip_on=True,
        )
    ticks = norm.ppf(np.asarray(DET_TICKS_PERCENT) / 100.0)
    labels = [f"{t:g}" for t in DET_TICKS_PERCENT]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_ticklabels(labels)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("False acceptance rate: spoof accepted (%)")
    ax.set_ylabel("False rejection rate: bona fide rejected (%)")
    return lines


def save_roc_png(path: str | os.PathLike[str], curves: Curves, *, title: str) -> None:
    """ROC curves (bona fide positive) of one or more score sets, AUC and EER in the legend.

    Args:
        path: output PNG file; parent folders are created.
        curves: ``{name: (labels, scores)}``, each of shape ``(n_i,)``; drawn in dict order.
        title: figure title.
    """
    checked = _check_curves(curves)
    with _style():
        fig = Figure(figsize=(5.5, 5.0))
        ax = fig.add_subplot()
        _draw_roc(ax, checked)
        ax.set_title(title)
        ax.legend(loc="lower right")
        _save(fig, path)


def save_det_png(path: str | os.PathLike[str], curves: Curves, *, title: str) -> None:
    """DET curves on normal-deviate axes with percent ticks; the EER point marked on each.

    Args:
        path: output PNG file; parent folders are created.
        curves: ``{name: (labels, scores)}``, each of shape ``(n_i,)``; drawn in dict order.
        title: figure title.
    """
    checked = _check_curves(curves)
    with _style():
        fig = Figure(figsize=(5.5, 5.0))
        ax = fig.add_subplot()
        _draw_det(ax, checked)
        ax.set_title(title)
        # No fixed corner is free for every detector; "best" is deterministic.
        ax.legend(loc="best")
        _save(fig, path)


def save_models_roc_det_png(path: str | os.PathLike[str], curves: Curves, *, title: str) -> None:
    """ROC (left) and DET (right) of several models in one figure, one shared legend below.

    Each model keeps its colour in both panels; the legend gives its EER. The panels are drawn
    exactly as by :func:`save_roc_png` and :func:`save_det_png`.

    Args:
        path: output PNG file; parent folders are created.
        curves: ``{model: (labels, scores)}``, each of shape ``(n_i,)``; drawn in dict order.
        title: figure title.

    Raises:
        ValueError: ``curves`` is empty or any score set is invalid (see
            :func:`deepfake_audio.metrics.validate_scores`).
    """
    checked = _check_curves(curves)
    with _style():
        fig = Figure(figsize=(11.0, 5.6), layout="constrained")
        ax_roc, ax_det = fig.subplots(1, 2)
        _draw_roc(ax_roc, checked)
        handles = _draw_det(ax_det, checked)
        ax_roc.set_title("ROC")
        ax_det.set_title("DET")
        fig.suptitle(title)
        # The DET lines carry "name (EER x%)"; the diagonals explain themselves and stay out.
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3))
        _save(fig, path)


def _confusion_counts(y: np.ndarray, s: np.ndarray, thr: float) -> np.ndarray:
    """2x2 counts, rows = actual, columns = predicted, both in :data:`CLASS_NAMES` order."""
    actual_bona = y == 1
    pred_bona = s >= thr
    return np.array(
        [
            [np.sum(actual_bona & pred_bona), np.sum(actual_bona & ~pred_bona)],
            [np.sum(~actual_bona & pred_bona), np.sum(~actual_bona & ~pred_bona)],
        ],
        dtype=np.int64,
    )


def save_confusion_png(
    path: str | os.PathLike[str],
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    threshold: float,
    title: str,
) -> None:
    """Confusion-matrix heatmap: counts and row percentages, coloured by row percentage.

    Colouring by row percentage keeps the minority class readable on imbalanced sets.

    Args:
        path: output PNG file; parent folders are created.
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, higher = more bona fide.
        threshold: predicted spoof when ``score < threshold``.
        title: figure title.
    """
    # seaborn imports pyplot; keep that out of module import time.
    import seaborn as sns

    y, s = validate_scores(labels, scores)
    thr = _check_threshold(threshold)
    counts = _confusion_counts(y, s, thr)
    pct = 100.0 * counts / counts.sum(axis=1, keepdims=True)  # each class has >= 1 row
    annot = np.array([[f"{counts[i, j]:,}\n{pct[i, j]:.1f}%" for j in range(2)] for i in range(2)])
    with _style():
        fig = Figure(figsize=(4.8, 4.0))
        ax = fig.add_subplot()
        sns.heatmap(
            pct,
            annot=annot,
            fmt="",
            cmap="Blues",
            vmin=0.0,
            vmax=100.0,
            square=True,
            linewidths=1.0,
            linecolor="white",
            xticklabels=CLASS_NAMES,
            yticklabels=CLASS_NAMES,
            cbar_kws={"label": "% of actual class"},
            annot_kws={"fontsize": 11},
            ax=ax,
        )
        ax.set_xlabel(f"Predicted (spoof if score < {thr:.4g})")
        ax.set_ylabel("Actual")
        ax.grid(False)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_title(title)
        _save(fig, path)


def save_score_hist_png(
    path: str | os.PathLike[str],
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    threshold: float,
    title: str,
) -> None:
    """Score histograms of both classes (as densities, shared bins) with the threshold line.

    Args:
        path: output PNG file; parent folders are created.
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, higher = more bona fide.
        threshold: decision threshold drawn as a vertical line (score units).
        title: figure title.
    """
    y, s = validate_scores(labels, scores)
    thr = _check_threshold(threshold)
    lo, hi = float(s.min()), float(s.max())
    if lo == hi:  # all scores equal: give the single bin some width
        lo, hi = lo - 0.5, hi + 0.5
    # numpy's "auto" rule, capped so huge eval sets do not turn into hairlines.
    n_bins = int(np.clip(np.histogram_bin_edges(s, bins="auto").size - 1, 10, 80))
    edges = np.linspace(lo, hi, n_bins + 1)
    with _style():
        fig = Figure(figsize=(6.4, 4.0))
        ax = fig.add_subplot()
        for label, name, color in ((1, "bona fide", "C0"), (0, "spoof", "C3")):
            part = s[y == label]
            ax.hist(
                part,
                bins=edges,
                density=True,
                alpha=0.5,
                color=color,
                edgecolor=color,
                linewidth=0.5,
                label=f"{name} (n={part.size:,})",
            )
        ax.axvline(thr, color="black", linestyle="--", linewidth=1.2, label=f"threshold {thr:.4g}")
        ax.set_xlabel("Score (higher = more bona fide)")
        ax.set_ylabel("Density")
        ax.set_title(title)
        ax.legend(loc="best")
        _save(fig, path)


def save_comparison_png(
    path: str | os.PathLike[str],
    table: pd.DataFrame,
    *,
    metric: str = "eer",
    title: str | None = None,
) -> None:
    """Grouped bar chart of one metric: a group per eval set, a bar per model.

    Args:
        path: output PNG file; parent folders are created.
        table: one row per (model, eval set) with columns ``model``, ``eval_set`` and
            ``metric``; values are fractions, shown as percentages. Missing or NaN
            combinations leave a gap. Models and eval sets keep their first-appearance order.
        metric: column to plot.
        title: figure title; defaults to ``"<metric> by model and evaluation set"``.

    Raises:
        ValueError: a missing column, an empty table, non-numeric values, or a repeated
            (model, eval set) pair.
    """
    missing = [c for c in ("model", "eval_set", metric) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; has {list(table.columns)}")
    if table.empty:
        raise ValueError("table is empty")
    dupes = table.duplicated(["model", "eval_set"])
    if dupes.any():
        pairs = table.loc[dupes, ["model", "eval_set"]].astype(str).values.tolist()
        raise ValueError(f"repeated (model, eval_set) rows: {pairs[:5]}")
    try:
        values = pd.to_numeric(table[metric], errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {metric!r} must be numeric: {exc}") from None

    models = list(dict.fromkeys(table["model"].astype(str)))
    sets = list(dict.fromkeys(table["eval_set"].astype(str)))
    grid = pd.DataFrame(np.nan, index=sets, columns=models)
    for m, e, v in zip(table["model"].astype(str), table["eval_set"].astype(str), values):
        grid.loc[e, m] = v

    width = 0.8 / len(models)
    x = np.arange(len(sets), dtype=float)
    filled = grid.to_numpy()[grid.notna().to_numpy()]
    top = max(float(filled.max()), 0.0) if filled.size else 0.0
    bottom = min(float(filled.min()), 0.0) if filled.size else 0.0
    with _style():
        fig = Figure(figsize=(max(6.0, 1.0 + len(sets) * (0.5 + 0.45 * len(models))), 4.2))
        ax = fig.add_subplot()
        for k, model in enumerate(models):
            heights = grid[model].to_numpy()
            bars = ax.bar(x - 0.4 + width * (k + 0.5), np.nan_to_num(heights, nan=0.0), width=width * 0.95, label=model)
            texts = ["" if np.isnan(v) else f"{v:.1%}" for v in heights]
            ax.bar_label(bars, labels=texts, padding=2, fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(sets, rotation=20 if len(sets) > 4 else 0, ha="right" if len(sets) > 4 else "center")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        # Headroom for the value labels; a metric that is 0 everywhere still gets an axis.
        ax.set_ylim(bottom * 1.18, top * 1.18 if top > 0 else 1.0)
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("Evaluation set")
        ax.set_ylabel(metric)
        ax.set_title(title if title is not None else f"{metric} by model and evaluation set")
        ax.legend(title="model", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _save(fig, path)


def save_cross_corpus_png(
    path: str | os.PathLike[str], grid: pd.DataFrame, *, title: str, secondary: pd.DataFrame | None = None
) -> None:
    """Heatmap of a models x sets grid of EERs: one row per model, one column per scored set.

    Args:
        path: output PNG file; parent folders are created.
        grid: EER fractions, index = models, columns = sets; NaN cells (a set a model was not
            scored on, or one without both classes) are left blank.
        title: figure title.
        secondary: optional grid of the same shape whose value is written under each EER
            (e.g. minDCF), to three decimals.

    Raises:
        ValueError: an empty grid, non-numeric values, or a ``secondary`` of another shape.
    """
    if grid.empty:
        raise ValueError("grid is empty")
    values = grid.to_numpy(dtype=float)
    if secondary is not None and secondary.shape != grid.shape:
        raise ValueError(f"secondary has shape {secondary.shape}, grid {grid.shape}")
    n_models, n_sets = values.shape
    with _style():
        fig = Figure(figsize=(2.0 + 1.25 * n_sets, 1.2 + 0.5 * n_models), layout="constrained")
        ax = fig.add_subplot()
        # 0 (perfect) is pale, 50% (chance) and worse saturate: the scale is fixed so that two
        # reports can be compared by eye.
        image = ax.imshow(np.ma.masked_invalid(values), cmap="magma_r", vmin=0.0, vmax=0.5, aspect="auto")
        for i in range(n_models):
            for j in range(n_sets):
                if np.isnan(values[i, j]):
                    continue
                text = f"{values[i, j]:.1%}"
                if secondary is not None and not np.isnan(float(secondary.iat[i, j])):
                    text += f"\n{float(secondary.iat[i, j]):.3f}"
                ax.text(
                    j, i, text, ha="center", va="center", fontsize=7, color="white" if values[i, j] > 0.3 else "black"
                )
        ax.set_xticks(np.arange(n_sets), labels=[str(c) for c in grid.columns], rotation=20, ha="right")
        ax.set_yticks(np.arange(n_models), labels=[str(m) for m in grid.index])
        ax.grid(False)
        ax.set_xlabel("scored set")
        ax.set_title(title)
        bar = fig.colorbar(image, ax=ax, format=PercentFormatter(xmax=1.0))
        bar.set_label("EER" + (" (minDCF below)" if secondary is not None else ""))
        _save(fig, path)


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value: ``A2 < A10``, case-insensitive otherwise."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text.casefold()) if part
    )


def _check_rate(where: str, value: float) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be an EER fraction in [0, 1], got {value!r}") from None
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        raise ValueError(f"{where} must be an EER fraction in [0, 1], got {value!r}")
    return rate


def save_attack_eer_png(
    path: str | os.PathLike[str],
    per_attack: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    pooled: Mapping[str, float] | None = None,
) -> None:
    """Horizontal bar chart of EER per attack, one bar colour per set, value at each bar end.

    Attacks run top to bottom in natural order (``A2`` before ``A10``) over the union of all
    sets; a set without some attack simply has no bar there, and the bars present in a row are
    centred on it. The figure grows in height with the number of attacks.

    Args:
        path: output PNG file; parent folders are created.
        per_attack: ``{set_name: {attack_id: eer}}`` with EERs as fractions in [0, 1]; sets
            are drawn (and coloured) in dict order.
        title: figure title.
        pooled: optional ``{set_name: eer}``, the pooled EER of a set over all its attacks,
            drawn as a dashed vertical line in the set's colour.

    Raises:
        ValueError: ``per_attack`` is empty, a set has no attacks, an EER is not a fraction in
            [0, 1], or ``pooled`` names a set missing from ``per_attack``.
    """
    if not per_attack:
        raise ValueError("per_attack is empty: need at least one set -> {attack_id: eer}")
    rates: dict[str, dict[str, float]] = {}
    for set_name, attacks in per_attack.items():
        if not attacks:
            raise ValueError(f"per_attack[{set_name!r}] has no attacks")
        rates[str(set_name)] = {str(a): _check_rate(f"per_attack[{set_name!r}][{a!r}]", v) for a, v in attacks.items()}
    pooled_rates: dict[str, float] = {}
    for set_name, value in (pooled or {}).items():
        if str(set_name) not in rates:
            raise ValueError(f"pooled names set {set_name!r}, not in per_attack {list(rates)}")
        pooled_rates[str(set_name)] = _check_rate(f"pooled[{set_name!r}]", value)

    sets = list(rates)
    attacks = sorted({a for r in rates.values() for a in r}, key=_natural_key)
    rows = {a: [name for name in sets if a in rates[name]] for a in attacks}
    # Sets with disjoint attacks (test vs a benchmark) share no row, so each bar gets full height.
    per_row = max(len(present) for present in rows.values())
    bar_h = 0.8 / per_row
    top = 100.0 * max([max(r.values()) for r in rates.values()] + list(pooled_rates.values()))
    with _style():
        # One row per attack, each as tall as its bars need; a little extra for title and axis.
        fig = Figure(figsize=(7.0, 1.3 + len(attacks) * (0.1 + 0.22 * per_row)))
        ax = fig.add_subplot()
        colours = {name: f"C{k % 10}" for k, name in enumerate(sets)}
        for row, (attack, present) in enumerate(rows.items()):
            for k, name in enumerate(present):
                value = 100.0 * rates[name][attack]
                y = row + bar_h * (k - (len(present) - 1) / 2)
                bars = ax.barh(y, value, height=bar_h * 0.9, color=colours[name])
                # The white box keeps a pooled line crossing the label from striking it through.
                ax.bar_label(
                    bars,
                    labels=[f"{value:.2f}"],
                    padding=2,
                    fontsize=7,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"},
                )
        for name, value in pooled_rates.items():
            # Only across the rows of the set's own attacks, so it cannot be read as another's.
            own = [row for row, present in enumerate(rows.values()) if name in present]
            ax.vlines(
                100.0 * value,
                min(own) - 0.5,
                max(own) + 0.5,
                color=colours[name],
                linestyle="--",
                linewidth=1.2,
                zorder=1.5,
            )
        ax.set_yticks(np.arange(len(attacks)), attacks)
        ax.set_ylim(len(attacks) - 0.5, -0.5)  # first attack on top
        # Headroom for the value labels; an all-zero chart still gets an axis.
        ax.set_xlim(0.0, top * 1.15 if top > 0 else 1.0)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("EER (%)")
        ax.set_ylabel("Attack")
        ax.set_title(title)
        handles = [Patch(color=colours[name], label=name) for name in sets]
        handles += [
            Line2D([], [], color=colours[name], linestyle="--", label=f"{name} pooled ({v:.2%})")
            for name, v in pooled_rates.items()
        ]
        if len(sets) > 1 or pooled_rates:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _save(fig, path)
