"""Stage ``download``: materialise every configured source.

Reads: params ``data`` (sources, eval_sets), ``features.n_jobs`` (workers; outputs do not depend on it).
Writes: ``<out>/`` with generated audio where a source makes any, and ``<out>/manifest.parquet``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_audio.data import materialize
from deepfake_audio.io import write_frame
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    manifest = materialize(params.data, out_dir=args.out, n_jobs=params.features.n_jobs)
    write_frame(args.out / "manifest.parquet", manifest)
    counts = manifest.groupby(["source", "label"]).size().to_dict()
    return f"{len(manifest)} clips; " + ", ".join(f"{s}/{lab}: {n}" for (s, lab), n in sorted(counts.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder (data/raw)")
    run_stage("download", parser, body, argv)


if __name__ == "__main__":
    main()
