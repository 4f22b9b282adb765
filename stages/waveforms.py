"""Stage ``waveforms``: decode every clip once into a memory-mapped int16 waveform store.

Reads: ``<manifest>`` (data/split/manifest.parquet) and the audio it points at under ``<raw>``
(data/raw); params ``audio.sample_rate``, ``audio.min_duration_s``, ``audio.max_duration_s``,
``features.max_reject_fraction``, and ``features.n_jobs`` and ``features.chunk_size`` (not in
dvc.yaml: the store is the same bytes for any value).
Writes: ``<out>/`` (data/waveforms): ``shard-NNNNN.i16`` (raw little-endian int16), ``index.parquet``
(``utt_id, shard, offset, n_samples``), ``meta.json``, and ``rejects.csv`` (clips that could not be
used, with reasons, as the features stage's). See :mod:`deepfake_audio.waveforms`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.stage import run_stage
from deepfake_audio.waveforms import write_store

SHARD_MB = 256


def body(args: argparse.Namespace, params) -> str:
    manifest = pd.read_parquet(args.manifest, columns=["utt_id", "path"])
    s = write_store(
        manifest,
        raw_dir=args.raw,
        out_dir=args.out,
        audio=params.audio,
        n_jobs=params.features.n_jobs,
        chunk_size=params.features.chunk_size,
        max_reject_fraction=params.features.max_reject_fraction,
        shard_mb=SHARD_MB,
        rejects_path=args.out / "rejects.csv",
    )
    return (
        f"{s['n_in']} clips in, {s['n_out']} out, {s['n_rejected']} rejected {s['rejects_by_reason']}; "
        f"{s['hours']:.2f} h of audio in {s['n_shards']} shards; {s['wall_s']:.1f} s "
        f"({s['n_in'] / max(s['wall_s'], 1e-9):.0f} clips/s)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True, help="data/raw: relative manifest paths live here")
    parser.add_argument("--out", type=Path, required=True)
    run_stage("waveforms", parser, body, argv)


if __name__ == "__main__":
    main()
