"""Stage ``split``: train/dev/test by ``split.strategy``, plus ``eval:<name>`` sets.

Reads: ``<manifest>`` (data/raw/manifest.parquet); params ``split``.
Writes: ``<out>`` (data/split/manifest.parquet, the manifest plus ``split``) and ``<report>``
(metrics/split.json: counts per split, class, attack and source; speakers and identical audio
shared between splits, and with each eval set). On every strategy but ``random`` a leak fails
the stage and nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.io import write_frame, write_json
from deepfake_audio.split import assign_splits, leaks, split_report
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    manifest = pd.read_parquet(args.manifest)
    out = assign_splits(manifest, params.split)
    report = {"strategy": params.split.strategy, **split_report(out)}
    problems = leaks(report)
    if problems and params.split.strategy != "random":  # random is leaky by design, and says so
        raise RuntimeError(
            f"split.strategy={params.split.strategy} leaks: "
            + "; ".join(problems)
            + ". Identical clips in an eval set must be removed from it or from the training "
            "sources; official partitions that share speakers need strategy stratified_group"
        )
    write_frame(args.out, out)
    write_json(args.report, report)
    sizes = ", ".join(f"{k}: {v['n_clips']} clips/{v['n_speakers']} speakers" for k, v in report["splits"].items())
    leak = report["leakage"]
    return (
        f"{params.split.strategy}: {len(out)} rows; {sizes}; {leak['n_shared_speakers']} shared speakers, "
        f"{leak['n_shared_audio']} shared clips"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    run_stage("split", parser, body, argv)


if __name__ == "__main__":
    main()
