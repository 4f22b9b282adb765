"""Prediction speed of a bundle on the CPU: one clip's latency, files/s over a folder, stream real time.

Usage (from the repository root)::

    python -m benchmarks.predict                                  # data/models/cnn_lstm
    python -m benchmarks.predict --model data/models/xgboost --runs 50 --files 200 --stream-s 300

Three measurements, all through the code paths ``deepfake-audio predict`` and ``stream`` use, after
the model is loaded and warmed up, with ``--threads`` torch and BLAS/OpenMP threads (default 1, so
the figures are per core), without the speech check (the generated clips are not speech to it;
``python -m benchmarks.vad_cost`` measures what it adds):

* latency: ``Predictor.predict_files`` on one generated 4-s 16 kHz FLAC clip, decode + features
  + model; the median (and 90th percentile) of ``--runs`` runs, in ms;
* throughput: ``predict_files`` over a folder of ``--files`` generated 4-s clips, batches of
  ``--batch-size``, in files/s;
* stream: ``--stream-s`` seconds of a generated signal as s16le PCM through ``pcm_chunks`` and
  ``Predictor.stream`` in ``--chunk-s`` chunks, windows of the bundle's ``audio.duration_s`` every
  ``--hop-s``; real-time factor = audio seconds / wall seconds.

Targets (set for cnn_lstm): latency <= 50 ms per clip, stream >= 50x real time on one core.
``--strict`` exits 1 when one is missed. Times are ``time.perf_counter`` wall times; the CPU/wall
ratio printed with each shows whether the process had its core to itself.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.features import synthetic_clip, write_synthetic_clips
from tools.stamp import stamp

DEFAULT_MODEL = Path("data/models/cnn_lstm")
TARGET_LATENCY_MS = 50.0
TARGET_STREAM_REALTIME = 50.0


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn()``."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def _signal(duration_s: float, *, sample_rate: int, seed: int) -> np.ndarray:
    """Voice-like 4-s pieces one after another (a single long synthetic_clip costs minutes)."""
    rng = np.random.default_rng(seed)
    piece = 4 * sample_rate
    n = int(round(duration_s * sample_rate))
    parts = [synthetic_clip(rng, n_samples=piece, sample_rate=sample_rate) for _ in range(-(-n // piece))]
    return np.concatenate(parts)[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"a bundle folder (default {DEFAULT_MODEL})")
    parser.add_argument("--runs", type=int, default=50, help="latency runs; the median is reported (default 50)")
    parser.add_argument("--files", type=int, default=200, help="clips in the throughput folder (default 200)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per model call (default 32)")
    parser.add_argument("--stream-s", type=float, default=300.0, help="seconds of streamed audio (default 300)")
    parser.add_argument("--hop-s", type=float, default=1.0, help="seconds between stream windows (default 1)")
    parser.add_argument("--chunk-s", type=float, default=0.1, help="seconds of PCM per stream read (default 0.1)")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the results, stamped with the commit and machine, to this JSON file",
    )
    args = parser.parse_args(argv)
    for name in ("runs", "files", "batch_size", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("stream_s", "hop_s", "chunk_s"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")

    import torch
    from threadpoolctl import threadpool_limits

    from deepfake_audio.audio import write_audio
    from deepfake_audio.predict import Predictor, expand_paths, pcm_chunks

    try:
        predictor = Predictor.load(args.model, threads=args.threads)  # onnxruntime too, for an export
    except ValueError as exc:
        print(
            f"benchmarks.predict: {exc}\n  train the model with `dvc repro`, or pass --model DIR (a bundle)",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    sr = predictor.sample_rate
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp, threadpool_limits(limits=args.threads):
        clip = Path(tmp) / "clip.flac"
        write_audio(clip, synthetic_clip(np.random.default_rng(0), n_samples=4 * 16000, sample_rate=16000), 16000)
        for _ in range(3):  # numba compilation, filterbank caches, torch's first call
            predictor.predict_files([clip], vad=False)
        latency = [_timed(lambda: predictor.predict_files([clip], vad=False)) for _ in range(args.runs)]
        walls = sorted(w for w, _ in latency)
        median_ms = 1e3 * statistics.median(walls)
        p90_ms = 1e3 * walls[min(int(0.9 * len(walls)), len(walls) - 1)]
        latency_ratio = sum(c for _, c in latency) / sum(walls)

        folder = Path(tmp) / "clips"
        write_synthetic_clips(folder, args.files, seed=1)
        paths = expand_paths([folder])
        rows: list[dict] = []
        wall, cpu = _timed(lambda: rows.extend(predictor.predict_files(paths, vad=False, batch_size=args.batch_size)))
        failed = sum(r["error"] is not None for r in rows)
        files_per_s = len(paths) / wall
        folder_ratio = cpu / wall

    pcm = (np.clip(_signal(args.stream_s, sample_rate=sr, seed=2), -1, 1) * 32767).astype("<i2").tobytes()
    chunk_bytes = max(int(round(args.chunk_s * sr)) * 2, 2)
    windows: list = []

    def stream() -> None:
        chunks = pcm_chunks(io.BytesIO(pcm), sample_format="s16le", chunk_bytes=chunk_bytes)
        windows.extend(predictor.stream(chunks, sr, window_s=predictor.window_s, hop_s=args.hop_s, vad=False))

    with threadpool_limits(limits=1):
        torch.set_num_threads(1)
        wall_s, cpu_s = _timed(stream)
    realtime = args.stream_s / wall_s

    latency_ok, stream_ok = median_ms <= TARGET_LATENCY_MS, realtime >= TARGET_STREAM_REALTIME
    print(
        f"Prediction speed: {predictor.model_name} ({predictor.bundle_dir}), {predictor.window_s:g}-s clips at "
        f"{sr} Hz, {len(predictor.extractor.layout.frame_names)} frame / "
        f"{len(predictor.extractor.layout.utterance_names)} utterance features"
    )
    print(f"  threads: {args.threads} (stream: 1); CPU/wall near 1 per thread means the core was not shared\n")
    print(
        f"  latency, one 4-s clip (decode + features + model), {args.runs} runs: median {median_ms:.1f} ms, "
        f"p90 {p90_ms:.1f} ms  (CPU/wall {latency_ratio:.2f}; target <= {TARGET_LATENCY_MS:g} ms: "
        f"{'met' if latency_ok else 'MISSED'})"
    )
    print(
        f"  folder of {len(paths)} generated 4-s clips, batches of {args.batch_size}: {files_per_s:.1f} files/s "
        f"({wall:.2f} s; {failed} failed; CPU/wall {folder_ratio:.2f})"
    )
    print(
        f"  stream, {args.stream_s:g} s of s16le PCM in {args.chunk_s:g}-s chunks, {predictor.window_s:g}-s windows "
        f"every {args.hop_s:g} s, 1 thread: {len(windows)} windows in {wall_s:.2f} s = {realtime:.0f}x real time "
        f"(CPU/wall {cpu_s / wall_s:.2f}; target >= {TARGET_STREAM_REALTIME:g}x: {'met' if stream_ok else 'MISSED'})"
    )
    if args.json is not None:
        result = {
            "model": predictor.model_name,
            "bundle": str(predictor.bundle_dir),
            "threads": args.threads,
            "runs": args.runs,
            "latency_median_ms": median_ms,
            "latency_p90_ms": p90_ms,
            "latency_cpu_over_wall": latency_ratio,
            "files": len(paths),
            "failed": failed,
            "batch_size": args.batch_size,
            "files_per_s": files_per_s,
            "folder_cpu_over_wall": folder_ratio,
            "stream_s": args.stream_s,
            "stream_windows": len(windows),
            "stream_wall_s": wall_s,
            "stream_realtime": realtime,
            "stream_cpu_over_wall": cpu_s / wall_s,
            "targets": {
                "latency_ms": TARGET_LATENCY_MS,
                "stream_realtime": TARGET_STREAM_REALTIME,
                "met": latency_ok and stream_ok,
            },
            "stamp": stamp(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.strict and not (latency_ok and stream_ok):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
