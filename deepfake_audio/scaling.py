"""Per-feature standardisation, fitted on the train split only and saved as JSON."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deepfake_audio.features import frames_of, frames_table
from deepfake_audio.io import atomic_path

MIN_STD = 1e-6
"""A constant feature is centred but not blown up: its std is floored here."""


@dataclasses.dataclass(frozen=True)
class Scaler:
    """``(x - mean) / std`` per named feature."""

    names: tuple[str, ...]
    mean: np.ndarray  # float64, (n_features,)
    std: np.ndarray

    def to_json(self) -> dict:
        return {"names": list(self.names), "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_json(cls, data: dict) -> Scaler:
        return cls(
            tuple(data["names"]), np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
        )

    def transform_frames(self, x: np.ndarray) -> np.ndarray:
        """``x``: (n, n_features, n_frames) -> float32 of the same shape."""
        return ((x - self.mean[None, :, None]) / self.std[None, :, None]).astype(np.float32)

    def transform_table(self, x: np.ndarray) -> np.ndarray:
        """``x``: (n, n_features) -> float32 of the same shape."""
        return ((x - self.mean[None, :]) / self.std[None, :]).astype(np.float32)


class _Moments:
    """Streaming sums for mean and variance (float64; corpus-size independent memory)."""

    def __init__(self, n: int) -> None:
        self.count = 0
        self.sum = np.zeros(n)
        self.sumsq = np.zeros(n)

    def update(self, x: np.ndarray) -> None:  # x: (m, n)
        x = x.astype(np.float64)
        self.count += x.shape[0]
        self.sum += x.sum(axis=0)
        self.sumsq += np.square(x).sum(axis=0)

    def result(self, names: tuple[str, ...]) -> Scaler:
        if self.count == 0:
            raise ValueError("cannot fit a scaler on zero train rows")
        mean = self.sum / self.count
        var = np.maximum(self.sumsq / self.count - mean**2, 0.0)
        return Scaler(names, mean, np.maximum(np.sqrt(var), MIN_STD))


def _frame_meta(pf: pq.ParquetFile) -> tuple[tuple[str, ...], int, int]:
    meta = pf.schema_arrow.metadata
    names = tuple(meta[b"feature_names"].decode().split(","))
    return names, int(meta[b"n_features"]), int(meta[b"n_frames"])


def _with_meta(batch: pa.RecordBatch, pf: pq.ParquetFile) -> pa.RecordBatch:
    return batch.replace_schema_metadata(pf.schema_arrow.metadata)


def fit_frame_scaler(path: Path, train_ids: set[str], *, batch_size: int = 256) -> Scaler:
    """Mean/std per frame feature over every frame of the train clips, streamed in batches."""
    pf = pq.ParquetFile(path)
    names, n_feat, n_frames = _frame_meta(pf)
    moments = _Moments(n_feat)
    for batch in pf.iter_batches(batch_size=batch_size):
        keep = np.array([u in train_ids for u in batch.column("utt_id").to_pylist()])
        if keep.any():
            x = frames_of(_with_meta(batch, pf))[keep]  # (m, F, T)
            moments.update(x.transpose(0, 2, 1).reshape(-1, n_feat))
    return moments.result(names)


def fit_table_scaler(path: Path, train_ids: set[str], *, batch_size: int = 4096) -> Scaler:
    pf = pq.ParquetFile(path)
    names = tuple(n for n in pf.schema_arrow.names if n != "utt_id")
    moments = _Moments(len(names))
    for batch in pf.iter_batches(batch_size=batch_size):
        keep = np.array([u in train_ids for u in batch.column("utt_id").to_pylist()])
        if keep.any():
            x = np.stack([batch.column(n).to_numpy() for n in names], axis=1)[keep]
            moments.update(x)
    return moments.result(names)


def apply_frame_scaler(scaler: Scaler, src: Path, dst: Path, *, batch_size: int = 256) -> int:
    """Write the standardised copy of a frames table; returns the row count."""
    pf = pq.ParquetFile(src)
    n = 0
    with atomic_path(dst) as tmp, pq.ParquetWriter(tmp, pf.schema_arrow, compression="zstd") as writer:
        for batch in pf.iter_batches(batch_size=batch_size):
            x = scaler.transform_frames(frames_of(_with_meta(batch, pf)))
            writer.write_table(frames_table(pf.schema_arrow, batch.column("utt_id").to_pylist(), x))
            n += batch.num_rows
    return n


def apply_table_scaler(scaler: Scaler, src: Path, dst: Path, *, batch_size: int = 4096) -> int:
    pf = pq.ParquetFile(src)
    n = 0
    with atomic_path(dst) as tmp, pq.ParquetWriter(tmp, pf.schema_arrow, compression="zstd") as writer:
        for batch in pf.iter_batches(batch_size=batch_size):
            x = np.stack([batch.column(name).to_numpy() for name in scaler.names], axis=1)
            z = scaler.transform_table(x)
            cols = [batch.column("utt_id")] + [pa.array(z[:, j], pa.float32()) for j in range(z.shape[1])]
            writer.write_table(pa.Table.from_arrays(cols, schema=pf.schema_arrow))
            n += batch.num_rows
    return n
