"""Stage ``evaluate@<model>``: score ``test`` and every eval set; write metrics and plots.

Reads: ``<bundle>/`` (data/models/<model>), ``<manifest>``, ``<scaled>/`` (features), ``<waveforms>/``
(audio, for waveform models and fine-tuned SSL models) or ``<embeddings>/`` (a frozen SSL front-end's
output), and ``<raw>/`` for the
ASV scores of corpora that ship them (t-DCF).
Writes: ``<scores>`` (data/scores/<model>.parquet: raw score and calibrated LLR per clip),
``<metrics>`` (metrics/<model>.json: one block per set; decisions at the dev-set threshold),
``<plots>/`` (roc/det/confusion CSV for DVC, PNG figures).
Params: ``evaluate`` (bootstrap replicates of the EER interval).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.bundle import load_bundle
from deepfake_audio.evaluation import metrics_from_scores, score_splits, write_plots
from deepfake_audio.inputs import InputSource, load_inputs
from deepfake_audio.io import write_frame, write_json
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    bundle = load_bundle(args.bundle)
    manifest = pd.read_parquet(args.manifest)
    splits = ["test"] + sorted(s for s in manifest["split"].unique() if s.startswith("eval:"))
    source = InputSource(
        scaled=args.scaled,
        waveforms=args.waveforms,
        n_samples=bundle.config.get("n_samples"),
        embeddings=args.embeddings,
    )
    data = load_inputs(manifest, input=bundle.input, source=source, splits=splits, groups=bundle.frame_groups)
    scores = score_splits(bundle, data)
    if "partition" in manifest.columns:
        scores["partition"] = scores["utt_id"].map(manifest.set_index("utt_id")["partition"]).fillna("").astype(str)
    write_frame(args.scores, scores)
    threshold = float(bundle.config["threshold"])  # the dev-set EER threshold
    metrics = metrics_from_scores(scores, threshold=threshold, params=params.evaluate, raw_dir=args.raw)
    write_json(args.metrics, metrics)
    write_plots(scores, model=bundle.config["model"], threshold=threshold, out_dir=args.plots, metrics=metrics)
    return "; ".join(
        f"{k}: EER {100 * v['eer']:.2f}% on {v['n_bonafide']}+{v['n_spoof']}" if "eer" in v else f"{k}: {v['error']}"
        for k, v in metrics.items()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--scaled", type=Path, required=True)
    parser.add_argument("--waveforms", type=Path, default=None, help="data/waveforms: the audio waveform models read")
    parser.add_argument("--embeddings", type=Path, default=None, help="data/embeddings: what frozen SSL models read")
    parser.add_argument("--raw", type=Path, default=None, help="data/raw: ASV scores of corpora that ship them")
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    run_stage("evaluate", parser, body, argv)


if __name__ == "__main__":
    main()
