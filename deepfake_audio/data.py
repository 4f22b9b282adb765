"""The ``download`` step: materialise every configured source into one manifest."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from deepfake_audio.manifest import order_columns, validate_manifest
from deepfake_audio.params import DataParams
from deepfake_audio.sources import build_source

log = logging.getLogger(__name__)


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


def materialize(data: DataParams, *, out_dir: Path, n_jobs: int) -> pd.DataFrame:
    """Build every training source and eval set; return the merged, validated manifest.

    ``utt_id`` is prefixed with the source name, so ids stay unique across sources. Rows of an
    eval set carry its name in ``eval_set``; training rows have ``eval_set == ""``.
    """
    parts = []
    entries = [(name, spec, "", f"data.sources[{i}]")
               for i, (name, spec) in enumerate(zip(source_names(data), data.sources))]
    entries += [(name, spec, name, f"data.eval_sets.{name}") for name, spec in data.eval_sets.items()]
    clash = sorted(set(source_names(data)) & set(data.eval_sets))
    if clash:
        raise ValueError(f"data.eval_sets.{clash[0]}: the name is also a training source's name; rename one "
                         f"(a source's name is its `name` key, else its kind)")
    for name, spec, eval_set, key in entries:
        clean = {k: v for k, v in spec.items() if k != "name"}
        rows = build_source(clean, key=key, out_dir=out_dir / name, n_jobs=n_jobs)
        if rows.empty:
            raise ValueError(f"{key}: the source produced no clips")
        rows["utt_id"] = name + "/" + rows["utt_id"].astype(str)
        rows["source"] = name
        rows["eval_set"] = eval_set
        log.info("%s (%s): %d clips, %d bona fide, %d spoof", name, spec["kind"], len(rows),
                 int((rows["label"] == "bonafide").sum()), int((rows["label"] == "spoof").sum()))
        parts.append(rows)
    manifest = order_columns(pd.concat(parts, ignore_index=True))
    return validate_manifest(manifest)
