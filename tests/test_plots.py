"""Tests for deepfake_audio.plots (label 1 = bona fide, higher score = more bona fide)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_audio import plots
from deepfake_audio.metrics import compute_eer, metric_block

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _gaussian(n_bona: int, n_spoof: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(shift, 1.0, n_bona), rng.normal(0.0, 1.0, n_spoof)])
    labels = np.concatenate([np.ones(n_bona, int), np.zeros(n_spoof, int)])
    perm = rng.permutation(scores.size)
    return labels[perm], scores[perm]


LABELS, SCORES = _gaussian(300, 1200, 2.0, 0)
LABELS2, SCORES2 = _gaussian(200, 500, 0.8, 1)


# ---------------------------------------------------------------- tables


@pytest.mark.parametrize("max_points", [2, 17, 400, 100_000])
def test_roc_table_shape_and_monotone(max_points: int) -> None:
    t = plots.roc_table(LABELS, SCORES, max_points=max_points)
    assert list(t.columns) == ["fpr", "tpr", "threshold"]
    assert 2 <= len(t) <= max_points
    assert (t.iloc[0]["fpr"], t.iloc[0]["tpr"]) == (0.0, 0.0)
    assert (t.iloc[-1]["fpr"], t.iloc[-1]["tpr"]) == (1.0, 1.0)
    assert t["fpr"].is_monotonic_increasing and t["tpr"].is_monotonic_increasing
    assert t["threshold"].is_monotonic_decreasing
    assert np.isfinite(t.to_numpy()).all()
    json.loads(t.to_json(orient="records"))


def test_roc_table_thresholds_reproduce_rates() -> None:
    t = plots.roc_table(LABELS, SCORES, max_points=50)
    bona, spoof = SCORES[LABELS == 1], SCORES[LABELS == 0]
    for _, row in t.iterrows():
        assert np.mean(bona >= row["threshold"]) == pytest.approx(row["tpr"])
        assert np.mean(spoof >= row["threshold"]) == pytest.approx(row["fpr"])


def test_roc_table_keeps_all_points_when_small() -> None:
    from sklearn.metrics import roc_curve

    fpr, _, _ = roc_curve(LABELS2, SCORES2)
    assert len(plots.roc_table(LABELS2, SCORES2, max_points=10_000)) == fpr.size


def test_roc_table_rejects_tiny_max_points() -> None:
    with pytest.raises(ValueError, match="max_points"):
        plots.roc_table(LABELS, SCORES, max_points=1)


@pytest.mark.parametrize("max_points", [2, 50, 400])
def test_det_table_columns_and_probit(max_points: int) -> None:
    t = plots.det_table(LABELS, SCORES, max_points=max_points)
    assert list(t.columns) == ["fpr", "fnr", "fpr_probit", "fnr_probit", "threshold"]
    assert 2 <= len(t) <= max_points
    assert np.isfinite(t.to_numpy()).all()
    assert t["fpr"].is_monotonic_increasing and t["fnr"].is_monotonic_decreasing
    assert t["fpr_probit"].is_monotonic_increasing and t["fnr_probit"].is_monotonic_decreasing
    assert (t.iloc[0]["fpr"], t.iloc[0]["fnr"]) == (0.0, 1.0)
    assert (t.iloc[-1]["fpr"], t.iloc[-1]["fnr"]) == (1.0, 0.0)
    inner = t[(t["fpr"] > 0) & (t["fpr"] < 1)]
    from scipy.stats import norm

    np.testing.assert_allclose(inner["fpr_probit"], norm.ppf(inner["fpr"]))


def test_det_table_separable_is_finite() -> None:
    t = plots.det_table([1, 1, 0, 0], [3.0, 2.0, 1.0, 0.0])
    assert np.isfinite(t.to_numpy()).all()
    assert ((t["fpr"] == 0) & (t["fnr"] == 0)).any()  # the perfect operating point is kept


def test_det_table_crosses_at_eer() -> None:
    t = plots.det_table(LABELS, SCORES, max_points=100_000)
    eer, _ = compute_eer(LABELS, SCORES)
    i = int(np.argmin(np.abs(t["fpr"] - t["fnr"])))
    assert (t["fpr"][i] + t["fnr"][i]) / 2 == pytest.approx(eer)


@pytest.mark.parametrize("threshold", [None, -0.5, 1.0, 99.0])
def test_confusion_table_matches_metric_block(threshold: float | None) -> None:
    block = metric_block(LABELS, SCORES, threshold=threshold)
    t = plots.confusion_table(LABELS, SCORES, threshold=block["threshold"])
    assert list(t.columns) == ["actual", "predicted"]
    assert len(t) == LABELS.size
    assert set(t["actual"]) <= {"bonafide", "spoof"}
    assert set(t["predicted"]) <= {"bonafide", "spoof"}
    counts = t.value_counts().to_dict()
    c = block["confusion"]  # spoof is the positive class
    assert counts.get(("spoof", "spoof"), 0) == c["tp"]
    assert counts.get(("bonafide", "spoof"), 0) == c["fp"]
    assert counts.get(("spoof", "bonafide"), 0) == c["fn"]
    assert counts.get(("bonafide", "bonafide"), 0) == c["tn"]
    assert (t["actual"] == "bonafide").tolist() == (LABELS == 1).tolist()  # input order kept


def test_confusion_table_rejects_bad_threshold() -> None:
    with pytest.raises(ValueError, match="threshold"):
        plots.confusion_table(LABELS, SCORES, threshold=float("inf"))


# ---------------------------------------------------------------- PNGs

COMPARISON = pd.DataFrame(
    {
        "model": ["lcnn", "lcnn", "gmm", "gmm", "rawnet2"],
        "eval_set": ["la19_eval", "in_the_wild", "la19_eval", "in_the_wild", "la19_eval"],
        "eer": [0.021, 0.34, 0.08, 0.41, 0.012],
    }
)

PNG_WRITERS: dict[str, Callable[[Path], None]] = {
    "roc": lambda p: plots.save_roc_png(
        p, {"lcnn": (LABELS, SCORES), "gmm": (LABELS2, SCORES2)}, title="ROC"
    ),
    "det": lambda p: plots.save_det_png(
        p, {"lcnn": (LABELS, SCORES), "gmm": (LABELS2, SCORES2)}, title="DET"
    ),
    "confusion": lambda p: plots.save_confusion_png(
        p, LABELS, SCORES, threshold=0.9, title="Confusion"
    ),
    "hist": lambda p: plots.save_score_hist_png(p, LABELS, SCORES, threshold=0.9, title="Scores"),
    "comparison": lambda p: plots.save_comparison_png(p, COMPARISON, metric="eer"),
}


@pytest.mark.parametrize("kind", sorted(PNG_WRITERS))
def test_png_valid_and_byte_identical(kind: str, tmp_path: Path) -> None:
    first = tmp_path / "a" / f"{kind}.png"  # missing parent folder is created
    second = tmp_path / f"{kind}.png"
    PNG_WRITERS[kind](first)
    PNG_WRITERS[kind](second)
    data = first.read_bytes()
    assert len(data) > 1000
    assert data.startswith(PNG_MAGIC)
    assert b"Software" not in data and b"Matplotlib" not in data
    assert data == second.read_bytes()
    # Overwriting in place goes through a temp file that must not be left behind.
    PNG_WRITERS[kind](second)
    assert second.read_bytes() == data
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(["a", f"{kind}.png"])
    assert [x.name for x in (tmp_path / "a").iterdir()] == [f"{kind}.png"]


def test_png_does_not_register_pyplot_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    for kind, write in PNG_WRITERS.items():
        write(tmp_path / f"{kind}.png")
    assert plt.get_fignums() == before


def test_png_edge_cases(tmp_path: Path) -> None:
    # Separable scores (DET curve on the axes' edges) and all-equal scores must still draw.
    sep_l, sep_s = [1, 1, 0, 0], [3.0, 2.0, 1.0, 0.0]
    plots.save_det_png(tmp_path / "det.png", {"perfect": (sep_l, sep_s)}, title="t")
    plots.save_roc_png(tmp_path / "roc.png", {"perfect": (sep_l, sep_s)}, title="t")
    plots.save_score_hist_png(tmp_path / "h.png", [1, 0], [0.5, 0.5], threshold=0.5, title="t")
    plots.save_confusion_png(tmp_path / "c.png", [1, 0], [0.5, 0.5], threshold=0.5, title="t")
    gap = pd.DataFrame({"model": ["a", "b"], "eval_set": ["x", "y"], "eer": [0.0, np.nan]})
    plots.save_comparison_png(tmp_path / "cmp.png", gap)
    for p in tmp_path.iterdir():
        assert p.read_bytes().startswith(PNG_MAGIC)


def test_png_input_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        plots.save_roc_png(tmp_path / "r.png", {}, title="t")
    with pytest.raises(ValueError, match="length"):
        plots.save_det_png(tmp_path / "d.png", {"x": ([1, 0, 1], [0.1, 0.2])}, title="t")
    with pytest.raises(ValueError, match="column"):
        plots.save_comparison_png(tmp_path / "c.png", COMPARISON, metric="roc_auc")
    dup = pd.concat([COMPARISON, COMPARISON.iloc[:1]])
    with pytest.raises(ValueError, match="repeated"):
        plots.save_comparison_png(tmp_path / "c.png", dup)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
