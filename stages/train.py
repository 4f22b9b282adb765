"""Stage ``train@<model>``: train one model kind and write its bundle.

Reads: ``<manifest>`` (data/features/manifest.parquet: the split manifest plus augmented train copies), ``<scaled>/`` (standardised features and
scaler.json); params ``train.*`` and the model's own section (``model`` or ``xgboost``).
Writes: ``<out>/`` (config.json and weights: the model bundle, with the score calibration fitted on
dev; ``checkpoint.pt`` while training)
and ``<live>/`` (DVCLive curves: loss, dev EER and learning rate per epoch). Both are DVC
``persist`` outputs: a stage killed mid-training resumes from its last epoch's checkpoint when
re-run, and a model whose own hyper-parameters, training options and inputs did not change
keeps its bundle (its training key in config.json) instead of retraining.

Multi-GPU: ``torchrun --nproc_per_node=N -m stages.train --model cnn_lstm ...`` trains with
DistributedDataParallel (NCCL on GPUs, gloo on CPUs); ``train.batch_size`` is per process.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import pandas as pd

from deepfake_audio.calibration import fit_calibration
from deepfake_audio.io import read_json
from deepfake_audio.models import get_model_kind
from deepfake_audio.stage import run_stage
from deepfake_audio.params import as_dict
from deepfake_audio.training import (SplitData, bundle_config, distributed, init_distributed, input_groups, load_bundle,
                                     load_inputs, resumable_epoch, save_config, select_device, train_neural,
                                     train_xgboost, training_key)


def calibrate(out: Path, dev: SplitData) -> str:
    """Fit the bundle's score calibration on its dev scores and store it in its config.json.

    Outside the training key: calibrating never retrains, and a kept bundle is calibrated again
    (with identical results) so that bundles from before calibration existed gain one.
    """
    bundle = load_bundle(out)
    calibration = fit_calibration(dev.y, bundle.score(dev.x))
    save_config(out, {**bundle.config, "calibration": {**calibration.to_dict(), "fitted_on": "dev"}})
    return f"calibration llr = {calibration.slope:.3g} * score + {calibration.offset:.3g}"


def body(args: argparse.Namespace, params) -> str:
    from dvclive import Live

    if args.model not in params.train.models:
        raise ValueError(f"--model {args.model} is not in train.models ({', '.join(params.train.models)})")
    kind = get_model_kind(args.model, section=params.train.models[args.model])
    if init_distributed(params.train.device) and not kind.neural:
        raise ValueError(f"{args.model} trains in one process: run it without torchrun")
    rank, world = distributed()
    section = getattr(params, kind.params_section)
    table = args.scaled / ("frames.parquet" if kind.input == "frames" else "utterances.parquet")
    key = training_key(kind, section=section, train_params=params.train,
                       device=select_device(params.train.device).type,
                       inputs=[args.manifest, table, args.scaled / "scaler.json"],
                       config={"audio": as_dict(params.audio), "features": as_dict(params.features)})
    previous = args.out / "config.json"
    manifest = pd.read_parquet(args.manifest)

    def inputs(splits: list[str]) -> dict[str, SplitData]:
        return load_inputs(manifest, kind=kind, frames_path=args.scaled / "frames.parquet",
                           utterances_path=args.scaled / "utterances.parquet", splits=splits,
                           groups=input_groups(kind, params.model))

    if previous.exists() and (args.out / ("weights.pt" if kind.neural else "model.json")).exists() \
            and read_json(previous).get("training_key") == key:
        # DVC re-runs every model stage when any key of the shared `model` section changes; a model
        # that does not read the changed key keeps its bundle byte for byte, so DVC skips its evaluate.
        if rank > 0:
            return f"{args.model}: rank {rank} of {world}: bundle kept"
        calibrated = calibrate(args.out, inputs(["dev"])["dev"])
        return f"{args.model}: its hyper-parameters, training options and inputs are unchanged; kept {args.out}; {calibrated}"
    data = inputs(["train", "dev"])
    args.out.mkdir(parents=True, exist_ok=True)
    resuming = kind.neural and resumable_epoch(args.out, key) is not None
    logger = (Live(dir=str(args.live), save_dvc_exp=False, dvcyaml=None, report=None, resume=resuming) if rank == 0
              else contextlib.nullcontext())  # rank 0 alone logs, checkpoints and writes the bundle
    with logger as live:
        if kind.neural:
            summary = train_neural(kind, data, model_params=params.model, train_params=params.train,
                                   out_dir=args.out, live=live, key=key)
        else:
            summary = train_xgboost(data, params=params.xgboost, train_params=params.train, out_dir=args.out, live=live)
        if live is not None:
            live.summary["dev/best_eer"] = summary["dev_eer"]
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
        if rank > 0:
            return f"{args.model}: rank {rank} of {world} done"
    # Throughput is a measurement, not config: kept out of the bundle so reruns give identical bytes.
    samples_per_s = summary.pop("train_samples_per_s")
    config = bundle_config(kind, summary, params_section=section, train_params=params.train, audio=params.audio,
                           features=params.features, scaler=read_json(args.scaled / "scaler.json"))
    save_config(args.out, {**config, "training_key": key})
    calibrated = calibrate(args.out, data["dev"])  # the dev inputs training already loaded
    return (f"{args.model} on {summary['device']}: {len(data['train'].ids)} train / {len(data['dev'].ids)} dev clips, "
            f"dev EER {100 * summary['dev_eer']:.2f}%, {samples_per_s:.0f} samples/s; {calibrated}")


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
