"""``deepfake-audio gate``: fail CI when a metric got worse than a git revision's.

The gate runs ``dvc metrics diff REV --all --json`` (workspace against ``REV``, default ``HEAD``)
and judges every metric by the last component of its key path, with the tolerances in the
``gate`` section of ``params.yaml``:

=====================  ==============  ==========================
last key component     worse when it   tolerance (absolute)
=====================  ==============  ==========================
``eer``                rises           ``max_eer_increase``
``mean_source_eer``    rises           ``max_eer_increase``
``min_cllr``           rises           ``max_min_cllr_increase``
``cllr``               rises           ``max_cllr_increase``
``min_tdcf``           rises           ``max_min_tdcf_increase``
``accuracy``           falls           ``max_accuracy_decrease``
``balanced_accuracy``  falls           ``max_accuracy_decrease``
``roc_auc``            falls           ``max_auc_decrease``
=====================  ==============  ==========================

So ``test.eer``, ``bench_dev.eer`` and every other evaluation set are gated alike. The entries
of ``per_attack_eer`` and ``per_source_eer`` (``test.per_attack_eer.A01``) are EERs too and are
gated with their own ``max_slice_eer_increase``. A tolerance of ``null`` turns that
metric's gate off. Every other key (``eer_threshold``, ``confusion.tp``, counts, ...) is listed
when it moved but never fails the gate, and so is every metric in a file matched by an ``ungated``
glob: by default the split report, the summary (it repeats each model's metrics) and DVCLive's
training-time logs.

Each row gets a status:

- ``improved``: moved the better way (any amount);
- ``ok``: unchanged, or moved the worse way within tolerance;
- ``REGRESSION``: moved the worse way by more than the tolerance -- fails;
- ``MISSING``: a finite number at ``REV``, absent (or not a finite number) in the workspace; a
  deleted or unreadable metrics file shows up as every one of its metrics missing -- fails;
- ``new``: absent at ``REV``, present now -- passes;
- ``-``: not gated.

Exit codes of :func:`run_gate`: 0 pass, 1 a regression or a missing metric, 2 a usage error (bad
``gate`` params, dvc failed, no metrics found, a ``--targets`` file found at neither revision).

:func:`load_gate_params` reads only the ``gate`` section of ``params.yaml``, for the command. The
section's type, :class:`~deepfake_audio.params.GateParams`, lives with the other plain sections.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from deepfake_audio.params import GateParams, ParamError, from_dict

log = logging.getLogger(__name__)

PASS, FAIL, USAGE = 0, 1, 2

# metric name (last key component) -> (GateParams field with its tolerance, +1 if higher is worse else -1)
GATED: dict[str, tuple[str, int]] = {
    "eer": ("max_eer_increase", +1),
    "mean_source_eer": ("max_eer_increase", +1),
    "min_cllr": ("max_min_cllr_increase", +1),
    "cllr": ("max_cllr_increase", +1),
    "min_tdcf": ("max_min_tdcf_increase", +1),
    "accuracy": ("max_accuracy_decrease", -1),
    "balanced_accuracy": ("max_accuracy_decrease", -1),
    "roc_auc": ("max_auc_decrease", -1),
}
# A key under one of these (``test.per_attack_eer.A01``) is an EER of one slice of the set.
BREAKDOWNS = ("per_attack_eer", "per_source_eer")
FAILING = ("REGRESSION", "MISSING")
# float noise: 0.19 - 0.18 is 0.010000000000000009, which must not fail a 0.01 tolerance
_EPS = 1e-12


class GateError(RuntimeError):
    """The gate could not compare: dvc failed, or there is nothing to compare."""


def tolerance(params: GateParams, key: str) -> tuple[str, float, int] | None:
    """How the flattened metric ``key`` is gated: (metric name, tolerance, direction), or None."""
    parts = key.split(".")
    name = parts[-1]
    if len(parts) >= 2 and parts[-2] in BREAKDOWNS:
        tol = params.max_slice_eer_increase
        return None if tol is None else ("eer", tol, +1)
    if name not in GATED:
        return None
    field, direction = GATED[name]
    tol = getattr(params, field)
    return None if tol is None else (name, tol, direction)


def is_ungated(params: GateParams, path: str) -> bool:
    """Whether metrics file ``path`` (as dvc reports it) matches an ``ungated`` glob."""
    path = Path(os.path.normpath(path)).as_posix()
    return any(fnmatch.fnmatch(path, Path(os.path.normpath(p)).as_posix()) for p in params.ungated)


def load_gate_params(path: Path | str) -> GateParams:
    """The ``gate`` section of a params file; absent means all defaults.

    Raises:
        GateError: there is no such file.
        ParamError: the file is not a mapping, or a ``gate`` key is unknown or bad.
    """
    path = Path(path)
    if not path.is_file():
        raise GateError(f"no params file {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ParamError(str(path), raw, "expected a mapping of sections")
    return from_dict(GateParams, raw.get("gate"), prefix="gate")


@dataclasses.dataclass(frozen=True)
class Row:
    """One metric of ``dvc metrics diff``: ``old`` at the revision, ``new`` in the workspace.

    ``old`` and ``new`` are None when the metric is absent (or not a finite number) there; ``change``
    is ``new - old`` when both are numbers. ``tolerance`` is set for gated metrics only.
    """

    file: str
    key: str
    old: float | None
    new: float | None
    change: float | None
    status: str
    tolerance: float | None = None

    @property
    def moved(self) -> bool:
        return self.old != self.new

    @property
    def failed(self) -> bool:
        return self.status in FAILING


def _number(value: Any) -> float | None:
    """A finite int or float as float; None for anything else (null, NaN, bools, strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _judge(old: float | None, new: float | None, gate: tuple[str, float, int] | None) -> str:
    if gate is None:
        return "-"
    _, tol, direction = gate
    if old is None:
        return "new" if new is not None else "-"
    if new is None:
        return "MISSING"
    worse = (new - old) * direction
    if worse < 0:
        return "improved"
    return "REGRESSION" if worse > tol + _EPS else "ok"


def compare(diff: Mapping[str, Mapping[str, Mapping[str, Any]]], params: GateParams) -> list[Row]:
    """Judge every metric of a ``dvc metrics diff --json`` result.

    Args:
        diff: ``{file: {flattened.key: {"old": x, "new": y, "diff": y - x}}}``, as
            ``dvc metrics diff --all --json`` prints it (``old``/``new`` are null where absent).
        params: the tolerances.

    Returns:
        One row per metric, moved or not, sorted by file and key.
    """
    rows = []
    for file, metrics in diff.items():
        ungated = is_ungated(params, file)
        for key, values in metrics.items():
            old, new = _number(values.get("old")), _number(values.get("new"))
            gate = None if ungated else tolerance(params, key)
            rows.append(Row(file=file, key=key, old=old, new=new,
                            change=None if old is None or new is None else new - old,
                            status=_judge(old, new, gate), tolerance=None if gate is None else gate[1]))
    return sorted(rows, key=lambda r: (r.file, r.key))


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "(none)"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):+d}" if signed else str(int(value))
    return f"{value:+.5g}" if signed else f"{value:.5g}"


def markdown(rows: Sequence[Row]) -> str:
    """A GitHub-flavoured markdown table of the rows that moved ("" when none did)."""
    moved = [r for r in rows if r.moved]
    if not moved:
        return ""
    lines = ["| file | metric | old | new | change | status |", "|---|---|---:|---:|---:|---|"]
    for r in moved:
        cells = (r.file, r.key, _fmt(r.old), _fmt(r.new), "" if r.change is None else _fmt(r.change, signed=True),
                 r.status)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def failure_messages(rows: Sequence[Row], *, against: str) -> list[str]:
    """One sentence per failing row, naming the file, the key, both values and the tolerance."""
    out = []
    for r in rows:
        if r.status == "MISSING":
            out.append(f"MISSING: {r.file} {r.key} was {_fmt(r.old)} at {against} and is missing (or not a "
                       f"finite number) in the workspace")
        elif r.status == "REGRESSION":
            out.append(f"REGRESSION: {r.file} {r.key} went from {_fmt(r.old)} to {_fmt(r.new)} "
                       f"({_fmt(r.change, signed=True)}; tolerance {r.tolerance:g})")
    return out


def metrics_diff(against: str, targets: Sequence[str] = (), *, cwd: Path | str | None = None) -> dict:
    """Run ``dvc metrics diff AGAINST --all --json [--targets ...]`` and parse its output.

    Args:
        against: the git revision to compare the workspace with.
        targets: metrics files; empty means every metrics file the revisions' dvc.yaml declare.
        cwd: where to run dvc (file names in the result are relative to it); default: here.

    Raises:
        GateError: dvc could not run or failed (not a git/DVC repository, unknown revision), or
            its output is not JSON.
    """
    # --targets takes any number of paths, so it goes last or it would swallow the revision.
    cmd = [sys.executable, "-m", "dvc", "metrics", "diff", against, "--all", "--json"]
    if targets:
        cmd += ["--targets", *targets]
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise GateError(f"could not run dvc: {exc}") from exc
    stderr = proc.stderr.strip()
    if proc.returncode != 0:
        raise GateError(f"`dvc metrics diff {against}` failed (exit {proc.returncode}): {stderr or 'no message'}")
    if stderr:  # e.g. "DVC failed to load some metrics for following revisions: 'workspace'."
        log.warning("dvc: %s", stderr)
    try:
        out = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise GateError(f"`dvc metrics diff` printed something that is not JSON: {proc.stdout[:200]!r}") from exc
    if not isinstance(out, dict):
        raise GateError(f"`dvc metrics diff` printed {type(out).__name__}, expected a JSON object")
    return out


def run_gate(against: str = "HEAD", targets: Sequence[str] | None = None, params_path: Path | str = "params.yaml",
             *, cwd: Path | str | None = None) -> int:
    """Compare the workspace metrics with those at ``against``; print the table and the verdict.

    Args:
        against: git revision.
        targets: metrics files; None means ``gate.targets`` from the params file.
        params_path: the params file holding the ``gate`` section (relative to ``cwd``).
        cwd: the repository directory to run in; default: here.

    Returns:
        0 pass, 1 a regression or a missing gated metric, 2 a usage error (message on stderr).
    """
    try:
        params = load_gate_params(Path(cwd or ".") / params_path)
        targets = list(params.targets if targets is None else targets)
        diff = metrics_diff(against, targets, cwd=cwd)
        if not diff:
            raise GateError(f"dvc found no metrics at {against} or in the workspace"
                            + (f" in {', '.join(targets)}" if targets else
                               " (no commits yet, or no metrics declared in dvc.yaml)"))
        found = {os.path.normpath(f) for f in diff}
        absent = [t for t in targets if os.path.normpath(t) not in found]
        if absent:
            raise GateError(f"no metrics in {', '.join(absent)} at {against} or in the workspace")
    except (GateError, ParamError) as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return USAGE
    rows = compare(diff, params)
    table = markdown(rows)
    print(table or f"No metric moved against {against}.")
    failures = failure_messages(rows, against=against)
    n_gated = sum(r.tolerance is not None for r in rows)
    print()
    for message in failures:
        print(message)
    verdict = "FAIL" if failures else "PASS"
    print(f"gate {verdict} against {against}: {len(diff)} metrics files, {n_gated} gated metrics; "
          f"{sum(r.status == 'REGRESSION' for r in rows)} regressed, {sum(r.status == 'MISSING' for r in rows)} "
          f"missing, {sum(r.status == 'improved' for r in rows)} improved, {sum(r.status == 'new' for r in rows)} new")
    return FAIL if failures else PASS
