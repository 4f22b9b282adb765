"""A memory-mapped store of decoded waveforms, crop helpers and a random-crop training Dataset.

Raw-waveform models (RawNet2, AASIST) read a different crop of every clip each epoch, so their
input cannot be a fixed feature table. :func:`write_store` decodes every clip of a manifest once
(mono, ``audio.sample_rate``, at most ``audio.max_duration_s`` from the start) into a folder:

* ``shard-00000.i16``, ``shard-00001.i16``, ...: raw little-endian int16 samples, clips back to
  back in manifest order, each shard at most ``shard_mb`` MiB (a single longer clip gets a shard
  of its own);
* ``index.parquet``: ``utt_id`` (string), ``shard`` (int32), ``offset`` (int64, in samples from
  the start of the shard) and ``n_samples`` (int64), one row per stored clip, in manifest order;
* ``meta.json``: ``format_version``, ``sample_rate``, ``max_duration_s``, ``dtype`` and counts.

A float sample ``y`` in [-1, 1] is stored as ``round(y * 32768)`` (clipped to the int16 range) and
read back as ``q / 32768``: 16-bit sources round-trip exactly.

:class:`WaveformStore` maps the shards read-only with ``np.memmap``, lazily and per process, so a
store pickled to DataLoader workers carries its index but never audio. :class:`WaveformDataset`
draws each clip's crop (and augmentation) from a generator seeded by ``(seed, epoch, row)``, so a
batch does not depend on which worker loads it. :class:`WaveformSet` is the array-like that
training code carries in place of a feature tensor.

Importing this module does not import torch; the Dataset imports it when it builds a tensor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from deepfake_audio.audio import load_audio
from deepfake_audio.errors import AudioError, EmptyAudio
from deepfake_audio.io import read_json, write_csv, write_json
from deepfake_audio.logs import progress
from deepfake_audio.params import AudioParams

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DTYPE = np.dtype("<i2")
"""Stored sample type: little-endian int16, whatever the machine's byte order."""
SCALE = 32768.0
"""Full scale: a float sample is stored as ``round(y * 32768)`` clipped to [-32768, 32767] and read
back as ``q / 32768``. The same scale both ways (the one soundfile decodes 16-bit PCM with) makes a
16-bit source round-trip exactly, and a power of two makes int16 -> float32 exact; the price is
that +1.0 is stored as 32767 (1 LSB low)."""
SCALE_OUT = 1.0 / SCALE
INDEX = "index.parquet"
META = "meta.json"
REMAP_BYTES = 64 * 2**20
"""Clip bytes read through a store's mappings before it drops them and maps the shards afresh.
Mapped pages count in a process's RSS until they are unmapped: one training pass over a store of
100,000 clips (11 GB) showed an RSS of 11 GB, all page cache, which RSS-based job limits would
charge and kill for (nanoGPT remaps its memmap every batch for the same reason)."""
REJECT_COLUMNS = ["utt_id", "path", "reason", "detail"]
"""The columns of the features stage's rejects.csv."""


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.i16"


def to_int16(y: np.ndarray) -> np.ndarray:
    """Float samples to stored int16: clipped to [-1, 1], scaled by 32768, rounded to nearest, and
    clipped to the int16 range (+1.0 becomes 32767)."""
    return np.clip(np.rint(np.clip(y, -1.0, 1.0) * SCALE), -32768, 32767).astype(DTYPE)


def resolve_path(path: str | Path, raw_dir: Path) -> Path:
    """A manifest path as a file to open.

    As the features stage reads it: as written (absolute, or relative to the working directory:
    the download stage writes ``data/raw/...`` and sources that point at corpora in place write
    their own paths). A relative path that names no file there is taken to be relative to
    ``raw_dir``.
    """
    path, raw_dir = Path(path), Path(raw_dir)
    if path.is_absolute() or path.parts[: len(raw_dir.parts)] == raw_dir.parts or path.exists():
        return path
    return raw_dir / path


def decode_clip(path: Path | str, audio: AudioParams) -> np.ndarray:
    """Decode one clip as the store keeps it.

    Returns:
        int16 ``(n,)`` with ``1 <= n <= audio.max_samples``: mono, at ``audio.sample_rate``, the
        clip's first ``audio.max_duration_s`` seconds.

    Raises:
        the :class:`~deepfake_audio.errors.AudioError` family (as ``load_audio``: ``empty``,
        ``corrupt``, ``unsupported``, ``non_finite``, ``silent``, ``too_short``).
    """
    y = load_audio(path, sample_rate=audio.sample_rate, min_duration_s=audio.min_duration_s)
    y = y[: audio.max_samples]
    if len(y) == 0:  # a clip of a sample or two resampled to nothing
        raise EmptyAudio(f"{path}: no samples left after resampling to {audio.sample_rate} Hz")
    return to_int16(y)


def _decode_chunk(rows: list[tuple[str, str]], audio: AudioParams) -> tuple[list[str], list[np.ndarray], list[dict]]:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # n_jobs single-threaded workers; BLAS threads on top would oversubscribe
    ids, clips, rejects = [], [], []
    for utt_id, path in rows:
        try:
            clips.append(decode_clip(path, audio))
        except AudioError as exc:
            rejects.append({"utt_id": utt_id, "path": path, "reason": exc.reason, "detail": str(exc)})
            continue
        ids.append(utt_id)
    return ids, clips, rejects


def _decoded_chunks(
    chunks: Iterator[list[tuple[str, str]]], audio: AudioParams, *, n_jobs: int
) -> Iterator[tuple[list[str], list[np.ndarray], list[dict]]]:
    """``_decode_chunk`` of each chunk, in order, on ``n_jobs`` joblib (loky) worker processes.

    At most two chunks per worker are in flight: a new one is submitted only when the oldest
    result has been taken. (``Parallel(return_as="generator")`` keeps dispatching while the writer
    is busy, and its auto-batching grows tasks with the corpus: the writer's peak grew by about
    90 MiB from 5,000 to 40,000 clips with it, and by 30 MiB, all index, without workers.)
    """
    if n_jobs == 1:
        for chunk in chunks:
            yield _decode_chunk(chunk, audio)
        return
    from collections import deque

    from joblib import cpu_count
    from joblib.externals.loky import get_reusable_executor

    n_workers = cpu_count() if n_jobs < 0 else n_jobs
    executor = get_reusable_executor(max_workers=n_workers)
    pending: deque = deque()
    try:
        for chunk in chunks:
            pending.append(executor.submit(_decode_chunk, chunk, audio))
            if len(pending) >= 2 * n_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it replaces ``path``.

    The previous folder, if any, stays in place until the new one is complete, and is removed
    only after the rename: a killed run leaves either the old folder or the new one under the
    final name (and at worst a hidden ``.<name>.*`` folder beside it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700 folders
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


class _ShardWriter:
    """Appends clips to ``shard-NNNNN.i16`` files, starting a new shard before one would exceed its limit."""

    def __init__(self, root: Path, *, shard_bytes: int) -> None:
        self.root = root
        self.shard_bytes = shard_bytes
        self.shard = -1
        self.offset = 0  # samples in the current shard
        self.total_samples = 0
        self._fh = None

    def write(self, clip: np.ndarray) -> tuple[int, int]:
        """Append one int16 clip; returns its ``(shard, offset in samples)``."""
        nbytes = clip.size * DTYPE.itemsize
        if self._fh is None or (self.offset > 0 and (self.offset * DTYPE.itemsize + nbytes) > self.shard_bytes):
            self._open_next()
        where = (self.shard, self.offset)
        self._fh.write(np.ascontiguousarray(clip, dtype=DTYPE).tobytes())
        self.offset += clip.size
        self.total_samples += clip.size
        return where

    def _open_next(self) -> None:
        self.close()
        self.shard += 1
        self.offset = 0
        self._fh = open(self.root / shard_name(self.shard), "wb")  # noqa: SIM115 - closed by close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def n_shards(self) -> int:
        return self.shard + 1


INDEX_ROW_GROUP = 65536
"""Index rows buffered before they are written as one Parquet row group."""
INDEX_SCHEMA = pa.schema(
    [("utt_id", pa.string()), ("shard", pa.int32()), ("offset", pa.int64()), ("n_samples", pa.int64())]
)


class _IndexWriter:
    """Streams index rows to ``index.parquet`` in row groups, so the index is never all in memory."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(path, INDEX_SCHEMA, compression="zstd")
        self._rows: tuple[list, list, list, list] = ([], [], [], [])
        self.n_rows = 0

    def append(self, utt_id: str, shard: int, offset: int, n_samples: int) -> None:
        for column, value in zip(self._rows, (utt_id, shard, offset, n_samples)):
            column.append(value)
        self.n_rows += 1
        if len(self._rows[0]) >= INDEX_ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self._rows[0]:
            arrays = [pa.array(column, field.type) for column, field in zip(self._rows, INDEX_SCHEMA)]
            self._writer.write_table(pa.Table.from_arrays(arrays, schema=INDEX_SCHEMA))
            self._rows = ([], [], [], [])

    def close(self) -> None:
        self.flush()
        self._writer.close()


def _within(path: Path, folder: Path) -> Path | None:
    """``path`` relative to ``folder`` if it lies inside it, else None."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
    except ValueError:
        return None


def write_store(
    manifest: pd.DataFrame,
    *,
    raw_dir: Path,
    out_dir: Path,
    audio: AudioParams,
    n_jobs: int,
    shard_mb: float = 256,
    rejects_path: Path,
    chunk_size: int = 64,
    max_reject_fraction: float = 1.0,
) -> dict:
    """Decode every clip of ``manifest`` once, in parallel, into a waveform store at ``out_dir``.

    Workers (``n_jobs`` joblib/loky processes) decode chunks of ``chunk_size`` clips, at most two
    chunks per worker in flight; the chunks' int16 samples are appended to the open shard in
    manifest order as they arrive, so memory is bounded by the chunks in flight, not by the corpus
    (the index is streamed to Parquet in row groups too). The files are the same bytes whatever
    ``n_jobs``.

    The store is written into a temporary folder that replaces ``out_dir`` only once it is
    complete. ``rejects_path`` (columns ``utt_id, path, reason, detail``, as the features stage's)
    may lie inside ``out_dir``; it is written even when the run fails on too many rejects, so
    that it says why.

    Args:
        manifest: ``utt_id`` and ``path`` columns (paths resolved by :func:`resolve_path`).
        raw_dir: where relative manifest paths live.
        out_dir: the store folder to (re)create.
        audio: ``sample_rate``, ``min_duration_s`` (shorter clips are rejected) and
            ``max_duration_s`` (longer clips keep their start).
        n_jobs: worker processes (-1: one per core).
        shard_mb: MiB per shard file, at most (a single longer clip gets a shard of its own).
        rejects_path: where the rejects table goes.
        chunk_size: clips per worker task.
        max_reject_fraction: fail when more than this fraction of clips is rejected.

    Returns:
        a summary: ``n_in``, ``n_out``, ``n_rejected``, ``rejects_by_reason`` (reason -> count, most
        common first), ``n_shards``, ``total_samples``, ``hours`` (of stored audio), ``wall_s``.

    Raises:
        RuntimeError: when the rejected fraction exceeds ``max_reject_fraction`` (``out_dir`` is
            left as it was).
    """
    if shard_mb <= 0:
        raise ValueError(f"shard_mb must be > 0, got {shard_mb}")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive count or -1 (all cores), got {n_jobs}")
    t0 = time.perf_counter()
    out_dir, raw_dir = Path(out_dir), Path(raw_dir)
    utt_ids = manifest["utt_id"].to_numpy()  # no astype(str): a copy of every string
    paths = manifest["path"].to_numpy()
    n_in = len(utt_ids)
    duplicated = manifest["utt_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"manifest: utt_id must be unique, {utt_ids[duplicated.argmax()]!r} appears more than once")
    chunks = (
        [
            (str(u), str(resolve_path(str(p), raw_dir)))
            for u, p in zip(utt_ids[i : i + chunk_size], paths[i : i + chunk_size])
        ]
        for i in range(0, n_in, chunk_size)
    )
    rejects: list[dict] = []
    with atomic_dir(out_dir) as tmp:
        writer = _ShardWriter(tmp, shard_bytes=int(shard_mb * 2**20))
        index = _IndexWriter(tmp / INDEX)
        try:
            results = _decoded_chunks(chunks, audio, n_jobs=n_jobs)
            n_chunks = -(-n_in // chunk_size)
            for chunk_ids, clips, chunk_rejects in progress(results, total=n_chunks, desc="waveforms", unit="chunk"):
                rejects.extend(chunk_rejects)
                for utt_id, clip in zip(chunk_ids, clips, strict=True):
                    shard, offset = writer.write(clip)
                    index.append(utt_id, shard, offset, clip.size)
        finally:
            writer.close()
            index.close()
        rejects_table = pd.DataFrame(rejects, columns=REJECT_COLUMNS)
        by_reason = dict(Counter(r["reason"] for r in rejects).most_common())
        fraction = len(rejects) / max(n_in, 1)
        if fraction > max_reject_fraction:
            write_csv(rejects_path, rejects_table)  # where it was asked for, so that it says why
            top = ", ".join(f"{k}: {v}" for k, v in list(by_reason.items())[:5])
            raise RuntimeError(
                f"{len(rejects)} of {n_in} clips rejected ({fraction:.1%} > "
                f"features.max_reject_fraction={max_reject_fraction}); top reasons: {top}; see {rejects_path}"
            )
        write_json(
            tmp / META,
            {
                "format_version": FORMAT_VERSION,
                "sample_rate": audio.sample_rate,
                "max_duration_s": audio.max_duration_s,
                "min_duration_s": audio.min_duration_s,
                "dtype": DTYPE.str,
                "n_clips": index.n_rows,
                "n_shards": writer.n_shards,
                "total_samples": writer.total_samples,
            },
        )
        inside = _within(rejects_path, out_dir)
        write_csv(tmp / inside if inside is not None else rejects_path, rejects_table)
    return {
        "n_in": n_in,
        "n_out": index.n_rows,
        "n_rejected": len(rejects),
        "rejects_by_reason": by_reason,
        "n_shards": writer.n_shards,
        "total_samples": writer.total_samples,
        "hours": writer.total_samples / audio.sample_rate / 3600,
        "wall_s": time.perf_counter() - t0,
    }


class WaveformStore:
    """Read-only access to a store written by :func:`write_store`.

    Shards are memory-mapped on first use, in each process separately; pickling the store (to a
    DataLoader worker) carries its index and root, never a mapping or audio. The mappings are
    remade after every :data:`REMAP_BYTES` of clips read, so that a process's RSS does not grow
    with the part of the store it has touched.
    """

    def __init__(self, root: Path | str) -> None:
        import pyarrow.parquet as pq

        self.root = Path(root)
        meta_path = self.root / META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.root}: not a waveform store (no {META}); run the waveforms stage")
        self.meta = read_json(meta_path)
        if self.meta.get("format_version") != FORMAT_VERSION or self.meta.get("dtype") != DTYPE.str:
            raise ValueError(
                f"{self.root}/{META}: format_version {self.meta.get('format_version')!r}, dtype "
                f"{self.meta.get('dtype')!r}; this code reads version {FORMAT_VERSION}, dtype {DTYPE.str!r}"
            )
        index = pq.read_table(self.root / INDEX)
        self.utt_ids: list[str] = index.column("utt_id").to_pylist()
        self._shard = index.column("shard").to_numpy().astype(np.int32)
        self._offset = index.column("offset").to_numpy().astype(np.int64)
        self._n_samples = index.column("n_samples").to_numpy().astype(np.int64)
        self._maps: dict[int, np.memmap] = {}
        self._read_bytes = 0  # through the current mappings
        self._positions: dict[str, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}  # mappings are per process; a worker maps its own on first read
        state["_read_bytes"] = 0
        state["_positions"] = None
        return state

    def __len__(self) -> int:
        return len(self.utt_ids)

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def n_samples(self) -> np.ndarray:
        """int64 ``(len(self),)``: each clip's stored length in samples."""
        return self._n_samples

    def index_of(self, utt_id: str) -> int:
        """The position of ``utt_id`` in the store (KeyError if it was not stored, e.g. rejected)."""
        if self._positions is None:
            self._positions = {u: i for i, u in enumerate(self.utt_ids)}
        try:
            return self._positions[utt_id]
        except KeyError:
            raise KeyError(
                f"{utt_id!r} is not in the waveform store {self.root} (rejected, or not in its manifest)"
            ) from None

    def indices_of(self, utt_ids: list[str] | np.ndarray | pd.Series) -> np.ndarray:
        """int64 positions of ``utt_ids``, in their order (KeyError naming the first missing id)."""
        return np.fromiter((self.index_of(str(u)) for u in utt_ids), dtype=np.int64, count=len(utt_ids))

    def _map(self, shard: int) -> np.memmap:
        m = self._maps.get(shard)
        if m is None:
            m = np.memmap(self.root / shard_name(shard), dtype=DTYPE, mode="r")
            self._maps[shard] = m
        return m

    def read(self, i: int) -> np.ndarray:
        """Clip ``i`` as an int16 ``(n,)`` read-only view of its shard (no copy)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"clip {i} out of range for a store of {n} clips")
        i = int(i) % n
        start, length = int(self._offset[i]), int(self._n_samples[i])
        self._read_bytes += length * DTYPE.itemsize
        if self._read_bytes > REMAP_BYTES:
            # Unmaps once the views already handed out are gone; the pages stay in the page cache.
            self._maps.clear()
            self._read_bytes = length * DTYPE.itemsize
        return self._map(int(self._shard[i]))[start : start + length]

    def read_float(self, i: int) -> np.ndarray:
        """Clip ``i`` as float32 ``(n,)`` in [-1, 1) (int16 / 32768), a new array."""
        y = self.read(i).astype(np.float32)
        y *= SCALE_OUT
        return y


# ---------------------------------------------------------------- crops


def repeat_pad(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` tiled until it is ``n`` long, then cut: ``(n,)``, same dtype (``y`` itself if already ``n``)."""
    if len(y) == 0:
        raise EmptyAudio("cannot pad an empty clip")
    if len(y) == n:
        return y
    reps = -(-n // len(y))  # ceil division
    return np.tile(y, reps)[:n]


def random_crop(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` consecutive samples from a start drawn uniformly in ``[0, len(y) - n]`` (inclusive).

    A clip of exactly ``n`` samples is returned whole (nothing is drawn); a shorter one is
    repeat-padded (:func:`repeat_pad`).
    """
    if len(y) <= n:
        return repeat_pad(y, n)
    start = int(rng.integers(0, len(y) - n, endpoint=True))
    return y[start : start + n]


def fixed_crop(y: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` samples, repeat-padded if the clip is shorter (the usual evaluation crop)."""
    return y[:n] if len(y) >= n else repeat_pad(y, n)


def windows(y: np.ndarray, n: int, *, hop: int) -> np.ndarray:
    """Fixed-length windows covering a whole clip, for scoring a long clip window by window.

    Windows start every ``hop`` samples; when they do not end exactly at the clip's end, one more
    window aligned to the end is added, so every sample is in some window. A clip of at most ``n``
    samples gives one repeat-padded window.

    Returns:
        ``(k, n)`` array of ``y``'s dtype.
    """
    if n <= 0 or hop <= 0:
        raise ValueError(f"windows: n and hop must be > 0, got n={n}, hop={hop}")
    if len(y) <= n:
        return repeat_pad(y, n)[None, :]
    starts = list(range(0, len(y) - n + 1, hop))
    if starts[-1] + n < len(y):
        starts.append(len(y) - n)
    return np.stack([y[s : s + n] for s in starts])


# ---------------------------------------------------------------- training and scoring inputs

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class WaveformDataset:
    """A map-style torch Dataset of crops from a :class:`WaveformStore`.

    Item ``k`` is ``(x, label)``: ``x`` float32 tensor ``(1, n_samples)`` in [-1, 1] (before
    augmentation), ``label`` a float32 scalar tensor. In train mode the crop start and the
    augmentation are drawn from ``np.random.default_rng([seed, epoch, rows[k]])``: a clip's draw
    depends on the seed, the epoch and the clip only, never on the worker or the order it is
    loaded in (so a row repeated by oversampling gets the same crop twice in an epoch). In eval
    mode the crop is :func:`fixed_crop` and nothing is augmented.

    Duck-typed (``__len__`` and ``__getitem__`` are all a DataLoader needs), so that importing
    this module does not import torch.

    Args:
        store: the waveforms.
        rows: int store indices ``(m,)``; repeats allowed.
        labels: ``(m,)`` labels (1 = bona fide, 0 = spoof).
        n_samples: crop length in samples.
        seed: a non-negative int.
        train: random crops and augmentation, or fixed crops.
        augment: ``augment(x, rng) -> x`` on a float32 ``(n_samples,)`` crop; a result of another
            length is cut or repeat-padded back to ``n_samples``.
    """

    def __init__(
        self,
        store: WaveformStore,
        rows: np.ndarray,
        labels: np.ndarray,
        *,
        n_samples: int,
        seed: int,
        train: bool,
        augment: Augment | None = None,
    ) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.float32)
        if rows.ndim != 1 or rows.shape != labels.shape:
            raise ValueError(f"rows and labels must be 1-D of one length, got {rows.shape} and {labels.shape}")
        if len(rows) and (rows.min() < 0 or rows.max() >= len(store)):
            raise IndexError(f"rows must index the store's {len(store)} clips, got {rows.min()}..{rows.max()}")
        if n_samples <= 0:
            raise ValueError(f"n_samples must be > 0, got {n_samples}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0 (it seeds np.random.default_rng), got {seed}")
        self.store = store
        self.rows = rows
        self.labels = labels
        self.n_samples = int(n_samples)
        self.seed = int(seed)
        self.train = bool(train)
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the next crops for ``epoch`` (call before each epoch; workers see it when they start)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def crop(self, k: int) -> np.ndarray:
        """Item ``k``'s float32 ``(n_samples,)`` crop, as :meth:`__getitem__` returns it."""
        row = int(self.rows[k])
        y = self.store.read(row)
        if not self.train:
            x = fixed_crop(y, self.n_samples).astype(np.float32)
            x *= SCALE_OUT
            return x
        rng = np.random.default_rng([self.seed, self.epoch, row])
        x = random_crop(y, self.n_samples, rng).astype(np.float32)
        x *= SCALE_OUT
        if self.augment is not None:
            x = np.asarray(self.augment(x, rng), dtype=np.float32)
            if x.shape != (self.n_samples,):
                x = fixed_crop(x.reshape(-1), self.n_samples)
        return x

    def __getitem__(self, k: int) -> tuple[Any, Any]:
        import torch

        x = np.ascontiguousarray(self.crop(k))
        return torch.from_numpy(x)[None, :], torch.tensor(self.labels[k], dtype=torch.float32)


class WaveformSet:
    """Clips of a store as an array-like of shape ``(n, 1, n_samples)``: the ``x`` of a waveform split.

    Indexing with int indices (ndarray or list, repeats allowed) or a boolean mask gives a new
    :class:`WaveformSet` of those rows, reading nothing; a slice gives the fixed crops as a
    float32 ndarray ``(k, 1, n_samples)`` (batched scoring); an int gives one ``(1, n_samples)``.
    """

    def __init__(self, store: WaveformStore, rows: np.ndarray, *, n_samples: int) -> None:
        if n_samples <= 0:
            raise ValueError(f"n_samples must be > 0, got {n_samples}")
        self.store = store
        self.rows = np.asarray(rows, dtype=np.int64)
        self.n_samples = int(n_samples)

    @classmethod
    def from_ids(
        cls, store: WaveformStore, utt_ids: list[str] | np.ndarray | pd.Series, *, n_samples: int
    ) -> WaveformSet:
        """The clips ``utt_ids`` in their order (KeyError naming the first one not stored)."""
        return cls(store, store.indices_of(utt_ids), n_samples=n_samples)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.rows), 1, self.n_samples)

    def _fixed(self, row: int) -> np.ndarray:
        x = fixed_crop(self.store.read(int(row)), self.n_samples).astype(np.float32)
        x *= SCALE_OUT
        return x

    def __getitem__(self, key: Any) -> WaveformSet | np.ndarray:
        if isinstance(key, slice):
            rows = self.rows[key]
            out = np.empty((len(rows), 1, self.n_samples), dtype=np.float32)
            for j, row in enumerate(rows):
                out[j, 0] = self._fixed(row)
            return out
        if isinstance(key, (int, np.integer)):
            return self._fixed(self.rows[key])[None, :]
        key = np.asarray(key)
        key = key if key.dtype == bool else key.astype(np.int64)  # [] is float64 to numpy
        return WaveformSet(self.store, self.rows[key], n_samples=self.n_samples)

    def dataset(self, labels: np.ndarray, *, seed: int, train: bool, augment: Augment | None = None) -> WaveformDataset:
        """A :class:`WaveformDataset` of these rows with ``labels`` (one per row)."""
        return WaveformDataset(
            self.store, self.rows, labels, n_samples=self.n_samples, seed=seed, train=train, augment=augment
        )
