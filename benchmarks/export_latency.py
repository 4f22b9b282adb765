"""Torch against onnxruntime on the pipeline's test split: parity, one-clip latency and throughput.

Usage (from the repository root)::

    python -m benchmarks.export_latency                          # every exportable bundle under data/models
    python -m benchmarks.export_latency data/models/cnn_lstm --threads 1 --runs 200

For each bundle: export it to ONNX in a temporary folder (``deepfake_audio.export``, its own
parity check on random inputs included), read the model input of every test-split clip as the
``score`` stage reads it (``data/split/manifest.parquet`` with frames from ``data/scaled``, or
audio crops from ``data/waveforms``), then time the model alone on those inputs, the same inputs
for both runtimes:

* parity: the largest |torch score - ONNX score| over the test split;
* latency: one clip per call (``bundle.score(x[i:i+1])``), median and 90th percentile of
  ``--runs`` calls over the clips in turn, after ``--warmup`` calls, in ms;
* throughput: the whole test split in batches of ``--batch-size`` (waveform kinds cap their
  batches at 16, in both runtimes), clips/s, the best of ``--repeats`` passes.

Both runtimes run with ``--threads`` threads (``torch.set_num_threads`` and onnxruntime's intra-op
threads; default: the CPUs this process may use). Figures are printed, not asserted; a CPU/wall
ratio well below the thread count means the machine was busy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS_DIR = Path("data/models")


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn()``."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _default_bundles(models_dir: Path) -> list[Path]:
    """The bundles under ``models_dir`` of a kind that exports (exports themselves left out)."""
    from deepfake_audio.export import EXPORTABLE, exported_format
    from deepfake_audio.predict import list_bundles

    return [
        b["path"] for b in list_bundles(models_dir) if b["model"] in EXPORTABLE and exported_format(b["path"]) is None
    ]


def split_inputs(bundle, root: Path):
    """The model input of every test-split clip, as the score stage reads it."""
    import pandas as pd

    from deepfake_audio.inputs import InputSource, load_inputs

    manifest = pd.read_parquet(root / "data" / "split" / "manifest.parquet")
    source = InputSource(
        scaled=root / "data" / "scaled",
        waveforms=root / "data" / "waveforms",
        n_samples=bundle.config.get("n_samples"),
    )
    return load_inputs(manifest, input=bundle.input, source=source, splits=["test"], groups=bundle.frame_groups)["test"]


def latency_ms(score, x, *, runs: int, warmup: int) -> tuple[float, float, float]:
    """Median and p90 ms of one-clip calls, and their CPU/wall ratio."""
    n = len(x)
    for i in range(warmup):
        score(x[i % n : i % n + 1], batch_size=1)
    walls, cpus = [], []
    for i in range(runs):
        wall, cpu = _timed(lambda i=i: score(x[i % n : i % n + 1], batch_size=1))
        walls.append(wall)
        cpus.append(cpu)
    walls_sorted = sorted(walls)
    p90 = walls_sorted[min(int(0.9 * runs), runs - 1)]
    return 1e3 * statistics.median(walls), 1e3 * p90, sum(cpus) / sum(walls)


def throughput(score, x, *, batch_size: int, repeats: int) -> tuple[float, float]:
    """Clips/s of the whole of ``x`` in batches (best of ``repeats``), and its CPU/wall ratio."""
    best = None
    for _ in range(repeats):
        wall, cpu = _timed(lambda: score(x, batch_size=batch_size))
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return len(x) / best[0], best[1] / best[0]


def bench_bundle(path: Path, args: argparse.Namespace) -> dict:
    from deepfake_audio.bundle import load_bundle
    from deepfake_audio.export import export_bundle, load_exported

    bundle = load_bundle(path)
    data = split_inputs(bundle, args.root)
    x = data.x
    with tempfile.TemporaryDirectory(prefix="export_latency_") as tmp:
        t0 = time.perf_counter()
        out = export_bundle(path, "onnx", Path(tmp) / f"{path.name}-onnx")
        export_s = time.perf_counter() - t0
        exported = load_exported(out, "onnx", threads=args.threads)
        random_diff = exported.config["exported"]["parity"]["max_abs_diff"]
        size_kb = (out / "model.onnx").stat().st_size / 1024
        expected, got = bundle.score(x), exported.score(x, batch_size=args.batch_size)
        row = {
            "bundle": str(path),
            "model": bundle.config["model"],
            "clips": len(x),
            "export_s": export_s,
            "onnx_kb": size_kb,
            "random_diff": random_diff,
            "test_diff": float(np.max(np.abs(expected - got))) if len(x) else float("nan"),
        }
        for name, score in (("torch", bundle.score), ("onnx", exported.score)):
            median, p90, lat_ratio = latency_ms(score, x, runs=args.runs, warmup=args.warmup)
            clips_s, tp_ratio = throughput(score, x, batch_size=args.batch_size, repeats=args.repeats)
            row.update(
                {
                    f"{name}_median_ms": median,
                    f"{name}_p90_ms": p90,
                    f"{name}_latency_cpu": lat_ratio,
                    f"{name}_clips_s": clips_s,
                    f"{name}_throughput_cpu": tp_ratio,
                }
            )
    return row


def format_table(rows: list[dict], batch_size: int) -> str:
    header = (
        "| model | test clips | max abs diff (test) | max abs diff (random) | latency torch ms (p90) | "
        f"latency ONNX ms (p90) | speed-up | clips/s torch (b={batch_size}) | clips/s ONNX | speed-up | export s |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['clips']} | {r['test_diff']:.2g} | {r['random_diff']:.2g} | "
            f"{r['torch_median_ms']:.2f} ({r['torch_p90_ms']:.2f}) | {r['onnx_median_ms']:.2f} ({r['onnx_p90_ms']:.2f}) | "
            f"{r['torch_median_ms'] / r['onnx_median_ms']:.2f}x | {r['torch_clips_s']:.0f} | {r['onnx_clips_s']:.0f} | "
            f"{r['onnx_clips_s'] / r['torch_clips_s']:.2f}x | {r['export_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "bundles", nargs="*", type=Path, help=f"bundle folders (default: every exportable one under {MODELS_DIR})"
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="the pipeline's root, holding data/ (default .)")
    parser.add_argument("--threads", type=int, default=_threads(), help="threads of both runtimes (default: all)")
    parser.add_argument("--runs", type=int, default=100, help="timed one-clip calls (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed one-clip calls first (default 10)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per call for throughput (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput passes; the best is kept (default 3)")
    args = parser.parse_args(argv)
    for name in ("threads", "runs", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    import onnxruntime
    import torch

    from deepfake_audio.logs import setup_logging
    from deepfake_audio.machine import cpu_info

    setup_logging()
    paths = args.bundles or _default_bundles(args.root / MODELS_DIR)
    if not paths:
        print(f"benchmarks.export_latency: no exportable bundle under {args.root / MODELS_DIR}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    rows = []
    for path in paths:
        try:
            rows.append(bench_bundle(path, args))
        except ValueError as exc:
            print(f"benchmarks.export_latency: {path}: {exc}", file=sys.stderr)
    if not rows:
        return 2
    cpu = cpu_info()[0]
    print(
        f"\nExported ONNX (onnxruntime {onnxruntime.__version__}, CPUExecutionProvider) against torch "
        f"{torch.__version__} (eval, no_grad) on the test split; {cpu.get('model_name') or '?'}, "
        f"{_threads()} usable of {cpu.get('count')} logical CPUs, {args.threads} thread(s) per runtime; "
        f"model only (inputs made beforehand); latency: median of {args.runs} one-clip calls\n"
    )
    print(format_table(rows, args.batch_size))
    busy = [
        f"{r['model']} {name} {r[f'{name}_latency_cpu']:.2f}"
        for r in rows
        for name in ("torch", "onnx")
        if r[f"{name}_latency_cpu"] < 0.8
    ]
    if busy:
        print(f"\nCPU/wall below 0.8 during latency runs (a busy machine, or threads waiting): {', '.join(busy)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
