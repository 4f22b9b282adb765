"""Stage ``train@<model>``: train one model kind and write its bundle.

Reads: ``<manifest>`` (data/features/manifest.parquet: the split manifest plus augmented train copies), ``<scaled>/`` (standardised features and
scaler.json), ``<waveforms>/`` (audio models) or ``<embeddings>/`` (frozen SSL models); params ``train.*`` and the model's own section (``model``, ``xgboost``, or the kind's own).
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

from deepfake_audio.bundle import bundle_config, calibrate, has_weights, read_config, save_config, training_key
from deepfake_audio.codedeps import code_files
from deepfake_audio.features import check_feature_params
from deepfake_audio.inputs import InputSource, input_files, load_inputs
from deepfake_audio.io import read_json
from deepfake_audio.models import FitContext, check_model_params
from deepfake_audio.params import as_dict
from deepfake_audio.runtime import distributed, finish_distributed, init_distributed, select_device
from deepfake_audio.stage import run_stage

CODE_MODULE = "stages.train"
"""This module's name in dvc.yaml's command: the training key hashes the code of its import closure."""


def init_files(init_from: str | None) -> list[Path]:
    """The weights ``train.init_from`` names (a bundle's config and weights, or one file): key inputs."""
    if init_from is None:
        return []
    path = Path(init_from)
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path] if path.is_file() else []


def frontend_files(section) -> list[Path]:
    """A pretrained front-end's checkpoint files (config and weights): training-key inputs."""
    frontend = getattr(section, "frontend", None)
    if frontend is None or frontend.checkpoint is None:
        return []
    from deepfake_audio.frontends.ssl import checkpoint_files

    return checkpoint_files(frontend.checkpoint)


def body(args: argparse.Namespace, params) -> str:
    from dvclive import Live

    if args.model not in params.train.models:
        raise ValueError(f"--model {args.model} is not in train.models ({', '.join(params.train.models)})")
    check_feature_params(params.features, params.audio)
    kind = check_model_params(params)[args.model]
    section = kind.section(params)
    if init_distributed(params.train.device) and not kind.distributed:
        raise ValueError(f"{args.model} trains in one process: run it without torchrun")
    rank, world = distributed()
    source = InputSource(
        scaled=args.scaled,
        waveforms=args.waveforms,
        n_samples=kind.crop_samples(section, params.audio) if kind.crop_samples is not None else None,
        embeddings=args.embeddings,
    )
    model_input = kind.input_for(section)
    key = training_key(
        kind,
        section=section,
        train_params=params.train,
        device=select_device(params.train.device).type,
        inputs=[
            args.manifest,
            *input_files(model_input, source),
            *init_files(params.train.init_from),
            *frontend_files(section),
        ],
        code=code_files(CODE_MODULE),
        config={"audio": as_dict(params.audio), "features": as_dict(params.features)},
    )
    manifest = pd.read_parquet(args.manifest)

    def inputs(splits: list[str]):
        return load_inputs(manifest, input=model_input, source=source, splits=splits, groups=kind.groups(section))

    if has_weights(args.out, kind) and read_config(args.out).get("training_key") == key:
        # DVC re-runs every model stage when any key of the shared `model` section changes; a model
        # that does not read the changed key keeps its bundle byte for byte, so DVC skips its evaluate.
        if rank > 0:
            return f"{args.model}: rank {rank} of {world}: bundle kept"
        dev = inputs(["dev"])["dev"]
        calibrated = calibrate(args.out, dev.y, dev.x)
        return f"{args.model}: its hyper-parameters, training options and inputs are unchanged; kept {args.out}; {calibrated}"
    data = inputs(["train", "dev"])
    scaler = read_json(args.scaled / "scaler.json")
    args.out.mkdir(parents=True, exist_ok=True)
    resuming = kind.resumable_epoch is not None and kind.resumable_epoch(args.out, key) is not None
    logger = (
        Live(dir=str(args.live), save_dvc_exp=False, dvcyaml=None, report=None, resume=resuming)
        if rank == 0
        else contextlib.nullcontext()
    )  # rank 0 alone logs, checkpoints and writes the bundle
    with logger as live:
        context = FitContext(
            section=section,
            train=params.train,
            out_dir=args.out,
            live=live,
            key=key,
            config={"audio": as_dict(params.audio), "features": as_dict(params.features), "scaler": scaler},
        )
        summary = kind.fit(data, context)
        if live is not None:
            live.summary["dev/best_eer"] = summary["dev_eer"]
    if world > 1:
        finish_distributed()
        if rank > 0:
            return f"{args.model}: rank {rank} of {world} done"
    # Throughput is a measurement, not config: kept out of the bundle so reruns give identical bytes.
    samples_per_s = summary.pop("train_samples_per_s")
    wait_share = summary.pop("data_wait_share", None)
    config = bundle_config(
        kind,
        summary,
        section=section,
        train_params=params.train,
        audio=params.audio,
        features=params.features,
        scaler=scaler,
        n_samples=source.n_samples,
    )
    save_config(args.out, {**config, "training_key": key})
    calibrated = calibrate(args.out, data["dev"].y, data["dev"].x)  # the dev inputs training already loaded
    return (
        f"{args.model} on {summary['device']}: {len(data['train'].ids)} train / {len(data['dev'].ids)} dev clips, "
        f"dev EER {100 * summary['dev_eer']:.2f}%, {samples_per_s:.1f} samples/s"
        + (f" ({100 * wait_share:.0f}% waiting for data)" if wait_share is not None else "")
        + f"; {calibrated}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a key of train.models")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--scaled", type=Path, required=True)
    parser.add_argument("--waveforms", type=Path, default=None, help="data/waveforms: the audio waveform models read")
    parser.add_argument("--embeddings", type=Path, default=None, help="data/embeddings: what frozen SSL models read")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True)
    run_stage("train", parser, body, argv)


if __name__ == "__main__":
    main()
