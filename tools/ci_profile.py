#!/usr/bin/env python3
"""Run the CI profile of the pipeline: every model, on a smaller demo corpus, several training seeds, in a scratch copy.

The profile is ``params.yaml`` with the overrides of ``ci/profile.yaml`` merged in (mappings
merge key by key; lists and scalars replace). The project's files (git-tracked or not ignored) are copied into a
scratch folder, which becomes its own git + DVC repository, and ``dvc repro`` runs there once per
training seed: the first run uses the profile's ``train.seed`` and ``xgboost.seed``, and each further
run adds 1 to both, commits params.yaml and runs ``dvc repro`` again, which re-runs only the
train, evaluate and report stages (the data stages do not read those seeds).

Into ``--out`` (default ``ci/metrics``) go:

- ``<name>.json``: for each ``metrics/<name>.json``, the seed mean of every numeric leaf in the
  same layout, so ``dvc metrics diff`` and the gate read it like one run
  (:func:`deepfake_audio.gate.aggregate_seeds`);
- ``seeds/<name>.json``: each metric's per-seed values, mean, standard deviation and count, the
  spread the gate allows a change within;
- ``machine.json``: the report stage's machine stamp (:mod:`deepfake_audio.machine`) plus the
  date, the commit of this work tree and the seeds;
- ``summary.md``: the first seed's model comparison.

The committed ``ci/metrics`` are what a clean run of the profile gives, so in CI::

    python -m tools.ci_profile && deepfake-audio gate --targets ci/metrics/*.json

fails when a change makes a metric of any model worse than the ``gate`` tolerances and the seed
spread allow. The workspace's own ``data/``, ``metrics/`` and DVC cache are never touched.

Usage::

    python -m tools.ci_profile [--profile ci/profile.yaml] [--out ci/metrics] [--seeds 3] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from deepfake_audio.gate import SEEDS_DIR, STAMP_NAME, aggregate_seeds, partial_keys
from deepfake_audio.io import read_json, write_json
from deepfake_audio.machine import written

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("ci_profile")


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied: nested mappings merge, anything else replaces."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    log.info("$ %s", " ".join(args))
    res = subprocess.run(args, cwd=cwd, env=env)
    if res.returncode != 0:
        raise SystemExit(f"ci_profile: `{' '.join(args)}` failed with exit code {res.returncode}")


def tracked_files(root: Path) -> list[str]:
    """The working tree's files that git tracks or would track (not ignored), minus this profile's outputs.

    In a clean clone that is exactly what was committed; in a work tree it includes new files.
    """
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return [p for p in out.decode().split("\0") if p and not p.startswith("ci/metrics/") and (root / p).is_file()]


def scratch_env(author: str) -> dict[str, str]:
    """The environment of a scratch pipeline run: no DVC analytics, a fixed hash seed, a git
    identity for its commits, this interpreter's tools first on PATH and no PYTHONPATH."""
    env = dict(
        os.environ,
        DVC_NO_ANALYTICS="1",
        PYTHONHASHSEED="0",
        GIT_AUTHOR_NAME=author,
        GIT_AUTHOR_EMAIL=f"{author}@localhost",
        GIT_COMMITTER_NAME=author,
        GIT_COMMITTER_EMAIL=f"{author}@localhost",
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


RANDOM_CHECKPOINT = "models/ssl/random-"
"""An ``ssl.checkpoint`` of this form (``models/ssl/random-wav2vec2``) is saved as a random tiny model
of that family: the CI profile trains the SSL back-ends on the real loading code without downloads."""


def random_checkpoint(work: Path, params: dict) -> None:
    checkpoint = (params.get("ssl") or {}).get("checkpoint") or ""
    if checkpoint.startswith(RANDOM_CHECKPOINT) and not (work / checkpoint).exists():
        from deepfake_audio.frontends.ssl import save_random

        save_random(work / checkpoint, checkpoint.removeprefix(RANDOM_CHECKPOINT), seed=0)


def build_repo(work: Path, profile: Path, env: dict[str, str]) -> None:
    """Copy the tracked project into ``work``, apply the profile and make it a git + DVC repository."""
    for rel in tracked_files(ROOT):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, work / rel)
    params = merge(
        yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")),
        yaml.safe_load(profile.read_text(encoding="utf-8")) or {},
    )
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    random_checkpoint(work, params)
    # Outputs of the full pipeline in the copy would only be overwritten; the lock would mislead DVC.
    for rel in ("dvc.lock", "metrics", "plots", "dvclive", "reports"):
        path = work / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    _run(["git", "init", "-q"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "ci profile"], work, env)  # dvclive wants a commit to refer to


def set_seeds(work: Path, train_seed: int, xgboost_seed: int, env: dict[str, str]) -> None:
    """Set the scratch params' ``train.seed`` and ``xgboost.seed`` and commit (dvclive refers to the commit)."""
    path = work / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["train"]["seed"], params["xgboost"]["seed"] = train_seed, xgboost_seed
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    _run(["git", "commit", "-qam", f"ci profile: train.seed {train_seed}, xgboost.seed {xgboost_seed}"], work, env)


def write_outputs(out: Path, runs: dict[str, dict[int, dict]], stamp: dict, summary_md: str) -> None:
    """Replace ``out``'s metrics, seed spreads, machine stamp and summary.md with this profile's."""
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.json"), *(out / SEEDS_DIR).glob("*.json")]:
        old.unlink()
    for name, by_seed in sorted(runs.items()):
        mean, spread = aggregate_seeds(by_seed)
        partial = partial_keys(spread)
        if partial:  # a per-attack EER that a seed could not compute: its mean and spread use the others
            log.warning(
                "%s: %d metrics missing in some seeds, averaged over the seeds that have them: %s",
                name,
                len(partial),
                ", ".join(partial[:10]),
            )
        write_json(out / name, mean)
        write_json(out / SEEDS_DIR / name, spread)
    write_json(out / STAMP_NAME, stamp)
    (out / "summary.md").write_text(summary_md, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, default=ROOT / "ci" / "profile.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "ci" / "metrics")
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="training seeds per model (default 3); the gate allows a change within their spread",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if not args.profile.is_file():
        parser.error(f"--profile {args.profile} does not exist")
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: need at least 1")
    env = scratch_env("ci")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="deepfake-audio-ci-"))
    if args.workdir and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} must be empty or absent")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs: dict[str, dict[int, dict]] = {}
    try:
        build_repo(work, args.profile, env)
        scratch = yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8"))
        base = (int(scratch["train"].get("seed", 0)), int(scratch["xgboost"].get("seed", 0)))
        for offset in range(args.seeds):
            t_seed = time.perf_counter()
            seeds = (base[0] + offset, base[1] + offset)
            if offset:  # only train@*, evaluate@* and report read these: the data stages are not re-run
                set_seeds(work, *seeds, env)
            _run(["dvc", "repro"], work, env)
            for path in sorted((work / "metrics").glob("*.json")):
                if path.name != STAMP_NAME:
                    runs.setdefault(path.name, {})[seeds[0]] = read_json(path)
            stamp = read_json(work / "metrics" / STAMP_NAME)
            if offset == 0:
                first_stamp = stamp
                summary_md = (work / "reports" / "summary.md").read_text(encoding="utf-8")
            elif stamp["fingerprint"] != first_stamp["fingerprint"]:
                raise SystemExit(
                    f"ci_profile: the machine stamp changed between seeds ({first_stamp['fingerprint']} "
                    f"then {stamp['fingerprint']}): something changed threads or libraries mid-run"
                )
            log.info(
                "seed run %d of %d (train.seed %d, xgboost.seed %d) done in %.0f s",
                offset + 1,
                args.seeds,
                *seeds,
                time.perf_counter() - t_seed,
            )
        first_stamp["record"].update(
            written(ROOT), seeds=args.seeds, train_seeds=[base[0] + k for k in range(args.seeds)]
        )
        write_outputs(args.out, runs, first_stamp, summary_md)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log.info(
        "CI profile done in %.0f s: %d seeds, %d metrics files in %s (seed spreads in %s/, machine %s)%s",
        time.perf_counter() - t0,
        args.seeds,
        len(runs),
        args.out,
        SEEDS_DIR,
        first_stamp["fingerprint"],
        f" (scratch repository kept at {work})" if args.keep else "",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
