"""The embedding store: a frozen SSL front-end's output for every clip, computed once.

With ``ssl.freeze: true`` the ``embeddings`` stage runs the front-end over the first
``ssl.n_samples`` samples of each clip of the waveform store (repeat-padded, as evaluation reads
the store) and keeps, per clip, an ``(L, R, D)`` float16 block: ``L`` hidden states (every layer, or
``ssl.layer`` alone), and ``R`` rows of ``D`` values:

- ``ssl.cache: pooled``: ``R = 2``, the mean and the standard deviation over frames of each layer
  (what ``ssl_linear`` and ``ssl_attm`` read; 2 x 25 x 1024 x 2 bytes = 100 KiB per clip for XLS-R 300M);
- ``ssl.cache: frames``: ``R = T``, every frame (what ``ssl_aasist`` reads; T = 201 for 4 s).

Layout of ``data/embeddings/``: ``embeddings.f16`` (the blocks in store order, raw little-endian
float16), ``index.parquet`` (``utt_id``), ``meta.json`` (shape, checkpoint fingerprint, layers,
what was cached). Rows are read with positioned reads, never mapped whole, so memory stays
constant however large the store; the back-ends train on it in seconds on a CPU.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfake_audio.io import read_json, write_json
from deepfake_audio.logs import progress
from deepfake_audio.params import SSLParams, as_dict
from deepfake_audio.waveforms import WaveformSet, WaveformStore, atomic_dir

log = logging.getLogger(__name__)

DATA = "embeddings.f16"
INDEX = "index.parquet"
META = "meta.json"
DTYPE = np.dtype("<f2")
STAGE_KEYS = ("checkpoint", "layer", "freeze", "n_samples", "normalize", "cache", "batch_size", "device")
"""The ``ssl`` keys the embeddings stage reads (its DVC params); ``normalize`` is recorded resolved."""


def empty_store(out_dir: Path, reason: str) -> dict:
    """A store with no clips (no frozen SSL front-end is configured): the stage still has its outputs."""
    with atomic_dir(Path(out_dir)) as tmp:
        (tmp / DATA).write_bytes(b"")
        pd.DataFrame({"utt_id": pd.Series([], dtype=str)}).to_parquet(tmp / INDEX, index=False)
        write_json(tmp / META, {"checkpoint": None, "reason": reason, "shape": [0, 0, 0, 0]})
    return {"n_clips": 0, "reason": reason}


def write_store(
    waveforms_dir: Path, out_dir: Path, ssl: SSLParams, frontend: Any, *, fingerprint: dict, device: Any = None
) -> dict:
    """Embed every clip of the waveform store with ``frontend`` into ``out_dir`` (atomically).

    Args:
        frontend: a loaded :class:`~deepfake_audio.frontends.ssl.SSLFrontend` (frozen).
        fingerprint: the checkpoint's :func:`~deepfake_audio.frontends.ssl.fingerprint`.
        device: where it runs (default the CPU); on CUDA under bf16 autocast.

    Returns:
        a summary: clips, shape, bytes per clip, seconds, clips/s.
    """
    import torch

    from deepfake_audio.frontends.ssl import pool_frames

    store = WaveformStore(Path(waveforms_dir))
    n = len(store)
    clips = WaveformSet(store, np.arange(n, dtype=np.int64), n_samples=ssl.n_samples)
    n_frames = frontend.n_frames(ssl.n_samples)
    rows = 2 if ssl.cache == "pooled" else n_frames
    shape = [n, frontend.n_layers, rows, frontend.dim]
    device = torch.device("cpu") if device is None else device
    frontend.to(device).eval().requires_grad_(False)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    t0 = time.perf_counter()
    with atomic_dir(Path(out_dir)) as tmp:
        with (tmp / DATA).open("wb") as fh, torch.inference_mode(), autocast:
            for i in progress(range(0, n, ssl.batch_size), desc="embed", unit="batch"):
                h = frontend(torch.from_numpy(clips[i : i + ssl.batch_size]).to(device))  # (B, L, T, D)
                if ssl.cache == "pooled":
                    h = pool_frames(h)
                fh.write(np.ascontiguousarray(h.float().cpu().numpy().astype(DTYPE)).tobytes())
        pd.DataFrame({"utt_id": list(store.utt_ids)}).to_parquet(tmp / INDEX, index=False)
        wall = time.perf_counter() - t0
        write_json(
            tmp / META,
            {
                "checkpoint": ssl.checkpoint,
                "fingerprint": fingerprint,
                "ssl": {k: as_dict(getattr(ssl, k)) for k in STAGE_KEYS} | {"normalize": frontend.normalize},
                "shape": shape,
                "n_frames": n_frames,
                "cache": ssl.cache,
                "dtype": "float16",
            },
        )
    per_clip = int(np.prod(shape[1:])) * DTYPE.itemsize
    return {
        "n_clips": n,
        "shape": shape,
        "bytes_per_clip": per_clip,
        "wall_s": wall,
        "clips_per_s": n / max(wall, 1e-9),
    }


class EmbeddingStore:
    """Read side of the store: ``utt_ids``, ``meta``, ``shape`` and :meth:`read` of row blocks."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not (self.root / META).is_file():
            raise FileNotFoundError(f"{self.root} is not an embedding store (no {META}): run the embeddings stage")
        self.meta = read_json(self.root / META)
        self.shape = tuple(int(s) for s in self.meta["shape"])
        self.utt_ids = pd.read_parquet(self.root / INDEX)["utt_id"].tolist()
        if len(self.utt_ids) != self.shape[0]:
            raise ValueError(f"{self.root}: {len(self.utt_ids)} ids for {self.shape[0]} blocks")
        if self.shape[0] == 0:
            raise ValueError(
                f"{self.root} holds no embeddings ({self.meta.get('reason', 'empty')}): the ssl_* kinds with a "
                f"frozen front-end need ssl.checkpoint set and ssl.freeze true before `dvc repro`"
            )
        self.block = int(np.prod(self.shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, row: int) -> np.ndarray:
        """Block ``row`` as float32 ``(L, R, D)``."""
        offset = int(row) * self.block * DTYPE.itemsize
        block = np.fromfile(self.root / DATA, dtype=DTYPE, count=self.block, offset=offset)
        return block.astype(np.float32).reshape(self.shape[1:])

    def __getstate__(self) -> dict:  # DataLoader workers get the path, not the table
        return {"root": self.root}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"])


class EmbeddingSet:
    """Clips of an embedding store as an array-like ``(n, L, R, D)``: the ``x`` of an embeddings split.

    Int indices (repeats allowed) or a boolean mask give a new set of those rows, reading nothing; a
    slice reads the blocks as a float32 ndarray; an int gives one block.
    """

    def __init__(self, store: EmbeddingStore, rows: np.ndarray) -> None:
        self.store = store
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.store.shape[1:])

    def __getitem__(self, key: Any) -> EmbeddingSet | np.ndarray:
        if isinstance(key, slice):
            rows = self.rows[key]
            out = np.empty((len(rows), *self.store.shape[1:]), dtype=np.float32)
            for j, row in enumerate(rows):
                out[j] = self.store.read(row)
            return out
        if isinstance(key, (int, np.integer)):
            return self.store.read(self.rows[key])
        key = np.asarray(key)
        key = key if key.dtype == bool else key.astype(np.int64)
        return EmbeddingSet(self.store, self.rows[key])

    def dataset(self, labels: np.ndarray, *, seed: int, train: bool, augment: Any = None) -> EmbeddingDataset:
        """A torch dataset of these rows with ``labels``; ``augment`` never applies (the audio is gone)."""
        return EmbeddingDataset(self.store, self.rows, labels)


class EmbeddingDataset:
    """``(block, label)`` pairs read from the store on demand (a map-style torch dataset)."""

    def __init__(self, store: EmbeddingStore, rows: np.ndarray, labels: np.ndarray) -> None:
        if len(rows) != len(labels):
            raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
        self.store, self.rows, self.labels = store, rows, np.asarray(labels, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import torch

        return torch.from_numpy(self.store.read(self.rows[i])), torch.tensor(self.labels[i])
