"""Where and when a figure was made: the git commit, the UTC date and the machine.

Every run figure in the docs carries this stamp (``tools/docs_results.py``), and so does every
benchmark's ``--json`` output, so a number can always be traced to the code and the machine that
produced it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path


def git_commit(root: Path, *, ignore: tuple[str, ...] = ()) -> str:
    """``git rev-parse --short HEAD`` of ``root``, plus ``+dirty`` when the tree has changes.

    Args:
        root: a folder inside the git work tree.
        ignore: paths (relative to the repository root) whose changes do not count as dirt,
            e.g. the files a generator is about to rewrite.

    Returns:
        the short commit, ``<commit>+dirty``, or ``unknown`` outside a git work tree.
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = [line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines() if line.strip()]
    dirty = [path for path in changed if path not in ignore]
    return commit + ("+dirty" if dirty else "")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return " ".join(value.split())
    except OSError:
        pass  # not Linux: fall back below
    return platform.processor() or platform.machine() or "unknown"


def stamp(root: Path | str = ".", *, ignore: tuple[str, ...] = ()) -> dict:
    """``{commit, date_utc, cpu, cores}`` for the machine and work tree this runs in.

    ``cores`` is the number of logical CPUs this process may use (its affinity mask), which is
    what a run here could use, not the size of the host.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    return {
        "commit": git_commit(Path(root), ignore=ignore),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": cores,
    }


def describe(s: dict) -> str:
    """One line for a stamp: ``commit abc1234, 2026-01-02 03:04 UTC, <cpu> (2 cores)``."""
    return (
        f"commit `{s.get('commit', '?')}`, {s.get('date_utc', '?')}, {s.get('cpu', '?')} ({s.get('cores', '?')} cores)"
    )
