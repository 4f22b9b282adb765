"""Stage ``split``: train/dev/test by ``split.strategy``, plus ``eval:<name>`` sets.

Reads: ``<manifest>`` (data/raw/manifest.parquet); params ``split``.
Writes: ``<out>`` (data/split/manifest.parquet, the manifest plus ``split``) and ``<report>``
(metrics/split.json: counts per split, class, attack and source; shared speakers).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.io import write_frame, write_json
from deepfake_audio.split import assign_splits, split_report
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    manifest = pd.read_parquet(args.manifest)
    out = assign_splits(manifest, params.split)
    report = {"strategy": params.split.strategy, **split_report(out)}
    shared = report["leakage"]["n_shared_speakers"]
    if shared and params.split.strategy != "random":  # random is leaky by design, and says so
        raise RuntimeError(f"speakers in more than one split: {report['leakage']['shared_speakers'][:10]}")
    write_frame(args.out, out)
    write_json(args.report, report)
    sizes = ", ".join(f"{k}: {v['n_clips']} clips/{v['n_speakers']} speakers" for k, v in report["splits"].items())
    return f"{params.split.strategy}: {len(out)} rows; {sizes}; {shared} shared speakers"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    run_stage("split", parser, body, argv)


if __name__ == "__main__":
    main()
