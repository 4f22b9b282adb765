"""End to end with a tiny random wav2vec 2.0 in models/ssl: `dvc repro` embeds every clip once, trains
ssl_linear, ssl_attm and ssl_aasist on the store, evaluates them; predict and the web page score
files through the front-end; new weights in models/ssl re-run exactly what they feed."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_corpus
from tests.test_e2e import REQUIRED, _run, _stages_run, copy_project, init_repo

pytest.importorskip("transformers")
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("ssl_linear", "ssl_attm", "ssl_aasist")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepfake_audio.frontends.ssl import save_random

    repo = tmp_path_factory.mktemp("ssl_e2e")
    copy_project(repo)
    save_random(repo / "models" / "ssl" / "tiny", "wav2vec2", seed=0)
    csv = make_corpus(repo / "corpus", n_speakers=8, per_speaker=4, seed=3)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["sources"] = [{"kind": "manifest", "path": str(csv.relative_to(repo))}]
    params["audio"].update(duration_s=1.0)
    params["features"].update(n_mels=32, mfcc={"n_mfcc": 13, "deltas": 1}, n_jobs=1, chunk_size=8)
    params["ssl"].update(checkpoint="models/ssl/tiny", n_samples=8000, cache="frames")
    params["train"].update(epochs=3, batch_size=8, patience=3, models={m: m for m in MODELS})
    params.update(ssl_linear={}, ssl_attm={"hidden_units": 16}, ssl_aasist={"proj_dim": 16, "gat_dims": [8, 8]})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    init_repo(repo)
    out = _run(["dvc", "repro"], repo)
    assert {"ssl_checkpoint", "embeddings", *(f"train@{m}" for m in MODELS), *(f"evaluate@{m}" for m in MODELS)} <= (
        _stages_run(out)
    )
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "repro"], repo)
    return repo


def test_every_back_end_is_trained_on_the_store_and_evaluated(repo: Path) -> None:
    meta = json.loads((repo / "data" / "embeddings" / "meta.json").read_text())
    assert meta["shape"][1:] == [3, 24, 32] and meta["fingerprint"]["model_type"] == "wav2vec2"
    for model in MODELS:
        metrics = json.loads((repo / "metrics" / f"{model}.json").read_text())
        assert set(REQUIRED) <= set(metrics["test"]) and 0.0 <= metrics["test"]["eer"] <= 1.0
        config = json.loads((repo / "data" / "models" / model / "config.json").read_text())
        assert (
            config["input"] == "embeddings"
            and config["hyper_parameters"]["frontend"]["checkpoint"] == "models/ssl/tiny"
        )
    assert _stages_run(_run(["dvc", "repro"], repo)) == set()
    assert json.loads(_run(["dvc", "status", "--json"], repo).strip().splitlines()[-1]) == {}


def test_predict_runs_the_front_end_and_gives_the_evaluate_scores(repo: Path) -> None:
    import pandas as pd

    scores = pd.read_parquet(repo / "data" / "scores" / "ssl_attm" / "test.parquet").head(6)
    manifest = pd.read_parquet(repo / "data" / "split" / "manifest.parquet").set_index("utt_id")
    paths = [manifest.loc[u, "path"] for u in scores["utt_id"]]
    out = _run(
        [
            sys.executable,
            "-m",
            "deepfake_audio.cli",
            "predict",
            "--model",
            "data/models/ssl_attm",
            "--scope",
            "first",  # the pipeline scores a clip's first crop
            "--no-vad",
            "--format",
            "json",
            *paths,
        ],
        repo,
    )
    rows, _ = json.JSONDecoder().raw_decode(out[out.index("[") :])  # the log lines follow on stderr
    got = {r["path"]: r["score"] for r in rows}
    for path, expected in zip(paths, scores["score"]):  # the store is float16: its scores differ by its rounding
        assert got[path] == pytest.approx(expected, abs=2e-2 * max(1.0, abs(expected)))


def test_the_web_page_scores_an_upload_with_an_ssl_model(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepfake_audio import webapp
    from deepfake_audio.predict import Predictor
    from tests.test_app import app_test, wav_bytes

    monkeypatch.chdir(repo)  # the bundle names its checkpoint relative to the project
    at = app_test(monkeypatch, repo / "data" / "models", repo / "metrics").run()
    at.selectbox[0].set_value("ssl_linear").run()
    data = wav_bytes(duration_s=2.0, seed=3)
    at.file_uploader[0].upload("speech.wav", data, "audio/wav").run()
    assert not at.exception and not at.error
    expected = webapp.analyse_upload(data, "speech.wav", Predictor.load(repo / "data" / "models" / "ssl_linear"))
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Score"] == webapp.format_signed(expected.score)


def test_new_weights_in_models_ssl_rerun_exactly_what_they_feed(repo: Path) -> None:
    from deepfake_audio.frontends.ssl import save_random

    folder = repo / "models" / "ssl" / "tiny"
    backup = repo.parent / "tiny-backup"
    shutil.copytree(folder, backup)
    try:
        save_random(folder, "wav2vec2", seed=5)
        out = _run(["dvc", "repro"], repo)
        assert {"ssl_checkpoint", "embeddings", *(f"train@{m}" for m in MODELS)} <= _stages_run(out)
        assert not {"download", "split", "waveforms", "features", "standardize"} & _stages_run(out)
    finally:
        shutil.rmtree(folder)
        shutil.copytree(backup, folder)
    _run(["dvc", "repro"], repo)  # back to the original weights
    # Another checkpoint beside it: only the cheap check re-runs, and it writes the same bytes.
    save_random(repo / "models" / "ssl" / "other", "hubert", seed=1)
    try:
        assert _stages_run(_run(["dvc", "repro"], repo)) == {"ssl_checkpoint"}
    finally:
        shutil.rmtree(repo / "models" / "ssl" / "other")
        _run(["dvc", "repro"], repo)
    assert json.loads(_run(["dvc", "status", "--json"], repo).strip().splitlines()[-1]) == {}


@pytest.mark.parametrize(("model", "freeze"), [("ssl_linear", True), ("ssl_aasist", False)])
def test_torchrun_trains_an_ssl_model_with_two_gloo_processes(repo: Path, tmp_path: Path, model: str, freeze: bool):
    """DDP over gloo on the CPU: from the store (frozen), and fine-tuning the front-end with it."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ssl"]["freeze"] = freeze
    params["train"]["epochs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "stages.train",
            "--model",
            model,
            "--manifest",
            "data/features/manifest.parquet",
            "--scaled",
            "data/scaled",
            "--waveforms",
            "data/waveforms",
            "--embeddings",
            "data/embeddings",
            "--out",
            str(tmp_path / "ddp"),
            "--live",
            str(tmp_path / "live"),
            "--params",
            str(tmp_path / "params.yaml"),
        ],
        repo,
    )
    assert "rank 1 of 2 done" in out
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["input"] == ("embeddings" if freeze else "waveform") and 0.0 <= config["dev_eer"] <= 1.0
