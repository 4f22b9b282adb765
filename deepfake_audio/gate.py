"""``deepfake-audio gate``: fail CI when a metric got worse than a git revision's -- by more than noise.

The gate runs ``dvc metrics diff REV --all --json`` (workspace against ``REV``, default ``HEAD``)
and judges every metric by the last component of its key path, with the tolerances in the
``gate`` section of ``params.yaml``:

=====================  ==============  ==========================  ===================================
last key component     worse when it   tolerance (absolute)        on another machine
=====================  ==============  ==========================  ===================================
``eer``                rises           ``max_eer_increase``        ``cross_machine_eer_increase``
``mean_source_eer``    rises           ``max_eer_increase``        ``cross_machine_eer_increase``
``min_cllr``           rises           ``max_min_cllr_increase``   ``cross_machine_min_cllr_increase``
``cllr``               rises           ``max_cllr_increase``       ``cross_machine_cllr_increase``
``min_tdcf``           rises           ``max_min_tdcf_increase``   ``cross_machine_min_tdcf_increase``
``min_dcf``            rises           ``max_min_dcf_increase``    ``cross_machine_min_dcf_increase``
``act_dcf``            rises           ``max_act_dcf_increase``    ``cross_machine_act_dcf_increase``
``accuracy``           falls           ``max_accuracy_decrease``   ``cross_machine_accuracy_decrease``
``balanced_accuracy``  falls           ``max_accuracy_decrease``   ``cross_machine_accuracy_decrease``
``roc_auc``            falls           ``max_auc_decrease``        ``cross_machine_auc_decrease``
(a slice, below)       rises           ``max_slice_eer_increase``  ``cross_machine_slice_eer_increase``
=====================  ==============  ==========================  ===================================

So ``test.eer``, ``bench_dev.eer`` and every other evaluation set are gated alike. The entries
of ``per_attack_eer`` and ``per_source_eer`` (``test.per_attack_eer.A01``), and of
``per_condition_eer`` (``test.per_condition_eer.codec.mp3``), are EERs of a slice of a few dozen clips and are gated with their own ``max_slice_eer_increase``. A tolerance of ``null``
turns that metric's gate off. Every other key (``eer_threshold``, ``confusion.tp``, counts, ...) is
listed when it moved but never fails the gate, and so is every metric in a file matched by an
``ungated`` glob: by default the split report, the summary (it repeats each model's metrics), the
machine stamp and DVCLive's training-time logs.

Why more than a tolerance: trained on the CPU, neural weights depend on the BLAS kernels, so the
same code and seed on another CPU type (or thread count, or library version) gives other weights.
On the CI profile's test set (72 spoofs, 8 per attack) that moved per-attack EERs by +-0.10 and a
balanced accuracy by 0.02 with no code change. Two things tell such noise from a regression.

**Seed spread.** ``tools/ci_profile.py --seeds N`` trains every model with N seeds and writes, next
to each metrics file ``DIR/<name>.json`` (the seed means), ``DIR/seeds/<name>.json`` with each
metric's per-seed values, mean, sample standard deviation and count (:func:`aggregate_seeds`).
When a gated metric has a spread on at least one side, its allowed worsening is::

    tolerance + spread_z * sqrt(s_old**2 / n_old + s_new**2 / n_new)

the params tolerance plus ``spread_z`` standard errors of the difference of the two seed means. A
side without seeds (a plain single-run ``metrics/``) counts as one run with the other side's
standard deviation. This holds for slices too (``max_slice_eer_increase`` plus the spread term),
so a per-attack EER that rests on a few clips fails only when it moved further than the seeds
themselves move it. A move past the tolerance but inside the spread is shown as ``within spread``.

**Machine stamp.** ``DIR/machine.json`` (:mod:`deepfake_audio.machine`: CPU, SIMD flags, threads,
BLAS, library versions, with a fingerprint of those) records where the metrics of ``DIR`` were
made: the report stage writes ``metrics/machine.json``, the CI profile ``ci/metrics/machine.json``.
When the two sides' fingerprints differ, or one side lacks a stamp while the other has one, the
cross-machine rule applies, because the seeds do not show everything a machine changes: between
the machine of the committed single-run baseline and this one, with the same code, XGBoost's
``per_attack_eer.A07`` moved by +0.086 while its three training seeds spread by 0.008:

- a metric's tolerance is replaced by its ``cross_machine_*`` tolerance (never below the normal
  one), and the spread term, if any, comes on top; a ``null`` one means only reported;
- a slice's EER gets ``cross_machine_slice_eer_increase`` plus the spread term when it has a seed
  spread, and is only reported when it has none: one run cannot tell a clip's worth of noise from
  a regression;
- files matched by ``cross_machine_stable`` (none by default) keep the one-machine rule.

A worsening allowed only by that rule is shown as ``other machine``. The gate prints which stamp
fields differ and how to re-baseline on this machine (run the CI profile, or ``dvc repro``, and
commit the result). With no stamp on either side the machines are taken to be the same, as before
stamps existed.

Each row gets a status:

- ``improved``: moved the better way (any amount);
- ``ok``: unchanged, or moved the worse way within the tolerance;
- ``within spread``: worse by more than the tolerance, within tolerance + spread term;
- ``other machine``: worse than that, allowed (or only reported) by the cross-machine rule;
- ``REGRESSION``: worse by more than allowed -- fails;
- ``MISSING``: a finite number at ``REV``, absent (or not a finite number) in the workspace; a
  deleted or unreadable metrics file shows up as every one of its metrics missing -- fails;
- ``new``: absent at ``REV``, present now -- passes;
- ``-``: not gated.

Exit codes of :func:`run_gate`: 0 pass, 1 a regression or a missing metric, 2 a usage error (bad
``gate`` params, dvc failed, no metrics found, a ``--targets`` file found at neither revision, an
unreadable seeds file or stamp).

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
import posixpath
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from deepfake_audio.params import GateParams, ParamError, from_dict

log = logging.getLogger(__name__)

PASS, FAIL, USAGE = 0, 1, 2

# metric name (last key component) -> (GateParams field with its tolerance, +1 if higher is worse else -1);
# the cross-machine tolerance of field ``max_X`` is ``cross_machine_X``
GATED: dict[str, tuple[str, int]] = {
    "eer": ("max_eer_increase", +1),
    "mean_source_eer": ("max_eer_increase", +1),
    "min_cllr": ("max_min_cllr_increase", +1),
    "cllr": ("max_cllr_increase", +1),
    "min_tdcf": ("max_min_tdcf_increase", +1),
    "min_dcf": ("max_min_dcf_increase", +1),
    "act_dcf": ("max_act_dcf_increase", +1),
    "accuracy": ("max_accuracy_decrease", -1),
    "balanced_accuracy": ("max_accuracy_decrease", -1),
    "roc_auc": ("max_auc_decrease", -1),
}
# A key under one of these (``test.per_attack_eer.A01``) is an EER of one slice of the set; under
# per_condition_eer a slice is one value of one condition (``test.per_condition_eer.codec.mp3``).
BREAKDOWNS = ("per_attack_eer", "per_source_eer")
CONDITION_BREAKDOWN = "per_condition_eer"
FAILING = ("REGRESSION", "MISSING")
STAMP_NAME = "machine.json"  # DIR/machine.json: where the metrics of DIR were made
SEEDS_DIR = "seeds"  # DIR/seeds/<name>.json: the per-seed spread of DIR/<name>.json
# float noise: 0.19 - 0.18 is 0.010000000000000009, which must not fail a 0.01 tolerance
_EPS = 1e-12


def cross_machine_field(field: str) -> str:
    """The cross-machine tolerance of tolerance field ``max_X``: ``cross_machine_X``."""
    return "cross_machine_" + field.removeprefix("max_")


class GateError(RuntimeError):
    """The gate could not compare: dvc failed, there is nothing to compare, or a seeds file or stamp is unreadable."""


def tolerance(params: GateParams, key: str) -> tuple[str, float, int] | None:
    """How the flattened metric ``key`` is gated on one machine: (metric name, tolerance, direction), or None."""
    if is_slice(key):
        tol = params.max_slice_eer_increase
        return None if tol is None else ("eer", tol, +1)
    name = key.split(".")[-1]
    if name not in GATED:
        return None
    field, direction = GATED[name]
    tol = getattr(params, field)
    return None if tol is None else (name, tol, direction)


def cross_machine_tolerance(params: GateParams, key: str, *, spread: bool) -> float | None:
    """The tolerance of ``key`` when the two sides' machines differ (None: only reported).

    Args:
        spread: whether the metric has a seed spread; without one, a slice's EER is only
            reported, as a single run cannot tell a clip's worth of noise from a regression.
    """
    if is_slice(key):
        return params.cross_machine_slice_eer_increase if spread else None
    name = key.split(".")[-1]
    return getattr(params, cross_machine_field(GATED[name][0])) if name in GATED else None


def is_ungated(params: GateParams, path: str) -> bool:
    """Whether metrics file ``path`` (as dvc reports it) matches an ``ungated`` glob."""
    return _matches(path, params.ungated)


def is_cross_machine_stable(params: GateParams, path: str) -> bool:
    """Whether metrics file ``path`` matches a ``cross_machine_stable`` glob."""
    return _matches(path, params.cross_machine_stable)


def is_slice(key: str) -> bool:
    """Whether flattened ``key`` is one slice's EER (``test.per_attack_eer.A01``,
    ``test.per_condition_eer.codec.mp3``)."""
    # Attack and condition values may hold dots themselves (a TTS model "xtts_v2.0.2").
    parts = key.split(".")
    return any(p in BREAKDOWNS for p in parts[:-1]) or CONDITION_BREAKDOWN in parts[:-2]


def _matches(path: str, globs: Sequence[str]) -> bool:
    path = Path(os.path.normpath(path)).as_posix()
    return any(fnmatch.fnmatch(path, Path(os.path.normpath(p)).as_posix()) for p in globs)


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


# ---------------------------------------------------------------- seeds: aggregation and spread


def _number(value: Any) -> float | None:
    """A finite int or float as float; None for anything else (null, NaN, bools, strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


_ABSENT = object()


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": leaf}``, the way ``dvc metrics`` names keys (lists stay leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def _mean_leaf(values: list[Any]) -> Any:
    """The aggregate of one leaf over the seeds that have it (``values``: no absent entries)."""
    if all(v == values[0] and type(v) is type(values[0]) for v in values):
        return values[0]  # identical in every seed (counts, data-stage numbers): kept as is, int stays int
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
        finite = [float(v) for v in values if v is not None and math.isfinite(v)]
        # null/NaN in some seeds: the mean of the others (the spread file records how many)
        return math.fsum(finite) / len(finite) if finite else values[0]
    if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        return [_mean_leaf([v[i] for v in values]) for i in range(len(values[0]))]  # e.g. eer_ci bounds
    return values[0]  # text that differs by seed (the best model's name): the first seed's


def _mean_tree(runs: Sequence[Any]) -> Any:
    present = [r for r in runs if r is not _ABSENT]
    if present and all(isinstance(r, Mapping) for r in present):
        keys = sorted({k for r in present for k in r})
        return {k: _mean_tree([r.get(k, _ABSENT) if isinstance(r, Mapping) else _ABSENT for r in runs]) for k in keys}
    if any(isinstance(r, Mapping) for r in present):
        raise ValueError("a metric is a mapping in some seeds and a value in others: the runs are not alike")
    return _mean_leaf(present)


def aggregate_seeds(runs: Mapping[int, Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The seed mean of a metrics file, and its per-seed spread.

    Args:
        runs: ``{seed: metrics tree}``, one parsed ``metrics/<name>.json`` per training seed.

    Returns:
        ``(mean, spread)``. ``mean`` has the layout of the runs (so ``dvc metrics`` and the gate
        read it like one run): every numeric leaf is the mean over the seeds where it is a finite
        number, a leaf identical in every seed is kept as it is, numeric lists of one length are
        averaged element-wise, and other text takes the first seed's value. ``spread`` is
        ``{"seeds": [...], "metrics": {flat.key: {"values", "mean", "std", "n"}}}`` for every
        numeric scalar: ``values`` per seed (null where the seed lacks the key -- a per-attack
        EER a seed could not compute), ``n`` how many are numbers, ``std`` the sample standard
        deviation (null when ``n < 2``).

    Raises:
        ValueError: no runs, or the runs disagree on which keys are mappings.
    """
    if not runs:
        raise ValueError("no seed runs to aggregate")
    seeds = list(runs)
    mean = _mean_tree([runs[s] for s in seeds])
    flat = {s: flatten(runs[s]) for s in seeds}
    spread: dict[str, dict[str, Any]] = {}
    for key in sorted({k for f in flat.values() for k in f}):
        raw = [flat[s].get(key) for s in seeds]
        if not any(_number(v) is not None for v in raw):
            continue  # text, lists, null everywhere: nothing to spread
        values = [_number(v) for v in raw]
        finite = [v for v in values if v is not None]
        mu = math.fsum(finite) / len(finite)
        std = math.sqrt(math.fsum((v - mu) ** 2 for v in finite) / (len(finite) - 1)) if len(finite) > 1 else None
        spread[key] = {"values": values, "mean": mu, "std": std, "n": len(finite)}
    return mean, {"seeds": seeds, "metrics": spread}


def partial_keys(spread: Mapping[str, Any]) -> list[str]:
    """The keys of an :func:`aggregate_seeds` spread that some seeds lack (``n`` below the seed count)."""
    n_seeds = len(spread["seeds"])
    return [k for k, v in spread["metrics"].items() if v["n"] < n_seeds]


@dataclasses.dataclass(frozen=True)
class SeedStats:
    """One metric over training seeds: its sample standard deviation (None below 2 seeds) and count."""

    std: float | None
    n: int

    @property
    def usable(self) -> bool:
        return self.std is not None and self.n >= 2


def seed_stats(spread: Mapping[str, Any]) -> dict[str, SeedStats]:
    """``{flat.key: SeedStats}`` from a parsed ``seeds/<name>.json``.

    Raises:
        GateError: it does not have the layout :func:`aggregate_seeds` writes.
    """
    try:
        return {
            key: SeedStats(std=None if v["std"] is None else float(v["std"]), n=int(v["n"]))
            for key, v in spread["metrics"].items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise GateError(f"a seeds file lacks the layout of aggregate_seeds ({exc!r})") from exc


def standard_error(old: SeedStats | None, new: SeedStats | None) -> float | None:
    """The standard error of ``new_mean - old_mean``; None when neither side has a spread.

    A side without a usable spread (no seeds file, or one seed) counts as a single run whose
    standard deviation is the other side's: the same training noise, measured once.
    """
    old_ok, new_ok = old is not None and old.usable, new is not None and new.usable
    if not (old_ok or new_ok):
        return None
    s_old = old.std if old_ok else new.std  # type: ignore[union-attr]
    s_new = new.std if new_ok else old.std  # type: ignore[union-attr]
    n_old = old.n if old_ok else 1  # type: ignore[union-attr]
    n_new = new.n if new_ok else 1  # type: ignore[union-attr]
    return math.sqrt(s_old**2 / n_old + s_new**2 / n_new)


# ---------------------------------------------------------------- judging


@dataclasses.dataclass(frozen=True)
class FileContext:
    """What the gate knows about one metrics file beyond its two values per key.

    Attributes:
        old_seeds, new_seeds: per-key seed statistics at the revision and in the workspace
            (empty: no ``seeds/`` file on that side).
        same_machine: whether both sides were made on machines with one fingerprint.
    """

    old_seeds: Mapping[str, SeedStats] = dataclasses.field(default_factory=dict)
    new_seeds: Mapping[str, SeedStats] = dataclasses.field(default_factory=dict)
    same_machine: bool = True


@dataclasses.dataclass(frozen=True)
class Rule:
    """How one metric is judged: a worse move up to ``tolerance`` is ``ok``, up to
    ``spread_allowance`` ``within spread``, up to ``allowance`` ``other machine``; beyond fails.

    Attributes:
        direction: +1 when higher is worse, -1 when lower is.
        tolerance: the params tolerance.
        allowance: the largest worse move that passes; None: a larger one is only reported.
        spread: the standard error of the difference of the two seed means (None: no spread).
        spread_allowance: ``tolerance + spread_z * spread`` (None: no spread).
        other_machine: whether the cross-machine rule applies.
    """

    direction: int
    tolerance: float
    allowance: float | None
    spread: float | None = None
    spread_allowance: float | None = None
    other_machine: bool = False
    base: float | None = None  # what the spread term is added to: the tolerance, or the cross-machine one

    @property
    def basis(self) -> str:
        """What the allowance rests on: ``tolerance``, ``seeds``, ``other machine`` or both of the last."""
        parts = [name for name, on in (("seeds", self.spread is not None), ("other machine", self.other_machine)) if on]
        return " + ".join(parts) or "tolerance"

    def explain(self, spread_z: float) -> str:
        """How the allowance was reached, for a failure message."""
        if self.allowance is None:
            return "only reported"
        base = f"cross-machine tolerance {self.base:g}" if self.other_machine else f"tolerance {self.tolerance:g}"
        if self.spread is None:
            return base + (" (the baseline is from another machine)" if self.other_machine else "")
        return f"allowed {self.allowance:.4g} = {base} + {spread_z:g} x seed-mean standard error {self.spread:.4g}" + (
            " (the baseline is from another machine)" if self.other_machine else ""
        )


def rule_for(file: str, key: str, params: GateParams, context: FileContext | None = None) -> Rule | None:
    """The rule metric ``key`` of ``file`` is judged by; None when it is not gated.

    One machine: ``tolerance`` (+ ``spread_z`` x the seed-mean standard error, with seeds).
    Another machine: the cross-machine tolerance in place of the tolerance (never below it),
    + the same spread term; None as cross-machine tolerance means only reported.
    """
    gate = None if is_ungated(params, file) else tolerance(params, key)
    if gate is None:
        return None
    _, tol, direction = gate
    context = context or FileContext()
    se = standard_error(context.old_seeds.get(key), context.new_seeds.get(key))
    term = 0.0 if se is None else params.spread_z * se
    spread_allowance = None if se is None else tol + term
    if context.same_machine or is_cross_machine_stable(params, file):
        return Rule(direction, tol, tol + term, se, spread_allowance, base=tol)
    cross = cross_machine_tolerance(params, key, spread=se is not None)
    base = None if cross is None else max(cross, tol)
    return Rule(
        direction, tol, None if base is None else base + term, se, spread_allowance, other_machine=True, base=base
    )


@dataclasses.dataclass(frozen=True)
class Row:
    """One metric of ``dvc metrics diff``: ``old`` at the revision, ``new`` in the workspace.

    ``old`` and ``new`` are None when the metric is absent (or not a finite number) there; ``change``
    is ``new - old`` when both are numbers. ``rule`` is set for gated metrics only.
    """

    file: str
    key: str
    old: float | None
    new: float | None
    change: float | None
    status: str
    rule: Rule | None = None

    @property
    def tolerance(self) -> float | None:
        """The params tolerance; None when not gated."""
        return None if self.rule is None else self.rule.tolerance

    @property
    def allowance(self) -> float | None:
        """The worse move that still passes; None when not gated or only reported."""
        return None if self.rule is None else self.rule.allowance

    @property
    def moved(self) -> bool:
        return self.old != self.new

    @property
    def failed(self) -> bool:
        return self.status in FAILING


def judge(old: float | None, new: float | None, rule: Rule | None) -> str:
    """The status of one metric (see the module docstring)."""
    if rule is None:
        return "-"
    if old is None:
        return "new" if new is not None else "-"
    if new is None:
        return "MISSING"
    worse = (new - old) * rule.direction
    if worse < 0:
        return "improved"
    if worse <= rule.tolerance + _EPS:
        return "ok"
    if rule.spread_allowance is not None and worse <= rule.spread_allowance + _EPS:
        return "within spread"
    if rule.allowance is None:
        return "other machine"  # only reported
    if worse <= rule.allowance + _EPS:
        return "other machine"
    return "REGRESSION"


def compare(
    diff: Mapping[str, Mapping[str, Mapping[str, Any]]],
    params: GateParams,
    contexts: Mapping[str, FileContext] | None = None,
) -> list[Row]:
    """Judge every metric of a ``dvc metrics diff --json`` result.

    Args:
        diff: ``{file: {flattened.key: {"old": x, "new": y, "diff": y - x}}}``, as
            ``dvc metrics diff --all --json`` prints it (``old``/``new`` are null where absent).
        params: the tolerances.
        contexts: per file, its seed spreads and whether both sides share a machine; a file
            without one is judged on tolerances alone, as on one machine.

    Returns:
        One row per metric, moved or not, sorted by file and key.
    """
    rows = []
    for file, metrics in diff.items():
        context = (contexts or {}).get(file)
        for key, values in metrics.items():
            old, new = _number(values.get("old")), _number(values.get("new"))
            rule = rule_for(file, key, params, context)
            rows.append(
                Row(
                    file=file,
                    key=key,
                    old=old,
                    new=new,
                    change=None if old is None or new is None else new - old,
                    status=judge(old, new, rule),
                    rule=rule,
                )
            )
    return sorted(rows, key=lambda r: (r.file, r.key))


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "(none)"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):+d}" if signed else str(int(value))
    return f"{value:+.5g}" if signed else f"{value:.5g}"


def _allowed(row: Row) -> str:
    """The markdown cell saying how far the worse way a gated row may move, and on what basis."""
    if row.rule is None:
        return ""
    if row.rule.allowance is None:
        return "report only"
    if row.rule.basis == "tolerance":
        return f"{row.rule.allowance:.3g}"
    return f"{row.rule.allowance:.3g} ({row.rule.basis})"


def markdown(rows: Sequence[Row]) -> str:
    """A GitHub-flavoured markdown table of the rows that moved ("" when none did)."""
    moved = [r for r in rows if r.moved]
    if not moved:
        return ""
    lines = ["| file | metric | old | new | change | allowed | status |", "|---|---|---:|---:|---:|---|---|"]
    for r in moved:
        cells = (
            r.file,
            r.key,
            _fmt(r.old),
            _fmt(r.new),
            "" if r.change is None else _fmt(r.change, signed=True),
            _allowed(r),
            r.status,
        )
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def failure_messages(rows: Sequence[Row], *, against: str, spread_z: float = GateParams.spread_z) -> list[str]:
    """One sentence per failing row, naming the file, the key, both values and what was allowed."""
    out = []
    for r in rows:
        if r.status == "MISSING":
            out.append(
                f"MISSING: {r.file} {r.key} was {_fmt(r.old)} at {against} and is missing (or not a "
                f"finite number) in the workspace"
            )
        elif r.status == "REGRESSION" and r.rule is not None:
            out.append(
                f"REGRESSION: {r.file} {r.key} went from {_fmt(r.old)} to {_fmt(r.new)} "
                f"({_fmt(r.change, signed=True)}; {r.rule.explain(spread_z)})"
            )
    return out


# ---------------------------------------------------------------- the two sides' seeds files and stamps


def read_side(path: str, against: str | None, *, cwd: Path | str | None = None) -> Any | None:
    """The parsed JSON file ``path`` in the workspace (``against=None``) or at git revision ``against``.

    Returns None when the file does not exist there.

    Raises:
        GateError: it exists but is not JSON, or git failed for another reason than a missing file.
    """
    where = "the workspace" if against is None else against
    if against is None:
        file = Path(cwd or ".") / path
        if not file.is_file():
            return None
        text = file.read_text(encoding="utf-8")
    else:
        # ./ makes the path relative to cwd, as dvc reports it, not to the repository root
        proc = subprocess.run(
            ["git", "show", f"{against}:./{path}"], cwd=cwd, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            message = proc.stderr.strip()
            if "does not exist" in message or "exists on disk, but not in" in message:
                return None
            raise GateError(f"`git show {against}:./{path}` failed (exit {proc.returncode}): {message}")
        text = proc.stdout
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GateError(f"{path} in {where} is not JSON: {exc}") from exc


def seeds_path(metrics_file: str) -> str:
    """Where the seed spread of ``DIR/<name>.json`` lives: ``DIR/seeds/<name>.json``."""
    folder, name = posixpath.split(Path(os.path.normpath(metrics_file)).as_posix())
    return posixpath.join(folder, SEEDS_DIR, name)


def stamp_path(metrics_file: str) -> str:
    """The machine stamp that covers ``DIR/<name>.json``: ``DIR/machine.json``."""
    return posixpath.join(posixpath.dirname(Path(os.path.normpath(metrics_file)).as_posix()), STAMP_NAME)


@dataclasses.dataclass(frozen=True)
class MachineCheck:
    """The machine stamps of one metrics folder at the revision and in the workspace (None: absent)."""

    folder: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    @property
    def same(self) -> bool:
        """Same fingerprint; with no stamp on either side, assumed the same (as before stamps existed)."""
        if self.old is None and self.new is None:
            return True
        if self.old is None or self.new is None:
            return False
        return self.old.get("fingerprint") == self.new.get("fingerprint")

    def message(self, against: str) -> str | None:
        """The line the gate prints about this folder's machines; None when both stamps agree."""
        if self.same and self.old is not None:
            return None
        stamp = posixpath.join(self.folder, STAMP_NAME) if self.folder else STAMP_NAME
        if self.old is None and self.new is None:
            return f"machine: no {stamp} at {against} or in the workspace: judged as one machine"
        if self.old is None or self.new is None:
            side = f"at {against}" if self.old is None else "in the workspace"
            head = f"machine: no {stamp} {side}, so the baseline's machine is unknown and is treated as another machine"
        else:
            from deepfake_audio.machine import differences

            diffs = differences(self.old.get("numerics") or {}, self.new.get("numerics") or {})
            shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
            head = (
                f"machine: the baseline {stamp} at {against} was written on another machine (fingerprint "
                f"{self.old.get('fingerprint')}, here {self.new.get('fingerprint')}: {shown or 'no field differs'})"
            )
        folder = self.folder or "."
        return (
            f"{head}. The gate.cross_machine_* tolerances replace the normal ones (a seed-spread term still "
            f"comes on top), and per-attack/per-source EERs without seed spread are only reported. To re-baseline "
            f"on this machine, "
            f"regenerate {folder}/ here and commit it (ci/metrics: `python -m tools.ci_profile --out "
            f"ci/metrics`, as `make gate` does; metrics/: `dvc repro`)."
        )


def load_contexts(
    files: Sequence[str], against: str, *, cwd: Path | str | None = None
) -> tuple[dict[str, FileContext], list[MachineCheck]]:
    """Each metrics file's seed spreads and machine comparison, read from both sides.

    Raises:
        GateError: a seeds file or stamp is unreadable.
    """
    checks: dict[str, MachineCheck] = {}
    contexts = {}
    for file in files:
        stamp = stamp_path(file)
        folder = posixpath.dirname(stamp)
        if folder not in checks:
            checks[folder] = MachineCheck(folder, read_side(stamp, against, cwd=cwd), read_side(stamp, None, cwd=cwd))
        if posixpath.basename(Path(os.path.normpath(file)).as_posix()) == STAMP_NAME:
            contexts[file] = FileContext(same_machine=checks[folder].same)
            continue
        seeds = seeds_path(file)
        old, new = read_side(seeds, against, cwd=cwd), read_side(seeds, None, cwd=cwd)
        try:
            contexts[file] = FileContext(
                old_seeds={} if old is None else seed_stats(old),
                new_seeds={} if new is None else seed_stats(new),
                same_machine=checks[folder].same,
            )
        except GateError as exc:
            raise GateError(f"{seeds}: {exc}") from exc
    return contexts, list(checks.values())


# ---------------------------------------------------------------- the command


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


def run_gate(
    against: str = "HEAD",
    targets: Sequence[str] | None = None,
    params_path: Path | str = "params.yaml",
    *,
    cwd: Path | str | None = None,
) -> int:
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
            raise GateError(
                f"dvc found no metrics at {against} or in the workspace"
                + (f" in {', '.join(targets)}" if targets else " (no commits yet, or no metrics declared in dvc.yaml)")
            )
        found = {os.path.normpath(f) for f in diff}
        absent = [t for t in targets if os.path.normpath(t) not in found]
        if absent:
            raise GateError(f"no metrics in {', '.join(absent)} at {against} or in the workspace")
        gated_files = [f for f in diff if not is_ungated(params, f)]
        contexts, machines = load_contexts(gated_files, against, cwd=cwd)
    except (GateError, ParamError) as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return USAGE
    rows = compare(diff, params, contexts)
    table = markdown(rows)
    print(table or f"No metric moved against {against}.")
    print()
    for check in machines:
        line = check.message(against)
        if line:
            print(line)
    with_seeds = sorted({posixpath.dirname(seeds_path(f)) for f, c in contexts.items() if c.old_seeds or c.new_seeds})
    for folder in with_seeds:
        print(
            f"seeds: {folder}/ holds seed spreads; a metric with one fails when it worsens by more than its "
            f"tolerance + {params.spread_z:g} x the standard error of the difference of the two seed means"
        )
    failures = failure_messages(rows, against=against, spread_z=params.spread_z)
    n_gated = sum(r.tolerance is not None for r in rows)
    for message in failures:
        print(message)
    verdict = "FAIL" if failures else "PASS"
    count = {
        s: sum(r.status == s for r in rows)
        for s in ("REGRESSION", "MISSING", "within spread", "other machine", "improved", "new")
    }
    print(
        f"gate {verdict} against {against}: {len(diff)} metrics files, {n_gated} gated metrics; "
        f"{count['REGRESSION']} regressed, {count['MISSING']} missing, {count['within spread']} worse within the "
        f"seed spread, {count['other machine']} worse within the cross-machine rule, {count['improved']} improved, "
        f"{count['new']} new"
    )
    return FAIL if failures else PASS
