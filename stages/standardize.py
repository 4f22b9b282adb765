"""Stage ``standardize``: fit per-feature scalers on the train split only and apply them everywhere.

Reads: ``<features>/frames.parquet``, ``<features>/utterances.parquet``, ``<manifest>`` (for the split).
Writes: ``<out>/frames.parquet``, ``<out>/utterances.parquet`` (standardised) and ``<out>/scaler.json``.

With ``--scaler`` (data/scaled/scaler.json) it fits nothing: it applies those scalers, the training
pool's, to the features of an eval set (stage ``eval_features@<set>``) and copies them to ``<out>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.io import read_json, write_json
from deepfake_audio.scaling import (
    Scaler,
    apply_frame_scaler,
    apply_table_scaler,
    fit_frame_scaler,
    fit_table_scaler,
)
from deepfake_audio.stage import run_stage


def apply_saved(args: argparse.Namespace) -> str:
    saved = read_json(args.scaler)
    frames, table = Scaler.from_json(saved["frames"]), Scaler.from_json(saved["utterances"])
    n_frames = apply_frame_scaler(frames, args.features / "frames.parquet", args.out / "frames.parquet")
    n_rows = apply_table_scaler(table, args.features / "utterances.parquet", args.out / "utterances.parquet")
    write_json(args.out / "scaler.json", saved)
    return (
        f"scalers of {args.scaler} ({saved['n_train_clips']} train clips) applied; "
        f"{n_frames} frame rows, {n_rows} utterance rows written"
    )


def body(args: argparse.Namespace, params) -> str:
    if args.scaler is not None:
        return apply_saved(args)
    if args.manifest is None:
        raise ValueError("give --manifest (fit on its train split) or --scaler (apply a saved scaler.json)")
    manifest = pd.read_parquet(args.manifest)
    # Fitted on the original train clips only: the scaler describes real data, and does not move
    # when the number of augmented copies does.
    original = manifest["aug_seed"] < 0 if "aug_seed" in manifest.columns else True
    train_ids = set(manifest.loc[(manifest["split"] == "train") & original, "utt_id"])
    frames = fit_frame_scaler(args.features / "frames.parquet", train_ids)
    table = fit_table_scaler(args.features / "utterances.parquet", train_ids)
    n_frames = apply_frame_scaler(frames, args.features / "frames.parquet", args.out / "frames.parquet")
    n_rows = apply_table_scaler(table, args.features / "utterances.parquet", args.out / "utterances.parquet")
    write_json(
        args.out / "scaler.json",
        {
            "fitted_on": "train",
            "n_train_clips": len(train_ids),
            "frames": frames.to_json(),
            "utterances": table.to_json(),
        },
    )
    return f"scalers fitted on {len(train_ids)} train clips; {n_frames} frame rows, {n_rows} utterance rows written"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, default=None, help="the manifest whose train split is fitted on")
    parser.add_argument("--scaler", type=Path, default=None, help="apply this saved scaler.json instead of fitting")
    parser.add_argument("--out", type=Path, required=True)
    run_stage("standardize", parser, body, argv)


if __name__ == "__main__":
    main()
