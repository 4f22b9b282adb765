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


def _hashes(df: pd.DataFrame) -> pd.Series:
    """``content_hash`` as strings, all "" (unknown) when the column is absent."""
    if "content_hash" not in df.columns:
        return pd.Series("", index=df.index, dtype=object)
    return df["content_hash"].astype(str)


def leak_groups(df: pd.DataFrame) -> pd.Series:
    """The unit a leakage-free split must keep whole: speakers joined by identical audio.

    Two speakers whose clips share a ``content_hash`` (the same decoded samples) are merged into
    one group, transitively, so identical audio can never straddle two splits. Each group is
    named after its alphabetically first speaker. Without a ``content_hash`` column the groups
    are the speakers.

    Returns:
        a Series of group names aligned with ``df.index``.
    """
    speakers = df["speaker"].astype(str)
    parent: dict[str, str] = {s: s for s in speakers.unique()}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    hashes = _hashes(df)
    for _, group in speakers[hashes != ""].groupby(hashes[hashes != ""]):
        names = sorted(set(group))
        for other in names[1:]:
            a, b = root(names[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return speakers.map(root)


def stratified_group_split(df: pd.DataFrame, params: SplitParams) -> pd.Series:
    """Assign whole groups (speakers, see :func:`leak_groups`) to train/dev/test so each
    (label, attack) stratum keeps the fractions.

    Greedy, then refined: groups are placed largest first (seeded order among equals), each
    into the split where it most reduces the squared gap between actual and target counts,
    summed over strata and normalised by stratum size; then :func:`_refine` moves and swaps
    groups while that cost drops. A speaker never spans two splits, nor does identical audio.

    Args:
        df: manifest rows with ``speaker``, ``label`` and ``attack`` (and ``content_hash``).

    Returns:
        a Series of split names aligned with ``df.index``.
    """
    if df.empty:
        return pd.Series([], dtype=str, index=df.index)
    fractions = np.array([params.train, params.dev, params.test])
    strata = _stratum(df)
    groups = leak_groups(df)
    table = pd.crosstab(groups, strata)  # groups x strata counts
    totals = table.sum(axis=0).to_numpy(dtype=float)
    targets = fractions[:, None] * totals[None, :]  # splits x strata
    rng = np.random.default_rng(params.seed)
    order = (
        pd.DataFrame({"size": table.sum(axis=1).to_numpy(), "tie": rng.random(len(table))}, index=table.index)
        .sort_values(["size", "tie"], ascending=[False, True])
        .index
    )
    rows = table.loc[order].to_numpy(dtype=float)  # (n_speakers, n_strata), greedy order
    weights = np.maximum(totals, 1.0)
    counts = np.zeros_like(targets)
    where = np.zeros(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        # Adding row r to split s raises the cost by |r|^2_w + 2 r.(counts_s - targets_s)/w.
        where[i] = int(np.argmin(((counts - targets) / weights) @ row))
        counts[where[i]] += row
    where = _refine(rows, where, counts, targets, weights)
    assignment = {group: SPLITS[s] for group, s in zip(order, where)}
    return groups.map(assignment)


def _refine(
    rows: np.ndarray,
    where: np.ndarray,
    counts: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    *,
    max_swap_speakers: int = 2000,
) -> np.ndarray:
    """Improve a greedy assignment by local search under the same cost.

    The greedy pass is short-sighted: large, spoof-heavy speakers placed early can over-fill
    train. Here the single best speaker move, else the best pairwise swap, is applied while it
    lowers the cost. Both changes have closed-form cost deltas, so each step is vectorised.
    Deterministic: ties resolve to the lowest index.

    Args:
        rows: (n_speakers, n_strata) counts per speaker.
        where: (n_speakers,) split index of each speaker; updated copy is returned.
        counts: (n_splits, n_strata) current totals, consistent with ``where``.
        targets, weights: (n_splits, n_strata) target counts and (n_strata,) cost weights.
    """
    where, counts = where.copy(), counts.copy()
    self_cost = 2.0 * np.sum(rows**2 / weights, axis=1)  # (n,)
    for _ in range(10 * len(rows) + 10):
        gap = (counts - targets) / weights  # (n_splits, n_strata)
        proj = rows @ gap.T  # (n, n_splits): row . gap_s
        # Moving speaker i from a to b: 2|r|^2_w + 2 r.(gap_b - gap_a).
        move = self_cost[:, None] + 2.0 * (proj - proj[np.arange(len(rows)), where][:, None])
        move[np.arange(len(rows)), where] = 0.0
        i, b = np.unravel_index(int(np.argmin(move)), move.shape)
        if move[i, b] < -1e-9:
            counts[where[i]] -= rows[i]
            counts[b] += rows[i]
            where[i] = b
            continue
        if len(rows) > max_swap_speakers:
            break
        # Swapping i (in a) with j (in b), d = r_j - r_i: 2|d|^2_w + 2 d.(gap_a - gap_b).
        best = (0.0, -1, -1)
        for i in range(len(rows)):
            others = np.nonzero(where != where[i])[0]
            if not len(others):
                continue
            d = rows[others] - rows[i]
            delta = 2.0 * np.sum(d**2 / weights, axis=1) + 2.0 * np.sum(
                d * (gap[where[i]] - gap[where[others]]), axis=1
            )
            k = int(np.argmin(delta))
            if delta[k] < best[0] - 1e-9:
                best = (float(delta[k]), i, int(others[k]))
        if best[1] < 0:
            break
        _, i, j = best
        counts[where[i]] += rows[j] - rows[i]
        counts[where[j]] += rows[i] - rows[j]
        where[i], where[j] = where[j], where[i]
    return where


def random_split(df: pd.DataFrame, params: SplitParams) -> pd.Series:
    """Per (label, attack) stratum, a seeded shuffle cut at the train/dev/test fractions.

    Not speaker-disjoint: this is the leaky split of the seed projects, kept to reproduce them.
    """
    out = pd.Series("", index=df.index, dtype=object)
    rng = np.random.default_rng(params.seed)
    for _, idx in sorted(df.groupby(_stratum(df)).groups.items()):
        idx = np.asarray(idx)[rng.permutation(len(idx))]
        n_train = int(round(params.train * len(idx)))
        n_dev = int(round(params.dev * len(idx)))
        out.loc[idx[:n_train]] = "train"
        out.loc[idx[n_train : n_train + n_dev]] = "dev"
        out.loc[idx[n_train + n_dev :]] = "test"
    return out


OFFICIAL_TO_SPLIT = {"train": "train", "dev": "dev", "eval": "test"}


def official_split(df: pd.DataFrame, params: SplitParams) -> pd.Series:
    """Keep each corpus's own partitions (train -> train, dev -> dev, eval -> test).

    Rows from sources without official partitions (``partition == ""``) are split
    speaker-disjointly by :func:`stratified_group_split`, so corpora can be mixed.
    """
    partition = df["partition"].astype(str) if "partition" in df.columns else pd.Series("", index=df.index)
    unknown = sorted(set(partition) - set(OFFICIAL_TO_SPLIT) - {""})
    if unknown:
        raise ValueError(
            f"split.strategy=official: unknown partition values {unknown}; expected {sorted(OFFICIAL_TO_SPLIT)}"
        )
    out = partition.map(OFFICIAL_TO_SPLIT).fillna("").astype(object)
    rest = partition == ""
    if rest.any():
        log.info(
            "official split: %d clips from sources without official partitions are split by speaker", int(rest.sum())
        )
        out.loc[rest] = stratified_group_split(df[rest], params)
    return out


def choose_unseen_attacks(df: pd.DataFrame, params: SplitParams) -> list[str]:
    """The named unseen attacks, else a seeded ``unseen_attack_fraction`` of the pool's attacks."""
    attacks = sorted(set(df.loc[df["label"] == "spoof", "attack"]))
    if params.unseen_attacks:
        missing = sorted(set(params.unseen_attacks) - set(attacks))
        if missing:
            raise ValueError(f"split.unseen_attacks: {missing} not in the training pool's attacks {attacks}")
        if set(params.unseen_attacks) == set(attacks):
            raise ValueError("split.unseen_attacks names every attack: nothing would be left to train on")
        return sorted(params.unseen_attacks)
    n = max(1, int(round(params.unseen_attack_fraction * len(attacks))))
    if n >= len(attacks):
        raise ValueError(f"split.unseen_attack_fraction={params.unseen_attack_fraction} leaves no attack to train on")
    rng = np.random.default_rng(params.seed)
    return sorted(np.asarray(attacks)[rng.permutation(len(attacks))[:n]].tolist())


def assign_splits(manifest: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """Add the ``split`` column: train/dev/test for the training pool, ``eval:<name>`` for eval sets.

    Raises:
        ValueError: when a split would lack a class (too few speakers), naming the counts.
    """
    out = manifest.copy()
    pool = out["eval_set"] == ""
    out["split"] = ""
    if params.strategy == "random":
        log.warning(
            "split.strategy=random puts one speaker's clips in several splits: scores are inflated "
            "by speaker leakage; use it only to reproduce leaky published numbers"
        )
        out.loc[pool, "split"] = random_split(out[pool], params)
    elif params.strategy == "official":
        out.loc[pool, "split"] = official_split(out[pool], params)
    else:
        out.loc[pool, "split"] = stratified_group_split(out[pool], params)
    if params.strategy == "unseen_attacks":
        unseen = choose_unseen_attacks(out[pool], params)
        held = pool & out["attack"].isin(unseen)
        # Unseen attacks are test-only. Their clips from train/dev speakers cannot move to test
        # without leaking those speakers, so they are set aside, visibly, as "excluded".
        out.loc[held & (out["split"] != "test"), "split"] = "excluded"
        log.info(
            "unseen attacks (test only): %s; %d of their clips set aside from train/dev speakers",
            ", ".join(unseen),
            int((out["split"] == "excluded").sum()),
        )
    out.loc[~pool, "split"] = "eval:" + out.loc[~pool, "eval_set"]
    for split in SPLITS:
        labels = set(out.loc[out["split"] == split, "label"])
        if labels != {"bonafide", "spoof"}:
            raise ValueError(
                f"split {split!r} has labels {sorted(labels) or 'none'}: the training pool has "
                f"{out.loc[pool, 'speaker'].nunique()} speakers, too few to give every split both classes; "
                f"add data or change split fractions"
            )
    return out


def split_report(df: pd.DataFrame) -> dict:
    """Counts per split, class, attack and source; and leakage.

    Leakage covers speakers shared between train/dev/test, identical audio (same
    ``content_hash``) shared between them, and identical audio or speakers shared between the
    training pool and each eval set.
    """
    report: dict = {"splits": {}, "leakage": {}}
    for split, part in df.groupby("split", sort=True):
        report["splits"][split] = {
            "n_clips": int(len(part)),
            "n_speakers": int(part["speaker"].nunique()),
            "n_bonafide": int((part["label"] == "bonafide").sum()),
            "n_spoof": int((part["label"] == "spoof").sum()),
            "attacks": {
                str(k): int(v)
                for k, v in part.loc[part["label"] == "spoof", "attack"].value_counts().sort_index().items()
            },
            "sources": {str(k): int(v) for k, v in part["source"].value_counts().sort_index().items()},
        }
    pool = df[df["split"].isin(SPLITS)]
    speaker_splits = pool.groupby("speaker")["split"].nunique()
    shared = sorted(speaker_splits[speaker_splits > 1].index.astype(str))
    hashes = pool.loc[_hashes(pool) != ""]
    hash_splits = hashes.groupby("content_hash")["split"].nunique() if len(hashes) else pd.Series(dtype=int)
    dup = sorted(hash_splits[hash_splits > 1].index.astype(str))
    examples = [sorted(hashes.loc[hashes["content_hash"] == h, "utt_id"].astype(str))[:3] for h in dup[:10]]
    report["leakage"] = {
        "shared_speakers": shared,
        "n_shared_speakers": len(shared),
        "n_shared_audio": len(dup),
        "shared_audio_examples": examples,
        "eval_sets": _eval_overlap(df, pool),
    }
    return report


def _eval_overlap(df: pd.DataFrame, pool: pd.DataFrame) -> dict:
    """Per eval set in ``df``: :func:`eval_overlap` with the training pool."""
    return {
        str(split)[5:]: eval_overlap(part, pool)
        for split, part in sorted(df[df["split"].astype(str).str.startswith("eval:")].groupby("split"))
    }


def eval_overlap(part: pd.DataFrame, pool: pd.DataFrame) -> dict:
    """What one eval set shares with the training pool: clips of identical audio, and speakers.

    Args:
        part: the eval set's manifest rows (``content_hash``, ``speaker``, ``utt_id``).
        pool: the training pool's rows (train/dev/test; other rows are ignored).
    """
    pool = pool[pool["split"].isin(SPLITS)] if "split" in pool.columns else pool
    in_pool = _hashes(part).isin(set(_hashes(pool)) - {""})
    return {
        "n_clips_in_training_pool": int(in_pool.sum()),
        "examples": sorted(part.loc[in_pool, "utt_id"].astype(str))[:3],
        "n_shared_speakers": len(set(part["speaker"].astype(str)) & set(pool["speaker"].astype(str))),
    }


def eval_leak(name: str, overlap: dict) -> str | None:
    """The problem an :func:`eval_overlap` shows, as a readable line, or ``None``.

    Identical audio in an eval set and the training pool is a leak; shared speakers are not (an
    eval corpus may reuse a training corpus's voices, as ASVspoof 2021 reuses 2019's).
    """
    if not overlap["n_clips_in_training_pool"]:
        return None
    return (
        f"eval set {name!r}: {overlap['n_clips_in_training_pool']} clips identical to "
        f"training-pool audio, e.g. {overlap['examples']}"
    )


def leaks(report: dict) -> list[str]:
    """What in a :func:`split_report` breaks a leakage-free split, as readable lines ([] if nothing)."""
    leak = report["leakage"]
    problems = []
    if leak["n_shared_speakers"]:
        problems.append(
            f"{leak['n_shared_speakers']} speakers in more than one split, e.g. {leak['shared_speakers'][:5]}"
        )
    if leak["n_shared_audio"]:
        problems.append(
            f"{leak['n_shared_audio']} identical clips in more than one split, e.g. {leak['shared_audio_examples'][:3]}"
        )
    problems += [p for name, overlap in leak["eval_sets"].items() if (p := eval_leak(name, overlap))]
    return problems
