"""Stage ``eval_data@<set>``: materialise one eval set of ``data.eval_sets``.

Reads: params ``data.eval_sets.<set>``, ``features.n_jobs`` (workers; outputs do not depend on it).
Writes: ``<raw>/`` (generated audio where the source makes any; published corpora are referenced in
place, and ASV scores are kept for t-DCF), ``<manifest>`` (data/eval/<set>/manifest.parquet: the
set's rows, ``split`` = ``eval:<set>``) and ``<report>`` (clips per class, attack and source).
It reads nothing of the training pool, so a change there never re-reads the set: ``eval_check@<set>``
checks the two against each other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_audio.data import materialize_eval_set
from deepfake_audio.io import write_frame, write_json
from deepfake_audio.split import split_report
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    args.raw.mkdir(parents=True, exist_ok=True)  # a DVC out even when the set references files in place
    manifest = materialize_eval_set(params.data, args.name, out_dir=args.raw, n_jobs=params.features.n_jobs)
    manifest["split"] = f"eval:{args.name}"
    counts = split_report(manifest)["splits"][f"eval:{args.name}"]
    write_frame(args.manifest, manifest)
    write_json(args.report, {"set": args.name, "kind": params.data.eval_sets[args.name]["kind"], **counts})
    return (
        f"{args.name}: {len(manifest)} clips ({counts['n_bonafide']} bona fide, {counts['n_spoof']} spoof, "
        f"{len(counts['attacks'])} attacks, {counts['n_speakers']} speakers)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="the eval set's name (a key of data.eval_sets)")
    parser.add_argument("--raw", type=Path, required=True, help="data/eval/<set>/raw")
    parser.add_argument("--manifest", type=Path, required=True, help="data/eval/<set>/manifest.parquet")
    parser.add_argument("--report", type=Path, required=True, help="data/eval/<set>/report.json")
    run_stage("eval_data", parser, body, argv)


if __name__ == "__main__":
    main()
