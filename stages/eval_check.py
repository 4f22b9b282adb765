"""Stage ``eval_check@<set>``: check one eval set against the training pool.

Reads: ``<manifest>`` (data/eval/<set>/manifest.parquet), ``<pool>`` (data/split/manifest.parquet);
params ``split.strategy``.
Writes: ``<out>`` (data/eval/<set>/overlap.json): how many of the set's clips are identical to
training-pool audio (by ``content_hash``), examples, and how many speakers the two share. Identical
audio fails the stage, and so blocks the set's scoring (but with ``split.strategy: random``, which
is leaky by design); shared speakers are reported, not refused: an eval corpus may reuse a
training corpus's voices, as ASVspoof 2021 reuses 2019's.

A stage of its own, so that a change of the training pool re-runs this check, not the set's
materialisation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.io import write_json
from deepfake_audio.split import eval_leak, eval_overlap
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    columns = ["utt_id", "speaker", "content_hash"]
    rows = pd.read_parquet(args.manifest, columns=columns)
    pool = pd.read_parquet(args.pool, columns=[*columns, "split"])
    name = str(args.manifest.parent.name)
    overlap = eval_overlap(rows, pool)
    problem = eval_leak(name, overlap)
    if problem and params.split.strategy != "random":
        raise RuntimeError(f"{problem}. Remove them from the eval set or from the training sources")
    write_json(args.out, overlap)
    return (
        f"{name}: {overlap['n_clips_in_training_pool']} of {len(rows)} clips identical to training-pool audio; "
        f"{overlap['n_shared_speakers']} speakers shared with the pool"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True, help="data/eval/<set>/manifest.parquet")
    parser.add_argument("--pool", type=Path, required=True, help="data/split/manifest.parquet: the training pool")
    parser.add_argument("--out", type=Path, required=True, help="data/eval/<set>/overlap.json")
    run_stage("eval_check", parser, body, argv)


if __name__ == "__main__":
    main()
