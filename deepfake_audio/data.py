"""The ``download`` step: materialise every configured source into one manifest."""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from joblib import Parallel, delayed

from deepfake_audio.logs import progress
from deepfake_audio.manifest import order_columns, validate_manifest
from deepfake_audio.params import DataParams
from deepfake_audio.sources import build_source

log = logging.getLogger(__name__)


def fingerprint(path: str | Path) -> tuple[float, int, str]:
    """``(duration_s, sample_rate, content_hash)`` of one file, from its decoded samples.

    The hash (BLAKE2b, 128 bits) covers the decoded samples as float32 and their channel count,
    not the file bytes: the same audio stored as WAV and as FLAC, or under two names, hashes
    the same. An unreadable file gives ``(nan, 0, "")``; the features stage rejects it with its
    reason, so it never vanishes silently.
    """
    try:
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError):
        return math.nan, 0, ""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.int64(samples.shape[1]).tobytes())
    digest.update(np.ascontiguousarray(samples).tobytes())
    return samples.shape[0] / sample_rate, int(sample_rate), digest.hexdigest()


def _fingerprint_many(paths: list[str]) -> list[tuple[float, int, str]]:
    return [fingerprint(p) for p in paths]


def add_fingerprints(rows: pd.DataFrame, *, n_jobs: int, chunk: int = 256) -> pd.DataFrame:
    """Fill ``duration_s``, ``sample_rate`` and ``content_hash`` by decoding every clip once."""
    paths = rows["path"].tolist()
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    jobs = (delayed(_fingerprint_many)(c) for c in chunks)
    results = Parallel(n_jobs=n_jobs, return_as="generator")(jobs) if n_jobs != 1 else map(_fingerprint_many, chunks)
    flat = [r for part in progress(results, desc="hash audio", total=len(chunks), unit="chunk") for r in part]
    out = rows.copy()
    out["duration_s"] = [r[0] for r in flat]
    out["sample_rate"] = [r[1] for r in flat]
    out["content_hash"] = [r[2] for r in flat]
    return out


def source_names(data: DataParams) -> list[str]:
    """Names of the training sources: their ``name`` key, else their kind (numbered if repeated)."""
    kinds = [spec["kind"] for spec in data.sources]
    names = []
    for i, spec in enumerate(data.sources):
        name = spec.get("name") or (spec["kind"] if kinds.count(spec["kind"]) == 1 else f"{spec['kind']}{i}")
        names.append(str(name))
    if len(set(names)) != len(names):
        raise ValueError(f"data.sources: source names must be unique, got {names}")
    return names


def _build(name: str, spec: dict, *, eval_set: str, key: str, out_dir: Path, n_jobs: int) -> pd.DataFrame:
    """One source spec's rows, ids prefixed with ``name`` and tagged with ``source`` and ``eval_set``."""
    clean = {k: v for k, v in spec.items() if k != "name"}
    rows = build_source(clean, key=key, out_dir=out_dir / name, n_jobs=n_jobs)
    if rows.empty:
        raise ValueError(f"{key}: the source produced no clips")
    rows["utt_id"] = name + "/" + rows["utt_id"].astype(str)
    # A file-level group ("file:<relative path>") is unique only within its source.
    speaker = rows["speaker"].astype(str)
    rows["speaker"] = speaker.where(~speaker.str.startswith("file:"), "file:" + name + "/" + speaker.str[5:])
    rows["source"] = name
    rows["eval_set"] = eval_set
    log.info(
        "%s (%s): %d clips, %d bona fide, %d spoof",
        name,
        spec["kind"],
        len(rows),
        int((rows["label"] == "bonafide").sum()),
        int((rows["label"] == "spoof").sum()),
    )
    return rows


def _finish(parts: list[pd.DataFrame], *, n_jobs: int) -> pd.DataFrame:
    manifest = order_columns(pd.concat(parts, ignore_index=True))
    manifest = add_fingerprints(manifest, n_jobs=n_jobs)
    unreadable = int((manifest["content_hash"] == "").sum())
    if unreadable:
        log.warning("%d clips could not be decoded; the features stage rejects them with their reason", unreadable)
    return validate_manifest(manifest)


def materialize(data: DataParams, *, out_dir: Path, n_jobs: int) -> pd.DataFrame:
    """Build every training source (``data.sources``); return the merged, validated manifest.

    ``utt_id`` is prefixed with the source name, so ids stay unique across sources; ``eval_set``
    is "". Eval sets are built one at a time, each by its own stage: :func:`materialize_eval_set`.
    """
    check_eval_set_names(data)
    parts = [
        _build(name, spec, eval_set="", key=f"data.sources[{i}]", out_dir=out_dir, n_jobs=n_jobs)
        for i, (name, spec) in enumerate(zip(source_names(data), data.sources))
    ]
    return _finish(parts, n_jobs=n_jobs)


def check_eval_set_names(data: DataParams) -> None:
    """An eval set must not share its name with a training source (ids and folders would clash)."""
    clash = sorted(set(source_names(data)) & set(data.eval_sets))
    if clash:
        raise ValueError(
            f"data.eval_sets.{clash[0]}: the name is also a training source's name; rename one "
            f"(a source's name is its `name` key, else its kind)"
        )


def materialize_eval_set(data: DataParams, name: str, *, out_dir: Path, n_jobs: int) -> pd.DataFrame:
    """Build the eval set ``data.eval_sets[name]``: its validated manifest, ``eval_set == name``.

    Its clips are scored, never trained on: the split stage never sees them, and its ids are
    prefixed with ``name`` as a training source's are with its own.
    """
    if name not in data.eval_sets:
        known = ", ".join(sorted(data.eval_sets)) or "none"
        raise ValueError(f"data.eval_sets has no set {name!r} (configured: {known}); run dvc repro after editing")
    check_eval_set_names(data)
    rows = _build(
        name, data.eval_sets[name], eval_set=name, key=f"data.eval_sets.{name}", out_dir=out_dir, n_jobs=n_jobs
    )
    return _finish([rows], n_jobs=n_jobs)
