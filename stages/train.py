"""Stage ``train@<model>``: train one model kind and write its bundle.

Reads: ``<manifest>`` (data/features/manifest.parquet: the split manifest plus augmented train copies), ``<scaled>/`` (standardised features and
scaler.json); params ``train.*`` and the model's own section (``model`` or ``xgboost``).
Writes: ``<out>/`` (config.json and weights: the model bundle) and ``<live>/`` (DVCLive curves:
loss and dev EER per epoch).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.io import read_json
from deepfake_audio.models import get_model_kind
from deepfake_audio.stage import run_stage
from deepfake_audio.training import bundle_config, load_inputs, save_config, train_neural, train_xgboost


def body(args: argparse.Namespace, params) -> str:
    from dvclive import Live

    if args.model not in params.train.models:
        raise ValueError(f"--model {args.model} is not in train.models ({', '.join(params.train.models)})")
    kind = get_model_kind(args.model, section=params.train.models[args.model])
    manifest = pd.read_parquet(args.manifest)
    data = load_inputs(manifest, kind=kind, frames_path=args.scaled / "frames.parquet",
                       utterances_path=args.scaled / "utterances.parquet", splits=["train", "dev"])
    args.out.mkdir(parents=True, exist_ok=True)
    with Live(dir=str(args.live), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        if kind.neural:
            summary = train_neural(kind, data, model_params=params.model, train_params=params.train,
                                   out_dir=args.out, live=live)
        else:
            summary = train_xgboost(data, params=params.xgboost, train_params=params.train, out_dir=args.out, live=live)
        live.summary["dev/best_eer"] = summary["dev_eer"]
    # Throughput is a measurement, not config: kept out of the bundle so reruns give identical bytes.
    samples_per_s = summary.pop("train_samples_per_s")
    section = getattr(params, kind.params_section)
    save_config(args.out, bundle_config(kind, summary, params_section=section, train_params=params.train,
                                        audio=params.audio, features=params.features,
                                        scaler=read_json(args.scaled / "scaler.json")))
    return (f"{args.model} on {summary['device']}: {len(data['train'].ids)} train / {len(data['dev'].ids)} dev clips, "
            f"dev EER {100 * summary['dev_eer']:.2f}%, {samples_per_s:.0f} samples/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a key of train.models")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--scaled", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True)
    run_stage("train", parser, body, argv)


if __name__ == "__main__":
    main()
