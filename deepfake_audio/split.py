"""Speaker-disjoint, stratified train/dev/test splits, and the counts that prove them."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from deepfake_audio.params import SplitParams

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


def _stratum(df: pd.DataFrame) -> pd.Series:
    return df["label"].astype(str) + "|" + df["attack"].astype(str)


def stratified_group_split(df: pd.DataFrame, params: SplitParams) -> pd.Series:
    """Assign whole speakers to train/dev/test so each (label, attack) stratum keeps the fractions.

    Greedy: speakers are placed largest first (seeded order among equals), each into the split
    where it most reduces the squared gap between actual and target counts, summed over strata
    and normalised by stratum size. A speaker never spans two splits.

    Args:
        df: manifest rows with ``speaker``, ``label`` and ``attack``.

    Returns:
        a Series of split names aligned with ``df.index``.
    """
    if df.empty:
        return pd.Series([], dtype=str, index=df.index)
    fractions = np.array([params.train, params.dev, params.test])
    strata = _stratum(df)
    table = pd.crosstab(df["speaker"], strata)  # speakers x strata counts
    totals = table.sum(axis=0).to_numpy(dtype=float)
    targets = fractions[:, None] * totals[None, :]  # splits x strata
    rng = np.random.default_rng(params.seed)
    order = pd.DataFrame({"size": table.sum(axis=1).to_numpy(), "tie": rng.random(len(table))},
                         index=table.index).sort_values(["size", "tie"], ascending=[False, True]).index
    counts = np.zeros_like(targets)
    assignment: dict[str, str] = {}
    for speaker in order:
        row = table.loc[speaker].to_numpy(dtype=float)
        costs = []
        for s in range(len(SPLITS)):
            after = counts.copy()
            after[s] += row
            costs.append(float(np.sum((after - targets) ** 2 / np.maximum(totals, 1.0))))
        best = int(np.argmin(costs))
        counts[best] += row
        assignment[speaker] = SPLITS[best]
    return df["speaker"].map(assignment)


def assign_splits(manifest: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """Add the ``split`` column: train/dev/test for the training pool, ``eval:<name>`` for eval sets.

    Raises:
        ValueError: when a split would lack a class (too few speakers), naming the counts.
    """
    out = manifest.copy()
    pool = out["eval_set"] == ""
    out["split"] = ""
    out.loc[pool, "split"] = stratified_group_split(out[pool], params)
    out.loc[~pool, "split"] = "eval:" + out.loc[~pool, "eval_set"]
    for split in SPLITS:
        labels = set(out.loc[out["split"] == split, "label"])
        if labels != {"bonafide", "spoof"}:
            raise ValueError(
                f"split {split!r} has labels {sorted(labels) or 'none'}: the training pool has "
                f"{out.loc[pool, 'speaker'].nunique()} speakers, too few to give every split both classes; "
                f"add data or change split fractions")
    return out


def split_report(df: pd.DataFrame) -> dict:
    """Counts per split, class and attack, speakers per split, and speaker leakage."""
    report: dict = {"splits": {}, "leakage": {}}
    for split, part in df.groupby("split", sort=True):
        report["splits"][split] = {
            "n_clips": int(len(part)),
            "n_speakers": int(part["speaker"].nunique()),
            "n_bonafide": int((part["label"] == "bonafide").sum()),
            "n_spoof": int((part["label"] == "spoof").sum()),
            "attacks": {str(k): int(v) for k, v in part.loc[part["label"] == "spoof", "attack"]
                        .value_counts().sort_index().items()},
            "sources": {str(k): int(v) for k, v in part["source"].value_counts().sort_index().items()},
        }
    pool = df[df["split"].isin(SPLITS)]
    speaker_splits = pool.groupby("speaker")["split"].nunique()
    shared = sorted(speaker_splits[speaker_splits > 1].index.astype(str))
    report["leakage"] = {"shared_speakers": shared, "n_shared_speakers": len(shared)}
    return report
