"""What a model reads: the standardised features of each split, aligned with the manifest.

Each model kind declares its input (:data:`deepfake_audio.models.INPUTS`); :data:`READERS` maps
an input name to the function that reads it, so no caller branches on the model family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

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
    x: np.ndarray  # (n, F, T) frames or (n, D) utterance features, float32
    y: np.ndarray  # (n,) int64
    attacks: np.ndarray  # (n,) str
    sources: np.ndarray  # (n,) str

    def take(self, rows: np.ndarray) -> SplitData:
        """The rows ``rows`` (int indices, repeats allowed) of this split."""
        return SplitData(
            [self.ids[i] for i in rows], self.x[rows], self.y[rows], self.attacks[rows], self.sources[rows]
        )


def _read_frames(scaled: Path, groups: tuple[str, ...] | None) -> tuple[list[str], np.ndarray]:
    return read_frames(scaled / "frames.parquet", groups=groups)


def _read_utterances(scaled: Path, groups: tuple[str, ...] | None) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(scaled / "utterances.parquet")
    ids = table.column("utt_id").to_pylist()
    names = [n for n in table.column_names if n != "utt_id"]
    return ids, np.stack([table.column(n).to_numpy() for n in names], axis=1).astype(np.float32)


READERS: dict[str, Callable[[Path, tuple[str, ...] | None], tuple[list[str], np.ndarray]]] = {
    "frames": _read_frames,
    "utterances": _read_utterances,
}
"""Input name -> ``reader(scaled_dir, groups) -> (utt_ids, x)``."""

TABLES = {"frames": "frames.parquet", "utterances": "utterances.parquet"}
"""Input name -> its file in the scaled folder (a training-key input)."""


def load_inputs(
    manifest: pd.DataFrame, *, input: str, scaled: Path, splits: list[str], groups: tuple[str, ...] | None = None
) -> dict[str, SplitData]:
    """Read the standardised features of the given splits, aligned with the manifest rows.

    Clips rejected by the features stage are absent from the feature tables and so skipped here.

    Args:
        manifest: rows with ``utt_id``, ``split``, ``label``, ``attack`` and ``source``.
        input: a key of :data:`READERS`.
        scaled: the standardize stage's folder.
        splits: split names to return (``train``, ``dev``, ``test``, ``eval:<name>``).
        groups: for frame inputs, only the rows of these feature groups; ``None`` for all.
    """
    if input not in READERS:
        raise ValueError(f"no reader for model input {input!r}; known: {', '.join(READERS)}")
    ids, x = READERS[input](Path(scaled), groups)
    index = {u: i for i, u in enumerate(ids)}
    out = {}
    for split in splits:
        rows = manifest[(manifest["split"] == split) & manifest["utt_id"].isin(index)]
        take = np.array([index[u] for u in rows["utt_id"]], dtype=np.int64)
        out[split] = SplitData(
            rows["utt_id"].tolist(),
            x[take] if len(take) else x[:0],
            rows["label"].map(LABEL_IDS).to_numpy(dtype=np.int64),
            rows["attack"].to_numpy(dtype=str),
            rows["source"].to_numpy(dtype=str),
        )
    return out
