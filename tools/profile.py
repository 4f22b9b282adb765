#!/usr/bin/env python3
"""Print a params profile as ``dvc exp run`` overrides, so one command runs the pipeline with it.

A profile (``profiles/*.yaml``) is a partial params.yaml. Nested mappings become dotted keys;
every other value (scalar or list) replaces the key's value. Keys params.yaml lacks (a new model
kind's section) are added with Hydra's ``+key=value``, the syntax ``dvc exp run -S`` takes::

    dvc exp run $(python -m tools.profile profiles/gpu.yaml)

runs the whole pipeline as an experiment with the profile applied and leaves params.yaml as it
is (``dvc exp apply`` keeps a run's params). Values are printed without spaces so the shell's word
splitting keeps each ``-S`` argument whole; a string value with a space is refused.

Usage: ``python -m tools.profile PROFILE [--params params.yaml]``. Exit status 2 on a bad profile.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml


def flatten(profile: dict, base: dict, prefix: str = "") -> list[tuple[str, Any, bool]]:
    """``(dotted key, value, exists in base)`` for every leaf of ``profile``."""
    out = []
    for key, value in profile.items():
        dotted = f"{prefix}{key}"
        present = isinstance(base, dict) and key in base
        if isinstance(value, dict) and value and (not present or isinstance(base[key], dict)):
            out += flatten(value, base[key] if present else {}, f"{dotted}.") if present else _new(value, dotted)
        else:
            out.append((dotted, value, present))
    return out


def _new(value: dict, prefix: str) -> list[tuple[str, Any, bool]]:
    return [(f"{prefix}.{k}", v, False) for k, v in value.items()]


def render(value: Any) -> str:
    """A value as Hydra override text without spaces (JSON for lists and mappings)."""
    if isinstance(value, str):
        if any(c.isspace() for c in value):
            raise ValueError(f"the string {value!r} has whitespace, which the shell would split")
        return value
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"))


def overrides(profile_path: Path, params_path: Path) -> list[str]:
    profile = yaml.safe_load(profile_path.read_text(encoding="utf-8")) or {}
    base = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    if not isinstance(profile, dict):
        raise ValueError(f"{profile_path}: expected a mapping of params sections")
    return [f"-S {'' if present else '+'}{key}={render(value)}" for key, value, present in flatten(profile, base)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    try:
        print(" ".join(overrides(args.profile, args.params)))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"profile: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
