"""Peak memory of the feature stage at 1,000 and at 10,000 clips: it must not grow with the corpus.

Usage (from the repository root)::

    python -m benchmarks.features_memory                       # 1,000 and 10,000 clips, 2 workers
    python -m benchmarks.features_memory --n-jobs 1 --sizes 500 5000

``deepfake_audio.features.extract_features`` (the real streaming function of the ``features``
stage) streams row groups to Parquet and should hold at most about ``n_jobs * chunk_size`` clips at
a time, whatever the corpus size. This script runs it on a corpus of each size, each run in a fresh
Python subprocess so that peaks do not carry over from one size to the next, and reports:

* ``parent peak``: ``ru_maxrss`` of the subprocess itself (``resource.getrusage(RUSAGE_SELF)``): the
  process that reads the manifest, gathers worker results and writes Parquet; ``baseline`` is the
  same figure just before extraction starts (interpreter, numpy, pandas, librosa with its numba
  code compiled by one extraction, the manifest);
* ``worker peak``: ``ru_maxrss`` over its reaped children (``RUSAGE_CHILDREN``): on Linux this is the
  peak of the *largest single* worker, not a sum (the loky workers are shut down and reaped before
  reading it);
* ``total peak``: the peak of parent + all worker RSS summed, sampled every 50 ms with psutil
  (when psutil is importable; it can miss short spikes);
* the wall time and clips per second.

Then the ratio of each peak at the largest size to the smallest: above 1.25 (+25%) is a bug. As the
parent's baseline is large, a slow leak can stay under that ratio, so the parent's growth per clip
(the slope between the smallest and largest size) is printed too, with what it would add at
100,000 and 1,000,000 clips if it were linear.
``ru_maxrss`` is in kB on Linux; figures are printed in MiB.

The corpus: writing 10,000 files would measure the disk more than the code, so ``--distinct``
(50) different 4-s 16 kHz FLAC clips (voice-like harmonics + noise, from
``benchmarks.features.write_synthetic_clips``) are written once to a temporary folder, and each
manifest has N rows with unique ``utt_id`` values whose paths cycle over those files. Every row
is decoded and extracted in full, and the outputs have N rows, as for N distinct files; only the
page cache is kinder than with a real corpus.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tools.stamp import stamp

GROWTH_LIMIT = 1.25
SAMPLE_EVERY_S = 0.05


def _mib(kb: float) -> float:
    return kb / 1024.0


class _TreeSampler:
    """Samples the summed RSS of this process and all its descendants in a thread (needs psutil)."""

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:
            self.psutil = None
            return
        self.psutil = psutil
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = self.psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except self.psutil.Error:  # exited between listing and reading
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> _TreeSampler:
        if self.psutil is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.psutil is not None:
            self._stop.set()
            self._thread.join()

    @property
    def peak_kb(self) -> float | None:
        return None if self.psutil is None else self.peak_bytes / 1024.0


def _shutdown_workers() -> None:
    """Stop and reap joblib's reusable loky workers, so that RUSAGE_CHILDREN includes them."""
    try:
        from joblib.externals.loky import reusable_executor
    except ImportError:
        return
    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)


def child(args: argparse.Namespace) -> None:
    """One measurement, in a fresh process: prints a JSON line on stdout."""
    import pandas as pd

    from deepfake_audio.features import FeatureExtractor, extract_features
    from deepfake_audio.params import AudioParams, FeatureParams

    clips = sorted(str(p) for p in Path(args.clip_dir).glob("*.flac"))
    if not clips:
        raise SystemExit(f"no .flac clips under {args.clip_dir}")
    manifest = pd.DataFrame(
        {
            "utt_id": [f"bench/{i:06d}" for i in range(args.clips)],
            "path": [clips[i % len(clips)] for i in range(args.clips)],
        }
    )
    features = FeatureParams(n_jobs=args.n_jobs, chunk_size=args.chunk_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Load librosa and compile its numba code first (extract_features does the same), so that the
    # baseline counts the libraries and the peaks above it count the extraction.
    extractor = FeatureExtractor(AudioParams(), features)
    extractor.extract(extractor.load(clips[0]))
    del extractor
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with _TreeSampler() as sampler:
        start = time.perf_counter()
        summary = extract_features(
            manifest,
            audio=AudioParams(),
            features=features,
            frames_path=out / "frames.parquet",
            utterances_path=out / "utterances.parquet",
            rejects_path=out / "rejects.csv",
        )
        wall = time.perf_counter() - start
        _shutdown_workers()
    result = {
        "clips": args.clips,
        "distinct_files": len(clips),
        "n_jobs": args.n_jobs,
        "chunk_size": args.chunk_size,
        "n_out": summary["n_out"],
        "n_rejected": summary["n_rejected"],
        "wall_s": wall,
        "baseline_kb": baseline_kb,
        "parent_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "worker_peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "total_peak_kb": sampler.peak_kb,
        "frames_parquet_mb": (out / "frames.parquet").stat().st_size / 2**20,
    }
    print(json.dumps(result), flush=True)


def measure(n: int, *, clip_dir: Path, out: Path, n_jobs: int, chunk_size: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.features_memory",
        "--child",
        "--clips",
        str(n),
        "--clip-dir",
        str(clip_dir),
        "--out",
        str(out),
        "--n-jobs",
        str(n_jobs),
        "--chunk-size",
        str(chunk_size),
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="corpus sizes (default 1000 10000)")
    parser.add_argument("--n-jobs", type=int, default=2, help="extract_features worker processes (default 2)")
    parser.add_argument("--chunk-size", type=int, default=64, help="clips per worker task (default 64)")
    parser.add_argument("--distinct", type=int, default=50, help="distinct audio files the manifest cycles over")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the results, stamped with the commit and machine, to this JSON file",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a peak grows by more than 25%%")
    # internal: one measurement in a fresh process
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clips", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clip-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    from benchmarks.features import write_synthetic_clips

    sizes = sorted(args.sizes)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_features_memory_") as tmp:
        clip_dir = Path(tmp) / "clips"
        write_synthetic_clips(clip_dir, args.distinct, seed=0)
        for n in sizes:
            print(
                f"extracting {n} clips ({args.n_jobs} jobs, chunk_size {args.chunk_size}) in a fresh process ...",
                file=sys.stderr,
                flush=True,
            )
            results.append(
                measure(
                    n, clip_dir=clip_dir, out=Path(tmp) / f"out_{n}", n_jobs=args.n_jobs, chunk_size=args.chunk_size
                )
            )

    print(
        f"\nPeak RSS of extract_features ({args.n_jobs} jobs, chunk_size {args.chunk_size}; manifests cycle over "
        f"{args.distinct} distinct 4-s clips; one fresh process per size)\n"
    )
    print(
        f"  {'clips':>7s} {'wall s':>8s} {'clips/s':>8s} {'baseline':>9s} {'parent':>9s} {'worker':>9s} "
        f"{'total':>9s}   (MiB; parent/worker: ru_maxrss, total: sampled sum)"
    )
    for r in results:
        total = f"{_mib(r['total_peak_kb']):9.0f}" if r["total_peak_kb"] is not None else f"{'n/a':>9s}"
        worker = f"{_mib(r['worker_peak_kb']):9.0f}" if args.n_jobs != 1 else f"{'-':>9s}"
        print(
            f"  {r['clips']:7d} {r['wall_s']:8.1f} {r['clips'] / r['wall_s']:8.0f} {_mib(r['baseline_kb']):9.0f} "
            f"{_mib(r['parent_peak_kb']):9.0f} {worker} {total}"
        )
        if r["n_out"] != r["clips"]:
            print(
                f"  warning: {r['clips'] - r['n_out']} of {r['clips']} clips did not come out "
                f"({r['n_rejected']} rejected)"
            )

    grew = False
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(f"\n  growth {large['clips']} / {small['clips']} clips (limit +{GROWTH_LIMIT - 1:.0%}):")
        keys = [("parent_peak_kb", "parent peak")]
        if args.n_jobs != 1:
            keys.append(("worker_peak_kb", "worker peak"))
        if small["total_peak_kb"] is not None:
            keys.append(("total_peak_kb", "total peak"))
        for key, label in keys:
            ratio = large[key] / small[key]
            flag = "OK" if ratio <= GROWTH_LIMIT else "GROWS: a bug (memory should not depend on the corpus size)"
            grew |= ratio > GROWTH_LIMIT
            print(f"    {label:12s} {ratio:6.3f}x  (+{_mib(large[key] - small[key]):.0f} MiB)  {flag}")
        # The ratio hides a slow leak behind a large baseline; the slope shows it directly.
        slope_kb = (large["parent_peak_kb"] - small["parent_peak_kb"]) / (large["clips"] - small["clips"])
        print(
            f"  parent peak slope: {slope_kb:.2f} KiB per clip; if linear, +{_mib(slope_kb * 1e5):.0f} MiB "
            f"at 100,000 clips and +{_mib(slope_kb * 1e6) / 1024:.1f} GiB at 1,000,000 (0 for constant memory)"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"stamp": stamp(), "results": results}, indent=2) + "\n", encoding="utf-8")
    return 1 if args.strict and grew else 0


if __name__ == "__main__":
    sys.exit(main())
