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

The detection cost functions of the ASVspoof 5 evaluation plan (:func:`min_dcf`, :func:`act_dcf`)
use the same decision rule: ``P_miss`` is the FRR above and ``P_fa`` the FAR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

ArrayLike = Sequence[Any] | np.ndarray

__all__ = [
    "ASVSPOOF2019_TDCF_COSTS",
    "ASVSPOOF5_DCF_COSTS",
    "BONAFIDE_ATTACK",
    "act_dcf",
    "bayes_threshold",
    "bootstrap_eer_ci",
    "cllr",
    "compute_eer",
    "det_curve",
    "metric_block",
    "min_cllr",
    "min_dcf",
    "min_tdcf",
    "validate_scores",
]

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
        raise ValueError(f"need at least one bona fide and one spoof row; got {n_bona} bona fide, {n_spoof} spoof")
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
    return _rates(np.sort(s[y == 1]), np.sort(s[y == 0]))


def _rates(bona: np.ndarray, spoof: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`det_curve` on already validated, sorted bona fide and spoof scores."""
    thresholds = np.append(np.unique(np.concatenate([bona, spoof])), np.inf)
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
    return _eer_at(frr, far, thresholds)


def _eer_at(frr: np.ndarray, far: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2.0), float(thresholds[i])


def bootstrap_eer_ci(
    labels: ArrayLike, scores: ArrayLike, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the EER.

    Bona fide and spoof rows are resampled separately (a stratified bootstrap), so every
    replicate keeps both classes at their observed counts.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, finite, higher = more bona fide.
        n_boot: bootstrap replicates, >= 2.
        level: coverage of the interval, in (0, 1).
        seed: seeds the resampling; the same inputs and seed give the same interval.

    Returns:
        ``(low, high)``: EER fractions in [0, 1].
    """
    y, s = validate_scores(labels, scores)
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    bona, spoof = s[y == 1], s[y == 0]
    rng = np.random.default_rng(seed)
    eers = np.empty(n_boot)
    for b in range(n_boot):
        rb = np.sort(bona[rng.integers(0, bona.size, bona.size)])
        rs = np.sort(spoof[rng.integers(0, spoof.size, spoof.size)])
        eers[b] = _eer_at(*_rates(rb, rs))[0]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(eers, [tail, 1.0 - tail])
    return float(low), float(high)


def cllr(labels: ArrayLike, llr: ArrayLike) -> float:
    """Log-likelihood-ratio cost of calibrated scores, in bits.

    ``Cllr = (mean_bona log2(1 + e^-llr) + mean_spoof log2(1 + e^llr)) / 2``: 0 for perfect,
    confident scores, 1 for a system that always outputs ``llr = 0``, above 1 when miscalibrated.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        llr: shape ``(n,)``, natural-log likelihood ratios of bona fide against spoof.
    """
    return _cllr_bits(*validate_scores(labels, llr))


def _cllr_bits(y: np.ndarray, llr: np.ndarray) -> float:
    """Cllr of validated labels and LLRs; infinite LLRs on the right side cost 0 bits."""
    bona = np.logaddexp(0.0, -llr[y == 1]).mean()
    spoof = np.logaddexp(0.0, llr[y == 0]).mean()
    return float((bona + spoof) / (2.0 * np.log(2.0)))


def min_cllr(labels: ArrayLike, scores: ArrayLike) -> float:
    """The Cllr after the best monotone recalibration (pool-adjacent-violators), in bits.

    It measures discrimination alone: ``cllr(labels, llr) >= min_cllr(labels, scores)`` for any
    monotone map from scores to ``llr``; 0 for separable scores, 1 when scores carry no
    information (e.g. all equal).
    """
    from sklearn.isotonic import IsotonicRegression

    y, s = validate_scores(labels, scores)
    posterior = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(s, y)
    prior_log_odds = np.log(np.sum(y == 1) / np.sum(y == 0))
    with np.errstate(divide="ignore"):  # posteriors of 0 or 1 give infinite LLRs (0 bits in _cllr_bits)
        llr = np.log(posterior) - np.log1p(-posterior) - prior_log_odds
    return _cllr_bits(y, llr)


ASVSPOOF5_DCF_COSTS = {"p_spoof": 0.05, "c_miss": 1.0, "c_fa": 10.0}
"""Prior and costs of the ASVspoof 5 evaluation plan (Track 1): spoof prior 0.05, the cost of
rejecting a bona fide clip 1, the cost of accepting a spoof 10."""


def _dcf_weights(p_spoof: float, c_miss: float, c_fa: float) -> tuple[float, float]:
    """The weights of ``P_miss`` and ``P_fa`` in the normalised DCF.

    ``DCF(t) = c_miss (1 - p_spoof) P_miss(t) + c_fa p_spoof P_fa(t)``, divided by
    ``DCF_default = min(c_miss (1 - p_spoof), c_fa p_spoof)``, the cost of the better of the two
    systems that accept everything or reject everything without looking at the audio.
    """
    if not 0.0 < p_spoof < 1.0:
        raise ValueError(f"p_spoof must be in (0, 1), got {p_spoof}")
    if not (c_miss > 0 and c_fa > 0 and np.isfinite(c_miss) and np.isfinite(c_fa)):
        raise ValueError(f"c_miss and c_fa must be positive and finite, got c_miss={c_miss}, c_fa={c_fa}")
    w_miss, w_fa = c_miss * (1.0 - p_spoof), c_fa * p_spoof
    default = min(w_miss, w_fa)
    return w_miss / default, w_fa / default


def min_dcf(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    p_spoof: float = ASVSPOOF5_DCF_COSTS["p_spoof"],
    c_miss: float = ASVSPOOF5_DCF_COSTS["c_miss"],
    c_fa: float = ASVSPOOF5_DCF_COSTS["c_fa"],
) -> float:
    """Normalised minimum detection cost function, the primary metric of ASVspoof 5 Track 1.

    ``DCF(t) = (c_miss (1 - p_spoof) P_miss(t) + c_fa p_spoof P_fa(t)) / DCF_default`` with
    ``DCF_default = min(c_miss (1 - p_spoof), c_fa p_spoof)``; ``P_miss(t)`` is the fraction of
    bona fide clips with ``score < t`` and ``P_fa(t)`` the fraction of spoofs with ``score >= t``.
    With the default costs ``DCF(t) = 1.9 P_miss(t) + P_fa(t)``.

    The minimum runs over every threshold of :func:`det_curve` (which includes accepting
    everything), so the result lies in [0, 1]: 0 for separable scores, 1 for scores that carry no
    information. Tied scores are accepted or rejected together. The official package sweeps its
    DET curve one trial at a time, which splits ties between the classes and can give a lower
    value there; without ties the two agree.

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, finite, higher = more bona fide; any scale.
        p_spoof: prior of a spoof, in (0, 1).
        c_miss: cost of rejecting a bona fide clip, > 0.
        c_fa: cost of accepting a spoof, > 0.

    Raises:
        ValueError: invalid scores (see module conventions) or costs.
    """
    w_miss, w_fa = _dcf_weights(p_spoof, c_miss, c_fa)
    frr, far, _ = det_curve(labels, scores)
    return float(np.min(w_miss * frr + w_fa * far))


def bayes_threshold(
    *,
    p_spoof: float = ASVSPOOF5_DCF_COSTS["p_spoof"],
    c_miss: float = ASVSPOOF5_DCF_COSTS["c_miss"],
    c_fa: float = ASVSPOOF5_DCF_COSTS["c_fa"],
) -> float:
    """The Bayes decision threshold on natural-log likelihood ratios (bona fide against spoof).

    Accepting a clip costs ``c_fa`` when it is a spoof, rejecting it ``c_miss`` when it is bona
    fide, so accepting is cheaper when ``LR (1 - p_spoof) c_miss >= p_spoof c_fa``, i.e. when
    ``llr >= -log(beta)`` with ``beta = c_miss (1 - p_spoof) / (c_fa p_spoof)``. The ASVspoof 5
    costs give ``-log(1.9) = -0.642``.
    """
    _dcf_weights(p_spoof, c_miss, c_fa)
    return float(-np.log(c_miss * (1.0 - p_spoof) / (c_fa * p_spoof)))


def act_dcf(
    labels: ArrayLike,
    llr: ArrayLike,
    *,
    p_spoof: float = ASVSPOOF5_DCF_COSTS["p_spoof"],
    c_miss: float = ASVSPOOF5_DCF_COSTS["c_miss"],
    c_fa: float = ASVSPOOF5_DCF_COSTS["c_fa"],
) -> float:
    """Normalised actual DCF: the DCF of :func:`min_dcf` at the Bayes threshold of calibrated LLRs.

    Decisions are taken at :func:`bayes_threshold` (accept when ``llr >= t``), so the score must be
    a calibrated natural-log likelihood ratio of bona fide against spoof. ``act_dcf >= min_dcf``;
    the gap is the cost of miscalibration. Unlike ``min_dcf`` it can exceed 1 (a system worse than
    deciding without the audio).

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        llr: shape ``(n,)``, finite log-likelihood ratios (natural log).
        p_spoof, c_miss, c_fa: as in :func:`min_dcf`.

    Raises:
        ValueError: invalid labels or LLRs (see module conventions) or costs.
    """
    w_miss, w_fa = _dcf_weights(p_spoof, c_miss, c_fa)
    y, s = validate_scores(labels, llr)
    t = bayes_threshold(p_spoof=p_spoof, c_miss=c_miss, c_fa=c_fa)
    p_miss = float(np.mean(s[y == 1] < t))
    p_fa = float(np.mean(s[y == 0] >= t))
    return w_miss * p_miss + w_fa * p_fa


ASVSPOOF2019_TDCF_COSTS = {
    "p_spoof": 0.05,
    "p_target": 0.95 * 0.99,
    "p_nontarget": 0.95 * 0.01,
    "c_miss_asv": 1.0,
    "c_fa_asv": 10.0,
    "c_miss_cm": 1.0,
    "c_fa_cm": 10.0,
}
"""Priors and costs of the ASVspoof 2019 evaluation plan (Table 4)."""


def min_tdcf(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    asv_target: ArrayLike,
    asv_nontarget: ArrayLike,
    asv_spoof: ArrayLike,
    costs: dict[str, float] | None = None,
) -> float:
    """Normalised minimum tandem detection cost function (ASVspoof 2019 evaluation plan).

    The ASV system runs at its own EER threshold (target against non-target trials). With its
    miss rate ``P_miss_asv``, false-alarm rate ``P_fa_asv`` and the share of spoofs it misses
    ``P_miss_spoof_asv``::

        C1 = p_target (c_miss_cm - c_miss_asv P_miss_asv) - p_nontarget c_fa_asv P_fa_asv
        C2 = c_fa_cm p_spoof (1 - P_miss_spoof_asv)
        t-DCF(t) = (C1 P_miss_cm(t) + C2 P_fa_cm(t)) / min(C1, C2)

    where ``P_miss_cm`` is the countermeasure's bona fide rejection rate and ``P_fa_cm`` its spoof
    acceptance rate at threshold ``t``. Returns the minimum over ``t``: 0 is perfect, 1 is no
    better than a countermeasure that accepts or rejects everything.

    Args:
        labels, scores: the countermeasure's labels (1 = bona fide) and scores, shape ``(n,)``.
        asv_target, asv_nontarget, asv_spoof: ASV scores of target, non-target and spoofed trials.
        costs: keys of :data:`ASVSPOOF2019_TDCF_COSTS`; the default is that table.

    Raises:
        ValueError: invalid scores, an empty ASV score set, or costs that make C1 or C2 <= 0.
    """
    c = dict(ASVSPOOF2019_TDCF_COSTS if costs is None else costs)
    tar, non, spf = (np.asarray(a, dtype=np.float64) for a in (asv_target, asv_nontarget, asv_spoof))
    for name, arr in (("asv_target", tar), ("asv_nontarget", non), ("asv_spoof", spf)):
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be a non-empty 1-D array of finite scores, got shape {arr.shape}")
    asv_threshold = compute_eer(np.r_[np.ones(tar.size), np.zeros(non.size)], np.r_[tar, non])[1]
    p_miss_asv = float(np.mean(tar < asv_threshold))
    p_fa_asv = float(np.mean(non >= asv_threshold))
    p_miss_spoof_asv = float(np.mean(spf < asv_threshold))
    c1 = c["p_target"] * (c["c_miss_cm"] - c["c_miss_asv"] * p_miss_asv) - c["p_nontarget"] * c["c_fa_asv"] * p_fa_asv
    c2 = c["c_fa_cm"] * c["p_spoof"] * (1.0 - p_miss_spoof_asv)
    if c1 <= 0 or c2 <= 0:
        raise ValueError(f"t-DCF is undefined for these ASV scores and costs: C1 = {c1:.4g}, C2 = {c2:.4g}")
    frr, far, _ = det_curve(labels, scores)
    return float(np.min(c1 * frr + c2 * far) / min(c1, c2))


def _ratio(num: int, den: int) -> float:
    """``num / den`` as a float, 0.0 when ``den`` is 0 (no warning, no NaN)."""
    return float(num) / float(den) if den else 0.0


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 2.0 * precision * recall / total if total > 0 else 0.0


def _group_eers(y: np.ndarray, s: np.ndarray, groups: ArrayLike, *, name: str) -> dict[str, float]:
    """EER of every group that holds both classes (groups: one id per row, e.g. the source)."""
    g = np.asarray(groups, dtype=object)
    if g.ndim != 1 or g.shape[0] != y.shape[0]:
        raise ValueError(f"{name} must be 1-D with {y.shape[0]} entries, got shape {g.shape}")
    g = np.array([str(v) for v in g], dtype=object)
    out: dict[str, float] = {}
    for group in sorted(set(g.tolist())):
        rows = g == group
        if 0 < int(np.sum(y[rows])) < int(np.sum(rows)):
            out[group] = compute_eer(y[rows], s[rows])[0]
    return out


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


def _condition_values(values: ArrayLike, n: int, *, column: str) -> np.ndarray:
    """One condition column as strings, ``""`` for unknown (``None`` and NaN included)."""
    v = np.asarray(values, dtype=object)
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"conditions[{column!r}] must be 1-D with {n} entries, got shape {v.shape}")
    known = ~pd.isna(v)
    out = np.full(n, "", dtype=object)
    out[known] = v[known].astype(str)
    return out


def _per_condition_eer(y: np.ndarray, s: np.ndarray, conditions: dict[str, ArrayLike]) -> dict[str, dict[str, float]]:
    """``{column: {value: EER}}`` for every known value (not ``""``) of every condition column.

    A value whose rows hold bona fide clips is a channel-like condition (codec, transmission):
    its EER is bona fide against spoof within those rows, and needs both classes there. A value
    held by spoofs alone is an attack-like condition (vocoder, TTS architecture): its spoofs are
    scored against every bona fide clip of the set, as :func:`_per_attack_eer` does. Columns with
    no such value are left out.
    """
    bona = y == 1
    out: dict[str, dict[str, float]] = {}
    for column in sorted(conditions):
        v = _condition_values(conditions[column], y.shape[0], column=str(column))
        per_value: dict[str, float] = {}
        for value in sorted(set(v.tolist()) - {""}):
            rows = v == value
            n_bona = int(np.sum(rows & bona))
            if n_bona == 0:
                rows = rows | bona  # spoofs only: against all bona fide clips of the set
            elif n_bona == int(np.sum(rows)):
                continue  # bona fide only: no spoof to tell apart
            per_value[value] = compute_eer(y[rows], s[rows])[0]
        if per_value:
            out[str(column)] = per_value
    return out


def decision_metrics(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 of both classes, error rates and confusion at one threshold.

    A clip is predicted spoof when ``score < threshold``. ``precision``/``recall``/``f1`` take
    **spoof as the positive class**; ``*_bonafide`` take bona fide. Confusion counts:
    ``tp`` spoof predicted spoof, ``fn`` spoof predicted bona fide (a false acceptance), ``tn``
    bona fide predicted bona fide, ``fp`` bona fide predicted spoof (a false rejection).
    ``far``/``frr`` are the error rates. Every ratio with a zero denominator is 0.0.
    """
    thr = float(threshold)
    if not np.isfinite(thr):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    pred_spoof = s < thr
    is_spoof = y == 0
    tp = int(np.sum(is_spoof & pred_spoof))
    fn = int(np.sum(is_spoof & ~pred_spoof))
    fp = int(np.sum(~is_spoof & pred_spoof))
    tn = int(np.sum(~is_spoof & ~pred_spoof))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    precision_bona, recall_bona = _ratio(tn, tn + fn), _ratio(tn, tn + fp)
    return {
        "threshold": thr,
        "accuracy": _ratio(tp + tn, y.size),
        "balanced_accuracy": (recall + recall_bona) / 2.0,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "precision_bonafide": precision_bona,
        "recall_bonafide": recall_bona,
        "f1_bonafide": _f1(precision_bona, recall_bona),
        "far": _ratio(fn, tp + fn),
        "frr": _ratio(fp, tn + fp),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def metric_block(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    threshold: float | None = None,
    attacks: ArrayLike | None = None,
    sources: ArrayLike | None = None,
    llr: ArrayLike | None = None,
    bootstrap: int = 0,
    ci_level: float = 0.95,
    seed: int = 0,
    asv: dict[str, np.ndarray] | None = None,
    conditions: dict[str, ArrayLike] | None = None,
) -> dict[str, Any]:
    """All metrics of one score set as a JSON-serialisable dict.

    Top level, at ``threshold`` (the dev-set threshold, as a deployment would use): the keys of
    :func:`decision_metrics`. ``at_eer_threshold`` holds the same keys at the set's own EER
    threshold. Threshold-free: ``eer``, ``eer_threshold``, ``roc_auc`` (bona fide positive, so it
    agrees with the score direction), ``min_cllr`` and ``min_dcf`` (ASVspoof 5 costs).

    Args:
        labels: shape ``(n,)``, 1 = bona fide, 0 = spoof.
        scores: shape ``(n,)``, finite, higher = more bona fide.
        threshold: decision threshold in score units; ``None`` uses the EER threshold.
        attacks: optional ``(n,)`` attack ids (``"-"`` for bona fide): ``per_attack_eer`` maps each
            spoof attack to the EER of all bona fide rows against that attack's spoofs.
        sources: optional ``(n,)`` source names: ``per_source_eer`` for every source that holds
            both classes, and ``mean_source_eer``, their average, when there are several.
        llr: optional ``(n,)`` calibrated log-likelihood ratios: adds ``cllr`` and ``act_dcf``.
        bootstrap: replicates for ``eer_ci`` (``[low, high]`` at ``ci_level``); 0 leaves it out.
        seed: seeds the bootstrap.
        asv: optional ASV scores ``{"target", "nontarget", "spoof"}``: adds ``min_tdcf``.
        conditions: optional ``{column: (n,) values}`` (``""`` = unknown), e.g. codec or vocoder:
            ``per_condition_eer[column][value]`` for every value that can have an EER (see
            :func:`_per_condition_eer`); columns without one are left out, and so is the key when
            no column has one.

    Returns:
        Dict of plain Python floats/ints and nested dicts; all rates are fractions in [0, 1].

    Raises:
        ValueError: invalid labels/scores, a non-finite threshold, or side inputs of the wrong shape.
    """
    y, s = validate_scores(labels, scores)
    eer, eer_thr = compute_eer(y, s)
    block: dict[str, Any] = {"eer": eer, "eer_threshold": eer_thr}
    if bootstrap:
        block["eer_ci"] = list(bootstrap_eer_ci(y, s, n_boot=bootstrap, level=ci_level, seed=seed))
        block["eer_ci_level"] = ci_level
    block.update(decision_metrics(y, s, eer_thr if threshold is None else threshold))
    block["at_eer_threshold"] = decision_metrics(y, s, eer_thr)
    block.update(
        {
            "roc_auc": float(roc_auc_score(y, s)),
            "min_cllr": min_cllr(y, s),
            "min_dcf": min_dcf(y, s),
            "n_bonafide": int(np.sum(y == 1)),
            "n_spoof": int(np.sum(y == 0)),
        }
    )
    if llr is not None:
        block["cllr"] = cllr(y, llr)
        block["act_dcf"] = act_dcf(y, llr)
    if asv is not None:
        block["min_tdcf"] = min_tdcf(
            y, s, asv_target=asv["target"], asv_nontarget=asv["nontarget"], asv_spoof=asv["spoof"]
        )
    if attacks is not None:
        block["per_attack_eer"] = _per_attack_eer(y, s, attacks)
    if sources is not None:
        per_source = _group_eers(y, s, sources, name="sources")
        block["per_source_eer"] = per_source
        if len(per_source) > 1:
            block["mean_source_eer"] = float(np.mean(list(per_source.values())))
    if conditions:
        per_condition = _per_condition_eer(y, s, conditions)
        if per_condition:
            block["per_condition_eer"] = per_condition
    return block
