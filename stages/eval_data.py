"""Stage ``eval_data@<set>``: materialise one eval set of ``data.eval_sets`` and check it against the pool.

Reads: params ``data.eval_sets.<set>`` (and ``split.strategy``), ``features.n_jobs`` (workers;
outputs do not depend on it); ``<pool>`` (data/split/manifest.parquet) for the leak check.
Writes: ``<raw>/`` (generated audio where the source makes any; published corpora are referenced in
place, and ASV scores are kept for t-DCF), ``<manifest>`` (data/eval/<set>/manifest.parquet: the
set's rows, ``split`` = ``eval:<set>``) and ``<report>`` (counts, and what the set shares with the
training pool). Clips whose audio is identical to training-pool audio fail the stage (but with
``split.strategy: random``, which is leaky by design); shared speakers are reported, not refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.data import materialize_eval_set
from deepfake_audio.io import write_frame, write_json
from deepfake_audio.split import eval_leak, eval_overlap, split_report
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    args.raw.mkdir(parents=True, exist_ok=True)  # a DVC out even when the set references files in place
    manifest = materialize_eval_set(params.data, args.name, out_dir=args.raw, n_jobs=params.features.n_jobs)
    manifest["split"] = f"eval:{args.name}"
    pool = pd.read_parquet(args.pool, columns=["utt_id", "speaker", "split", "content_hash"])
    overlap = eval_overlap(manifest, pool)
    problem = eval_leak(args.name, overlap)
    if problem and params.split.strategy != "random":
        raise RuntimeError(f"{problem}. Remove them from the eval set or from the training sources")
    counts = split_report(manifest)["splits"][f"eval:{args.name}"]
    write_frame(args.manifest, manifest)
    write_json(args.report, {"set": args.name, "kind": params.data.eval_sets[args.name]["kind"], **counts, **overlap})
    return (
        f"{args.name}: {len(manifest)} clips ({counts['n_bonafide']} bona fide, {counts['n_spoof']} spoof, "
        f"{len(counts['attacks'])} attacks); {overlap['n_shared_speakers']} speakers shared with the training pool"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="the eval set's name (a key of data.eval_sets)")
    parser.add_argument("--pool", type=Path, required=True, help="data/split/manifest.parquet: the training pool")
    parser.add_argument("--raw", type=Path, required=True, help="data/eval/<set>/raw")
    parser.add_argument("--manifest", type=Path, required=True, help="data/eval/<set>/manifest.parquet")
    parser.add_argument("--report", type=Path, required=True, help="data/eval/<set>/report.json")
    run_stage("eval_data", parser, body, argv)


if __name__ == "__main__":
    main()
