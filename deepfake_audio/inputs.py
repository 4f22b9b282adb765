"""What a model reads: the standardised features of each split, aligned with the manifest.

Each model kind declares its input (:data:`deepfake_audio.models.INPUTS`); :data:`READERS` maps
an input name to the function that reads it, so no caller branches on the model family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from deepfake_audio.features import read_frames

LABEL_IDS = {"bonafide": 1, "spoof": 0}
"""Numeric labels: 1 = bona fide, 0 = spoof."""


@dataclasses.dataclass
class SplitData:
    """Inputs of one split: ids, features, numeric labels (1 = bona fide) and attack names."""

    ids: list[str]
    x: Any  # (n, F, T) frames or (n, D) utterance features, float32; or a WaveformSet (n, 1, n_samples)
    y: np.ndarray  # (n,) int64
    attacks: np.ndarray  # (n,) str
    sources: np.ndarray  # (n,) str

    def take(self, rows: np.ndarray) -> SplitData:
        """The rows ``rows`` (int indices, repeats allowed) of this split."""
        return SplitData(
            [self.ids[i] for i in rows], self.x[rows], self.y[rows], self.attacks[rows], self.sources[rows]
        )


@dataclasses.dataclass(frozen=True)
class InputSource:
    """Where the inputs of a model are read from.

    Attributes:
        scaled: the standardize stage's folder (frame and utterance features).
        waveforms: the waveforms stage's folder (the memory-mapped audio store), for waveform models.
        n_samples: the crop length of a waveform model, in samples.
        embeddings: the embeddings stage's folder (a frozen SSL front-end's output), for SSL back-ends.
    """

    scaled: Path | None = None
    waveforms: Path | None = None
    n_samples: int | None = None
    embeddings: Path | None = None


def _read_frames(src: InputSource, groups: tuple[str, ...] | None) -> tuple[list[str], np.ndarray]:
    return read_frames(_need(src.scaled, "frames", "scaled") / "frames.parquet", groups=groups)


def _read_utterances(src: InputSource, groups: tuple[str, ...] | None) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(_need(src.scaled, "utterances", "scaled") / "utterances.parquet")
    ids = table.column("utt_id").to_pylist()
    names = [n for n in table.column_names if n != "utt_id"]
    return ids, np.stack([table.column(n).to_numpy() for n in names], axis=1).astype(np.float32)


def _read_waveform(src: InputSource, groups: tuple[str, ...] | None) -> tuple[list[str], Any]:
    from deepfake_audio.waveforms import WaveformSet, WaveformStore

    store = WaveformStore(_need(src.waveforms, "waveform", "waveforms"))
    if not src.n_samples:
        raise ValueError("waveform inputs need the model's crop length (n_samples)")
    return list(store.utt_ids), WaveformSet(store, np.arange(len(store), dtype=np.int64), n_samples=src.n_samples)


def _read_embeddings(src: InputSource, groups: tuple[str, ...] | None) -> tuple[list[str], Any]:
    from deepfake_audio.embeddings import EmbeddingSet, EmbeddingStore

    store = EmbeddingStore(_need(src.embeddings, "embeddings", "embeddings"))
    return list(store.utt_ids), EmbeddingSet(store, np.arange(len(store), dtype=np.int64))


def _need(path: Path | None, input: str, folder: str) -> Path:
    if path is None:
        raise ValueError(f"{input} inputs are read from the {folder} folder, and none was given")
    return Path(path)


READERS: dict[str, Callable[[InputSource, tuple[str, ...] | None], tuple[list[str], Any]]] = {
    "frames": _read_frames,
    "utterances": _read_utterances,
    "waveform": _read_waveform,
    "embeddings": _read_embeddings,
}
"""Input name -> ``reader(source, groups) -> (utt_ids, x)``; ``x[rows]`` takes rows of it."""

TABLES = {"frames": "frames.parquet", "utterances": "utterances.parquet"}
"""Input name -> its file in the scaled folder (a training-key input)."""


def input_files(input: str, src: InputSource) -> list[Path]:
    """The files an input is read from: what a training run's key hashes."""
    if input in ("waveform", "embeddings"):
        root = _need(src.waveforms if input == "waveform" else src.embeddings, input, input)
        return sorted(p for p in root.iterdir() if p.is_file() and p.name != "rejects.csv")
    scaled = _need(src.scaled, input, "scaled")
    return [scaled / TABLES[input], scaled / "scaler.json"]


def load_inputs(
    manifest: pd.DataFrame,
    *,
    input: str,
    source: InputSource,
    splits: list[str],
    groups: tuple[str, ...] | None = None,
) -> dict[str, SplitData]:
    """Read the inputs of the given splits, aligned with the manifest rows.

    Clips rejected by the features (or waveforms) stage are absent from its tables and so skipped.

    Args:
        manifest: rows with ``utt_id``, ``split``, ``label``, ``attack`` and ``source``.
        input: a key of :data:`READERS`.
        source: the folders it is read from.
        splits: split names to return (``train``, ``dev``, ``test``, ``eval:<name>``).
        groups: for frame inputs, only the rows of these feature groups; ``None`` for all.
    """
    if input not in READERS:
        raise ValueError(f"no reader for model input {input!r}; known: {', '.join(READERS)}")
    ids, x = READERS[input](source, groups)
    index = {u: i for i, u in enumerate(ids)}
    out = {}
    for split in splits:
        rows = manifest[(manifest["split"] == split) & manifest["utt_id"].isin(index)]
        take = np.array([index[u] for u in rows["utt_id"]], dtype=np.int64)
        out[split] = SplitData(
            rows["utt_id"].tolist(),
            x[take],
            rows["label"].map(LABEL_IDS).to_numpy(dtype=np.int64),
            rows["attack"].to_numpy(dtype=str),
            rows["source"].to_numpy(dtype=str),
        )
    return out
