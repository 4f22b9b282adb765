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
    "roc": lambda p: plots.save_roc_png(p, {"lcnn": (LABELS, SCORES), "gmm": (LABELS2, SCORES2)}, title="ROC"),
    "det": lambda p: plots.save_det_png(p, {"lcnn": (LABELS, SCORES), "gmm": (LABELS2, SCORES2)}, title="DET"),
    "confusion": lambda p: plots.save_confusion_png(p, LABELS, SCORES, threshold=0.9, title="Confusion"),
    "hist": lambda p: plots.save_score_hist_png(p, LABELS, SCORES, threshold=0.9, title="Scores"),
    "comparison": lambda p: plots.save_comparison_png(p, COMPARISON, metric="eer"),
    "attack_eer": lambda p: plots.save_attack_eer_png(
        p,
        {"test": {"A01": 0.02, "A10": 0.3}, "bench": {"vc:adain": 0.41}},
        title="EER",
        pooled={"test": 0.05},
    ),
    "roc_det": lambda p: plots.save_models_roc_det_png(
        p, {"lcnn": (LABELS, SCORES), "gmm": (LABELS2, SCORES2)}, title="ROC/DET"
    ),
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


# ---------------------------------------------------------------- per-attack EER, ROC/DET panels


def _image_hw(path: Path) -> tuple[int, int]:
    import matplotlib.image

    assert path.stat().st_size > 1000
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img.shape[0], img.shape[1]


def _attacks(n: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"A{i:02d}": float(e) for i, e in enumerate(rng.uniform(0.0, 0.5, n), start=1)}


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """Figures as handed to ``plots._save``, each kept as a list of its axes' contents."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    seen: list[list[dict]] = []
    save = plots._save

    def spy(fig: Figure, path: Path) -> None:
        axes = []
        for ax in fig.axes:
            # The axes' own legend, else the figure's (shared by both ROC/DET panels).
            legend = ax.get_legend() or (fig.legends[0] if fig.legends else None)
            axes.append(
                {
                    "title": ax.get_title(),
                    "x_span": (ax.get_position().x0, ax.get_position().x1),
                    "y_down": ax.yaxis_inverted(),
                    "xlabel": ax.get_xlabel(),
                    "yticks": [t.get_text() for t in ax.get_yticklabels()],
                    "xticks": [t.get_text() for t in ax.get_xticklabels()],
                    "bars": [
                        (r.get_y() + r.get_height() / 2, r.get_width(), r.get_facecolor())
                        for r in ax.patches
                        if isinstance(r, Rectangle)
                    ],
                    "texts": [t.get_text() for t in ax.texts],
                    "vlines": len(ax.collections),
                    "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
                    "suptitle": fig.get_suptitle(),
                }
            )
        seen.append(axes)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


def test_attack_eer_png_draws_bars_in_natural_order(drawn: list, tmp_path: Path) -> None:
    per_attack = {"test": {"A10": 0.25, "A2": 0.0, "A01": 0.031}, "bench": {"vc:adain": 0.5}}
    plots.save_attack_eer_png(tmp_path / "a.png", per_attack, title="T", pooled={"test": 0.1})
    (ax,) = drawn[0]
    assert ax["yticks"] == ["A01", "A2", "A10", "vc:adain"]
    assert ax["y_down"]  # read top to bottom
    assert ax["xlabel"] == "EER (%)" and ax["title"] == "T"
    # One bar per (set, attack) at its attack's row, length in percent, colour per set.
    rows = sorted((round(y), w) for y, w, _ in ax["bars"])
    assert rows == [(0, pytest.approx(3.1)), (1, 0.0), (2, 25.0), (3, 50.0)]
    assert len({c for _, _, c in ax["bars"]}) == 2
    assert {"3.10", "0.00", "25.00", "50.00"} <= set(ax["texts"])
    assert ax["vlines"] == 1
    assert ax["legend"] == ["test", "bench", "test pooled (10.00%)"]


def test_attack_eer_png_single_set_has_no_legend(drawn: list, tmp_path: Path) -> None:
    plots.save_attack_eer_png(tmp_path / "a.png", {"test": {"A01": 0.2}}, title="t")
    (ax,) = drawn[0]
    assert ax["legend"] == [] and ax["vlines"] == 0 and len(ax["bars"]) == 1


def test_models_roc_det_png_panels_and_legend(drawn: list, tmp_path: Path) -> None:
    curves = {"lcnn": (LABELS, SCORES), "gmm": (LABELS2, SCORES2)}
    plots.save_models_roc_det_png(tmp_path / "rd.png", curves, title="All models")
    roc, det = drawn[0]
    assert (roc["title"], det["title"], roc["suptitle"]) == ("ROC", "DET", "All models")
    assert roc["x_span"][1] < det["x_span"][0]  # side by side, ROC on the left
    assert roc["xlabel"] == "False positive rate (spoof accepted as bona fide)"
    assert det["xlabel"] == "False acceptance rate: spoof accepted (%)"
    assert det["xticks"] == det["yticks"] == ["0.1", "0.5", "1", "2", "5", "10", "20", "40"]
    eers = [compute_eer(y, s)[0] for y, s in curves.values()]
    assert roc["legend"] == [f"lcnn (EER {eers[0]:.2%})", f"gmm (EER {eers[1]:.2%})"]


def test_natural_key_orders_attack_ids() -> None:
    ids = ["A10", "vc:adain", "A2", "tts:vits", "a1", "A01b", "A100"]
    assert sorted(ids, key=plots._natural_key) == ["a1", "A01b", "A2", "A10", "A100", "tts:vits", "vc:adain"]


def test_attack_eer_png_height_grows_with_attacks(tmp_path: Path) -> None:
    plots.save_attack_eer_png(tmp_path / "one.png", {"test": _attacks(1)}, title="t")
    plots.save_attack_eer_png(
        tmp_path / "many.png",
        {"test": _attacks(20), "eval": _attacks(20, seed=1)},
        title="t",
        pooled={"test": 0.1, "eval": 0.2},
    )
    h1, w1 = _image_hw(tmp_path / "one.png")
    h20, w20 = _image_hw(tmp_path / "many.png")
    assert w1 > h1  # a single attack is a short, wide strip, not an empty tall canvas
    assert h20 > 4 * h1
    assert h20 > w20  # 20 attacks x 2 sets stand as tall rows, labels not squeezed


def test_attack_eer_png_disjoint_sets_share_no_row(tmp_path: Path) -> None:
    test = _attacks(9)
    bench = {"vc:adain": 0.31, "tts:vits": 0.04, "vc:freevc": 0.19, "tts:xtts_v2": 0.45}
    plots.save_attack_eer_png(tmp_path / "two.png", {"test": test, "bench": bench}, title="t")
    plots.save_attack_eer_png(tmp_path / "one.png", {"all": {**test, **bench}}, title="t")
    # 13 rows of one bar each in both: sets with different attacks do not leave empty slots.
    assert _image_hw(tmp_path / "two.png")[0] == _image_hw(tmp_path / "one.png")[0]
    # Sets with the same attacks do share rows, which then hold a bar per set.
    plots.save_attack_eer_png(tmp_path / "same.png", {"a": test, "b": test}, title="t")
    plots.save_attack_eer_png(tmp_path / "nine.png", {"a": test}, title="t")
    assert _image_hw(tmp_path / "same.png")[0] > 1.25 * _image_hw(tmp_path / "nine.png")[0]


@pytest.mark.parametrize(
    ("per_attack", "pooled", "match"),
    [
        ({}, None, "per_attack is empty"),
        ({"test": {}}, None, "no attacks"),
        ({"test": {"A01": 1.5}}, None, r"per_attack\['test'\]\['A01'\].*1.5"),
        ({"test": {"A01": float("nan")}}, None, "fraction"),
        ({"test": {"A01": "high"}}, None, "fraction"),
        ({"test": {"A01": 0.1}}, {"eval": 0.1}, "pooled names set 'eval'"),
        ({"test": {"A01": 0.1}}, {"test": -0.1}, "pooled"),
    ],
)
def test_attack_eer_png_input_errors(per_attack: dict, pooled: dict | None, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        plots.save_attack_eer_png(tmp_path / "a.png", per_attack, title="t", pooled=pooled)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_models", [1, 3])
def test_models_roc_det_png_two_panels(n_models: int, tmp_path: Path) -> None:
    curves = {f"m{k}": _gaussian(150, 400, 0.5 + k, seed=k) for k in range(n_models)}
    plots.save_models_roc_det_png(tmp_path / "rd.png", curves, title="t")
    plots.save_roc_png(tmp_path / "roc.png", curves, title="t")
    h, w = _image_hw(tmp_path / "rd.png")
    h_roc, w_roc = _image_hw(tmp_path / "roc.png")
    assert w > 1.6 * w_roc  # two square panels side by side
    assert 0.9 * h_roc < h < 1.4 * h_roc


def test_models_roc_det_png_input_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        plots.save_models_roc_det_png(tmp_path / "rd.png", {}, title="t")
    one_class = ([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="at least one bona fide and one spoof"):
        plots.save_models_roc_det_png(tmp_path / "rd.png", {"ok": (LABELS, SCORES), "bad": one_class}, title="t")
    assert list(tmp_path.iterdir()) == []


def test_more_curves_and_sets_than_colours(drawn: list, tmp_path: Path) -> None:
    # Matplotlib has ten "Cn" colours; the eleventh model or set must reuse one, not fail.
    y = np.array([1, 1, 0, 0])
    curves = {f"m{k}": (y, np.array([k, 2.0, 1.0, 0.0])) for k in range(11)}
    plots.save_models_roc_det_png(tmp_path / "rd.png", curves, title="t")
    plots.save_attack_eer_png(tmp_path / "a.png", {f"s{k}": {"A01": 0.01 * k} for k in range(11)}, title="t")
    assert len(drawn[0][0]["legend"]) == 11 and len(drawn[1][0]["bars"]) == 11
