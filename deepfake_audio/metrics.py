"""Detection metrics for spoofed-speech scores.

Conventions (project-wide): label 1 = bona fide, 0 = spoof; a score is higher for clips that look
more bona fide, as in ASVspoof. A clip is *accepted* as bona fide when ``score >= threshold`` and
*rejected* (predicted spoof) when ``score < threshold``.

Two error rates follow from a threshold:

* FRR, false rejection rate: fraction of bona fide clips with ``score < threshold``;
* FAR, false acceptance rate: fraction of spoof clips with ``score >= threshold``.

The classification metrics in :func:`metric_block` treat **spoof** as the positive class, because
spoof is what a detector is meant to find; ROC AUC treats bona fide as positive so that it agrees
with the score direction (higher = better).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

ArrayLike = Sequence[Any] | np.ndarray

__all__ = ["BONAFIDE_ATTACK", "compute_eer", "det_curve", "metric_block", "validate_scores"]

BONAFIDE_ATTACK = "-"
"""Attack id carried by bona fide rows; such rows never form an attack group."""


def validate_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert one set of labels and scores (shared by metrics and plots).

    Returns:
        ``(labels, scores)`` as 1-D arrays of shape ``(n,)``: labels as ``int64`` in {0, 1},
        scores as ``float64``.

    Raises:
        ValueError: wrong rank, mismatched lengths, non-numeric or non-finite scores, labels
            outside {0, 1}, or a class with no rows.
    """
    y = np.asarray(labels)
    s = np.asarray(scores)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} != {s.shape[0]}")
    if s.dtype.kind not in "biuf":
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite; {int(np.sum(~np.isfinite(s)))} are NaN or inf")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"labels must be numeric 0/1 (1 = bona fide), got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if np.any(bad):
        shown = np.unique(y[bad])[:5].tolist()
        raise ValueError(f"labels must be 0 (spoof) or 1 (bona fide); found {shown}")
    y = y.astype(np.int64)
    n_bona = int(np.sum(y == 1))
    n_spoof = int(y.shape[0] - n_bona)
    if n_bona == 0 or n_spoof == 0:
        raise ValueError(
            f"need at least one bona fide and one spoof row; got {n_bona} bona fide, "
            f"{n_spoof} spoof"
        )
    return y, s


def det_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FRR and FAR at every distinct decision threshold.

    The thresholds are the sorted distinct scores followed by ``+inf``. The ``-inf`` end
    (FRR = 0, FAR = 1) is not listed separately because the lowest score makes the same
    decisions; this keeps every threshold that :func:`compute_eer` can return finite.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, higher = more bona fide.

    Returns:
        ``(frr, far, thresholds)``, each of shape ``(m + 1,)`` where ``m`` is the number of
        distinct scores; ``frr`` is non-decreasing, ``far`` non-increasing, both fractions.
    """
    y, s = validate_scores(labels, scores)
    bona = np.sort(s[y == 1])
    spoof = np.sort(s[y == 0])
    thresholds = np.append(np.unique(s), np.inf)
    # side="left" counts scores strictly below the threshold: those are the rejected ones, so
    # tied scores fall on the same side of every threshold (the official per-element cumsum
    # would split ties and, e.g., give EER 1.0 for all-identical scores).
    frr = np.searchsorted(bona, thresholds, side="left") / bona.size
    far = (spoof.size - np.searchsorted(spoof, thresholds, side="left")) / spoof.size
    return frr, far, thresholds


def compute_eer(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """Equal error rate, computed the ASVspoof way.

    Takes the threshold where ``|FRR - FAR|`` is smallest (the first one on ties, i.e. the
    lowest) and returns the mean of FRR and FAR there, without interpolation.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, finite, higher = more bona fide.

    Returns:
        ``(eer, threshold)``: EER as a fraction in [0, 1] and the (finite) score threshold at
        which it is attained.

    Raises:
        ValueError: invalid input (see module conventions).
    """
    frr, far, thresholds = det_curve(labels, scores)
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2.0), float(thresholds[i])


def _ratio(num: int, den: int) -> float:
    """``num / den`` as a float, 0.0 when ``den`` is 0 (no warning, no NaN)."""
    return float(num) / float(den) if den else 0.0


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 2.0 * precision * recall / total if total > 0 else 0.0


def _per_attack_eer(y: np.ndarray, s: np.ndarray, attacks: ArrayLike) -> dict[str, float]:
    a = np.asarray(attacks, dtype=object)
    if a.ndim != 1 or a.shape[0] != y.shape[0]:
        raise ValueError(f"attacks must be 1-D with {y.shape[0]} entries, got shape {a.shape}")
    a = np.array([str(v) for v in a], dtype=object)
    bona = y == 1
    # Spoof rows tagged "-" belong to no attack; they still count in the pooled EER.
    spoof_attacks = sorted(set(a[(~bona) & (a != BONAFIDE_ATTACK)].tolist()))
    out: dict[str, float] = {}
    for attack in spoof_attacks:
        rows = bona | ((~bona) & (a == attack))
        out[attack] = compute_eer(y[rows], s[rows])[0]
    return out


def metric_block(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    threshold: float | None = None,
    attacks: ArrayLike | None = None,
) -> dict[str, Any]:
    """All headline metrics of one score set as a JSON-serialisable dict.

    Decisions: a clip is predicted spoof when ``score < threshold``. The confusion counts and
    ``precision``/``recall``/``f1`` use **spoof as the positive class**:

    * ``tp``: spoof predicted spoof;  ``fn``: spoof predicted bona fide (false acceptance);
    * ``tn``: bona fide predicted bona fide;  ``fp``: bona fide predicted spoof (false rejection).

    ``*_bonafide`` are the same metrics with bona fide as positive. ``roc_auc`` uses bona fide as
    positive (higher scores = more bona fide). ``far``/``frr`` are the error rates at
    ``threshold``. Every ratio with a zero denominator is 0.0.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, finite, higher = more bona fide.
        threshold: decision threshold in score units; ``None`` uses the EER threshold.
        attacks: optional shape ``(n,)`` attack ids (``"-"`` for bona fide). When given,
            ``per_attack_eer`` maps each spoof attack id to the EER of all bona fide rows vs
            that attack's spoof rows.

    Returns:
        Dict of plain Python floats/ints (and a nested dict for ``confusion`` and
        ``per_attack_eer``); all rates are fractions in [0, 1].

    Raises:
        ValueError: invalid labels/scores, a non-finite threshold, or attacks of the wrong shape.
    """
    y, s = validate_scores(labels, scores)
    eer, eer_thr = compute_eer(y, s)
    if threshold is None:
        thr = eer_thr
    else:
        thr = float(threshold)
        if not np.isfinite(thr):
            raise ValueError(f"threshold must be finite, got {threshold!r}")

    pred_spoof = s < thr
    is_spoof = y == 0
    tp = int(np.sum(is_spoof & pred_spoof))
    fn = int(np.sum(is_spoof & ~pred_spoof))
    fp = int(np.sum(~is_spoof & pred_spoof))
    tn = int(np.sum(~is_spoof & ~pred_spoof))
    n_spoof = tp + fn
    n_bona = tn + fp

    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, n_spoof)
    precision_bona = _ratio(tn, tn + fn)
    recall_bona = _ratio(tn, n_bona)

    block: dict[str, Any] = {
        "eer": eer,
        "eer_threshold": eer_thr,
        "threshold": thr,
        "accuracy": _ratio(tp + tn, y.size),
        "balanced_accuracy": (recall + recall_bona) / 2.0,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "precision_bonafide": precision_bona,
        "recall_bonafide": recall_bona,
        "f1_bonafide": _f1(precision_bona, recall_bona),
        "far": _ratio(fn, n_spoof),
        "frr": _ratio(fp, n_bona),
        "roc_auc": float(roc_auc_score(y, s)),
        "n_bonafide": n_bona,
        "n_spoof": n_spoof,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
    if attacks is not None:
        block["per_attack_eer"] = _per_attack_eer(y, s, attacks)
    return block
