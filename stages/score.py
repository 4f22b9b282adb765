"""Stages ``score@<model>`` and ``eval_score@<set>-<model>``: one model's scores on one set.

Reads: ``<bundle>/`` (data/models/<model>), ``<manifest>`` and the inputs the bundle reads for its
rows of ``--split``: ``<scaled>/`` (features), ``<waveforms>/`` (audio, for waveform models and
fine-tuned SSL models) or ``<embeddings>/`` (a frozen SSL front-end's output).
Writes: ``<scores>`` (Parquet: utt_id, split, label, attack, source, raw score, calibrated ``llr``, and
the manifest's ``partition`` and condition columns). With ``--block`` (eval sets) also that set's
metrics block (JSON; decisions at the bundle's dev threshold; params ``evaluate``), with ``<raw>/``
giving the ASV scores of corpora that ship them (t-DCF). The test split's block is evaluate@<model>'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.bundle import load_bundle
from deepfake_audio.evaluation import block_name, metrics_from_scores, score_splits
from deepfake_audio.inputs import InputSource, load_inputs
from deepfake_audio.io import write_frame, write_json
from deepfake_audio.manifest import CONDITION_COLUMNS
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    bundle = load_bundle(args.bundle)
    manifest = pd.read_parquet(args.manifest)
    if not (manifest["split"] == args.split).any():
        raise ValueError(f"{args.manifest} has no rows of split {args.split!r}")
    source = InputSource(
        scaled=args.scaled,
        waveforms=args.waveforms,
        n_samples=bundle.config.get("n_samples"),
        embeddings=args.embeddings,
    )
    data = load_inputs(manifest, input=bundle.input, source=source, splits=[args.split], groups=bundle.frame_groups)
    scores = score_splits(bundle, data)
    by_id = manifest.set_index("utt_id")
    for column in ("partition", *CONDITION_COLUMNS):
        if column in by_id.columns:
            scores[column] = scores["utt_id"].map(by_id[column]).fillna("").astype(str)
    write_frame(args.scores, scores)
    line = f"{bundle.config['model']} on {block_name(args.split)}: {len(scores)} clips scored"
    if args.block is not None:
        threshold = float(bundle.config["threshold"])  # the dev-set EER threshold
        block = metrics_from_scores(scores, threshold=threshold, params=params.evaluate, raw_dir=args.raw)
        block = block[block_name(args.split)]
        write_json(args.block, block)
        line += f"; EER {100 * block['eer']:.2f}%" if "eer" in block else f"; {block['error']}"
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--split", required=True, help="test, or eval:<set>")
    parser.add_argument("--scaled", type=Path, required=True)
    parser.add_argument("--waveforms", type=Path, default=None, help="the audio waveform models read")
    parser.add_argument("--embeddings", type=Path, default=None, help="what frozen SSL models read")
    parser.add_argument("--scores", type=Path, required=True, help="the scores (Parquet) to write")
    parser.add_argument("--block", type=Path, default=None, help="also write this set's metrics block (JSON)")
    parser.add_argument("--raw", type=Path, default=None, help="with --block: ASV scores of corpora that ship them")
    run_stage("score", parser, body, argv)


if __name__ == "__main__":
    main()
