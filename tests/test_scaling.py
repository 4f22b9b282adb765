"""Tests for deepfake_audio.scaling: train-only fitting, standardisation, constant features, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepfake_audio.features import FeatureLayout, frame_schema, frames_table, read_frames, utterance_schema
from deepfake_audio.io import write_table
from deepfake_audio.scaling import (
    MIN_STD,
    Scaler,
    apply_frame_scaler,
    apply_table_scaler,
    fit_frame_scaler,
    fit_table_scaler,
)

N_FEAT, N_FRAMES = 5, 7
FRAME_NAMES = ("a", "b", "const", "big", "tiny")
UTT_NAMES = ("u0_mean", "u0_std", "u1_mean", "const_mean", "big_mean")


def _frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, F, T) with per-feature offsets and scales far from 0 and 1, one constant feature."""
    x = rng.standard_normal((n, N_FEAT, N_FRAMES))
    x *= np.array([1.0, 30.0, 0.0, 500.0, 1e-3])[None, :, None]
    x += np.array([5.0, -200.0, 3.25, 4000.0, 0.01])[None, :, None]
    return x.astype(np.float32)


def _table(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, len(UTT_NAMES)))
    x *= np.array([2.0, 0.1, 40.0, 0.0, 800.0])
    x += np.array([-3.0, 1.0, 100.0, -7.5, 3000.0])
    return x.astype(np.float32)


def _write_frames(path: Path, ids: list[str], x: np.ndarray, *, row_group_size: int = 4) -> Path:
    layout = FeatureLayout(FRAME_NAMES, (), N_FRAMES, frame_groups=("g1", "g1", "g2", "g3", "g3"))
    write_table(path, frames_table(frame_schema(layout), ids, x), row_group_size=row_group_size)
    return path


def _write_utts(path: Path, ids: list[str], x: np.ndarray) -> Path:
    schema = utterance_schema(FeatureLayout((), UTT_NAMES, 1))
    cols = [pa.array(ids, pa.string())] + [pa.array(x[:, j], pa.float32()) for j in range(x.shape[1])]
    write_table(path, pa.Table.from_arrays(cols, schema=schema), row_group_size=4)
    return path


@pytest.fixture
def data(rng: np.random.Generator, tmp_path: Path) -> dict:
    """30 clips: ``t*`` train (20), ``d*`` dev (10), interleaved so batches mix them."""
    ids = [f"t{i:02d}" if i % 3 else f"d{i:02d}" for i in range(30)]
    train = {u for u in ids if u.startswith("t")}
    frames, table = _frames(rng, 30), _table(rng, 30)
    return {
        "ids": ids,
        "train": train,
        "frames": frames,
        "table": table,
        "frames_path": _write_frames(tmp_path / "frames.parquet", ids, frames),
        "utts_path": _write_utts(tmp_path / "utterances.parquet", ids, table),
        "is_train": np.array([u in train for u in ids]),
    }


# ---------------------------------------------------------------- fitting


def test_frame_scaler_matches_numpy_over_train_frames(data: dict) -> None:
    scaler = fit_frame_scaler(data["frames_path"], data["train"], batch_size=7)
    train = data["frames"][data["is_train"]].astype(np.float64)  # (n, F, T)
    per_feature = train.transpose(1, 0, 2).reshape(N_FEAT, -1)
    assert scaler.names == FRAME_NAMES
    np.testing.assert_allclose(scaler.mean, per_feature.mean(axis=1), rtol=1e-9, atol=1e-9)
    expected_std = np.maximum(per_feature.std(axis=1), MIN_STD)
    np.testing.assert_allclose(scaler.std, expected_std, rtol=1e-6)
    assert scaler.mean.dtype == np.float64 and scaler.std.dtype == np.float64


def test_table_scaler_matches_numpy_over_train_rows(data: dict) -> None:
    scaler = fit_table_scaler(data["utts_path"], data["train"], batch_size=5)
    train = data["table"][data["is_train"]].astype(np.float64)
    assert scaler.names == UTT_NAMES
    np.testing.assert_allclose(scaler.mean, train.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(scaler.std, np.maximum(train.std(axis=0), MIN_STD), rtol=1e-6)


def test_batch_size_does_not_matter(data: dict) -> None:
    a = fit_frame_scaler(data["frames_path"], data["train"], batch_size=1)
    b = fit_frame_scaler(data["frames_path"], data["train"], batch_size=1000)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)
    np.testing.assert_allclose(a.std, b.std, rtol=1e-9)


def test_dev_rows_do_not_influence_the_scaler(data: dict, tmp_path: Path) -> None:
    """Rewrite every dev row with wild values: the fitted scalers are unchanged."""
    frames, table = data["frames"].copy(), data["table"].copy()
    dev = ~data["is_train"]
    frames[dev] = 1e4
    table[dev] = -1e4
    f2 = _write_frames(tmp_path / "frames2.parquet", data["ids"], frames)
    u2 = _write_utts(tmp_path / "utts2.parquet", data["ids"], table)
    for fit, a, b in ((fit_frame_scaler, data["frames_path"], f2), (fit_table_scaler, data["utts_path"], u2)):
        before, after = fit(a, data["train"]), fit(b, data["train"])
        np.testing.assert_array_equal(before.mean, after.mean)
        np.testing.assert_array_equal(before.std, after.std)
    # ...whereas a scaler fitted on every row does move (the check above can fail).
    everything = set(data["ids"])
    assert not np.allclose(fit_table_scaler(data["utts_path"], everything).mean, fit_table_scaler(u2, everything).mean)


def test_no_train_rows_raises(data: dict) -> None:
    with pytest.raises(ValueError, match="zero train rows"):
        fit_frame_scaler(data["frames_path"], {"nobody"})
    with pytest.raises(ValueError, match="zero train rows"):
        fit_table_scaler(data["utts_path"], set())


# ---------------------------------------------------------------- transforming


def test_transformed_train_frames_are_standard(data: dict, tmp_path: Path) -> None:
    scaler = fit_frame_scaler(data["frames_path"], data["train"])
    n = apply_frame_scaler(scaler, data["frames_path"], tmp_path / "scaled.parquet", batch_size=4)
    assert n == 30
    ids, z = read_frames(tmp_path / "scaled.parquet")
    assert ids == data["ids"] and z.dtype == np.float32 and z.shape == (30, N_FEAT, N_FRAMES)
    train = z[data["is_train"]].transpose(1, 0, 2).reshape(N_FEAT, -1).astype(np.float64)
    varying = [i for i, name in enumerate(FRAME_NAMES) if name != "const"]
    np.testing.assert_allclose(train[varying].mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(train[varying].std(axis=1), 1.0, rtol=1e-4)


def test_transformed_train_table_is_standard(data: dict, tmp_path: Path) -> None:
    scaler = fit_table_scaler(data["utts_path"], data["train"])
    assert apply_table_scaler(scaler, data["utts_path"], tmp_path / "scaled.parquet", batch_size=7) == 30
    out = pq.read_table(tmp_path / "scaled.parquet").to_pandas()
    assert out["utt_id"].tolist() == data["ids"]
    z = out[list(UTT_NAMES)].to_numpy(dtype=np.float64)[data["is_train"]]
    varying = [i for i, name in enumerate(UTT_NAMES) if name != "const_mean"]
    np.testing.assert_allclose(z[:, varying].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z[:, varying].std(axis=0), 1.0, rtol=1e-4)


def test_constant_features_are_centred_not_blown_up(data: dict, tmp_path: Path) -> None:
    f_scaler = fit_frame_scaler(data["frames_path"], data["train"])
    t_scaler = fit_table_scaler(data["utts_path"], data["train"])
    const_f, const_t = FRAME_NAMES.index("const"), UTT_NAMES.index("const_mean")
    assert f_scaler.std[const_f] == MIN_STD and t_scaler.std[const_t] == MIN_STD
    apply_frame_scaler(f_scaler, data["frames_path"], tmp_path / "f.parquet")
    apply_table_scaler(t_scaler, data["utts_path"], tmp_path / "u.parquet")
    _, z = read_frames(tmp_path / "f.parquet")
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z[:, const_f], 0.0)
    u = pq.read_table(tmp_path / "u.parquet").column("const_mean").to_numpy()
    np.testing.assert_array_equal(u, 0.0)


def test_large_offset_small_spread_is_measured_accurately(rng: np.random.Generator, tmp_path: Path) -> None:
    """Streaming sums of squares lose precision when mean >> std: float64 sums keep 1e3 +- 1e-2
    (mean/std 1e5, beyond any real feature) within 0.1%; float32 sums would be off by orders of magnitude."""
    x = (1e3 + 1e-2 * rng.standard_normal((4000, len(UTT_NAMES)))).astype(np.float32)
    ids = [f"t{i}" for i in range(len(x))]
    scaler = fit_table_scaler(_write_utts(tmp_path / "u.parquet", ids, x), set(ids), batch_size=512)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(scaler.std, x64.std(axis=0), rtol=1e-3)
    z = scaler.transform_table(x)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-3)


def test_apply_keeps_schema_metadata_and_row_groups(data: dict, tmp_path: Path) -> None:
    scaler = fit_frame_scaler(data["frames_path"], data["train"])
    apply_frame_scaler(scaler, data["frames_path"], tmp_path / "scaled.parquet", batch_size=4)
    src, dst = pq.ParquetFile(data["frames_path"]), pq.ParquetFile(tmp_path / "scaled.parquet")
    assert dst.schema_arrow == src.schema_arrow
    assert dst.schema_arrow.metadata == src.schema_arrow.metadata
    assert dst.metadata.num_rows == src.metadata.num_rows
    t_scaler = fit_table_scaler(data["utts_path"], data["train"])
    apply_table_scaler(t_scaler, data["utts_path"], tmp_path / "u.parquet")
    assert pq.ParquetFile(tmp_path / "u.parquet").schema_arrow == pq.ParquetFile(data["utts_path"]).schema_arrow
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "frames.parquet",
        "scaled.parquet",
        "u.parquet",
        "utterances.parquet",
    ]


def test_transform_values(data: dict, tmp_path: Path) -> None:
    """Every row, train or dev, is (x - mean) / std with the train statistics."""
    scaler = fit_frame_scaler(data["frames_path"], data["train"])
    apply_frame_scaler(scaler, data["frames_path"], tmp_path / "scaled.parquet")
    _, z = read_frames(tmp_path / "scaled.parquet")
    expected = (data["frames"].astype(np.float64) - scaler.mean[None, :, None]) / scaler.std[None, :, None]
    np.testing.assert_allclose(z, expected.astype(np.float32), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- JSON


def test_scaler_json_round_trip(data: dict) -> None:
    scaler = fit_frame_scaler(data["frames_path"], data["train"])
    text = json.dumps(scaler.to_json())
    back = Scaler.from_json(json.loads(text))
    assert back.names == scaler.names
    np.testing.assert_array_equal(back.mean, scaler.mean)
    np.testing.assert_array_equal(back.std, scaler.std)
    assert back.mean.dtype == np.float64
    x = data["frames"][:3]
    np.testing.assert_array_equal(back.transform_frames(x), scaler.transform_frames(x))
    assert set(json.loads(text)) == {"names", "mean", "std"}
