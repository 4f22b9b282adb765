"""Tests for deepfake_audio.gate: judging ``dvc metrics diff --json`` results, and the real command."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepfake_audio.cli import main as cli_main
from deepfake_audio.errors import ParamError
from deepfake_audio.gate import (
    FileContext,
    GateParams,
    MachineCheck,
    Row,
    SeedStats,
    aggregate_seeds,
    compare,
    failure_messages,
    flatten,
    load_gate_params,
    markdown,
    partial_keys,
    run_gate,
    seed_stats,
    seeds_path,
    stamp_path,
    standard_error,
)
from deepfake_audio.machine import differences, fingerprint, machine_stamp
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


def _row(rows: list[Row], key: str, file: str | None = None) -> Row:
    (row,) = [r for r in rows if r.key == key and file in (None, r.file)]
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
    rows = compare({"metrics/m.json": {"test.eer": {"old": 0.18, "new": float("nan"), "diff": float("nan")}}}, PARAMS)
    assert _row(rows, "test.eer").status == "MISSING"


def test_missing_file_is_an_error() -> None:
    # dvc reports a deleted (or unparseable) metrics file as every one of its keys turned null
    diff = _diff(
        {"test.eer": (0.18, None), "test.accuracy": (0.8, None), "test.confusion.tp": (247, None)},
        file="metrics/gone.json",
    )
    diff.update(_diff({"test.eer": (0.2, 0.2)}, file="metrics/kept.json"))
    rows = compare(diff, PARAMS)
    assert sorted((r.file, r.key) for r in rows if r.failed) == [
        ("metrics/gone.json", "test.accuracy"),
        ("metrics/gone.json", "test.eer"),
    ]
    assert _row(rows, "test.confusion.tp").status == "-"  # not gated, still listed as moved
    assert _row(rows, "test.confusion.tp").moved


def test_new_gated_metric_passes() -> None:
    rows = compare(_diff({"bench_dev.eer": (None, 0.4), "test.per_attack_eer.A10": (None, 0.5)}), PARAMS)
    assert [r.status for r in rows] == ["new", "new"]
    assert _failed(rows) == []


def test_accuracy_decrease_beyond_tolerance_fails() -> None:
    rows = compare(
        _diff({"test.accuracy": (0.80, 0.77), "test.balanced_accuracy": (0.78, 0.77), "test.roc_auc": (0.89, 0.87)}),
        PARAMS,
    )
    assert {r.key: r.status for r in rows} == {
        "test.accuracy": "REGRESSION",
        "test.balanced_accuracy": "ok",
        "test.roc_auc": "REGRESSION",
    }
    # higher accuracy is better, not a regression
    assert _row(compare(_diff({"test.accuracy": (0.7, 0.9)}), PARAMS), "test.accuracy").status == "improved"


def test_per_attack_gating_on_and_off() -> None:
    diff = _diff(
        {
            "test.per_attack_eer.A07": (0.30, 0.40),
            "test.per_source_eer.demo": (0.2, 0.3),
            "test.per_attack_eer.A08": (0.30, 0.34),
            "test.eer": (0.2, 0.2),
        }
    )
    on = compare(diff, GateParams(max_slice_eer_increase=0.05))
    assert _failed(on) == ["test.per_attack_eer.A07", "test.per_source_eer.demo"]  # A08: +0.04, within 0.05
    off = compare(diff, GateParams(max_slice_eer_increase=None))
    assert _failed(off) == []
    assert _row(off, "test.per_attack_eer.A07").status == "-"


def test_asvspoof5_costs_and_condition_slices_are_gated() -> None:
    rows = compare(
        _diff(
            {
                "heldout.min_dcf": (0.40, 0.44),  # +0.04 > 0.03
                "test.min_dcf": (0.40, 0.42),  # within
                "test.act_dcf": (0.50, 0.60),  # +0.10 > 0.05
                "la21.per_condition_eer.codec.mp3": (0.10, 0.20),  # a slice: +0.10 > 0.05
                "la21.per_condition_eer.codec.opus": (0.10, 0.12),
                "mlaad.per_condition_eer.architecture.xtts_v2.0.2": (0.10, 0.30),  # a dotted value: a slice
                "mlaad.per_attack_eer.tts.v1.1": (0.10, 0.12),
                "la21.per_condition_eer": (1, 1),  # not a slice: a malformed key is never gated as one
            }
        ),
        GateParams(),
    )
    assert _failed(rows) == [
        "heldout.min_dcf",
        "la21.per_condition_eer.codec.mp3",
        "mlaad.per_condition_eer.architecture.xtts_v2.0.2",
        "test.act_dcf",
    ]
    assert _row(rows, "mlaad.per_attack_eer.tts.v1.1").status == "ok"
    assert _row(rows, "test.min_dcf").status == "ok"


def test_cllr_tdcf_and_mean_source_eer_are_gated_higher_is_worse() -> None:
    rows = compare(
        _diff(
            {
                "test.min_cllr": (0.30, 0.40),
                "test.cllr": (0.50, 0.52),
                "test.min_tdcf": (0.20, 0.10),
                "test.mean_source_eer": (0.10, 0.15),
            }
        ),
        PARAMS,
    )
    assert {r.key: r.status for r in rows} == {
        "test.min_cllr": "REGRESSION",
        "test.cllr": "ok",
        "test.min_tdcf": "improved",
        "test.mean_source_eer": "REGRESSION",
    }


def test_only_known_metric_names_are_gated() -> None:
    rows = compare(
        _diff({"test.eer_threshold": (-1.0, 5.0), "test.frr": (0.1, 0.9), "test.n_spoof": (268, 10)}), PARAMS
    )
    assert [r.status for r in rows] == ["-", "-", "-"]


def test_ungated_files_and_null_tolerances_never_fail() -> None:
    diff = _diff({"models.cnn.test.eer": (0.18, 0.5)}, file="metrics/summary.json")
    diff.update(_diff({"dev.eer": (0.1, 0.4)}, file="dvclive/cnn/metrics.json"))
    diff.update(_diff({"test.eer": (0.1, 0.4), "test.accuracy": (0.9, 0.1)}, file="metrics/cnn.json"))
    rows = compare(diff, GateParams(max_accuracy_decrease=None))
    assert [(r.file, r.key) for r in rows if r.failed] == [("metrics/cnn.json", "test.eer")]
    assert [r.status for r in rows if r.file != "metrics/cnn.json"] == ["-", "-"]


def test_markdown_lists_only_moved_rows() -> None:
    rows = compare(
        _diff({"test.eer": (0.18, 0.23), "test.roc_auc": (0.89, 0.89), "test.accuracy": (0.8, None)}), PARAMS
    )
    lines = markdown(rows).splitlines()
    assert lines[0] == "| file | metric | old | new | change | allowed | status |"
    assert lines[2:] == [
        "| metrics/m.json | test.accuracy | 0.8 | (none) |  | 0.02 | MISSING |",
        "| metrics/m.json | test.eer | 0.18 | 0.23 | +0.05 | 0.01 | REGRESSION |",
    ]
    assert markdown(compare(_diff({"test.eer": (0.2, 0.2)}), PARAMS)) == ""


# ---------------------------------------------------------------- params


def test_gate_params_validate() -> None:
    assert from_dict(GateParams, None, prefix="gate") == GateParams()
    params = from_dict(
        GateParams, {"max_eer_increase": 0, "targets": ["metrics/a.json"], "max_auc_decrease": None}, prefix="gate"
    )
    assert params.targets == ("metrics/a.json",) and params.max_auc_decrease is None
    with pytest.raises(ParamError, match=r"gate\.max_eer_increase"):
        from_dict(GateParams, {"max_eer_increase": -0.1}, prefix="gate")
    with pytest.raises(ParamError, match=r"gate\.max_eer_increse=.*unknown key"):
        from_dict(GateParams, {"max_eer_increse": 0.1}, prefix="gate")


def test_load_gate_params_reads_only_the_gate_section(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        yaml.safe_dump({"train": {"whatever": 1}, "gate": {"max_slice_eer_increase": None}}), encoding="utf-8"
    )
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
    (tmp_path / "params.yaml").write_text(
        "gate:\n  max_eer_increase: 0.01\n  max_slice_eer_increase: 0.05\n", encoding="utf-8"
    )
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
    assert "| metrics/m.json | test.eer | 0.2 | 0.25 | +0.05 | 0.01 | REGRESSION |" in out
    assert "test.accuracy" not in out  # unchanged rows are not listed

    _write_metrics(dvc_repo, eer=0.15, accuracy=0.80)  # better
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 0
    assert "| metrics/m.json | test.eer | 0.2 | 0.15 | -0.05 | 0.01 | improved |" in capsys.readouterr().out

    _write_metrics(dvc_repo, accuracy=0.80)  # test.eer deleted
    assert cli_main(["gate"]) == 1
    out = capsys.readouterr().out
    assert "| metrics/m.json | test.eer | 0.2 | (none) |  | 0.01 | MISSING |" in out
    assert "MISSING: metrics/m.json test.eer was 0.2 at HEAD and is missing" in out


def test_gate_usage_errors_exit_2(dvc_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_gate("no-such-rev", None, "params.yaml") == 2
    assert "unknown Git revision 'no-such-rev'" in capsys.readouterr().err
    assert run_gate("HEAD", ["metrics/nope.json"], "params.yaml") == 2
    assert "no metrics" in capsys.readouterr().err
    (dvc_repo / "params.yaml").write_text("gate:\n  max_eer_increse: 0.01\n", encoding="utf-8")
    assert run_gate("HEAD", None, "params.yaml") == 2
    assert "gate.max_eer_increse" in capsys.readouterr().err


def test_shipped_gate_params_are_the_defaults_and_list_every_key() -> None:
    path = Path(__file__).parents[1] / "params.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["gate"]
    assert load_gate_params(path) == GateParams()
    assert set(raw) == {f.name for f in dataclasses.fields(GateParams)}


def test_new_gate_params_are_validated() -> None:
    with pytest.raises(ParamError, match=r"gate\.spread_z=-1.*>= 0"):
        from_dict(GateParams, {"spread_z": -1}, prefix="gate")
    with pytest.raises(ParamError, match=r"gate\.cross_machine_eer_increase"):
        from_dict(GateParams, {"cross_machine_eer_increase": -0.1}, prefix="gate")
    assert from_dict(GateParams, {"cross_machine_auc_decrease": None}, prefix="gate").cross_machine_auc_decrease is None


# ---------------------------------------------------------------- seed spread


def _ctx(
    std_old: float | None = None,
    std_new: float | None = None,
    *,
    n: int = 3,
    same_machine: bool = True,
    keys: tuple[str, ...] = ("test.eer",),
) -> dict[str, FileContext]:
    old = {} if std_old is None else {k: SeedStats(std_old, n) for k in keys}
    new = {} if std_new is None else {k: SeedStats(std_new, n) for k in keys}
    return {"metrics/m.json": FileContext(old_seeds=old, new_seeds=new, same_machine=same_machine)}


def test_a_move_within_the_seed_spread_passes_and_beyond_it_fails() -> None:
    # std 0.03 over 3 seeds a side: se = sqrt(2 * 0.03**2 / 3) = 0.0245, allowed 0.01 + 3 * 0.0245 = 0.0835
    ctx = _ctx(0.03, 0.03)
    within = _row(compare(_diff({"test.eer": (0.20, 0.27)}), PARAMS, ctx), "test.eer")
    assert within.status == "within spread" and not within.failed
    assert within.allowance == pytest.approx(0.01 + 3 * math.sqrt(2 * 0.03**2 / 3))
    beyond = _row(compare(_diff({"test.eer": (0.20, 0.29)}), PARAMS, ctx), "test.eer")
    assert beyond.status == "REGRESSION"
    # the same +0.07 without seeds is a regression: the spread is what lets it pass
    assert _row(compare(_diff({"test.eer": (0.20, 0.27)}), PARAMS), "test.eer").status == "REGRESSION"
    # within the plain tolerance it stays "ok"; spread_z 0 falls back to the tolerance alone
    assert _row(compare(_diff({"test.eer": (0.20, 0.205)}), PARAMS, ctx), "test.eer").status == "ok"
    assert (
        _row(compare(_diff({"test.eer": (0.20, 0.27)}), GateParams(spread_z=0), ctx), "test.eer").status == "REGRESSION"
    )


def test_a_side_without_seeds_counts_as_one_run_with_the_other_sides_spread() -> None:
    # baseline: 3 seeds, std 0.03; workspace: one plain run. se = sqrt(0.03**2/3 + 0.03**2/1) = 0.0346
    ctx = _ctx(std_old=0.03)
    allowed = 0.01 + 3 * math.sqrt(0.03**2 / 3 + 0.03**2)
    assert standard_error(SeedStats(0.03, 3), None) == pytest.approx(math.sqrt(0.03**2 / 3 + 0.03**2))
    assert (
        _row(compare(_diff({"test.eer": (0.2, 0.2 + allowed - 0.001)}), PARAMS, ctx), "test.eer").status
        == "within spread"
    )
    assert (
        _row(compare(_diff({"test.eer": (0.2, 0.2 + allowed + 0.001)}), PARAMS, ctx), "test.eer").status == "REGRESSION"
    )
    # one seed (std null) is no spread at all
    assert standard_error(SeedStats(None, 1), SeedStats(None, 1)) is None


def test_an_accuracy_drop_is_judged_against_the_spread_too() -> None:
    ctx = _ctx(0.01, 0.01, keys=("test.balanced_accuracy",))  # allowed 0.02 + 3 * 0.00816 = 0.0445
    rows = compare(_diff({"test.balanced_accuracy": (0.70, 0.66)}), PARAMS, ctx)
    assert _row(rows, "test.balanced_accuracy").status == "within spread"
    rows = compare(_diff({"test.balanced_accuracy": (0.70, 0.65)}), PARAMS, ctx)
    assert _row(rows, "test.balanced_accuracy").status == "REGRESSION"


def test_slices_fail_only_beyond_the_slice_tolerance_plus_the_spread() -> None:
    key = "test.per_attack_eer.A07"
    # one clip of 8 spoofs moves a slice EER by ~0.1; seeds show std 0.06: allowed 0.05 + 3 * 0.049 = 0.197
    ctx = _ctx(0.06, 0.06, keys=(key,))
    assert _row(compare(_diff({key: (0.30, 0.40)}), PARAMS, ctx), key).status == "within spread"
    assert _row(compare(_diff({key: (0.30, 0.52)}), PARAMS, ctx), key).failed
    # without seeds on one machine: the slice tolerance alone, as before
    assert _row(compare(_diff({key: (0.30, 0.40)}), PARAMS), key).status == "REGRESSION"


def test_other_machine_without_spread_widens_tolerances_and_only_reports_slices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = {"metrics/m.json": FileContext(same_machine=False), "metrics/xgboost.json": FileContext(same_machine=False)}
    diff = _diff(
        {
            "test.eer": (0.20, 0.24),
            "test.balanced_accuracy": (0.70, 0.679),
            "test.roc_auc": (0.8, 0.7),
            "test.per_attack_eer.A01": (0.10, 0.60),
            "test.per_source_eer.demo": (0.2, 0.3),
        }
    )
    diff.update(_diff({"test.eer": (0.20, 0.24), "test.per_attack_eer.A01": (0.10, 0.20)}, file="metrics/xgboost.json"))
    params = GateParams(cross_machine_stable=("*xgboost.json",))
    rows = {(r.file, r.key): r for r in compare(diff, params, other)}
    m = "metrics/m.json"
    # the measured cross-machine moves: a balanced accuracy -0.021 and per-attack EERs by a clip or two
    assert rows[m, "test.eer"].status == "other machine" and rows[m, "test.eer"].allowance == 0.05
    assert rows[m, "test.balanced_accuracy"].status == "other machine"
    assert rows[m, "test.roc_auc"].status == "REGRESSION"  # -0.1 is beyond cross_machine_auc_decrease 0.05
    assert rows[m, "test.per_attack_eer.A01"].status == "other machine"  # reported, never fails
    assert rows[m, "test.per_attack_eer.A01"].allowance is None
    assert rows[m, "test.per_source_eer.demo"].status == "other machine"
    # a file declared machine-independent keeps the normal tolerances; by default none is
    assert rows["metrics/xgboost.json", "test.eer"].status == "REGRESSION"
    assert rows["metrics/xgboost.json", "test.per_attack_eer.A01"].status == "REGRESSION"
    assert _row(compare(diff, PARAMS, other), "test.eer", "metrics/xgboost.json").status == "other machine"
    # the same rows on one machine fail as before
    same = compare(diff, PARAMS)
    assert {r.key for r in same if r.failed and r.file == m} == {
        "test.eer",
        "test.balanced_accuracy",
        "test.roc_auc",
        "test.per_attack_eer.A01",
        "test.per_source_eer.demo",
    }
    messages = failure_messages([rows[m, "test.roc_auc"]], against="HEAD")
    assert messages == [
        "REGRESSION: metrics/m.json test.roc_auc went from 0.8 to 0.7 (-0.1; cross-machine "
        "tolerance 0.05 (the baseline is from another machine))"
    ]
    # null cross-machine tolerance: only reported
    off = compare(_diff({"test.eer": (0.2, 0.9)}), GateParams(cross_machine_eer_increase=None), other)
    assert off[0].status == "other machine" and not off[0].failed


def test_other_machine_with_spread_adds_the_spread_to_the_cross_machine_tolerance() -> None:
    # se 0.0245: within spread up to 0.01 + 0.0735; on another machine up to 0.05 + 0.0735
    ctx = _ctx(0.03, 0.03, same_machine=False)
    statuses = {
        move: _row(compare(_diff({"test.eer": (0.20, 0.20 + move)}), PARAMS, ctx), "test.eer").status
        for move in (0.005, 0.07, 0.10, 0.2)
    }
    assert statuses == {0.005: "ok", 0.07: "within spread", 0.10: "other machine", 0.2: "REGRESSION"}
    row = _row(compare(_diff({"test.eer": (0.20, 0.40)}), PARAMS, ctx), "test.eer")  # an injected +0.2
    assert row.rule.basis == "seeds + other machine"
    (message,) = failure_messages([row], against="HEAD")
    assert message == (
        "REGRESSION: metrics/m.json test.eer went from 0.2 to 0.4 (+0.2; allowed 0.1235 = "
        "cross-machine tolerance 0.05 + 3 x seed-mean standard error 0.02449 (the baseline is from "
        "another machine))"
    )
    # slices with spread on another machine: cross_machine_slice_eer_increase + the spread term
    key = "test.per_attack_eer.A07"
    ctx = _ctx(0.01, 0.01, same_machine=False, keys=(key,))  # se 0.00816: 0.15 + 0.0245
    assert _row(compare(_diff({key: (0.28, 0.36)}), PARAMS, ctx), key).status == "other machine"
    assert _row(compare(_diff({key: (0.28, 0.48)}), PARAMS, ctx), key).status == "REGRESSION"
    assert _row(compare(_diff({key: (0.28, 0.36)}), PARAMS, _ctx(0.01, 0.01, keys=(key,))), key).failed  # one machine


def test_markdown_says_what_each_row_was_allowed() -> None:
    ctx = {**_ctx(0.03, 0.03), "metrics/o.json": FileContext(same_machine=False)}
    diff = _diff({"test.eer": (0.2, 0.27)})
    diff.update(_diff({"test.eer": (0.2, 0.23), "test.per_attack_eer.A01": (0.1, 0.3)}, file="metrics/o.json"))
    assert markdown(compare(diff, PARAMS, ctx)).splitlines()[2:] == [
        "| metrics/m.json | test.eer | 0.2 | 0.27 | +0.07 | 0.0835 (seeds) | within spread |",
        "| metrics/o.json | test.eer | 0.2 | 0.23 | +0.03 | 0.05 (other machine) | other machine |",
        "| metrics/o.json | test.per_attack_eer.A01 | 0.1 | 0.3 | +0.2 | report only | other machine |",
    ]


# ---------------------------------------------------------------- aggregating seeds


def test_aggregate_seeds_means_and_spreads_a_nested_metrics_file() -> None:
    runs = {
        0: {
            "test": {"eer": 0.2, "n_spoof": 72, "eer_ci": [0.1, 0.3], "per_attack_eer": {"A01": 0.1, "A02": 0.5}},
            "best": "cnn",
        },
        1: {
            "test": {"eer": 0.3, "n_spoof": 72, "eer_ci": [0.2, 0.4], "per_attack_eer": {"A01": 0.3, "A02": 0.6}},
            "best": "lstm",
        },
        2: {"test": {"eer": 0.4, "n_spoof": 72, "eer_ci": [0.3, 0.5], "per_attack_eer": {"A01": 0.2}}, "best": "cnn"},
    }
    mean, spread = aggregate_seeds(runs)
    assert mean["test"]["eer"] == pytest.approx(0.3)
    assert mean["test"]["n_spoof"] == 72 and isinstance(mean["test"]["n_spoof"], int)  # identical: kept as is
    assert mean["test"]["eer_ci"] == pytest.approx([0.2, 0.4])
    assert mean["best"] == "cnn"  # text that differs: the first seed's
    assert set(flatten(mean)) == set(flatten(runs[0]))  # the layout of one run
    eer = spread["metrics"]["test.eer"]
    assert eer["values"] == [0.2, 0.3, 0.4] and eer["n"] == 3
    assert eer["std"] == pytest.approx(0.1)  # sample std (ddof 1)
    assert spread["metrics"]["test.n_spoof"]["std"] == 0.0
    assert spread["seeds"] == [0, 1, 2]
    assert "test.eer_ci" not in spread["metrics"] and "best" not in spread["metrics"]
    # A02 is missing in seed 2: averaged over the seeds that have it, and flagged as partial
    assert mean["test"]["per_attack_eer"]["A02"] == pytest.approx(0.55)
    a02 = spread["metrics"]["test.per_attack_eer.A02"]
    assert a02["values"] == [0.5, 0.6, None] and a02["n"] == 2 and a02["std"] == pytest.approx(0.0707107)
    assert partial_keys(spread) == ["test.per_attack_eer.A02"]
    assert seed_stats(spread)["test.per_attack_eer.A02"] == SeedStats(pytest.approx(0.0707107), 2)


def test_aggregate_seeds_null_or_nan_in_one_seed_and_a_key_in_one_seed_only() -> None:
    runs = {0: {"t": {"a": None, "b": 0.4}}, 1: {"t": {"a": 0.2, "b": float("nan")}}, 2: {"t": {"a": 0.4, "c": 1.5}}}
    mean, spread = aggregate_seeds(runs)
    assert mean == {"t": {"a": pytest.approx(0.3), "b": 0.4, "c": 1.5}}
    assert spread["metrics"]["t.c"] == {"values": [None, None, 1.5], "mean": 1.5, "std": None, "n": 1}
    assert SeedStats(None, 1).usable is False  # the gate treats it as no spread
    assert sorted(partial_keys(spread)) == ["t.a", "t.b", "t.c"]


def test_aggregate_seeds_refuses_runs_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="mapping in some seeds"):
        aggregate_seeds({0: {"t": {"eer": 0.2}}, 1: {"t": 0.2}})
    with pytest.raises(ValueError, match="no seed runs"):
        aggregate_seeds({})


def test_one_seed_aggregates_to_itself() -> None:
    run = {"test": {"eer": 0.25, "confusion": {"tp": 3}, "per_attack_eer": {"A01": 0.5}}}
    mean, spread = aggregate_seeds({0: run})
    assert mean == run
    assert all(v["std"] is None and v["n"] == 1 for v in spread["metrics"].values())


def test_ci_profile_writes_means_spreads_stamp_and_summary(tmp_path: Path) -> None:
    from tools.ci_profile import write_outputs

    out = tmp_path / "ci" / "metrics"
    (out / "seeds").mkdir(parents=True)
    (out / "stale.json").write_text("{}")
    (out / "seeds" / "stale.json").write_text("{}")
    runs = {"cnn.json": {0: {"test": {"eer": 0.2}}, 1: {"test": {"eer": 0.4}}}}
    write_outputs(out, runs, {"fingerprint": "f", "numerics": {}, "record": {}}, "# Model comparison\n")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "cnn.json",
        "machine.json",
        "seeds/cnn.json",
        "summary.md",
    ]
    assert json.loads((out / "cnn.json").read_text()) == {"test": {"eer": pytest.approx(0.3)}}
    assert json.loads((out / "seeds" / "cnn.json").read_text())["metrics"]["test.eer"]["n"] == 2


# ---------------------------------------------------------------- machine stamps


def test_fingerprint_is_stable_and_ignores_date_and_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MKL_CBWR", raising=False)
    a = machine_stamp()
    b = machine_stamp(provenance=True, repo=Path(__file__).parents[1])
    assert a["fingerprint"] == b["fingerprint"] == fingerprint(a["numerics"])
    assert {"date", "git_commit", "git_dirty"} <= set(b["record"]) and "date" not in a["record"]
    assert len(a["fingerprint"]) == 16
    assert a["numerics"]["libraries"]["torch"] and a["numerics"]["cpu"]["count"] == os.cpu_count()
    # key order does not matter; any numerics change does
    assert fingerprint(dict(reversed(list(a["numerics"].items())))) == a["fingerprint"]
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")  # another MKL code path: other rounding
    c = machine_stamp()
    assert c["numerics"]["env"] == {"MKL_CBWR": "COMPATIBLE"} and c["fingerprint"] != a["fingerprint"]
    assert differences(a["numerics"], c["numerics"]) == ['env.MKL_CBWR: null -> "COMPATIBLE"']
    blas = {"blas": [{"internal_api": "openblas", "num_threads": 2}, {"internal_api": "openmp", "num_threads": 2}]}
    one_thread = {
        "blas": [{"internal_api": "openblas", "num_threads": 1}, {"internal_api": "openmp", "num_threads": 2}]
    }
    assert differences(blas, one_thread) == ["blas[0].num_threads: 2 -> 1"]
    assert differences({"simd": ["avx2"]}, {"simd": ["avx2", "avx512f"]}) == ['simd: ["avx2"] -> ["avx2", "avx512f"]']


def _stamp(fp: str, model_name: str = "CPU A") -> dict:
    return {"fingerprint": fp, "numerics": {"cpu": {"model_name": model_name}, "libraries": {"torch": "2.13.0"}}}


def test_machine_check_compares_fingerprints_and_says_how_to_rebaseline() -> None:
    assert MachineCheck("metrics", _stamp("a"), _stamp("a")).same
    assert MachineCheck("metrics", _stamp("a"), _stamp("a")).message("HEAD") is None
    assert MachineCheck("metrics", None, None).same  # as before stamps existed
    other = MachineCheck("ci/metrics", _stamp("a", "CPU A"), _stamp("b", "CPU B"))
    assert not other.same
    line = other.message("HEAD")
    assert "ci/metrics/machine.json at HEAD was written on another machine" in line
    assert 'cpu.model_name: "CPU A" -> "CPU B"' in line and "python -m tools.ci_profile --out ci/metrics" in line
    unknown = MachineCheck("metrics", None, _stamp("b"))
    assert not unknown.same and "no metrics/machine.json at HEAD" in unknown.message("HEAD")
    assert seeds_path("ci/metrics/cnn.json") == "ci/metrics/seeds/cnn.json"
    assert stamp_path("./metrics/cnn.json") == "metrics/machine.json"


def _write_side(root: Path, *, eer: float, std: float | None, fp: str | None) -> None:
    """metrics/m.json with test.eer = eer, its seeds file (3 seeds, std) and a stamp with fingerprint fp."""
    _write_metrics(root, eer=eer, accuracy=0.80)
    seeds = root / "metrics" / "seeds" / "m.json"
    seeds.unlink(missing_ok=True)
    if std is not None:
        seeds.parent.mkdir(exist_ok=True)
        seeds.write_text(
            json.dumps(
                {
                    "seeds": [0, 1, 2],
                    "metrics": {"test.eer": {"values": [eer - std, eer, eer + std], "mean": eer, "std": std, "n": 3}},
                }
            ),
            encoding="utf-8",
        )
    stamp = root / "metrics" / "machine.json"
    stamp.unlink(missing_ok=True)
    if fp is not None:
        stamp.write_text(json.dumps(_stamp(fp, f"CPU {fp}")), encoding="utf-8")


def test_gate_reads_seed_spreads_and_stamps_from_both_sides(dvc_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_side(dvc_repo, eer=0.20, std=0.03, fp="aaaa")
    _run(["git", "add", "-A"], dvc_repo)
    _run(["git", "commit", "-q", "-m", "3-seed baseline"], dvc_repo)

    _write_side(dvc_repo, eer=0.27, std=0.03, fp="aaaa")  # +0.07: beyond 0.01, within 0.01 + 3 * 0.0245
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 0
    out = capsys.readouterr().out
    assert "| metrics/m.json | test.eer | 0.2 | 0.27 | +0.07 | 0.0835 (seeds) | within spread |" in out
    assert "seeds: metrics/seeds/ holds seed spreads" in out and "another machine" not in out

    _write_side(dvc_repo, eer=0.40, std=0.03, fp="bbbb")  # +0.2 on another machine: beyond the spread
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 1
    out = capsys.readouterr().out
    assert "metrics/machine.json at HEAD was written on another machine (fingerprint aaaa, here bbbb" in out
    assert (
        "REGRESSION: metrics/m.json test.eer went from 0.2 to 0.4 (+0.2; allowed 0.1235 = cross-machine tolerance "
        "0.05 + 3 x seed-mean standard error 0.02449 (the baseline is from another machine))"
    ) in out

    _write_side(dvc_repo, eer=0.23, std=None, fp="bbbb")  # a plain run on another machine: seeds of HEAD count
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 0
    assert "| +0.03 | 0.154 (seeds + other machine) | within spread |" in capsys.readouterr().out


def test_gate_without_seeds_applies_the_cross_machine_rule(dvc_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_side(dvc_repo, eer=0.20, std=None, fp="aaaa")
    _run(["git", "add", "-A"], dvc_repo)
    _run(["git", "commit", "-q", "-m", "single-run baseline"], dvc_repo)
    _write_side(dvc_repo, eer=0.23, std=None, fp="aaaa")
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 1  # one machine: tolerance 0.01
    capsys.readouterr()
    _write_side(dvc_repo, eer=0.23, std=None, fp="bbbb")
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 0  # another machine: 0.05
    out = capsys.readouterr().out
    assert "| metrics/m.json | test.eer | 0.2 | 0.23 | +0.03 | 0.05 (other machine) | other machine |" in out
    assert "To re-baseline on this machine" in out
    _write_side(dvc_repo, eer=0.23, std=None, fp=None)  # no stamp here: the machine is unknown
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 0
    assert "no metrics/machine.json in the workspace" in capsys.readouterr().out


def test_gate_reports_an_unreadable_seeds_file_as_a_usage_error(
    dvc_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (dvc_repo / "metrics" / "seeds").mkdir()
    (dvc_repo / "metrics" / "seeds" / "m.json").write_text("{not json", encoding="utf-8")
    assert run_gate("HEAD", ["metrics/m.json"], "params.yaml") == 2
    assert "metrics/seeds/m.json in the workspace is not JSON" in capsys.readouterr().err
