#!/usr/bin/env python3
"""Run the CI profile of the pipeline: every model, on a smaller demo corpus, in a scratch copy.

The profile is ``params.yaml`` with the overrides of ``ci/profile.yaml`` merged in (mappings
merge key by key; lists and scalars replace). The project's files (git-tracked or not ignored) are copied into a
scratch folder, which becomes its own git + DVC repository; ``dvc repro`` runs there, and its
``metrics/*.json`` are copied into ``--out`` (default ``ci/metrics``). The committed
``ci/metrics`` are what a clean run of the profile gives, so in CI::

    python -m tools.ci_profile && deepfake-audio gate --targets ci/metrics/*.json

fails when a change makes a metric of any model worse than the ``gate`` tolerances allow.
The workspace's own ``data/``, ``metrics/`` and DVC cache are never touched.

Usage::

    python -m tools.ci_profile [--profile ci/profile.yaml] [--out ci/metrics] [--workdir DIR] [--keep]
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
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p and not p.startswith("ci/metrics/") and (root / p).is_file()]


def build_repo(work: Path, profile: Path, env: dict[str, str]) -> None:
    """Copy the tracked project into ``work``, apply the profile and make it a git + DVC repository."""
    for rel in tracked_files(ROOT):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, work / rel)
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")),
                   yaml.safe_load(profile.read_text(encoding="utf-8")) or {})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    # Outputs of the full pipeline in the copy would only be overwritten; the lock would mislead DVC.
    for rel in ("dvc.lock", "metrics", "plots", "dvclive", "reports"):
        path = work / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    _run(["git", "init", "-q"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "ci profile"], work, env)  # dvclive wants a commit to refer to


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, default=ROOT / "ci" / "profile.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "ci" / "metrics")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.profile.is_file():
        parser.error(f"--profile {args.profile} does not exist")
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONHASHSEED="0", GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@localhost",
               GIT_COMMITTER_NAME="ci", GIT_COMMITTER_EMAIL="ci@localhost")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="deepfake-audio-ci-"))
    if args.workdir and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} must be empty or absent")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        build_repo(work, args.profile, env)
        _run(["dvc", "repro"], work, env)
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("*.json"):
            old.unlink()
        produced = sorted((work / "metrics").glob("*.json"))
        for path in produced:
            shutil.copy2(path, args.out / path.name)
        shutil.copy2(work / "reports" / "summary.md", args.out / "summary.md")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log.info("CI profile done in %.0f s: %d metrics files in %s%s", time.perf_counter() - t0, len(produced), args.out,
             f" (scratch repository kept at {work})" if args.keep else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
