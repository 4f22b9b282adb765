"""Memory of reading the embedding store: does RSS stay flat however large the store is?

Usage (from the repository root)::

    python -m benchmarks.embeddings_memory                      # 20,000 XLS-R 300M pooled blocks (2 GB)
    python -m benchmarks.embeddings_memory --clips 5000 --rows 201 --layers 1   # frames of one layer

Writes a store of ``--clips`` random float16 blocks of ``--layers`` x ``--rows`` x ``--width`` in
the layout of the ``embeddings`` stage (``deepfake_audio/embeddings.py``) under ``--tmp``, then
reads all of it twice the way training and scoring do: one epoch of a shuffled DataLoader over
:class:`~deepfake_audio.embeddings.EmbeddingDataset` (batch 32), and sequential slices of 256 as
``predict_torch`` scores. Prints the store's size and the process RSS (``/proc/self/statm``) before,
and its largest value during, each pass.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_audio.embeddings import DATA, DTYPE, INDEX, META, EmbeddingSet, EmbeddingStore
from deepfake_audio.io import write_json


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def write(root: Path, clips: int, shape: tuple[int, int, int]) -> EmbeddingStore:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with (root / DATA).open("wb") as fh:
        for start in range(0, clips, 500):
            n = min(500, clips - start)
            fh.write(rng.standard_normal((n, *shape), dtype=np.float32).astype(DTYPE).tobytes())
    pd.DataFrame({"utt_id": [f"c{i}" for i in range(clips)]}).to_parquet(root / INDEX, index=False)
    write_json(root / META, {"shape": [clips, *shape]})
    return EmbeddingStore(root)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=20000)
    parser.add_argument("--layers", type=int, default=25)
    parser.add_argument("--rows", type=int, default=2, help="2: pooled; the frame count: frames")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        store = write(Path(tmp) / "store", args.clips, (args.layers, args.rows, args.width))
        size_mb = (Path(tmp) / "store" / DATA).stat().st_size / 2**20
        print(f"store: {args.clips} blocks of {args.layers} x {args.rows} x {args.width} float16, {size_mb:.0f} MB")
        rows = np.arange(len(store))
        labels = np.zeros(len(store), dtype=np.float32)
        loader = torch.utils.data.DataLoader(
            EmbeddingSet(store, rows).dataset(labels, seed=0, train=True), batch_size=32, shuffle=True
        )
        for name, batches in (
            ("train epoch (DataLoader, batch 32, shuffled)", (xb for xb, _ in loader)),
            ("scoring slices of 256", (EmbeddingSet(store, rows)[i : i + 256] for i in range(0, len(store), 256))),
        ):
            before, peak, n, t0 = rss_mb(), 0.0, 0, time.perf_counter()
            for xb in batches:
                n += len(xb)
                peak = max(peak, rss_mb())
            print(
                f"{name}: {n} blocks in {time.perf_counter() - t0:.1f} s; RSS {before:.0f} MB before, "
                f"at most {peak:.0f} MB while reading the {size_mb:.0f} MB store"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
