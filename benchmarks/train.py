"""Training throughput per model at the default input shapes: samples/s, GPU memory, data waits.

Usage (from the repository root)::

    python -m benchmarks.train                         # every model of params.yaml, CPU or GPU
    python -m benchmarks.train --models cnn_lstm cnn2d --steps 50 --threads 2
    python -m benchmarks.train --device cuda --batch-size 256 --json out.json

For each neural model, random standardised inputs of the shape the pipeline feeds it (the rows
of its frame groups x frames, from params.yaml's ``features`` and ``model``) sit in RAM and go
through the same DataLoader, AdamW step, bf16 autocast (CUDA) and gradient clipping as
``deepfake_audio.training.train_neural``. After ``--warmup`` steps, ``--steps`` steps are timed:

* samples/s: training samples per second of wall time;
* data wait: the share of that time spent waiting for the next batch (loader + host-to-device
  copy), i.e. when the GPU would starve;
* GPU memory: ``torch.cuda.max_memory_allocated`` (CUDA only).

XGBoost is timed fitting ``--xgb-rows`` random rows of the utterance table's width with
params.yaml's ``xgboost`` section (trees per second x rows = samples/s of one boosting round).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from deepfake_audio.features import FeatureExtractor
from deepfake_audio.models import get_model_kind
from deepfake_audio.models.xgboost import xgboost_device
from deepfake_audio.params import load_params
from deepfake_audio.runtime import select_device
from tools.stamp import stamp


def input_shape(kind, params) -> tuple[int, int]:
    """``(rows, frames)`` the pipeline feeds ``kind`` with these params."""
    layout = FeatureExtractor(params.audio, params.features).layout
    groups = kind.groups(kind.section(params)) or layout.frame_groups
    missing = sorted(set(groups) - set(layout.frame_groups))
    if missing:
        raise SystemExit(f"{kind.name} reads {missing}, which features.frame_groups does not produce")
    return sum(g in groups for g in layout.frame_groups), layout.n_frames


def bench_neural(name: str, params, *, device, batch_size: int, steps: int, warmup: int) -> dict:
    import torch

    kind = get_model_kind(name)
    n_rows, n_frames = input_shape(kind, params)
    n = batch_size * (steps + warmup)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((n, n_rows, n_frames), dtype=np.float32))
    y = torch.from_numpy((np.arange(n) % 2).astype(np.float32))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        pin_memory=device.type == "cuda",
        num_workers=params.train.num_workers,
    )
    model = kind.build(n_rows, n_frames, kind.section(params)).to(device)
    if params.train.compile:
        model = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=params.train.lr, weight_decay=params.train.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    wait = compute = 0.0
    batches = iter(loader)
    model.train()
    for step in range(steps + warmup):
        t0 = time.perf_counter()
        xb, yb = next(batches)
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        t1 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(xb)
        loss = loss_fn(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), params.train.grad_clip)
        opt.step()
        loss.item()  # waits for the step to finish, as the training loop's loss.item() does
        t2 = time.perf_counter()
        if step >= warmup:
            wait += t1 - t0
            compute += t2 - t1
    total = wait + compute
    out = {
        "model": name,
        "input": [n_rows, n_frames],
        "batch_size": batch_size,
        "steps": steps,
        "samples_per_s": steps * batch_size / total,
        "data_wait_share": wait / total,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if device.type == "cuda":
        out["gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def bench_xgboost(params, *, device: str, rows: int) -> dict:
    import xgboost as xgb

    width = len(FeatureExtractor(params.audio, params.features).layout.utterance_names)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, width), dtype=np.float32)
    y = (np.arange(rows) % 2).astype(np.int64)
    x[y == 1, :10] += 0.5
    p = params.xgboost
    model = xgb.XGBClassifier(
        n_estimators=p.n_estimators,
        max_depth=p.max_depth,
        learning_rate=p.learning_rate,
        subsample=p.subsample,
        colsample_bytree=p.colsample_bytree,
        tree_method="hist",
        device=device,
        n_jobs=p.n_jobs,
        random_state=p.seed,
    )
    t0 = time.perf_counter()
    model.fit(x, y, verbose=False)
    elapsed = time.perf_counter() - t0
    return {
        "model": "xgboost",
        "device": device,
        "input": [width],
        "rows": rows,
        "trees": p.n_estimators,
        "fit_s": elapsed,
        "samples_per_s": rows * p.n_estimators / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--models", nargs="*", default=None, help="default: train.models of params")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="default: train.device")
    parser.add_argument("--batch-size", type=int, default=None, help="default: train.batch_size")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--xgb-rows", type=int, default=2000)
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the results, stamped with the commit and machine, to this JSON file",
    )
    args = parser.parse_args(argv)

    import torch

    params = load_params(args.params)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device or params.train.device)
    batch_size = args.batch_size or params.train.batch_size
    names = args.models or list(params.train.models)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training throughput on {name}; batch {batch_size}, {args.steps} timed steps after {args.warmup}\n")
    print(f"  {'model':22s} {'input':>10s} {'params':>9s} {'samples/s':>10s} {'data wait':>10s} {'GPU MiB':>8s}")
    results = []
    for model in names:
        kind = get_model_kind(model)
        if kind.build is not None:  # a torch network: time its training steps
            r = bench_neural(model, params, device=device, batch_size=batch_size, steps=args.steps, warmup=args.warmup)
            gpu = f"{r['gpu_memory_mib']:8.0f}" if "gpu_memory_mib" in r else f"{'-':>8s}"
            print(
                f"  {model:22s} {'x'.join(map(str, r['input'])):>10s} {r['parameters']:9d} "
                f"{r['samples_per_s']:10.0f} {100 * r['data_wait_share']:9.1f}% {gpu}"
            )
        else:
            r = bench_xgboost(params, device=xgboost_device(args.device or params.train.device), rows=args.xgb_rows)
            print(
                f"  {model:22s} {r['input'][0]:>10d} {'-':>9s} {r['samples_per_s']:10.0f} {'-':>10s} {'-':>8s}"
                f"   ({r['rows']} rows x {r['trees']} trees in {r['fit_s']:.1f} s on {r['device']})"
            )
        results.append(r)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"device": name, "batch_size": batch_size, "results": results, "stamp": stamp()}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
