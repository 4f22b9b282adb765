"""End to end: `dvc repro` in a temporary git repository on a tiny generated corpus.

The corpus is read through the `manifest` source kind, with a params override that shrinks every
stage; a second generated corpus is an eval-only set (`data.eval_sets.heldout`). Checks the binding metrics layout, that `dvc status` is clean afterwards, that a second
`dvc repro` does nothing, that the plots render offline, that `dvc exp run -S
model.lstm_units=...` re-runs only the neural model's stages, and that adding an eval set to a built
pipeline re-runs only that set's stages, the evaluate merges and the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_corpus

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = (
    "eer",
    "eer_threshold",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "n_bonafide",
    "n_spoof",
    "per_attack_eer",
    "eer_ci",
    "at_eer_threshold",
    "per_source_eer",
    "cllr",
    "min_cllr",
    "f1_bonafide",
    "confusion",
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
        DVC_NO_ANALYTICS="1",
        PYTHONHASHSEED="0",
    )
    env.pop("PYTHONPATH", None)  # the copied package in the temp repo must be the one imported
    return env


def _run(args: list[str], cwd: Path) -> str:
    res = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res.stdout + res.stderr


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def copy_project(repo: Path) -> None:
    """The pipeline's code, dvc.yaml, the plots template and models/ (DVC deps) into ``repo``."""
    for name in ("dvc.yaml", "deepfake_audio", "stages", "dvc_plots", "models"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / name)
    for cache in repo.rglob("__pycache__"):
        shutil.rmtree(cache)


def init_repo(repo: Path) -> None:
    """Make ``repo`` a git + DVC repository (analytics off, offline plots) with one commit."""
    _run(["git", "init", "-q"], repo)
    _run(["dvc", "init", "-q"], repo)
    _run(["dvc", "config", "core.analytics", "false"], repo)
    _run(["dvc", "config", "plots.html_template", "../dvc_plots/offline_template.html"], repo)
    (repo / ".gitignore").write_text("/data/\n__pycache__/\n")
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "init"], repo)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("e2e")
    copy_project(repo)
    csv = make_corpus(repo / "corpus", n_speakers=8, per_speaker=4, seed=3)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["sources"] = [{"kind": "manifest", "path": str(csv.relative_to(repo))}]
    heldout = make_corpus(repo / "heldout", n_speakers=3, per_speaker=2, seed=11)
    params["data"]["eval_sets"] = {"heldout": {"kind": "manifest", "path": str(heldout.relative_to(repo))}}
    params["audio"].update(duration_s=1.0)
    params["features"].update(n_mels=32, mfcc={"n_mfcc": 13, "deltas": 1}, n_jobs=1, chunk_size=8)
    params["model"].update(conv_channels=8, lstm_units=8, dense_units=8, n_conv_blocks=1)
    params["train"].update(epochs=3, batch_size=8, patience=3)
    params["xgboost"].update(n_estimators=30, early_stopping_rounds=10, n_jobs=1)
    params["train"]["models"]["lcnn"] = "model"  # opt-in in params.yaml (slow on CPUs); tiny here
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    init_repo(repo)
    out = _run(["dvc", "repro"], repo)
    assert {
        "download",
        "split",
        "features",
        "examples",
        "standardize",
        "train@cnn_lstm",
        "train@xgboost",
        "score@cnn_lstm",
        "eval_data@heldout",
        "eval_check@heldout",
        "eval_features@heldout",
        "eval_scaled@heldout",
        "eval_waveforms@heldout",
        "eval_embeddings@heldout",
        "eval_score@heldout-cnn_lstm",
        "eval_score@heldout-xgboost",
        "evaluate@cnn_lstm",
        "evaluate@xgboost",
        "card@cnn_lstm",
        "card@xgboost",
        "report",
    } <= _stages_run(out)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "repro"], repo)
    return repo


def test_metrics_follow_the_binding_layout(repo: Path) -> None:
    models = set(yaml.safe_load((repo / "params.yaml").read_text())["train"]["models"])
    assert models == {"cnn_lstm", "cnn_bilstm_attention", "cnn", "lstm", "cnn2d", "lcnn", "xgboost"}
    for model in sorted(models):
        metrics = json.loads((repo / "metrics" / f"{model}.json").read_text())
        block = metrics["test"]
        missing = [k for k in REQUIRED if k not in block]
        assert not missing, f"{model}: missing {missing}"
        assert 0.0 <= block["eer"] <= 1.0
        assert block["n_bonafide"] > 0 and block["n_spoof"] > 0
    # The generated classes differ clearly: a working pipeline separates them.
    assert json.loads((repo / "metrics" / "xgboost.json").read_text())["test"]["eer"] <= 0.2
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert set(summary["models"]) == models
    split = json.loads((repo / "metrics" / "split.json").read_text())
    assert split["leakage"]["n_shared_speakers"] == 0 and split["leakage"]["n_shared_audio"] == 0
    assert set(split["splits"]) == {"train", "dev", "test"}  # eval sets never reach the split stage
    assert json.loads((repo / "data" / "eval" / "heldout" / "report.json").read_text())["n_clips"] == 12
    assert (
        json.loads((repo / "data" / "eval" / "heldout" / "overlap.json").read_text())["n_clips_in_training_pool"] == 0
    )
    for name in ("comparison.png", "cross_corpus.png", "roc_det_test.png", "roc_det_heldout.png"):
        assert (repo / "plots" / "report" / name).stat().st_size > 0
    assert (repo / "plots" / "cnn_lstm" / "attack_eer.png").stat().st_size > 0
    report = (repo / "reports" / "summary.md").read_text()
    assert "](../plots/report/roc_det_test.png)" in report and "| lcnn | heldout |" in report
    assert "## Cross-corpus matrix" in report and "| model | test | heldout |" in report


def test_eval_set_is_scored_and_never_trained_or_scaled_on(repo: Path) -> None:
    import pandas as pd

    manifest = pd.read_parquet(repo / "data" / "split" / "manifest.parquet")
    assert (manifest["eval_set"] == "").all()
    heldout = pd.read_parquet(repo / "data" / "eval" / "heldout" / "manifest.parquet")
    assert len(heldout) == 12 and (heldout["split"] == "eval:heldout").all()
    assert heldout["utt_id"].str.startswith("heldout/").all() and (heldout["content_hash"] != "").all()
    scaler = json.loads((repo / "data" / "scaled" / "scaler.json").read_text())
    assert scaler["n_train_clips"] == int((manifest["split"] == "train").sum())
    # The eval set is scaled with the training pool's scalers, not refitted on itself.
    assert json.loads((repo / "data" / "eval" / "heldout" / "scaled" / "scaler.json").read_text()) == scaler
    for model in ("cnn_lstm", "xgboost"):
        block = json.loads((repo / "metrics" / f"{model}.json").read_text())["heldout"]
        missing = [k for k in REQUIRED if k not in block]
        assert not missing, f"{model}: heldout block lacks {missing}"
        assert (block["n_bonafide"], block["n_spoof"]) == (6, 6)
        scores = pd.read_parquet(repo / "data" / "scores" / model / "eval" / "heldout.parquet")
        assert set(scores["utt_id"]) == set(heldout["utt_id"])
        block_file = json.loads((repo / "data" / "scores" / model / "eval" / "heldout.json").read_text())
        assert block_file == block  # evaluate@ merged the block eval_score@ wrote


def test_status_clean_and_second_repro_is_a_noop(repo: Path) -> None:
    status = json.loads(_run(["dvc", "status", "--json"], repo).strip().splitlines()[-1])
    assert status == {}
    assert _stages_run(_run(["dvc", "repro"], repo)) == set()


def _status_after_edit(repo: Path, rel: str) -> set[str]:
    """The stages `dvc status` lists after appending a comment to ``rel``; the file is restored after."""
    path = repo / rel
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        return set(json.loads(_run(["dvc", "status", "--json"], repo).strip().splitlines()[-1]))
    finally:
        path.write_bytes(original)


def test_status_lists_exactly_the_stages_whose_code_changed(repo: Path) -> None:
    """Each stage's deps are the code it runs (tools/stage_deps.py): an edit to the EER function's module
    makes every train and evaluate stage stale, and restyling a chart leaves the features alone."""
    models = yaml.safe_load((repo / "params.yaml").read_text())["train"]["models"]
    trained = {f"{stage}@{m}" for m in models for stage in ("train", "score", "evaluate")}
    trained |= {f"eval_score@heldout-{m}" for m in models}
    after_eer = _status_after_edit(repo, "deepfake_audio/metrics.py")
    assert trained <= after_eer and not after_eer & {"download", "split", "features", "standardize"}
    after_plots = _status_after_edit(repo, "deepfake_audio/plots.py")
    assert {"examples", "report"} <= after_plots and "features" not in after_plots
    assert json.loads(_run(["dvc", "status", "--json"], repo).strip().splitlines()[-1]) == {}


def test_forced_retraining_reproduces_every_output_byte_for_byte(repo: Path) -> None:
    """Same params and inputs give identical bundles, scores and metrics (CPU determinism)."""
    before = (repo / "dvc.lock").read_text()
    for model in ("cnn_lstm", "xgboost"):  # else the stage keeps a bundle whose training key matches
        (repo / "data" / "models" / model / "config.json").unlink()
    out = _run(["dvc", "repro", "-f", "-s", "train@cnn_lstm", "train@xgboost"], repo)
    assert "unchanged; kept" not in out
    assert {"train@cnn_lstm", "train@xgboost"} <= _stages_run(out)
    assert (repo / "dvc.lock").read_text() == before
    assert _stages_run(_run(["dvc", "repro"], repo)) == set(), "downstream stages saw changed outputs"


def test_plots_render_offline(repo: Path, tmp_path: Path) -> None:
    _run(["dvc", "plots", "show", "-o", str(tmp_path / "html")], repo)
    page = (tmp_path / "html" / "index.html").read_text()
    assert "cnn_lstm: ROC (test)" in page
    assert '<script src="http' not in page
    metrics = _run(["dvc", "metrics", "show", "--json"], repo)
    assert "eer" in metrics


def test_exp_run_retrains_exactly_the_models_that_read_the_key(repo: Path) -> None:
    """lstm_units is read by cnn_lstm, cnn_bilstm_attention, lstm and lcnn, not by cnn or cnn2d:
    DVC re-runs every neural train stage (they share the `model` section), the two others keep
    their bundles byte for byte, so only the four are re-evaluated."""
    out = _run(["dvc", "exp", "run", "-S", "model.lstm_units=12"], repo)
    ran = _stages_run(out)
    readers = {"cnn_lstm", "cnn_bilstm_attention", "lstm", "lcnn"}
    assert {f"evaluate@{m}" for m in readers} <= ran
    assert not ran & {
        "download",
        "split",
        "features",
        "standardize",
        "train@xgboost",
        "score@xgboost",
        "score@cnn",
        "eval_score@heldout-cnn2d",
        "evaluate@xgboost",
        "evaluate@cnn",
        "evaluate@cnn2d",
    }
    assert "cnn: its hyper-parameters, training options and inputs are unchanged; kept" in out
    assert "cnn2d: its hyper-parameters, training options and inputs are unchanged; kept" in out
    for model in readers:
        assert f"{model}: its hyper-parameters" not in out
    shown = _run(["dvc", "exp", "show", "--json"], repo)
    assert "lstm_units" in shown


@pytest.mark.parametrize("model", ["cnn_lstm", "xgboost"])
def test_predict_gives_the_evaluate_stage_scores(repo: Path, model: str) -> None:
    import pandas as pd

    scores = pd.read_parquet(repo / "data" / "scores" / model / "test.parquet")
    manifest = pd.read_parquet(repo / "data" / "split" / "manifest.parquet").set_index("utt_id")
    sample = scores.head(6)
    paths = [manifest.loc[u, "path"] for u in sample["utt_id"]]
    out = _run(
        [
            sys.executable,
            "-m",
            "deepfake_audio.cli",
            "predict",
            "--model",
            f"data/models/{model}",
            "--scope",
            "first",  # the pipeline scores a clip's first crop
            "--no-vad",
            "--format",
            "csv",
            *paths,
        ],
        repo,
    )
    rows = [line.split(",") for line in out.strip().splitlines() if line.startswith(("corpus", "path"))]
    header, body = rows[0], rows[1:]
    got = {r[header.index("path")]: float(r[header.index("score")]) for r in body}
    llr = {r[header.index("path")]: float(r[header.index("llr")]) for r in body}
    for path, expected, expected_llr in zip(paths, sample["score"], sample["llr"]):
        assert got[path] == pytest.approx(expected, abs=1e-5)
        assert llr[path] == pytest.approx(expected_llr, abs=1e-4)  # the calibrated LLR the evaluate stage used


def test_torchrun_trains_the_stage_with_two_gloo_processes(repo: Path, tmp_path: Path) -> None:
    """The README's multi-GPU command, on the CPU: DDP over gloo; rank 0 alone writes."""
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
            "cnn_lstm",
            "--manifest",
            "data/features/manifest.parquet",
            "--scaled",
            "data/scaled",
            "--out",
            str(tmp_path / "ddp"),
            "--live",
            str(tmp_path / "live"),
        ],
        repo,
    )
    assert "rank 1 of 2 done" in out
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["model"] == "cnn_lstm" and 0.0 <= config["dev_eer"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["config.json", "weights.pt"]
    assert json.loads((tmp_path / "live" / "metrics.json").read_text())["step"] >= 1


def test_adding_an_eval_set_runs_only_its_stages_and_the_merges(repo: Path) -> None:
    """Train once, score many: a new eval set gets its own stages; no training-pool stage, scaler or
    bundle is touched, and removing it again leaves the pipeline as it was."""
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    extra = make_corpus(repo / "extra", n_speakers=2, per_speaker=2, seed=23)
    params = yaml.safe_load(original)
    models = list(params["train"]["models"])
    params["data"]["eval_sets"]["extra"] = {"kind": "manifest", "path": str(extra.relative_to(repo))}
    try:
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        stale = set(json.loads(_run(["dvc", "status", "--json"], repo).strip().splitlines()[-1]))
        assert stale == {
            f"eval_{s}@extra" for s in ("data", "check", "features", "scaled", "waveforms", "embeddings")
        } | {f"eval_score@extra-{m}" for m in models} | {f"evaluate@{m}" for m in models} | {
            f"card@{m}" for m in models
        } | {"report"}  # the cards list every eval set, so they are made again too
        ran = _stages_run(_run(["dvc", "repro"], repo))
        assert not {
            s for s in ran if s.split("@")[0] in ("download", "split", "features", "standardize", "train", "score")
        }
        assert {f"eval_score@extra-{m}" for m in models} <= ran
        block = json.loads((repo / "metrics" / "xgboost.json").read_text())["extra"]
        assert (block["n_bonafide"], block["n_spoof"]) == (4, 4)
        assert "| model | test | extra | heldout |" in (repo / "reports" / "summary.md").read_text()
    finally:
        params_path.write_text(original)
    ran = _stages_run(_run(["dvc", "repro"], repo))
    assert ran <= {f"evaluate@{m}" for m in models} | {f"card@{m}" for m in models} | {"report"}
    assert "extra" not in json.loads((repo / "metrics" / "xgboost.json").read_text())
