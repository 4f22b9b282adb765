"""The manifest: one row per clip, the contract between the data stages (see DESIGN.md)."""

from __future__ import annotations

import pandas as pd

COLUMNS = ("utt_id", "path", "label", "speaker", "attack", "source", "duration_s", "sample_rate")
"""Binding columns, in this order. Extra columns may follow."""

EXTRA_COLUMNS = ("eval_set", "partition", "content_hash", "engine", "engine_version", "voice")
"""Optional columns this project fills: the eval set a row belongs to ("" for the training pool);
the corpus's official partition (train/dev/eval, "" where it has none); a hash of the decoded
samples (identical audio has the same hash; "" if unreadable); and for generated spoofs the
engine, its version and the voice it spoke with ("-" for copy-synthesis, which keeps the source
clip's voice)."""

CONDITION_COLUMNS = ("subset", "codec", "channel", "source_corpus", "vocoder", "language", "architecture", "version")
"""Optional per-clip conditions that corpora record, "" where unknown: the official trial subset
(ASVspoof 2021 ``eval``/``progress``/``hidden_track``), the codec and transmission channel a clip
went through, the corpus its text or source speech came from, the vocoder or TTS architecture of a
spoof, the language, and the corpus version (Fake-or-Real). Scores carry them, and every metrics
block gets ``per_condition_eer`` for each one a set fills."""

LABEL_VALUES = ("bonafide", "spoof")


def validate_manifest(df: pd.DataFrame, *, where: str = "manifest") -> pd.DataFrame:
    """Check binding columns, label values and unique ids. Returns ``df`` unchanged."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; required: {list(COLUMNS)}")
    bad = df.loc[~df["label"].isin(LABEL_VALUES), "label"]
    if len(bad):
        raise ValueError(f"{where}: label must be one of {LABEL_VALUES}, got {bad.iloc[0]!r} (row {bad.index[0]})")
    dup = df["utt_id"][df["utt_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{where}: utt_id must be unique, {dup.iloc[0]!r} appears more than once")
    bona_attack = df.loc[(df["label"] == "bonafide") & (df["attack"] != "-"), "attack"]
    if len(bona_attack):
        raise ValueError(f"{where}: bona fide rows must have attack '-', got {bona_attack.iloc[0]!r}")
    return df


def order_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Binding columns first, then the known extras, then anything else; rows sorted by utt_id."""
    for col in EXTRA_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    for col in CONDITION_COLUMNS:
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    rest = [c for c in df.columns if c not in COLUMNS and c not in EXTRA_COLUMNS]
    df = df[list(COLUMNS) + list(EXTRA_COLUMNS) + rest]
    df = df.astype(
        {
            "utt_id": str,
            "path": str,
            "label": str,
            "speaker": str,
            "attack": str,
            "source": str,
            "duration_s": "float64",
            "sample_rate": "int64",
            **{col: str for col in EXTRA_COLUMNS},
        }
    )
    return df.sort_values("utt_id", kind="stable").reset_index(drop=True)
