"""The waveform store at 10,000 and 100,000 clips: memory of writing and of loading, and read speed.

Usage (from the repository root)::

    nice -n 10 python -m benchmarks.waveforms                          # 10,000 and 100,000 clips
    python -m benchmarks.waveforms --sizes 1000 10000 --tmp /scratch --min-s 1 --max-s 3

For each size, a synthetic store is written by ``deepfake_audio.waveforms.write_store`` (the real
function of the ``waveforms`` stage), then three measurements run, each in a fresh Python
subprocess so that peaks do not carry over:

* **write**: ``ru_maxrss`` of the writing process (``RUSAGE_SELF``: it reads the manifest, gathers
  the workers' int16 chunks and appends them to the shards) and of its largest worker
  (``RUSAGE_CHILDREN``, after the loky workers are reaped), the sampled peak of their sum
  (psutil), wall time, clips/s and MB/s written;
* **loader**: a training pass, ``WaveformDataset`` (train mode, random crops of ``--n-samples``)
  through a ``DataLoader`` (``num_workers=0``, batch 32, shuffled) over every clip, or over
  ``--batches`` batches: ``ru_maxrss``, and the largest ``RssAnon`` (heap: should be flat) and
  ``RssFile`` (shard pages mapped and resident: grows with what the pass touched, but is page
  cache that the kernel can take back) sampled during the pass, and clips/s;
* **read**: random-access throughput on one core: ``--reads`` random clips, each ``read`` +
  ``random_crop`` of ``--n-samples`` + conversion to float32 (which touches the pages). Cold: the
  shards are fsynced and dropped from the page cache first (``posix_fadvise(DONTNEED)`` on the
  store's own files only); warm: the same indices again.

The corpus: ``--distinct`` WAV files of white noise, 16-bit 16 kHz, of random length uniform in
[``--min-s``, ``--max-s``] s, are written once; each manifest has N rows with unique ``utt_id``
values cycling over them, so the store holds N clips and N x the mean length of audio, as for N
distinct files (only the decode is kinder to the page cache). A store of 100,000 clips of
1-6 s is about 11 GB: check the free space of ``--tmp``; each store is deleted once measured. ``ru_maxrss`` is in kB on Linux; figures are printed in MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.features_memory import _mib, _shutdown_workers, _TreeSampler
from tools.stamp import stamp


def write_clips(root: Path, n: int, *, min_s: float, max_s: float, seed: int = 0) -> list[Path]:
    """``n`` seeded white-noise WAVs (16-bit, 16 kHz) of uniform random length in [min_s, max_s] s."""
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        n_samples = int(16000 * rng.uniform(min_s, max_s))
        y = np.clip(rng.uniform(0.05, 0.3) * rng.standard_normal(n_samples), -1, 1)
        path = root / f"noise_{i:05d}.wav"
        sf.write(path, y, 16000, subtype="PCM_16")
        paths.append(path)
    return paths


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child_write(args: argparse.Namespace) -> dict:
    import pandas as pd

    from deepfake_audio.params import AudioParams
    from deepfake_audio.waveforms import write_store

    clips = sorted(str(p) for p in Path(args.clip_dir).glob("*.wav"))
    manifest = pd.DataFrame(
        {
            "utt_id": [f"bench/{i:07d}" for i in range(args.clips)],
            "path": [clips[i % len(clips)] for i in range(args.clips)],
        }
    )
    out = Path(args.store)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with _TreeSampler() as sampler:
        s = write_store(
            manifest,
            raw_dir=Path(args.clip_dir),
            out_dir=out,
            audio=AudioParams(),
            n_jobs=args.n_jobs,
            rejects_path=out / "rejects.csv",
        )
        _shutdown_workers()
    store_bytes = sum(p.stat().st_size for p in out.glob("shard-*.i16"))
    return {
        "clips": args.clips,
        "n_out": s["n_out"],
        "n_shards": s["n_shards"],
        "hours": s["hours"],
        "wall_s": s["wall_s"],
        "store_gb": store_bytes / 1e9,
        "baseline_kb": baseline_kb,
        "parent_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "worker_peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "total_peak_kb": sampler.peak_kb,
    }


def child_loader(args: argparse.Namespace) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from deepfake_audio.waveforms import WaveformDataset, WaveformStore

    torch.set_num_threads(1)
    store = WaveformStore(args.store)
    labels = (np.arange(len(store)) % 2).astype(np.float32)
    ds = WaveformDataset(store, np.arange(len(store)), labels, n_samples=args.n_samples, seed=0, train=True)
    ds.set_epoch(0)
    loader = DataLoader(
        ds, batch_size=32, shuffle=True, num_workers=0, generator=torch.Generator().manual_seed(0), drop_last=False
    )
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    anon = file_ = 0
    n_batches = n_clips = 0
    checksum = 0.0
    start = time.perf_counter()
    for x, _ in loader:
        n_batches += 1
        n_clips += len(x)
        checksum += float(x[:, 0, ::4096].sum())  # use the batch
        if n_batches % 100 == 0:
            anon, file_ = max(anon, _status_kb("RssAnon")), max(file_, _status_kb("RssFile"))
        if args.batches and n_batches >= args.batches:
            break
    wall = time.perf_counter() - start
    anon, file_ = max(anon, _status_kb("RssAnon")), max(file_, _status_kb("RssFile"))
    return {
        "clips": len(store),
        "batches": n_batches,
        "clips_read": n_clips,
        "wall_s": wall,
        "baseline_kb": baseline_kb,
        "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_anon_kb": anon,
        "rss_file_kb": file_,
        "checksum": checksum,
    }


def _drop_from_page_cache(root: Path) -> None:
    """Evict the store's shard pages (written ones are synced first), touching no other file's cache."""
    for path in root.glob("shard-*.i16"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def child_read(args: argparse.Namespace) -> dict:
    from deepfake_audio.waveforms import SCALE_OUT, WaveformStore, random_crop

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    store = WaveformStore(args.store)
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(store), size=min(args.reads, len(store)))

    def run() -> float:
        start = time.perf_counter()
        for i in picks:
            x = random_crop(store.read(int(i)), args.n_samples, rng).astype(np.float32)
            x *= SCALE_OUT
        return time.perf_counter() - start

    _drop_from_page_cache(Path(args.store))
    cold = run()
    warm = run()
    return {"clips": len(store), "reads": len(picks), "cold_per_s": len(picks) / cold, "warm_per_s": len(picks) / warm}


def _child(kind: str, **kw: object) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.waveforms", "--child", kind]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000], help="clips per store")
    parser.add_argument("--tmp", type=Path, default=None, help="where the clips and stores go (default: $TMPDIR)")
    parser.add_argument("--distinct", type=int, default=500, help="distinct WAV files the manifests cycle over")
    parser.add_argument("--min-s", type=float, default=1.0, help="shortest clip, s")
    parser.add_argument("--max-s", type=float, default=6.0, help="longest clip, s")
    parser.add_argument("--n-jobs", type=int, default=2, help="write_store worker processes")
    parser.add_argument("--n-samples", type=int, default=64600, help="crop length (AASIST/RawNet2: 64,600)")
    parser.add_argument("--batches", type=int, default=0, help="loader batches per size (0: one full pass)")
    parser.add_argument("--reads", type=int, default=5000, help="random reads for the throughput figures")
    parser.add_argument("--json", type=Path, default=None, help="also write the results, stamped, to this file")
    parser.add_argument("--child", choices=["write", "loader", "read"], help=argparse.SUPPRESS)
    parser.add_argument("--clips", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clip-dir", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = {"write": child_write, "loader": child_loader, "read": child_read}[args.child](args)
        print(json.dumps(result), flush=True)
        return 0

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_waveforms_", dir=args.tmp) as tmp:
        clip_dir = Path(tmp) / "clips"
        write_clips(clip_dir, args.distinct, min_s=args.min_s, max_s=args.max_s)
        for n in sorted(args.sizes):
            store = Path(tmp) / f"store_{n}"
            print(f"{n} clips: writing the store ({args.n_jobs} jobs) ...", file=sys.stderr, flush=True)
            w = _child("write", clips=n, clip_dir=clip_dir, store=store, n_jobs=args.n_jobs)
            print(f"{n} clips: a training pass ...", file=sys.stderr, flush=True)
            lo = _child("loader", store=store, n_samples=args.n_samples, batches=args.batches)
            print(f"{n} clips: random reads ...", file=sys.stderr, flush=True)
            rd = _child("read", store=store, n_samples=args.n_samples, reads=args.reads)
            results.append({"clips": n, "write": w, "loader": lo, "read": rd})
            shutil.rmtree(store)

    print(
        f"\nwaveform store: {args.distinct} distinct 16-bit 16 kHz WAVs of {args.min_s:g}-{args.max_s:g} s noise, "
        f"cycled; write_store with {args.n_jobs} jobs; crops of {args.n_samples} samples; MiB unless stated\n"
    )
    print(
        f"  {'clips':>7s} {'hours':>6s} {'GB':>6s} {'shards':>6s} {'wall s':>7s} {'clips/s':>8s} {'MB/s':>6s} "
        f"{'baseline':>8s} {'writer':>7s} {'worker':>7s} {'total':>7s}   write"
    )
    for r in results:
        w = r["write"]
        total = f"{_mib(w['total_peak_kb']):7.0f}" if w["total_peak_kb"] is not None else f"{'n/a':>7s}"
        print(
            f"  {w['clips']:7d} {w['hours']:6.1f} {w['store_gb']:6.2f} {w['n_shards']:6d} {w['wall_s']:7.1f} "
            f"{w['clips'] / w['wall_s']:8.0f} {w['store_gb'] * 1e3 / w['wall_s']:6.0f} {_mib(w['baseline_kb']):8.0f} "
            f"{_mib(w['parent_peak_kb']):7.0f} {_mib(w['worker_peak_kb']):7.0f} {total}"
        )
    print(
        f"\n  {'clips':>7s} {'batches':>7s} {'wall s':>7s} {'clips/s':>8s} {'baseline':>8s} {'maxrss':>7s} "
        f"{'anon':>7s} {'file':>7s}   loader (num_workers=0, batch 32; anon/file: largest RssAnon/RssFile seen)"
    )
    for r in results:
        lo = r["loader"]
        print(
            f"  {lo['clips']:7d} {lo['batches']:7d} {lo['wall_s']:7.1f} {lo['clips_read'] / lo['wall_s']:8.0f} "
            f"{_mib(lo['baseline_kb']):8.0f} {_mib(lo['peak_kb']):7.0f} {_mib(lo['rss_anon_kb']):7.0f} "
            f"{_mib(lo['rss_file_kb']):7.0f}"
        )
    print(
        f"\n  {'clips':>7s} {'reads':>6s} {'cold/s':>8s} {'warm/s':>8s}   random read + random_crop + float32, one core"
    )
    for r in results:
        rd = r["read"]
        print(f"  {rd['clips']:7d} {rd['reads']:6d} {rd['cold_per_s']:8.0f} {rd['warm_per_s']:8.0f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"stamp": stamp(), "results": results}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
