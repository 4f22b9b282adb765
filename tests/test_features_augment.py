"""Augmented train copies through the features stage: planned, extracted, seeded, train-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from deepfake_audio.augment import AugmentConfig
from deepfake_audio.features import extract_features, read_frames
from deepfake_audio.params import AudioParams, FeatureParams, Params
from stages.features import with_augmented_copies
from tests.conftest import synth, write_signal

SR = 16000


@pytest.fixture
def manifest(tmp_path: Path) -> pd.DataFrame:
    rows = []
    for i, split in enumerate(["train", "train", "dev", "test", "eval:bench"]):
        path = write_signal(tmp_path / f"c{i}.wav", synth("harmonic", n_samples=SR, sample_rate=SR, seed=i), SR)
        rows.append(
            {
                "utt_id": f"c{i}",
                "path": str(path),
                "split": split,
                "speaker": f"s{i}",
                "label": "bonafide",
                "attack": "-",
                "content_hash": f"h{i}",
            }
        )
    return pd.DataFrame(rows)


def _params(copies: int, **augment) -> Params:
    return Params(features=FeatureParams(n_jobs=1, chunk_size=2, augment=AugmentConfig(copies=copies, **augment)))


def test_copies_only_for_train_and_inherit_speaker_and_split(manifest: pd.DataFrame) -> None:
    out = with_augmented_copies(manifest, _params(2))
    copies = out[out["aug_seed"] >= 0]
    assert len(out) == len(manifest) + 4 and len(copies) == 4
    assert set(copies["source_utt_id"]) == {"c0", "c1"} and (copies["split"] == "train").all()
    src = manifest.set_index("utt_id")
    assert (copies["speaker"].to_numpy() == src.loc[copies["source_utt_id"], "speaker"].to_numpy()).all()
    assert (copies["content_hash"] == "").all()  # a copy is not identical audio
    originals = out[out["aug_seed"] < 0]
    assert originals.drop(columns=["source_utt_id", "aug_seed"]).equals(manifest)
    assert with_augmented_copies(manifest, _params(0)).shape[0] == len(manifest)


def _extract(manifest: pd.DataFrame, params: Params, out: Path) -> tuple[list[str], np.ndarray]:
    extract_features(
        manifest,
        audio=AudioParams(duration_s=1.0),
        features=params.features,
        frames_path=out / "frames.parquet",
        utterances_path=out / "utterances.parquet",
        rejects_path=out / "rejects.csv",
    )
    return read_frames(out / "frames.parquet")


def test_augmented_copies_are_extracted_deterministically_and_differ_from_their_source(
    manifest: pd.DataFrame, tmp_path: Path
) -> None:
    params = _params(2, ops=("noise", "band_limit"))
    full = with_augmented_copies(manifest, params)
    ids, x = _extract(full, params, tmp_path / "a")
    assert ids == full["utt_id"].tolist() and np.isfinite(x).all()
    by_id = dict(zip(ids, x))
    for copy in ("c0#aug0", "c0#aug1", "c1#aug0"):
        source = copy.split("#")[0]
        assert np.abs(by_id[copy] - by_id[source]).max() > 1e-2, f"{copy} equals its source"
    assert np.abs(by_id["c0#aug0"] - by_id["c0#aug1"]).max() > 1e-3  # two copies, two draws
    ids_b, x_b = _extract(full, params, tmp_path / "b")
    assert ids_b == ids and np.array_equal(x, x_b)
    # Original clips are untouched by augmentation: same features as a run without copies.
    plain = with_augmented_copies(manifest, _params(0))
    ids_c, x_c = _extract(plain, _params(0), tmp_path / "c")
    assert np.array_equal(x_c, np.stack([by_id[u] for u in ids_c]))
    assert pq.read_table(tmp_path / "a" / "utterances.parquet").num_rows == len(full)


def test_time_stretched_copy_still_has_the_clip_length(manifest: pd.DataFrame, tmp_path: Path) -> None:
    params = _params(1, ops=("time_stretch",), stretch_rate=(1.2, 1.25))
    full = with_augmented_copies(manifest, params)
    ids, x = _extract(full, params, tmp_path)
    assert "c0#aug0" in ids and x.shape[0] == len(full) and np.isfinite(x).all()
