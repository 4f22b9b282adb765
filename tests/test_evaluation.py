"""Tests for deepfake_audio.evaluation: metric blocks per scored set and the report table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_audio.evaluation import markdown_table, metrics_from_scores, summarize
from deepfake_audio.params import EvaluateParams
from deepfake_audio.sources.corpora import ASV_SCORES


def _scores(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for split, source, partition, n in (
        ("test", "demo", "", 60),
        ("eval:la", "la", "eval", 40),
        ("eval:mix", "x", "", 30),
        ("eval:mix", "y", "", 30),
    ):
        label = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
        score = rng.normal(label * 2.0, 1.0)
        attack = np.where(label == 1, "-", np.where(np.arange(n) % 2 == 0, "A01", "A02"))
        rows.append(
            pd.DataFrame(
                {
                    "utt_id": [f"{split}/{source}/{i}" for i in range(n)],
                    "split": split,
                    "label": label,
                    "attack": attack,
                    "source": source,
                    "score": score,
                    "llr": 2.0 * score - 2.0,
                    "partition": partition,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_every_set_gets_a_full_block(tmp_path) -> None:
    raw = tmp_path / "raw"
    (raw / "la").mkdir(parents=True)
    pd.DataFrame(
        {
            "partition": "eval",
            "key": ["target"] * 3 + ["nontarget"] * 3 + ["spoof"] * 3,
            "score": [3.0, 2.0, 2.5, -1.0, -2.0, 0.0, 1.0, 2.2, -0.5],
        }
    ).to_parquet(raw / "la" / ASV_SCORES)
    metrics = metrics_from_scores(_scores(), threshold=0.5, params=EvaluateParams(bootstrap=50), raw_dir=raw)
    assert set(metrics) == {"test", "la", "mix"}
    for block in metrics.values():
        assert block["threshold"] == 0.5 and "at_eer_threshold" in block
        assert set(block["per_attack_eer"]) == {"A01", "A02"}
        assert block["eer_ci"][0] <= block["eer"] <= block["eer_ci"][1]
        assert 0.0 < block["min_cllr"] <= block["cllr"]
    # t-DCF only where ASV scores exist for the set's single source and partition.
    assert "min_tdcf" in metrics["la"] and "min_tdcf" not in metrics["test"] and "min_tdcf" not in metrics["mix"]
    assert set(metrics["mix"]["per_source_eer"]) == {"x", "y"}
    assert metrics["mix"]["mean_source_eer"] == pytest.approx(np.mean(list(metrics["mix"]["per_source_eer"].values())))
    assert "mean_source_eer" not in metrics["test"]


def test_a_one_class_set_records_why_instead_of_failing() -> None:
    scores = _scores()
    scores = scores[~((scores["split"] == "eval:la") & (scores["label"] == 1))]
    metrics = metrics_from_scores(scores, threshold=0.0, params=EvaluateParams(bootstrap=0))
    assert metrics["la"] == {"n_bonafide": 0, "n_spoof": 20, "error": "needs both bona fide and spoof clips for EER"}
    assert "eer_ci" not in metrics["test"]  # bootstrap 0: no interval


def test_without_calibration_there_is_no_cllr() -> None:
    scores = _scores().assign(llr=np.nan)
    block = metrics_from_scores(scores, threshold=0.0, params=EvaluateParams(bootstrap=0))["test"]
    assert "cllr" not in block and "min_cllr" in block


def test_report_table_shows_interval_and_dashes_for_absent_metrics() -> None:
    metrics = {
        "m1": metrics_from_scores(_scores(1), threshold=0.5, params=EvaluateParams(bootstrap=50)),
        "m2": metrics_from_scores(_scores(2), threshold=0.5, params=EvaluateParams(bootstrap=50)),
    }
    summary, table = summarize(metrics)
    text = markdown_table(table)
    lines = text.strip().splitlines()
    assert len(lines) == 2 + 2 * 3  # header, rule, two models x three sets
    test_row = next(line for line in lines if line.startswith("| m1 | test |"))
    eer, (low, high) = metrics["m1"]["test"]["eer"], metrics["m1"]["test"]["eer_ci"]
    assert f"{100 * eer:.2f} [{100 * low:.1f}, {100 * high:.1f}]" in test_row
    cells = [c.strip() for c in test_row.split("|")]
    assert cells[6] == f"{metrics['m1']['test']['min_dcf']:.3f}"  # minDCF, ASVspoof 5 costs
    assert cells[9] == "-"  # min t-DCF: no ASV scores
    best = min(("m1", "m2"), key=lambda m: metrics[m]["test"]["eer"])
    assert summary["best_model_by_test_eer"] == best


def test_condition_columns_give_per_condition_eer_where_known() -> None:
    from deepfake_audio.metrics import metric_block

    scores = _scores(3)
    n = len(scores)
    is_la = (scores["split"] == "eval:la").to_numpy()
    bona = (scores["label"] == 1).to_numpy()
    # codec known on the la set only (both classes per codec); vocoder on la's spoofs only.
    scores["codec"] = np.where(is_la, np.where(np.arange(n) % 3 == 0, "mp3", "opus"), "")
    scores["vocoder"] = np.where(is_la & ~bona, np.where(np.arange(n) % 2 == 0, "hifigan", "world"), "")
    metrics = metrics_from_scores(scores, threshold=0.5, params=EvaluateParams(bootstrap=0))
    la = metrics["la"]["per_condition_eer"]
    assert set(la) == {"codec", "vocoder"}
    assert set(la["codec"]) == {"mp3", "opus"} and set(la["vocoder"]) == {"hifigan", "world"}
    part = scores[is_la]
    expected = metric_block(
        part["label"].to_numpy(),
        part["score"].to_numpy(),
        conditions={"codec": part["codec"].to_numpy(), "vocoder": part["vocoder"].to_numpy()},
    )["per_condition_eer"]
    assert la == expected
    # Sets where every value is "" get no entry at all.
    assert "per_condition_eer" not in metrics["test"] and "per_condition_eer" not in metrics["mix"]


def test_without_condition_columns_there_is_no_per_condition_eer_and_dcf_is_there() -> None:
    metrics = metrics_from_scores(_scores(), threshold=0.5, params=EvaluateParams(bootstrap=0))
    for block in metrics.values():
        assert "per_condition_eer" not in block
        assert 0.0 <= block["min_dcf"] <= 1.0 and block["act_dcf"] >= block["min_dcf"]
    uncalibrated = metrics_from_scores(_scores().assign(llr=np.nan), threshold=0.5, params=EvaluateParams(bootstrap=0))
    assert "act_dcf" not in uncalibrated["test"] and "min_dcf" in uncalibrated["test"]


def test_cross_corpus_matrix_has_a_row_per_model_and_a_column_per_set(tmp_path: Path) -> None:
    from deepfake_audio.evaluation import cross_corpus, cross_corpus_markdown, write_report

    metrics = {
        "m1": metrics_from_scores(_scores(1), threshold=0.5, params=EvaluateParams(bootstrap=50)),
        "m2": metrics_from_scores(_scores(2), threshold=0.5, params=EvaluateParams(bootstrap=50)),
    }
    metrics["m2"].pop("mix")  # a set one model was not scored on stays blank
    _, table = summarize(metrics)
    grid = cross_corpus(table, "eer")
    assert list(grid.index) == ["m1", "m2"] and list(grid.columns) == ["test", "la", "mix"]
    assert grid.at["m1", "la"] == metrics["m1"]["la"]["eer"] and np.isnan(grid.at["m2", "mix"])
    lines = cross_corpus_markdown(table).strip().splitlines()
    assert lines[0] == "| model | test | la | mix |"
    m1 = [c.strip() for c in lines[2].split("|")[2:-1]]
    block = metrics["m1"]["la"]
    low, high = block["eer_ci"]
    assert m1[1] == f"{100 * block['eer']:.2f} [{100 * low:.1f}, {100 * high:.1f}] · {block['min_dcf']:.3f}"
    assert lines[3].split("|")[4].strip() == "-"
    summary = write_report(
        metrics,
        summary_path=tmp_path / "summary.json",
        figure_dir=tmp_path / "fig",
        markdown_path=tmp_path / "summary.md",
    )
    assert "m1" in summary["models"] and (tmp_path / "fig" / "cross_corpus.png").stat().st_size > 0
    text = (tmp_path / "summary.md").read_text()
    assert "## Cross-corpus matrix" in text and "![Cross-corpus EER (minDCF below)](fig/cross_corpus.png)" in text
