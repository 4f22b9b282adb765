"""How training batches are drawn: class balance, oversampling, SpecAugment, seeded workers."""

from __future__ import annotations

import random
from typing import Any

import numpy as np


def class_weights(y: np.ndarray, balance: str) -> float:
    """Weight of the bona fide class relative to spoof, so both classes count equally.

    1 unless ``balance == "weights"`` (``oversample`` balances by repeating rows instead).
    """
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if balance != "weights" or n_pos == 0:
        return 1.0
    return n_neg / n_pos


def oversample_indices(y: np.ndarray, *, seed: int) -> np.ndarray:
    """Row indices in which the minority class is repeated up to the majority's count.

    Every minority row appears ``n_major // n_minor`` times, and a seeded sample of them once
    more for the remainder, so the classes are exactly balanced and each row is used about
    equally. The order is the original order with the copies appended; shuffling is the loader's.

    Returns:
        int64 indices into ``y``, of length ``2 * n_major`` (all rows if a class is empty).
    """
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0 or len(neg) == 0 or len(pos) == len(neg):
        return np.arange(len(y), dtype=np.int64)
    minor, major = (pos, neg) if len(pos) < len(neg) else (neg, pos)
    reps, rest = divmod(len(major), len(minor))
    extra = np.random.default_rng(seed).choice(minor, size=rest, replace=False)
    copies = np.concatenate([np.tile(minor, reps - 1), np.sort(extra)])
    return np.concatenate([np.arange(len(y)), copies]).astype(np.int64)


def spec_augment(x: Any, params: Any, gen: Any) -> Any:
    """SpecAugment on a CPU batch ``(B, F, T)``: per clip, ``time_masks`` spans of up to
    ``max_time_frames`` frames and ``feature_masks`` spans of up to ``max_feature_rows`` rows set
    to 0 (the inputs are standardised, so 0 is the train mean). Returns a masked copy."""
    import torch

    x = x.clone()
    batch, n_rows, n_frames = x.shape
    for axis, n_masks, max_width in (
        (2, params.time_masks, params.max_time_frames),
        (1, params.feature_masks, params.max_feature_rows),
    ):
        size = x.shape[axis]
        for _ in range(n_masks):
            width = torch.randint(0, min(max_width, size) + 1, (batch,), generator=gen)
            start = (torch.rand(batch, generator=gen) * (size - width + 1)).long()
            pos = torch.arange(size)
            mask = (pos[None] >= start[:, None]) & (pos[None] < (start + width)[:, None])  # (B, size)
            x.masked_fill_(mask[:, None, :] if axis == 2 else mask[:, :, None], 0.0)
    return x


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed NumPy and Python from the worker's torch seed."""
    import torch

    seed = torch.initial_seed() % 2**32  # distinct per worker, derived from the loader's generator
    np.random.seed(seed)
    random.seed(seed)
