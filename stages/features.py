"""Stage ``features``: decode, resample, crop/pad and extract features of every clip in parallel.

Reads: ``<manifest>`` (data/split/manifest.parquet); params ``audio``, ``features`` (including
``features.augment``).
Writes: ``<out>/frames.parquet`` (frame-level, float32), ``<out>/utterances.parquet``
(utterance statistics, float32), ``<out>/rejects.csv`` (clips that could not be used, with reasons),
and ``<out>/manifest.parquet``: the split manifest plus one row per augmented copy of a train clip
(``utt_id`` ``<id>#aug<k>``, columns ``source_utt_id`` and ``aug_seed``; -1 and "" on original rows).
The example spectrograms are the ``examples`` stage's (stages/examples.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.augment import plan_augmentations
from deepfake_audio.features import check_feature_params, extract_features
from deepfake_audio.io import write_frame
from deepfake_audio.stage import run_stage


def with_augmented_copies(manifest: pd.DataFrame, params) -> pd.DataFrame:
    """The split manifest plus ``features.augment.copies`` augmented copies of each train clip."""
    copies = plan_augmentations(manifest, config=params.features.augment)
    copies["content_hash"] = ""  # a copy is not the audio its source is
    out = manifest.assign(source_utt_id="", aug_seed=-1)
    return pd.concat([out, copies], ignore_index=True).astype({"aug_seed": "int64"})


def body(args: argparse.Namespace, params) -> str:
    check_feature_params(params.features, params.audio)  # before any clip is read
    split_manifest = pd.read_parquet(args.manifest)
    manifest = with_augmented_copies(split_manifest, params)
    s = extract_features(
        manifest,
        audio=params.audio,
        features=params.features,
        frames_path=args.out / "frames.parquet",
        utterances_path=args.out / "utterances.parquet",
        rejects_path=args.out / "rejects.csv",
    )
    write_frame(args.out / "manifest.parquet", manifest)
    n_aug = int((manifest["aug_seed"] >= 0).sum())
    return (
        f"{s['n_in']} clips in ({n_aug} augmented copies), {s['n_out']} out, {s['n_rejected']} rejected "
        f"{s['rejects_by_reason']}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    run_stage("features", parser, body, argv)


if __name__ == "__main__":
    main()
