"""Tests for deepfake_audio.score_files and `deepfake-audio scores`: score files for the official
ASVspoof evaluation packages (label 1 = bona fide, higher score = more bona fide)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_audio.cli import main
from deepfake_audio.metrics import compute_eer, metric_block, min_dcf
from deepfake_audio.score_files import ScoreFileError, format_scores, select_scores, trial_ids, write_score_file


def _small() -> pd.DataFrame:
    """Three ASVspoof 2021 LA clips in an eval set and two demo clips in test."""
    return pd.DataFrame(
        {
            "utt_id": [
                "asvspoof2021_la/LA_E_1000001",
                "asvspoof2021_la/LA_E_1000002",
                "asvspoof2021_la/LA_E_1000003",
                "demo/bonafide/0001",
                "demo/spoof/0002",
            ],
            "split": ["eval:la21", "eval:la21", "eval:la21", "test", "test"],
            "label": [1, 0, 0, 1, 0],
            "attack": ["-", "A07", "A19", "-", "espeak"],
            "source": ["asvspoof2021_la"] * 3 + ["demo"] * 2,
            "score": [1.5, -0.25, 2e-07, 0.75, -3.0],
            "llr": [3.0, -0.5, 0.1, np.nan, np.nan],
        }
    )


def _parquet(tmp_path: Path, df: pd.DataFrame, name: str = "scores.parquet") -> Path:
    path = tmp_path / name
    df.to_parquet(path, index=False)
    return path


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(["scores", *argv])
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- exact bytes


def test_asvspoof5_bytes(tmp_path: Path) -> None:
    out = tmp_path / "score.tsv"
    write_score_file(_parquet(tmp_path, _small()), out, fmt="asvspoof5", split="eval:la21")
    # The header and tab the ASVspoof 5 package's util.load_tsv reads; ids without "asvspoof2021_la/".
    assert out.read_bytes() == b"filename\tcm-score\nLA_E_1000001\t1.5\nLA_E_1000002\t-0.25\nLA_E_1000003\t2e-07\n"


def test_asvspoof_alias_and_block_name_give_the_same_file(tmp_path: Path) -> None:
    scores = _parquet(tmp_path, _small())
    write_score_file(scores, tmp_path / "a.tsv", fmt="asvspoof5", split="eval:la21")
    write_score_file(scores, tmp_path / "b.tsv", fmt="asvspoof", split="la21")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()


def test_asvspoof2021_bytes(tmp_path: Path) -> None:
    out = tmp_path / "score.txt"
    write_score_file(_parquet(tmp_path, _small()), out, fmt="asvspoof2021", split="la21", score="llr")
    # "<trial id> <score>", no header, two space-separated columns (evaluate.py refuses more).
    assert out.read_bytes() == b"LA_E_1000001 3.0\nLA_E_1000002 -0.5\nLA_E_1000003 0.1\n"


def test_csv_bytes_keep_the_full_utt_id(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    write_score_file(_parquet(tmp_path, _small()), out, fmt="csv", split="test")
    assert out.read_bytes() == b"utt_id,score,label\ndemo/bonafide/0001,0.75,1\ndemo/spoof/0002,-3.0,0\n"


def test_trial_ids_strip_the_source_and_keep_folders() -> None:
    ids = pd.Series(["folder/real/a", "folder/fake/a", "asvspoof5/E_0000000001", "my/src/T_01", "bare"])
    sources = pd.Series(["folder", "folder", "asvspoof5", "my/src", "bare"])
    # A folder source's ids are unique only with their folders; a source name holding "/" is
    # removed whole; an id without a prefix stays.
    assert trial_ids(ids, sources).tolist() == ["real/a", "fake/a", "E_0000000001", "T_01", "bare"]
    assert trial_ids(ids).tolist() == ["real/a", "fake/a", "E_0000000001", "src/T_01", "bare"]


# ---------------------------------------------------------------- round trip


def _parse_asvspoof5(text: str) -> dict[str, float]:
    """Our own reader of the ASVspoof 5 CM score file: a `filename<TAB>cm-score` header, then rows."""
    lines = text.split("\n")
    assert lines[0] == "filename\tcm-score" and lines[-1] == ""
    out = {}
    for line in lines[1:-1]:
        trial, score = line.split("\t")
        assert trial not in out
        out[trial] = float(score)
    return out


def test_round_trip_recomputes_the_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 600
    label = rng.integers(0, 2, n)
    df = pd.DataFrame(
        {
            "utt_id": [f"asvspoof5/E_{i:010d}" for i in range(n)],
            "split": "eval:asv5",
            "label": label,
            "attack": np.where(label == 1, "-", "A11"),
            "source": "asvspoof5",
            "score": rng.normal(label * 1.5, 1.0) * 10.0 ** rng.integers(-8, 4, n),  # many magnitudes
            "llr": rng.normal(size=n),
        }
    ).sample(frac=1.0, random_state=3)  # rows in no particular order: the file must key by id
    out = tmp_path / "score.tsv"
    write_score_file(_parquet(tmp_path, df), out, fmt="asvspoof5")
    parsed = _parse_asvspoof5(out.read_text(encoding="utf-8"))
    # A key file as the organisers hold it: trial id -> label, joined by id, not by position.
    keys = dict(zip(df["utt_id"].str.removeprefix("asvspoof5/"), df["label"]))
    assert set(parsed) == set(keys)
    trials = sorted(parsed)
    y = np.array([keys[t] for t in trials])
    s = np.array([parsed[t] for t in trials])
    block = metric_block(df["label"].to_numpy(), df["score"].to_numpy())
    assert compute_eer(y, s)[0] == block["eer"]
    assert min_dcf(y, s) == block["min_dcf"]
    # The way the official package reads it (pandas, tab, header row) gives the same scores.
    official = pd.read_csv(out, sep="\t", header=0).set_index("filename")["cm-score"]
    assert official.loc[trials].tolist() == s.tolist()


# ---------------------------------------------------------------- refusals


def test_refusals(tmp_path: Path) -> None:
    df = _small()
    with pytest.raises(ScoreFileError, match="no such file"):
        write_score_file(tmp_path / "absent.parquet", tmp_path / "x.tsv", fmt="asvspoof5")
    with pytest.raises(ScoreFileError, match=r"no split 'dev'.*\['eval:la21', 'test'\]"):
        select_scores(df, split="dev")
    with pytest.raises(ScoreFileError, match=r"several splits.*--split"):
        select_scores(df)
    with pytest.raises(ScoreFileError, match="no calibration"):
        select_scores(df, split="test", score="llr")
    with pytest.raises(ScoreFileError, match="unknown format"):
        format_scores(select_scores(df, split="test"), "kaldi")
    twins = df.assign(source=["a", "b", "a", "a", "a"], utt_id=["a/X", "b/X", "a/Y", "a/Z", "a/W"], split="test")
    with pytest.raises(ScoreFileError, match="'X' appears more than once"):
        format_scores(select_scores(twins), "asvspoof5")
    assert format_scores(select_scores(twins), "csv").count("\n") == 6  # full utt_ids differ: fine there
    spaced = df.assign(utt_id=df["utt_id"].str.replace("LA_E_1000001", "LA E 1"))
    with pytest.raises(ScoreFileError, match="whitespace"):
        format_scores(select_scores(spaced, split="la21"), "asvspoof2021")


# ---------------------------------------------------------------- the command


def test_cli_writes_and_logs(tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> None:
    scores = _parquet(tmp_path, _small())
    out = tmp_path / "sub" / "score.tsv"
    with caplog.at_level(logging.INFO, logger="deepfake_audio"):
        code, _ = _cli(capsys, str(scores), "--format", "asvspoof", "--split", "la21", "--out", str(out))
    assert code == 0
    assert out.read_text(encoding="utf-8").splitlines()[:2] == ["filename\tcm-score", "LA_E_1000001\t1.5"]
    assert "3 trials (1 bona fide, 2 spoof)" in caplog.text
    assert [p.name for p in out.parent.iterdir()] == ["score.tsv"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--split", "dev"], "no split 'dev' in the scores; present: ['eval:la21', 'test']"),
        (["--split", "test", "--score", "llr"], "NaN or infinite llr"),
        ([], "choose one with --split"),
    ],
)
def test_cli_refuses_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    scores = _parquet(tmp_path, _small())
    out = tmp_path / "score.txt"
    code, err = _cli(capsys, str(scores), "--format", "asvspoof2021", *extra, "--out", str(out))
    assert code == 2
    assert err.startswith("deepfake-audio scores: error: ") and message in err
    assert not out.exists()


def test_cli_missing_file_and_bad_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _cli(capsys, str(tmp_path / "nope.parquet"), "--format", "csv", "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "nope.parquet: no such file" in err
    with pytest.raises(SystemExit):
        main(["scores", str(tmp_path / "nope.parquet"), "--format", "kaldi", "--out", str(tmp_path / "o")])
