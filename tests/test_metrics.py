"""Tests for deepfake_audio.metrics (label 1 = bona fide, higher score = more bona fide)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from deepfake_audio.metrics import compute_eer, det_curve, metric_block


def _sklearn_eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Independent EER: where sklearn's fnr = 1 - tpr crosses fpr, linearly interpolated."""
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    return float(brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0))


def _gaussian(n_bona: int, n_spoof: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(shift, 1.0, n_bona), rng.normal(0.0, 1.0, n_spoof)])
    labels = np.concatenate([np.ones(n_bona, int), np.zeros(n_spoof, int)])
    perm = rng.permutation(scores.size)
    return labels[perm], scores[perm]


# ---------------------------------------------------------------- compute_eer


def test_separable_scores_give_zero_eer() -> None:
    labels = [1, 1, 1, 0, 0]
    scores = [2.0, 3.0, 1.5, -1.0, 0.5]
    eer, thr = compute_eer(labels, scores)
    assert eer == 0.0
    # Every bona fide accepted, every spoof rejected at the returned threshold.
    s = np.array(scores)
    assert np.all(s[np.array(labels) == 1] >= thr)
    assert np.all(s[np.array(labels) == 0] < thr)


def test_identical_scores_give_half() -> None:
    eer, thr = compute_eer([1, 0, 1, 0, 0], [0.3] * 5)
    assert eer == 0.5
    assert thr == 0.3


def test_hand_computed_case() -> None:
    # bona fide: 0.9 0.7 0.4      spoof: 0.8 0.3 0.2 0.1
    # FRR = #(bona < thr)/3, FAR = #(spoof >= thr)/4
    #   thr    FRR   FAR   |FRR-FAR|
    #   0.1    0/3   4/4   1
    #   0.2    0/3   3/4   0.75
    #   0.3    0/3   2/4   0.5
    #   0.4    0/3   1/4   0.25
    #   0.7    1/3   1/4   0.0833   <- minimum
    #   0.8    2/3   1/4   0.4167
    #   0.9    2/3   0/4   0.6667
    #   +inf   3/3   0/4   1
    # EER = (1/3 + 1/4) / 2 = 7/24 at threshold 0.7.
    labels = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.9, 0.7, 0.4, 0.8, 0.3, 0.2, 0.1]
    eer, thr = compute_eer(labels, scores)
    assert eer == pytest.approx(7 / 24)
    assert thr == 0.7

    frr, far, thresholds = det_curve(labels, scores)
    np.testing.assert_allclose(thresholds, [0.1, 0.2, 0.3, 0.4, 0.7, 0.8, 0.9, np.inf])
    np.testing.assert_allclose(frr * 3, [0, 0, 0, 0, 1, 2, 2, 3])
    np.testing.assert_allclose(far * 4, [4, 3, 2, 1, 1, 1, 0, 0])


def test_hand_computed_case_with_ties() -> None:
    # bona fide: 1.0 0.5 0.5      spoof: 0.5 0.0   (a three-way tie at 0.5)
    #   thr    FRR   FAR   |FRR-FAR|
    #   0.0    0/3   2/2   1
    #   0.5    0/3   1/2   0.5      <- minimum: ties at 0.5 are all accepted together
    #   1.0    2/3   0/2   0.6667
    #   +inf   3/3   0/2   1
    eer, thr = compute_eer([1, 1, 1, 0, 0], [1.0, 0.5, 0.5, 0.5, 0.0])
    assert eer == pytest.approx(0.25)
    assert thr == 0.5


@pytest.mark.parametrize(
    ("n_bona", "n_spoof", "shift", "seed"),
    [
        (10, 10, 1.0, 0),
        (50, 200, 1.5, 1),
        (500, 37, 0.5, 2),
        (2000, 2000, 2.0, 3),
        (300, 3000, 3.0, 4),
    ],
)
def test_agrees_with_sklearn_roc(n_bona: int, n_spoof: int, shift: float, seed: int) -> None:
    labels, scores = _gaussian(n_bona, n_spoof, shift, seed)
    eer, _ = compute_eer(labels, scores)
    assert abs(eer - _sklearn_eer(labels, scores)) <= 1.0 / min(n_bona, n_spoof)


@pytest.mark.parametrize(("n", "seed"), [(40, 5), (400, 6), (4000, 7)])
def test_negated_scores_give_complementary_eer(n: int, seed: int) -> None:
    labels, scores = _gaussian(n, n, 1.0, seed)
    eer, _ = compute_eer(labels, scores)
    eer_neg, _ = compute_eer(labels, -scores)
    assert eer_neg == pytest.approx(1.0 - eer, abs=2.0 / n)


def test_accepts_bool_and_float_labels() -> None:
    scores = [0.9, 0.1, 0.8, 0.2]
    assert compute_eer(np.array([True, False, True, False]), scores) == compute_eer([1.0, 0.0, 1.0, 0.0], scores)


@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([[1, 0]], [[0.1, 0.2]], "1-D"),
        ([1, 0], [[0.1, 0.2]], "1-D"),
        ([1, 0, 1], [0.1, 0.2], "length"),
        ([1, 0], [0.1, float("nan")], "finite"),
        ([1, 0], [float("inf"), 0.2], "finite"),
        ([1, 2], [0.1, 0.2], "labels must be 0"),
        ([1, -1], [0.1, 0.2], "labels must be 0"),
        ([1, float("nan")], [0.1, 0.2], "labels must be 0"),
        (["bonafide", "spoof"], [0.1, 0.2], "numeric"),
        ([1, 0], ["a", "b"], "numeric"),
        ([1, 1], [0.1, 0.2], "at least one"),
        ([0, 0], [0.1, 0.2], "at least one"),
        ([], [], "at least one"),
    ],
)
def test_invalid_inputs_raise(labels: list, scores: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compute_eer(labels, scores)
    with pytest.raises(ValueError, match=match):
        metric_block(labels, scores)


# ---------------------------------------------------------------- metric_block


def test_metric_block_is_plain_json() -> None:
    labels, scores = _gaussian(60, 90, 1.0, 8)
    attacks = np.where(labels == 1, "-", np.where(np.arange(labels.size) % 2 == 0, "A01", "A02"))
    block = metric_block(labels, scores, attacks=attacks)
    json.dumps(block, allow_nan=False)  # raises on numpy types or NaN/inf

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                assert type(k) is str
                walk(v)
        else:
            assert type(value) in (int, float), (value, type(value))

    walk(block)
    for key in (
        "eer",
        "eer_threshold",
        "threshold",
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "precision_bonafide",
        "recall_bonafide",
        "f1_bonafide",
        "roc_auc",
        "n_bonafide",
        "n_spoof",
        "confusion",
        "per_attack_eer",
    ):
        assert key in block
    assert block["n_bonafide"] == 60 and block["n_spoof"] == 90
    assert set(block["confusion"]) == {"tn", "fp", "fn", "tp"}
    assert sum(block["confusion"].values()) == 150
    assert block["threshold"] == block["eer_threshold"]
    assert "per_attack_eer" not in metric_block(labels, scores)


def test_metric_block_hand_computed() -> None:
    # Threshold 0.5: predicted spoof = score < 0.5.
    # bona fide 0.9 0.6 0.4 -> accepted, accepted, rejected     : tn=2, fp=1
    # spoof     0.7 0.3 0.2 0.1 -> accepted, rej, rej, rej       : tp=3, fn=1
    labels = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.9, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1]
    b = metric_block(labels, scores, threshold=0.5)
    assert b["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 3}
    assert b["threshold"] == 0.5
    assert b["accuracy"] == pytest.approx(5 / 7)
    assert b["precision"] == pytest.approx(3 / 4)
    assert b["recall"] == pytest.approx(3 / 4)
    assert b["f1"] == pytest.approx(3 / 4)
    assert b["precision_bonafide"] == pytest.approx(2 / 3)
    assert b["recall_bonafide"] == pytest.approx(2 / 3)
    assert b["f1_bonafide"] == pytest.approx(2 / 3)
    assert b["balanced_accuracy"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert b["far"] == pytest.approx(1 / 4)
    assert b["frr"] == pytest.approx(1 / 3)
    # AUC, bona fide positive: 12 (bona, spoof) pairs, 10 ordered correctly.
    assert b["roc_auc"] == pytest.approx(10 / 12)


def test_metric_block_matches_sklearn() -> None:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_score

    labels, scores = _gaussian(70, 130, 1.2, 9)
    b = metric_block(labels, scores, threshold=0.3)
    pred = (scores >= 0.3).astype(int)  # 1 = predicted bona fide
    assert b["accuracy"] == pytest.approx(accuracy_score(labels, pred))
    assert b["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert b["precision"] == pytest.approx(precision_score(labels, pred, pos_label=0))
    assert b["f1"] == pytest.approx(f1_score(labels, pred, pos_label=0))
    assert b["f1_bonafide"] == pytest.approx(f1_score(labels, pred, pos_label=1))


@pytest.mark.parametrize("threshold", [-100.0, 100.0])
def test_one_class_threshold_gives_zero_not_nan(threshold: float) -> None:
    labels, scores = _gaussian(20, 30, 1.0, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = metric_block(labels, scores, threshold=threshold)
    for key, value in b.items():
        if isinstance(value, float):
            assert math.isfinite(value), key
    if threshold < 0:  # everything accepted as bona fide: no spoof predictions at all
        assert b["precision"] == 0.0 and b["recall"] == 0.0 and b["f1"] == 0.0
        assert b["recall_bonafide"] == 1.0
    else:  # everything rejected: no bona fide predictions
        assert b["precision_bonafide"] == 0.0 and b["f1_bonafide"] == 0.0
        assert b["recall"] == 1.0


def test_non_finite_threshold_raises() -> None:
    with pytest.raises(ValueError, match="threshold"):
        metric_block([1, 0], [0.9, 0.1], threshold=float("nan"))


def test_per_attack_eer_picks_the_right_rows() -> None:
    rng = np.random.default_rng(11)
    bona = rng.normal(5.0, 1.0, 100)
    easy = rng.normal(-20.0, 1.0, 80)  # far below every bona fide score: separable
    hard = rng.normal(5.0, 1.0, 80)  # same distribution as bona fide: EER near 0.5
    scores = np.concatenate([bona, easy, hard])
    labels = np.concatenate([np.ones(100, int), np.zeros(160, int)])
    attacks = ["-"] * 100 + ["A01"] * 80 + ["A17"] * 80
    b = metric_block(labels, scores, attacks=attacks)
    assert set(b["per_attack_eer"]) == {"A01", "A17"}
    assert b["per_attack_eer"]["A01"] == 0.0
    assert 0.35 < b["per_attack_eer"]["A17"] < 0.65
    hard_rows = np.r_[0:100, 180:260]
    assert b["per_attack_eer"]["A17"] == compute_eer(labels[hard_rows], scores[hard_rows])[0]
    # The pooled EER mixes both attacks and lies in between.
    assert 0.0 < b["eer"] < b["per_attack_eer"]["A17"]


def test_per_attack_eer_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="attacks"):
        metric_block([1, 0, 0], [0.9, 0.1, 0.2], attacks=["-", "A01"])


# ---------------------------------------------------------------- sklearn det_curve, intervals, Cllr, t-DCF


def test_eer_agrees_with_sklearn_det_curve() -> None:
    from sklearn.metrics import det_curve as sk_det_curve

    labels, scores = _gaussian(300, 500, 1.3, seed=5)
    fpr, fnr, _ = sk_det_curve(labels, scores, pos_label=1)  # fpr: spoof accepted, fnr: bona fide rejected
    i = int(np.argmin(np.abs(fnr - fpr)))
    assert compute_eer(labels, scores)[0] == pytest.approx((fpr[i] + fnr[i]) / 2, abs=1.5 / 300)


def test_bootstrap_interval_brackets_the_eer_and_is_seeded() -> None:
    from deepfake_audio.metrics import bootstrap_eer_ci

    labels, scores = _gaussian(200, 400, 1.0, seed=2)
    eer = compute_eer(labels, scores)[0]
    low, high = bootstrap_eer_ci(labels, scores, n_boot=300, seed=0)
    assert 0.0 <= low < eer < high <= 1.0
    assert bootstrap_eer_ci(labels, scores, n_boot=300, seed=0) == (low, high)
    big_labels, big_scores = _gaussian(2000, 4000, 1.0, seed=2)
    big_low, big_high = bootstrap_eer_ci(big_labels, big_scores, n_boot=300, seed=0)
    assert big_high - big_low < (high - low) / 2  # ten times the data: about a third of the width
    assert bootstrap_eer_ci([1, 1, 0, 0], [2.0, 3.0, 0.0, 1.0], n_boot=50) == (0.0, 0.0)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_eer_ci(labels, scores, n_boot=1)


def test_cllr_known_values() -> None:
    from deepfake_audio.metrics import cllr

    labels = np.array([1, 1, 0, 0])
    assert cllr(labels, np.zeros(4)) == pytest.approx(1.0)  # "I don't know" costs exactly one bit
    assert cllr(labels, np.array([30.0, 30.0, -30.0, -30.0])) < 1e-10
    # Confidently wrong is worse than knowing nothing.
    assert cllr(labels, np.array([-5.0, -5.0, 5.0, 5.0])) > 1.0
    # One bona fide clip at llr = ln 3: log2(1 + 1/3); the rest are perfect.
    got = cllr(labels, np.array([math.log(3.0), 50.0, -50.0, -50.0]))
    assert got == pytest.approx(math.log2(4.0 / 3.0) / 4.0)


def test_min_cllr_extremes_and_bound() -> None:
    from deepfake_audio.metrics import cllr, min_cllr

    assert min_cllr([1, 1, 0, 0], [3.0, 2.0, 1.0, 0.0]) == pytest.approx(0.0)
    assert min_cllr([1, 1, 0, 0, 0], [0.5] * 5) == pytest.approx(1.0)
    labels, scores = _gaussian(500, 500, 1.5, seed=9)
    best = min_cllr(labels, scores)
    assert 0.0 < best < 1.0
    for slope, offset in ((1.5, 0.0), (0.5, 1.0), (3.0, -2.0)):  # any monotone calibration costs at least as much
        assert cllr(labels, slope * scores + offset) >= best - 1e-12


def test_calibration_recovers_the_true_likelihood_ratio() -> None:
    from deepfake_audio.calibration import Calibration, fit_calibration

    # bona fide ~ N(1, 1), spoof ~ N(-1, 1): the true llr is 2 * score, whatever the class balance.
    rng = np.random.default_rng(0)
    for n_bona, n_spoof in ((20000, 20000), (5000, 30000)):
        scores = np.r_[rng.normal(1.0, 1.0, n_bona), rng.normal(-1.0, 1.0, n_spoof)]
        labels = np.r_[np.ones(n_bona, int), np.zeros(n_spoof, int)]
        cal = fit_calibration(labels, 10.0 * scores + 7.0)  # an arbitrary affine score scale
        assert cal.slope * 10.0 == pytest.approx(2.0, abs=0.08)
        assert cal.offset + cal.slope * 7.0 == pytest.approx(0.0, abs=0.06)  # llr 0 at score 0
    cal = Calibration(slope=2.0, offset=0.0)
    assert cal.prob_bonafide([0.0])[0] == pytest.approx(0.5)
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal


def test_min_tdcf_hand_computed() -> None:
    from deepfake_audio.metrics import min_tdcf

    # ASV: targets {1, 2}, non-targets {-1, -2} -> EER threshold 1, no ASV errors; it misses
    # the spoofs below 1: P_miss_spoof_asv = 2/4. C1 = 0.95 * 0.99 = 0.9405, C2 = 10 * 0.05 * 0.5 = 0.25.
    # CM: bona fide {2, 0.5}, spoof {1, -1}. At t = 0.5 nothing bona fide is rejected and half the
    # spoofs pass: (C1 * 0 + C2 * 0.5) / min(C1, C2) = 0.5, the minimum (t = -1 gives 1.0, t = 1 2.381).
    got = min_tdcf(
        [1, 1, 0, 0],
        [2.0, 0.5, 1.0, -1.0],
        asv_target=[1.0, 2.0],
        asv_nontarget=[-1.0, -2.0],
        asv_spoof=[-0.5, 1.5, 3.0, 0.0],
    )
    assert got == pytest.approx(0.5)


def test_min_tdcf_matches_a_direct_evaluation_of_the_formula() -> None:
    from deepfake_audio.metrics import ASVSPOOF2019_TDCF_COSTS as c
    from deepfake_audio.metrics import min_tdcf

    rng = np.random.default_rng(4)
    labels, scores = _gaussian(150, 350, 1.2, seed=4)
    tar, non, spf = rng.normal(3, 1, 200), rng.normal(-1, 1, 400), rng.normal(1.5, 1.5, 300)
    # The ASV threshold where its miss and false-alarm rates meet, found by a scan.
    grid = np.sort(np.r_[tar, non])
    asv_thr = grid[np.argmin([abs(np.mean(tar < t) - np.mean(non >= t)) for t in grid])]
    pm, pf, pms = np.mean(tar < asv_thr), np.mean(non >= asv_thr), np.mean(spf < asv_thr)
    c1 = c["p_target"] * (c["c_miss_cm"] - c["c_miss_asv"] * pm) - c["p_nontarget"] * c["c_fa_asv"] * pf
    c2 = c["c_fa_cm"] * c["p_spoof"] * (1 - pms)
    costs = [
        (c1 * np.mean(scores[labels == 1] < t) + c2 * np.mean(scores[labels == 0] >= t)) / min(c1, c2)
        for t in np.r_[np.sort(scores), np.inf]
    ]
    got = min_tdcf(labels, scores, asv_target=tar, asv_nontarget=non, asv_spoof=spf)
    assert got == pytest.approx(min(costs))
    assert 0.0 < got < 1.0
    with pytest.raises(ValueError, match="asv_spoof"):
        min_tdcf(labels, scores, asv_target=tar, asv_nontarget=non, asv_spoof=[])


def test_metric_block_reports_both_thresholds_sources_and_interval() -> None:
    labels, scores = _gaussian(120, 240, 1.0, seed=1)
    sources = np.where(np.arange(labels.size) % 3 == 0, "b", "a")
    block = metric_block(labels, scores, threshold=0.9, sources=sources, llr=2 * scores, bootstrap=100)
    assert block["threshold"] == 0.9 and block["at_eer_threshold"]["threshold"] == block["eer_threshold"]
    at_eer = block["at_eer_threshold"]
    assert at_eer["frr"] == pytest.approx(at_eer["far"], abs=0.02)  # the EER point: the two rates meet
    assert block["frr"] > at_eer["frr"]  # a higher threshold rejects more bona fide clips
    conf = block["confusion"]
    assert conf["tp"] + conf["fn"] == 240 and conf["tn"] + conf["fp"] == 120
    assert set(block["per_source_eer"]) == {"a", "b"}
    assert block["mean_source_eer"] == pytest.approx(np.mean(list(block["per_source_eer"].values())))
    for src in ("a", "b"):
        rows = sources == src
        assert block["per_source_eer"][src] == compute_eer(labels[rows], scores[rows])[0]
    low, high = block["eer_ci"]
    assert low <= block["eer"] <= high and block["eer_ci_level"] == 0.95
    assert 0.0 < block["min_cllr"] <= block["cllr"]
    assert "min_tdcf" not in block  # no ASV scores: absent, not made up
    json.dumps(block)


# ---------------------------------------------------------------- ASVspoof 5 minDCF and actDCF


def _dcf_by_the_plan(bona: np.ndarray, spoof: np.ndarray, t: float, p_spoof: float, c_miss: float, c_fa: float):
    """The evaluation plan's normalised DCF at threshold t, written out: a bona fide clip is missed
    when its score is below t, a spoof falsely accepted when its score is t or above."""
    p_miss = np.mean(bona < t)
    p_fa = np.mean(spoof >= t)
    dcf = c_miss * (1 - p_spoof) * p_miss + c_fa * p_spoof * p_fa
    return dcf / min(c_miss * (1 - p_spoof), c_fa * p_spoof)


def test_min_dcf_hand_computed() -> None:
    from deepfake_audio.metrics import min_dcf

    # The case of test_hand_computed_case: bona fide 0.9 0.7 0.4, spoof 0.8 0.3 0.2 0.1.
    # ASVspoof 5 costs: DCF = (1 * 0.95 * Pmiss + 10 * 0.05 * Pfa) / min(0.95, 0.5) = 1.9 Pmiss + Pfa
    #   thr    Pmiss  Pfa   DCF
    #   0.1    0/3    4/4   1.0
    #   0.2    0/3    3/4   0.75
    #   0.3    0/3    2/4   0.5
    #   0.4    0/3    1/4   0.25     <- minimum
    #   0.7    1/3    1/4   0.6333 + 0.25 = 0.8833
    #   0.8    2/3    1/4   1.2667 + 0.25 = 1.5167
    #   0.9    2/3    0/4   1.2667
    #   +inf   3/3    0/4   1.9
    labels = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.9, 0.7, 0.4, 0.8, 0.3, 0.2, 0.1]
    assert min_dcf(labels, scores) == pytest.approx(0.25)
    # p_spoof 0.5, c_miss 1, c_fa 10: DCF = (0.5 Pmiss + 5 Pfa) / min(0.5, 5) = Pmiss + 10 Pfa, now
    # normalised by the miss side. Per threshold: 10, 7.5, 5, 2.5, 2.833, 3.167, 0.6667 (0.9), 1.
    assert min_dcf(labels, scores, p_spoof=0.5, c_miss=1.0, c_fa=10.0) == pytest.approx(2 / 3)


def test_min_dcf_is_normalised() -> None:
    from deepfake_audio.metrics import min_dcf

    labels, scores = _gaussian(200, 300, 1.0, seed=12)
    base = min_dcf(labels, scores)
    # Scaling both costs leaves the normalised DCF unchanged.
    assert min_dcf(labels, scores, c_miss=7.0, c_fa=70.0) == pytest.approx(base)
    # DCF_default is the cost of deciding without the audio: accepting everything costs
    # c_fa * p_spoof = 0.5, rejecting everything c_miss * (1 - p_spoof) = 0.95; normalised, the
    # better of the two is exactly 1, so no system's minimum exceeds 1.
    assert min_dcf([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3]) == 1.0
    assert 0.0 < base < 1.0
    # Unnormalised minimum = normalised * 0.5, checked against the plan's formula times DCF_default.
    bona, spoof = scores[labels == 1], scores[labels == 0]
    raw = min(0.95 * np.mean(bona < t) + 0.5 * np.mean(spoof >= t) for t in np.r_[-np.inf, np.sort(scores), np.inf])
    assert base * 0.5 == pytest.approx(raw)


def test_min_dcf_perfect_and_chance() -> None:
    from deepfake_audio.metrics import min_dcf

    assert min_dcf([1, 1, 0, 0], [2.0, 3.0, -1.0, 0.5]) == 0.0
    # Scores drawn independently of the label: the best threshold is about "accept everything".
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 20000)
    chance = min_dcf(labels, rng.normal(size=labels.size))
    assert 0.97 < chance <= 1.0
    # Reversed scores (spoof scored higher) are no better than chance: min DCF is exactly 1.
    assert min_dcf([1, 1, 0, 0], [-2.0, -3.0, 1.0, 0.5]) == 1.0


def test_min_dcf_threshold_direction() -> None:
    from deepfake_audio.metrics import min_dcf

    # bona fide 0.5 0.6 0.7, spoof 0.9 0.1 0.2 0.3: at t = 0.5 no bona fide clip is below t and only
    # the spoof at 0.9 is at or above it: 1.9 * 0 + 1/4 = 0.25, the minimum.
    labels = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.5, 0.6, 0.7, 0.9, 0.1, 0.2, 0.3]
    assert min_dcf(labels, scores) == pytest.approx(0.25)
    # Negated (as if low meant bona fide): bona fide -0.7 -0.6 -0.5, spoof -0.9 -0.1 -0.2 -0.3; three
    # spoofs now lie above every bona fide clip. Best: t = -0.7, 1.9 * 0 + 3/4 = 0.75.
    assert min_dcf(labels, -np.array(scores)) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("p_spoof", "c_miss", "c_fa", "seed"),
    [(0.05, 1.0, 10.0, 0), (0.05, 1.0, 10.0, 1), (0.5, 1.0, 1.0, 2), (0.2, 3.0, 2.0, 3), (0.01, 1.0, 100.0, 4)],
)
def test_min_dcf_matches_a_brute_force_of_the_plan(p_spoof: float, c_miss: float, c_fa: float, seed: int) -> None:
    from deepfake_audio.metrics import min_dcf

    labels, scores = _gaussian(137, 411, 1.3, seed)
    scores = np.round(scores, 1)  # many ties: both classes share scores
    bona, spoof = scores[labels == 1], scores[labels == 0]
    brute = min(
        _dcf_by_the_plan(bona, spoof, t, p_spoof, c_miss, c_fa) for t in np.r_[-np.inf, np.unique(scores), np.inf]
    )
    assert min_dcf(labels, scores, p_spoof=p_spoof, c_miss=c_miss, c_fa=c_fa) == pytest.approx(brute)


def test_min_dcf_agrees_with_a_per_trial_sweep_without_ties() -> None:
    from deepfake_audio.metrics import min_dcf

    # The official package sweeps its DET curve one trial at a time (sorted scores, cumulative
    # counts). Without ties every step is a realisable threshold, so the two minima are equal.
    labels, scores = _gaussian(300, 700, 1.1, seed=21)
    order = np.argsort(scores, kind="mergesort")
    sorted_labels = labels[order]
    n_bona, n_spoof = int(labels.sum()), int((labels == 0).sum())
    p_miss = np.r_[0, np.cumsum(sorted_labels == 1)] / n_bona
    p_fa = 1 - np.r_[0, np.cumsum(sorted_labels == 0)] / n_spoof
    sweep = np.min((0.95 * p_miss + 0.5 * p_fa) / 0.5)
    assert min_dcf(labels, scores) == pytest.approx(sweep)


def test_act_dcf_hand_computed_and_threshold_sign() -> None:
    from deepfake_audio.metrics import act_dcf, bayes_threshold

    # beta = c_miss (1 - p_spoof) / (c_fa p_spoof) = 0.95 / 0.5 = 1.9; accept when llr >= -ln 1.9 = -0.6419.
    t = bayes_threshold()
    assert t == pytest.approx(-math.log(1.9))
    # bona fide llr  2.0, -0.5, -0.7  -> -0.7 is rejected: Pmiss = 1/3
    # spoof llr     -3.0, -0.6, -0.65 -> -0.6 >= -0.6419 is accepted: Pfa = 1/3
    # actDCF = 1.9 * 1/3 + 1/3 = 2.9 / 3
    labels = [1, 1, 1, 0, 0, 0]
    llr = [2.0, -0.5, -0.7, -3.0, -0.6, -0.65]
    assert act_dcf(labels, llr) == pytest.approx(2.9 / 3)
    # With the threshold at +ln 1.9 instead (the wrong sign) it would be 1.9 * 2/3 = 1.2667.
    assert _dcf_by_the_plan(np.array(llr[:3]), np.array(llr[3:]), math.log(1.9), 0.05, 1, 10) == pytest.approx(3.8 / 3)
    # A score exactly at the threshold is accepted: a bona fide one is no miss, a spoof one a false alarm.
    assert act_dcf([1, 0], [t, t]) == pytest.approx(1.0)
    assert act_dcf([1, 0], [t, t - 1e-9]) == 0.0


def test_act_dcf_perfect_uninformative_and_miscalibrated() -> None:
    from deepfake_audio.metrics import act_dcf, min_dcf

    labels = np.array([1, 1, 0, 0])
    assert act_dcf(labels, [30.0, 30.0, -30.0, -30.0]) == 0.0
    assert act_dcf(labels, np.zeros(4)) == 1.0  # llr 0 >= -0.64: everything accepted, Pfa = 1
    assert act_dcf(labels, np.full(4, -5.0)) == pytest.approx(1.9)  # everything rejected: worse than 1
    # Good ranking, bad calibration: min DCF 0, act DCF pays for the shift.
    assert min_dcf(labels, [10.0, 9.0, 8.0, 7.0]) == 0.0
    assert act_dcf(labels, [10.0, 9.0, 8.0, 7.0]) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_act_dcf_matches_the_plan_and_bounds_min_dcf(seed: int) -> None:
    from deepfake_audio.metrics import act_dcf, min_dcf

    labels, scores = _gaussian(250, 500, 1.5, seed)
    for slope, offset in ((2.0, -1.0), (0.5, 0.0), (4.0, 3.0)):
        llr = slope * scores + offset
        direct = _dcf_by_the_plan(llr[labels == 1], llr[labels == 0], math.log(0.5 / 0.95), 0.05, 1.0, 10.0)
        got = act_dcf(labels, llr)
        assert got == pytest.approx(direct)
        assert got >= min_dcf(labels, llr) - 1e-12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p_spoof": 0.0}, "p_spoof"),
        ({"p_spoof": 1.0}, "p_spoof"),
        ({"c_fa": 0.0}, "c_fa"),
        ({"c_miss": -1.0}, "c_miss"),
    ],
)
def test_dcf_rejects_bad_costs(kwargs: dict, match: str) -> None:
    from deepfake_audio.metrics import act_dcf, min_dcf

    with pytest.raises(ValueError, match=match):
        min_dcf([1, 0], [0.9, 0.1], **kwargs)
    with pytest.raises(ValueError, match=match):
        act_dcf([1, 0], [0.9, 0.1], **kwargs)


def test_metric_block_has_min_dcf_always_and_act_dcf_with_llr() -> None:
    from deepfake_audio.metrics import act_dcf, min_dcf

    labels, scores = _gaussian(80, 160, 1.0, seed=13)
    plain = metric_block(labels, scores)
    assert plain["min_dcf"] == min_dcf(labels, scores)
    assert "act_dcf" not in plain
    block = metric_block(labels, scores, llr=2 * scores - 1)
    assert block["act_dcf"] == act_dcf(labels, 2 * scores - 1)
    assert block["act_dcf"] >= block["min_dcf"]


# ---------------------------------------------------------------- per-condition EER


def _condition_case() -> tuple[np.ndarray, np.ndarray, dict[str, list]]:
    #  row  label  score  codec  vocoder
    #   0     1    0.9    mp3    ""
    #   1     1    0.4    mp3    ""
    #   2     0    0.5    mp3    hifigan
    #   3     0    0.1    mp3    world
    #   4     1    0.8    opus   ""
    #   5     0    0.2    opus   hifigan
    #   6     0    0.35   opus   world
    #   7     1    0.3    ""     ""
    labels = np.array([1, 1, 0, 0, 1, 0, 0, 1])
    scores = np.array([0.9, 0.4, 0.5, 0.1, 0.8, 0.2, 0.35, 0.3])
    conditions = {
        "codec": ["mp3", "mp3", "mp3", "mp3", "opus", "opus", "opus", ""],
        "vocoder": ["", "", "hifigan", "world", "", "hifigan", "world", ""],
        "language": [""] * 8,  # nothing known: no entry
        "channel": ["landline", None, "", float("nan"), "", "", "", "landline"],  # bona fide only: no EER
    }
    return labels, scores, conditions


def test_per_condition_eer_hand_computed() -> None:
    labels, scores, conditions = _condition_case()
    block = metric_block(labels, scores, conditions=conditions)
    per = block["per_condition_eer"]
    assert set(per) == {"codec", "vocoder"}
    # codec holds bona fide clips: bona fide against spoof within each codec.
    #   mp3: bona 0.9 0.4, spoof 0.5 0.1 -> at t = 0.5 FRR 1/2 = FAR 1/2: EER 0.5
    #   opus: bona 0.8, spoof 0.2 0.35 -> separable: EER 0
    #   row 7 (codec unknown) is in neither
    assert per["codec"] == {"mp3": pytest.approx(0.5), "opus": 0.0}
    # vocoder values hold only spoofs: all four bona fide clips (0.9 0.8 0.4 0.3) against them.
    #   hifigan: spoof 0.5 0.2 -> t = 0.5: FRR 2/4, FAR 1/2: EER 0.5
    #   world:   spoof 0.1 0.35 -> t = 0.35: FRR 1/4, FAR 1/2 (|diff| 0.25, the first minimum): 0.375
    assert per["vocoder"] == {"hifigan": pytest.approx(0.5), "world": pytest.approx(0.375)}
    world_rows = [0, 1, 4, 7, 3, 6]
    assert per["vocoder"]["world"] == compute_eer(labels[world_rows], scores[world_rows])[0]
    json.dumps(block, allow_nan=False)


def test_per_condition_eer_absent_without_known_values() -> None:
    labels, scores, conditions = _condition_case()
    assert "per_condition_eer" not in metric_block(labels, scores)
    only_unknown = {k: conditions[k] for k in ("language", "channel")}
    assert "per_condition_eer" not in metric_block(labels, scores, conditions=only_unknown)
    # A group with a bona fide clip but no spoof is left out; the column's other groups stay.
    codec = ["mp3", "mp3", "mp3", "mp3", "opus", "opus", "opus", "amr"]
    assert set(metric_block(labels, scores, conditions={"codec": codec})["per_condition_eer"]["codec"]) == {
        "mp3",
        "opus",
    }


def test_per_condition_eer_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="codec"):
        metric_block([1, 0, 0], [0.9, 0.1, 0.2], conditions={"codec": ["mp3", "mp3"]})
