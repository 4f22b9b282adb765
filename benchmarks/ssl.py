"""Throughput and memory of the SSL front-ends and back-ends, frozen and fine-tuned, on random weights.

Usage (from the repository root)::

    python -m benchmarks.ssl                                   # tiny and XLS-R 300M sizes on the CPU
    python -m benchmarks.ssl --sizes xls-r-300m --device cuda --clips 256 --batch-size 16 --finetune-batch 8

A model of each ``--sizes`` entry is built with random weights (``SIZES``: the real shapes of the
public checkpoints, so the figures are those of the real models; no download) and measured on
``--clips`` synthetic 4-s clips (``--n-samples``):

* extract clips/s: the frozen front-end, every hidden state, as the ``embeddings`` stage runs it
  (bf16 autocast on CUDA), and the cache it writes per clip (float16, ``pooled`` and ``frames``);
* back-end train clips/s on cached embeddings: each of ``ssl_linear``, ``ssl_attm``, ``ssl_aasist``
  (``frames`` for the last) on ``--cache-clips`` random blocks of the model's shape in RAM, forward,
  backward and AdamW step, batch 32;
* ``ssl_linear`` fit s: the kind's own ``fit`` (the train stage's path: store reads, early stopping
  on dev EER) for ``--epochs`` epochs on a store of ``--cache-clips`` pooled blocks;
* fine-tune clips/s: ``SSLDetector`` (the front-end and each back-end) forward, backward and AdamW
  step with gradient checkpointing, the front-end at its own learning rate, bf16 autocast on CUDA;
* peak memory: CUDA's max allocated, or the process's peak RSS on the CPU (which only grows, so a
  row reads the largest of it and the rows before).

Writes ``--out`` (markdown, with the machine) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BACKEND_NAMES = ("ssl_linear", "ssl_attm", "ssl_aasist")

SIZES = {
    "tiny": None,  # frontends.ssl.TINY: the test model
    "wav2vec2-base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "xls-r-300m": {  # facebook/wav2vec2-xls-r-300m's config.json
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "do_stable_layer_norm": True,
        "feat_extract_norm": "layer",
        "conv_bias": True,
    },
}


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _clips(n: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """Speech-like test signals: a harmonic buzz with a syllable envelope, and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000
    out = np.empty((n, 1, n_samples), dtype=np.float32)
    for i in range(n):
        f0 = rng.uniform(100, 220)
        voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t)
        out[i, 0] = 0.1 * voiced * envelope + 0.01 * rng.standard_normal(n_samples)
    return out


def _frontend(size: str, layer=None):
    from transformers import AutoConfig, AutoModel

    from deepfake_audio.frontends.ssl import TINY, SSLFrontend, quiet_transformers

    quiet_transformers()
    import torch

    torch.manual_seed(0)
    config = AutoConfig.for_model("wav2vec2", **(TINY if SIZES[size] is None else SIZES[size]))
    return SSLFrontend(AutoModel.from_config(config), layer=layer, normalize=True)


def extract(frontend, clips: np.ndarray, device, batch_size: int) -> dict:
    import torch

    frontend = frontend.to(device).eval()
    _reset_peak(device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        h = frontend(torch.from_numpy(clips[:batch_size]).to(device))  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        for i in range(0, len(clips), batch_size):
            h = frontend(torch.from_numpy(clips[i : i + batch_size]).to(device))
        _sync(device)
    wall = time.perf_counter() - t0
    n_layers, n_frames, dim = h.shape[1:]
    return {
        "extract_clips_per_s": len(clips) / wall,
        "extract_peak_mb": _peak_mb(device),
        "pooled_kib_per_clip": n_layers * 2 * dim * 2 / 1024,
        "frames_kib_per_clip": n_layers * n_frames * dim * 2 / 1024,
        "shape": [int(n_layers), int(n_frames), int(dim)],
    }


def backend_train(name: str, shape: list[int], device, n_clips: int, steps_max: int = 40) -> float:
    """Clips/s of forward, backward and AdamW step of a back-end on random cached blocks, batch 32."""
    import torch

    from deepfake_audio.models.ssl import BACKENDS, SECTIONS

    n_layers, n_frames, dim = shape
    pooled = name != "ssl_aasist"
    rows = 2 if pooled else n_frames
    torch.manual_seed(0)
    net = BACKENDS[name](n_layers, dim, pooled, SECTIONS[name]()).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(min(n_clips, 256 if pooled else 64), n_layers, rows, dim)  # frames of XLS-R: 20 MB a clip
    y = torch.randint(0, 2, (len(x),)).float()
    batch, seen = 32, 0
    steps = min(steps_max, max(2, n_clips // batch))
    t0 = None
    for step in range(steps + 1):
        i = (step * batch) % max(len(x) - batch, 1)
        xb, yb = x[i : i + batch].to(device), y[i : i + batch].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = net(xb)
        out = out.float()
        loss = (
            torch.nn.functional.cross_entropy(out, yb.long())
            if out.ndim == 2
            else torch.nn.functional.binary_cross_entropy_with_logits(out, yb)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:  # warm-up
            _sync(device)
            t0 = time.perf_counter()
        else:
            seen += len(xb)
    _sync(device)
    return seen / (time.perf_counter() - t0)


def linear_fit_seconds(shape: list[int], n_clips: int, epochs: int, tmp: Path) -> dict:
    """Wall seconds of ssl_linear's own fit on a pooled store of ``n_clips`` random blocks (CPU)."""
    from deepfake_audio.embeddings import DATA, DTYPE, INDEX, META, EmbeddingSet, EmbeddingStore
    from deepfake_audio.inputs import SplitData
    from deepfake_audio.io import write_json
    from deepfake_audio.models.ssl import BACKENDS, SSLDetector, SSLLinearParams
    from deepfake_audio.params import TrainParams
    from deepfake_audio.training import train_neural

    n_layers, _, dim = shape
    store_dir = tmp / "store"
    store_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n_clips)
    blocks = rng.standard_normal((n_clips, n_layers, 2, dim)).astype(DTYPE)
    blocks[:, :, 0, :8] += labels[:, None, None].astype(DTYPE)  # something to learn
    blocks.tofile(store_dir / DATA)
    pd.DataFrame({"utt_id": [f"c{i}" for i in range(n_clips)]}).to_parquet(store_dir / INDEX, index=False)
    write_json(store_dir / META, {"shape": [n_clips, n_layers, 2, dim]})
    store = EmbeddingStore(store_dir)
    n_train = int(0.8 * n_clips)

    def split(rows: np.ndarray) -> SplitData:
        return SplitData(
            [f"c{i}" for i in rows],
            EmbeddingSet(store, rows),
            labels[rows],
            np.full(len(rows), "-"),
            np.full(len(rows), "-"),
        )

    data = {"train": split(np.arange(n_train)), "dev": split(np.arange(n_train, n_clips))}
    net = SSLDetector(BACKENDS["ssl_linear"](n_layers, dim, True, SSLLinearParams()))
    train = TrainParams(epochs=epochs, patience=epochs, batch_size=32, device="cpu")
    t0 = time.perf_counter()
    summary = train_neural(
        lambda a, b: net, data, name="ssl_linear", train_params=train, out_dir=tmp / "bundle", frontend_lr=1e-5
    )
    return {
        "linear_fit_s": time.perf_counter() - t0,
        "linear_epochs": summary["epochs_run"],
        "linear_fit_clips": n_clips,
    }


def finetune(name: str, size: str, clips: np.ndarray, device, batch_size: int, steps: int) -> dict:
    """Clips/s and peak memory of fine-tuning the front-end with back-end ``name`` (on frames)."""
    import torch

    from deepfake_audio.models.ssl import BACKENDS, SECTIONS, SSLDetector

    frontend = _frontend(size)
    frontend.model.config.layerdrop = 0.0
    frontend.model.activation_checkpointing_enable()
    backend = BACKENDS[name](frontend.n_layers, frontend.dim, False, SECTIONS[name]())
    net = SSLDetector(backend, frontend).to(device).train()
    opt = torch.optim.AdamW(net.param_groups(1e-4, 1e-6))
    _reset_peak(device)
    seen, t0 = 0, None
    for step in range(steps + 1):
        i = (step * batch_size) % max(len(clips) - batch_size, 1)
        xb = torch.from_numpy(clips[i : i + batch_size]).to(device)
        yb = torch.randint(0, 2, (len(xb),), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = net(xb)
        out = out.float()
        loss = (
            torch.nn.functional.cross_entropy(out, yb)
            if out.ndim == 2
            else torch.nn.functional.binary_cross_entropy_with_logits(out, yb.float())
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            _sync(device)
            t0 = time.perf_counter()
        else:
            seen += len(xb)
    _sync(device)
    return {
        f"{name}_finetune_clips_per_s": seen / (time.perf_counter() - t0),
        f"{name}_finetune_peak_mb": _peak_mb(device),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from deepfake_audio.logs import setup_logging
    from deepfake_audio.machine import cpu_info

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["tiny", "xls-r-300m"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clips", type=int, default=8, help="clips embedded per size")
    parser.add_argument("--n-samples", type=int, default=64600)
    parser.add_argument("--batch-size", type=int, default=4, help="clips per forward pass while embedding")
    parser.add_argument("--cache-clips", type=int, default=2000, help="cached blocks the back-ends train on")
    parser.add_argument("--epochs", type=int, default=10, help="ssl_linear fit epochs")
    parser.add_argument("--finetune-batch", type=int, default=2)
    parser.add_argument("--finetune-steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--out", type=Path, default=Path("reports/ssl_speed.md"))
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    setup_logging()
    device = torch.device(args.device)
    clips = _clips(max(args.clips, args.finetune_batch), args.n_samples)
    rows = []
    for size in args.sizes:
        row = {"size": size, **extract(_frontend(size), clips[: args.clips], device, args.batch_size)}
        for name in BACKEND_NAMES:
            row[f"{name}_train_clips_per_s"] = backend_train(name, row["shape"], device, args.cache_clips)
        with tempfile.TemporaryDirectory() as tmp:
            row.update(linear_fit_seconds(row["shape"], args.cache_clips, args.epochs, Path(tmp)))
        for name in BACKEND_NAMES:
            row.update(finetune(name, size, clips, device, args.finetune_batch, args.finetune_steps))
        row["parameters_m"] = sum(p.numel() for p in _frontend(size).parameters()) / 1e6
        rows.append(row)
        print(json.dumps(row), flush=True)
    cpu = cpu_info()[0]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    lines = [
        "# SSL front-ends and back-ends: throughput and memory",
        "",
        f"Generated by `{' '.join(['python -m benchmarks.ssl', *argv])}`" + f" on {cpu.get('model_name', '?')} "
        f"({cpu.get('count', '?')} logical cores), device {device.type} ({gpu}), torch {torch.__version__}. "
        f"Random weights of each size (the real shapes), {args.n_samples}-sample crops, {args.clips} clips embedded "
        f"in batches of {args.batch_size}; back-ends on {args.cache_clips} cached blocks, batch 32; fine-tuning "
        f"the front-end with each back-end, batch {args.finetune_batch}, gradient checkpointing. Peak memory: "
        + ("CUDA max allocated." if device.type == "cuda" else "the process's peak RSS so far (it only grows)."),
        "",
        "| size | weights (M) | hidden states x frames x width | extract clips/s | extract peak MB | cache KiB/clip pooled | frames | "
        "cached: ssl_linear train clips/s | ssl_attm | ssl_aasist (frames) | ssl_linear fit s (clips, epochs) | "
        "fine-tuned: ssl_linear clips/s | ssl_attm | ssl_aasist | fine-tune peak MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['parameters_m']:.2f} | {' x '.join(map(str, r['shape']))} | {r['extract_clips_per_s']:.2f} | "
            f"{r['extract_peak_mb']:.0f} | {r['pooled_kib_per_clip']:.1f} | {r['frames_kib_per_clip']:.0f} | "
            f"{r['ssl_linear_train_clips_per_s']:.0f} | {r['ssl_attm_train_clips_per_s']:.0f} | {r['ssl_aasist_train_clips_per_s']:.0f} | "
            f"{r['linear_fit_s']:.1f} ({r['linear_fit_clips']}, {r['linear_epochs']}) | "
            f"{r['ssl_linear_finetune_clips_per_s']:.3f} | {r['ssl_attm_finetune_clips_per_s']:.3f} | "
            f"{r['ssl_aasist_finetune_clips_per_s']:.3f} | {max(r[f'{n}_finetune_peak_mb'] for n in BACKEND_NAMES):.0f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
