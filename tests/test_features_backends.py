"""The features stage's outputs are byte-identical whatever the backend (joblib, dask) and n_jobs,
and ``backend: dask`` really computes on a dask cluster (equal outputs alone would also hold if
joblib ran instead)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from deepfake_audio.features import extract_features
from deepfake_audio.params import AudioParams, FeatureParams
from tests.conftest import synth, write_bad_files, write_signal

SR = 16000
CHUNK_SIZE = 4


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("clips")
    rows = [
        {
            "utt_id": f"c{i:02d}",
            "path": str(write_signal(root / f"c{i:02d}.wav", synth(kind, n_samples=SR, sample_rate=SR, seed=i), SR)),
        }
        for i, kind in enumerate(["harmonic", "noise", "sine"] * 5)
    ]
    bad = write_bad_files(root / "bad")
    rows += [{"utt_id": f"bad_{name}", "path": str(path)} for name, path in sorted(bad.items())][:3]
    return pd.DataFrame(rows)


def _digests(manifest: pd.DataFrame, out: Path, **options: object) -> dict[str, str]:
    features = FeatureParams(chunk_size=CHUNK_SIZE, max_reject_fraction=1.0, **options)
    extract_features(
        manifest,
        audio=AudioParams(duration_s=1.0),
        features=features,
        frames_path=out / "frames.parquet",
        utterances_path=out / "utterances.parquet",
        rejects_path=out / "rejects.csv",
    )
    return {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in ("frames.parquet", "utterances.parquet", "rejects.csv")
    }


def _n_chunks(manifest: pd.DataFrame) -> int:
    return -(-len(manifest) // CHUNK_SIZE)


def _record_computed_tasks(scheduler) -> list[str]:
    """Keys of the tasks ``scheduler`` sees computed from now on (processing -> memory: scattered
    data never passes through processing)."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    computed: list[str] = []

    class Recorder(SchedulerPlugin):
        def transition(self, key, start, finish, *args, **kwargs) -> None:
            if (start, finish) == ("processing", "memory"):
                computed.append(str(key))

    scheduler.add_plugin(Recorder(), name="record-computed-tasks")
    return computed


def test_outputs_are_byte_identical_across_backends_and_n_jobs(
    manifest: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("dask.distributed")
    reference = _digests(manifest, tmp_path / "joblib1", n_jobs=1)
    assert _digests(manifest, tmp_path / "joblib2", n_jobs=2) == reference

    started: list[dict] = []  # each LocalCluster the dask backend starts: its workers and computed tasks

    class RecordedCluster(distributed.LocalCluster):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(
                {
                    "cluster": self,
                    "n_workers": len(self.scheduler.workers),
                    "computed": _record_computed_tasks(self.scheduler),
                }
            )

    monkeypatch.setattr(distributed, "LocalCluster", RecordedCluster)
    assert _digests(manifest, tmp_path / "dask2", n_jobs=2, backend="dask") == reference
    assert len(started) == 1, "backend: dask starts one LocalCluster"
    assert started[0]["n_workers"] == 2  # n_jobs worker processes
    assert len(started[0]["computed"]) == _n_chunks(manifest), "every chunk is computed on the dask cluster"
    assert started[0]["cluster"].status.name == "closed"  # and stopped afterwards
    rejects = pd.read_csv(tmp_path / "dask2" / "rejects.csv")
    assert len(rejects) == 3, "bad files are rejected on dask workers too"


def test_dask_backend_on_a_running_scheduler(manifest: pd.DataFrame, tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    reference = _digests(manifest, tmp_path / "joblib", n_jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        computed = _record_computed_tasks(cluster.scheduler)
        got = _digests(manifest, tmp_path / "dask", backend="dask", dask_address=cluster.scheduler_address)
    assert got == reference
    assert len(computed) == _n_chunks(manifest), "every chunk is computed on the given scheduler"


def test_backend_params_are_validated() -> None:
    from deepfake_audio.errors import ParamError
    from deepfake_audio.params import from_dict

    with pytest.raises(ParamError, match="dask_address"):
        from_dict(FeatureParams, {"dask_address": "tcp://x:8786"}, prefix="features")
    with pytest.raises(ParamError, match="joblib, dask"):
        from_dict(FeatureParams, {"backend": "ray"}, prefix="features")
    assert from_dict(FeatureParams, {"backend": "dask"}, prefix="features").dask_address is None
