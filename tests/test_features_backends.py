"""The features stage's outputs are byte-identical whatever the backend (joblib, dask) and n_jobs."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from deepfake_audio.features import extract_features
from deepfake_audio.params import AudioParams, FeatureParams
from tests.conftest import synth, write_bad_files, write_signal

SR = 16000


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("clips")
    rows = [{"utt_id": f"c{i:02d}", "path": str(write_signal(root / f"c{i:02d}.wav",
                                                             synth(kind, n_samples=SR, sample_rate=SR, seed=i), SR))}
            for i, kind in enumerate(["harmonic", "noise", "sine"] * 5)]
    bad = write_bad_files(root / "bad")
    rows += [{"utt_id": f"bad_{name}", "path": str(path)} for name, path in sorted(bad.items())][:3]
    return pd.DataFrame(rows)


def _digests(manifest: pd.DataFrame, out: Path, **options: object) -> dict[str, str]:
    features = FeatureParams(chunk_size=4, max_reject_fraction=1.0, **options)
    extract_features(manifest, audio=AudioParams(duration_s=1.0), features=features,
                     frames_path=out / "frames.parquet", utterances_path=out / "utterances.parquet",
                     rejects_path=out / "rejects.csv")
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
            for name in ("frames.parquet", "utterances.parquet", "rejects.csv")}


def test_outputs_are_byte_identical_across_backends_and_n_jobs(manifest: pd.DataFrame, tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    reference = _digests(manifest, tmp_path / "joblib1", n_jobs=1)
    assert _digests(manifest, tmp_path / "joblib2", n_jobs=2) == reference
    assert _digests(manifest, tmp_path / "dask2", n_jobs=2, backend="dask") == reference
    rejects = pd.read_csv(tmp_path / "dask2" / "rejects.csv")
    assert len(rejects) == 3, "bad files are rejected on dask workers too"


def test_dask_backend_on_a_running_scheduler(manifest: pd.DataFrame, tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    reference = _digests(manifest, tmp_path / "joblib", n_jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        got = _digests(manifest, tmp_path / "dask", backend="dask", dask_address=cluster.scheduler_address)
    assert got == reference


def test_backend_params_are_validated() -> None:
    from deepfake_audio.errors import ParamError
    from deepfake_audio.params import from_dict

    with pytest.raises(ParamError, match="dask_address"):
        from_dict(FeatureParams, {"dask_address": "tcp://x:8786"}, prefix="features")
    with pytest.raises(ParamError, match="joblib, dask"):
        from_dict(FeatureParams, {"backend": "ray"}, prefix="features")
    assert from_dict(FeatureParams, {"backend": "dask"}, prefix="features").dask_address is None
