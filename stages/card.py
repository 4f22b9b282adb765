"""Stage ``card@<model>``: the model card of one trained bundle, from the pipeline's own outputs.

Reads: ``<bundle>/config.json`` (data/models/<model>: kind, hyper-parameters, training summary,
audio contract, threshold, calibration, training key), ``<metrics>`` (metrics/<model>.json: test
and every eval set) and ``<manifest>`` (data/split/manifest.parquet: clips per split, class,
attack and source); the git commit of the working directory, when there is one.
Writes: ``<out>/MODEL_CARD.md`` and ``<out>/card.json`` (data/cards/<model>: the same facts,
structured, for ``GET /v1/models``). No date: unchanged inputs give the same bytes.
Params: ``data.sources``, ``data.eval_sets``, ``split``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from deepfake_audio.io import read_json
from deepfake_audio.model_card import build_card, git_commit, write_card
from deepfake_audio.stage import run_stage

MANIFEST_COLUMNS = (
    "split",
    "label",
    "attack",
    "source",
    "speaker",
    "engine",
    "language",
    "sample_rate",
    "duration_s",
)
"""The manifest columns a card reads (those present)."""


def body(args: argparse.Namespace, params) -> str:
    config = read_json(args.bundle / "config.json")
    metrics = read_json(args.metrics)
    present = set(pq.read_schema(args.manifest).names)
    manifest = pd.read_parquet(args.manifest, columns=[c for c in MANIFEST_COLUMNS if c in present])
    card = build_card(config, metrics, manifest, params, name=args.model, commit=git_commit(Path.cwd()))
    markdown, _ = write_card(args.out, card)
    test = card["metrics"]["test"]
    return (
        f"{args.model}: {markdown} from {len(manifest)} clips and {len(card['metrics'])} scored sets; "
        f"test EER {100 * test['eer']:.2f}%"
        if "eer" in test
        else f"{args.model}: {markdown}; test not scored"
    ) + f"; {len(card['weaknesses'])} known weaknesses"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="the model's name in train.models")
    parser.add_argument("--bundle", type=Path, required=True, help="data/models/<model>: its config.json")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics/<model>.json")
    parser.add_argument("--manifest", type=Path, required=True, help="data/split/manifest.parquet")
    parser.add_argument("--out", type=Path, required=True, help="data/cards/<model>")
    run_stage("card", parser, body, argv)


if __name__ == "__main__":
    main()
