"""Stage ``features``: decode, resample, crop/pad and extract features of every clip in parallel.

Reads: ``<manifest>`` (data/split/manifest.parquet); params ``audio``, ``features``.
Writes: ``<out>/frames.parquet`` (frame-level, float32), ``<out>/utterances.parquet``
(utterance statistics, float32), ``<out>/rejects.csv`` (clips that could not be used, with reasons).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.features import extract_features
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    manifest = pd.read_parquet(args.manifest)
    s = extract_features(manifest, audio=params.audio, features=params.features,
                         frames_path=args.out / "frames.parquet", utterances_path=args.out / "utterances.parquet",
                         rejects_path=args.out / "rejects.csv")
    return f"{s['n_in']} clips in, {s['n_out']} out, {s['n_rejected']} rejected {s['rejects_by_reason']}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    run_stage("features", parser, body, argv)


if __name__ == "__main__":
    main()
