"""Tests for deepfake_audio.gate: judging ``dvc metrics diff --json`` results, and the real command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepfake_audio.cli import main as cli_main
from deepfake_audio.errors import ParamError
from deepfake_audio.gate import GateParams, Row, compare, load_gate_params, markdown, run_gate
from deepfake_audio.params import from_dict

PARAMS = GateParams()  # max_eer_increase 0.01, max_accuracy_decrease 0.02, max_auc_decrease 0.01


def _diff(metrics: dict[str, tuple], file: str = "metrics/m.json") -> dict:
    """A ``dvc metrics diff --all --json``-shaped dict from ``{key: (old, new)}``."""
    out = {}
    for key, (old, new) in metrics.items():
        entry = {"old": old, "new": new}
        if old is not None and new is not None:
            entry["diff"] = new - old
        out[key] = entry
    return {file: out}


def _row(rows: list[Row], key: str) -> Row:
    (row,) = [r for r in rows if r.key == key]
    return row


def _failed(rows: list[Row]) -> list[str]:
    return [r.key for r in rows if r.failed]


# ---------------------------------------------------------------- compare


def test_eer_regression_fails() -> None:
    rows = compare(_diff({"test.eer": (0.18, 0.23), "test.roc_auc": (0.89, 0.89)}), PARAMS)
    row = _row(rows, "test.eer")
    assert row.status == "REGRESSION"
    assert row.change == pytest.approx(0.05)
    assert row.tolerance == 0.01
    assert _failed(rows) == ["test.eer"]
    assert _row(rows, "test.roc_auc").status == "ok" and not _row(rows, "test.roc_auc").moved


def test_eer_improvement_passes() -> None:
    rows = compare(_diff({"test.eer": (0.23, 0.18)}), PARAMS)
    assert _row(rows, "test.eer").status == "improved"
    assert _failed(rows) == []


def test_move_within_tolerance_passes_even_at_the_edge() -> None:
    # 0.19 - 0.18 is 0.010000000000000009 in floats: exactly the tolerance must still pass
    rows = compare(_diff({"test.eer": (0.18, 0.19), "bench_dev.eer": (0.30, 0.305)}), PARAMS)
    assert [r.status for r in rows] == ["ok", "ok"]
    rows = compare(_diff({"test.eer": (0.18, 0.1901)}), PARAMS)
    assert _row(rows, "test.eer").status == "REGRESSION"


def test_missing_metric_in_workspace_is_an_error() -> None:
    rows = compare(_diff({"test.eer": (0.18, None), "test.accuracy": (0.8, 0.8)}), PARAMS)
    assert _row(rows, "test.eer").status == "MISSING"
    assert _failed(rows) == ["test.eer"]


def test_non_finite_metric_in_workspace_is_missing() -> None:
    rows = compare({"metrics/m.json": {"test.eer": {"old": 0.18, "new": float("nan"), "diff": float("nan")}}},
                   PARAMS)
    assert _row(rows, "test.eer").status == "MISSING"


def test_missing_file_is_an_error() -> None:
    # dvc reports a deleted (or unparseable) metrics file as every one of its keys turned null
    diff = _diff({"test.eer": (0.18, None), "test.accuracy": (0.8, None), "test.confusion.tp": (247, None)},
                 file="metrics/gone.json")
    diff.update(_diff({"test.eer": (0.2, 0.2)}, file="metrics/kept.json"))
    rows = compare(diff, PARAMS)
    assert sorted((r.file, r.key) for r in rows if r.failed) == [("metrics/gone.json", "test.accuracy"),
                                                                  ("metrics/gone.json", "test.eer")]
    assert _row(rows, "test.confusion.tp").status == "-"  # not gated, still listed as moved
    assert _row(rows, "test.confusion.tp").moved


def test_new_gated_metric_passes() -> None:
    rows = compare(_diff({"bench_dev.eer": (None, 0.4), "test.per_attack_eer.A10": (None, 0.5)}), PARAMS)
    assert [r.status for r in rows] == ["new", "new"]
    assert _failed(rows) == []


def test_accuracy_decrease_beyond_tolerance_fails() -> None:
    rows = compare(_diff({"test.accuracy": (0.80, 0.77), "test.balanced_accuracy": (0.78, 0.77),
                          "test.roc_auc": (0.89, 0.87)}), PARAMS)
    assert {r.key: r.status for r in rows} == {"test.accuracy": "REGRESSION", "test.balanced_accuracy": "ok",
                                               "test.roc_auc": "REGRESSION"}
    # higher accuracy is better, not a regression
    assert _row(compare(_diff({"test.accuracy": (0.7, 0.9)}), PARAMS), "test.accuracy").status == "improved"


def test_per_attack_gating_on_and_off() -> None:
    diff = _diff({"test.per_attack_eer.A07": (0.30, 0.40), "test.per_source_eer.demo": (0.2, 0.3),
                  "test.per_attack_eer.A08": (0.30, 0.34), "test.eer": (0.2, 0.2)})
    on = compare(diff, GateParams(max_slice_eer_increase=0.05))
    assert _failed(on) == ["test.per_attack_eer.A07", "test.per_source_eer.demo"]  # A08: +0.04, within 0.05
    off = compare(diff, GateParams(max_slice_eer_increase=None))
    assert _failed(off) == []
    assert _row(off, "test.per_attack_eer.A07").status == "-"


def test_cllr_tdcf_and_mean_source_eer_are_gated_higher_is_worse() -> None:
    rows = compare(_diff({"test.min_cllr": (0.30, 0.40), "test.cllr": (0.50, 0.52), "test.min_tdcf": (0.20, 0.10),
                          "test.mean_source_eer": (0.10, 0.15)}), PARAMS)
    assert {r.key: r.status for r in rows} == {"test.min_cllr": "REGRESSION", "test.cllr": "ok",
                                               "test.min_tdcf": "improved", "test.mean_source_eer": "REGRESSION"}


def test_only_known_metric_names_are_gated() -> None:
    rows = compare(_diff({"test.eer_threshold": (-1.0, 5.0), "test.frr": (0.1, 0.9), "test.n_spoof": (268, 10)}),
                   PARAMS)
    assert [r.status for r in rows] == ["-", "-", "-"]


def test_ungated_files_and_null_tolerances_never_fail() -> None:
    diff = _diff({"models.cnn.test.eer": (0.18, 0.5)}, file="metrics/summary.json")
    diff.update(_diff({"dev.eer": (0.1, 0.4)}, file="dvclive/cnn/metrics.json"))
    diff.update(_diff({"test.eer": (0.1, 0.4), "test.accuracy": (0.9, 0.1)}, file="metrics/cnn.json"))
    rows = compare(diff, GateParams(max_accuracy_decrease=None))
    assert [(r.file, r.key) for r in rows if r.failed] == [("metrics/cnn.json", "test.eer")]
    assert [r.status for r in rows if r.file != "metrics/cnn.json"] == ["-", "-"]


def test_markdown_lists_only_moved_rows() -> None:
    rows = compare(_diff({"test.eer": (0.18, 0.23), "test.roc_auc": (0.89, 0.89), "test.accuracy": (0.8, None)}),
                   PARAMS)
    lines = markdown(rows).splitlines()
    assert lines[0] == "| file | metric | old | new | change | status |"
    assert lines[2:] == ["| metrics/m.json | test.accuracy | 0.8 | (none) |  | MISSING |",
                         "| metrics/m.json | test.eer | 0.18 | 0.23 | +0.05 | REGRESSION |"]
    assert markdown(compare(_diff({"test.eer": (0.2, 0.2)}), PARAMS)) == ""


# ---------------------------------------------------------------- params


def test_gate_params_validate() -> None:
    assert from_dict(GateParams, None, prefix="gate") == GateParams()
    params = from_dict(GateParams, {"max_eer_increase": 0, "targets": ["metrics/a.json"], "max_auc_decrease": None},
                       prefix="gate")
    assert params.targets == ("metrics/a.json",) and params.max_auc_decrease is None
    with pytest.raises(ParamError, match=r"gate\.max_eer_increase"):
        from_dict(GateParams, {"max_eer_increase": -0.1}, prefix="gate")
    with pytest.raises(ParamError, match=r"gate\.max_eer_increse=.*unknown key"):
        from_dict(GateParams, {"max_eer_increse": 0.1}, prefix="gate")


def test_load_gate_params_reads_only_the_gate_section(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"whatever": 1}, "gate": {"max_slice_eer_increase": None}}), encoding="utf-8")
    assert load_gate_params(path) == GateParams(max_slice_eer_increase=None)


def test_repo_params_yaml_gate_section_loads() -> None:
    path = Path(__file__).parents[1] / "params.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    params = load_gate_params(path)
    for key, value in (raw.get("gate") or {}).items():
        got = getattr(params, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


# ---------------------------------------------------------------- a real DVC repository


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture()
def dvc_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git + DVC repository with ``metrics/m.json`` committed; the working directory is inside it."""
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "gate test")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "gate@example.invalid")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], tmp_path)
    _run([*dvc, "init", "-q"], tmp_path)
    _run([*dvc, "config", "core.analytics", "false"], tmp_path)
    (tmp_path / "dvc.yaml").write_text("metrics:\n  - metrics/m.json\n", encoding="utf-8")
    (tmp_path / "params.yaml").write_text("gate:\n  max_eer_increase: 0.01\n  max_slice_eer_increase: 0.05\n", encoding="utf-8")
    (tmp_path / "metrics").mkdir()
    _write_metrics(tmp_path, eer=0.20, accuracy=0.80)
    _run(["git", "add", "-A"], tmp_path)
    _run(["git", "commit", "-q", "-m", "baseline"], tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write_metrics(root: Path, **test: float) -> None:
    body = {"test": {**test, "per_attack_eer": {"A01": 0.1}, "n_spoof": 268}}
    (root / "metrics" / "m.json").write_text(json.dumps(body), encoding="utf-8")


def test_gate_against_a_real_dvc_repo(dvc_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_metrics(dvc_repo, eer=0.25, accuracy=0.80)  # worse
    assert run_gate("HEAD", None, "params.yaml") == 1
    out = capsys.readouterr().out
    assert "| metrics/m.json | test.eer | 0.2 | 0.25 | +0.05 | REGRESSION |" in out
    assert "test.accuracy" not in out  # unchanged rows are not listed

    _write_metrics(dvc_repo, eer=0.15, accuracy=0.80)  # better
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 0
    assert "| metrics/m.json | test.eer | 0.2 | 0.15 | -0.05 | improved |" in capsys.readouterr().out

    _write_metrics(dvc_repo, accuracy=0.80)  # test.eer deleted
    assert cli_main(["gate"]) == 1
    out = capsys.readouterr().out
    assert "| metrics/m.json | test.eer | 0.2 | (none) |  | MISSING |" in out
    assert "MISSING: metrics/m.json test.eer was 0.2 at HEAD and is missing" in out


def test_gate_usage_errors_exit_2(dvc_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_gate("no-such-rev", None, "params.yaml") == 2
    assert "unknown Git revision 'no-such-rev'" in capsys.readouterr().err
    assert run_gate("HEAD", ["metrics/nope.json"], "params.yaml") == 2
    assert "no metrics" in capsys.readouterr().err
    (dvc_repo / "params.yaml").write_text("gate:\n  max_eer_increse: 0.01\n", encoding="utf-8")
    assert run_gate("HEAD", None, "params.yaml") == 2
    assert "gate.max_eer_increse" in capsys.readouterr().err
