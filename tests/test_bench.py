"""tools/bench.py: every bundle scored on a (fake) external bench, next to its demo test EER."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from deepfake_audio.metrics import compute_eer
from deepfake_audio.predict import Predictor
from tests.bundles import session_bundles
from tests.conftest import synth, write_signal
from tools import bench

SR = 16000


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return session_bundles(tmp_path_factory)


@pytest.fixture
def models_dir(tmp_path: Path, bundles: dict[str, Path]) -> Path:
    """Exactly the two session bundles (other modules may train more kinds into the shared folder)."""
    out = tmp_path / "models"
    out.mkdir()
    for name, path in bundles.items():
        (out / name).symlink_to(path, target_is_directory=True)
    return out


def _fake_bench(root: Path) -> Path:
    """A labels.csv like the real bench's: corpora alpha and beta hold both classes, gamma only spoof;
    one clip is corrupt and one is missing. Returns the labels path."""
    rows = []
    for corpus, n_bona, n_spoof in (("alpha", 4, 4), ("beta", 3, 5), ("gamma", 0, 3)):
        for i in range(n_bona):
            y = synth("harmonic", n_samples=SR, sample_rate=SR, seed=100 + i, f0=110.0 + 20 * i)
            rows.append((f"audio/bonafide/{corpus}-bona-{i}.flac", "bonafide", corpus, y))
        for i in range(n_spoof):
            kind = ("noise", "sine")[i % 2]
            y = synth(kind, n_samples=SR + 800 * i, sample_rate=SR, seed=200 + i)
            rows.append((f"audio/spoof/{corpus}-spoof-{i}.flac", "spoof", corpus, y))
    for rel, _, _, y in rows:
        write_signal(root / rel, y, SR)
    (root / "audio/spoof/corrupt.flac").write_text("not audio\n" * 50, encoding="utf-8")
    rows += [("audio/spoof/corrupt.flac", "spoof", "alpha", None), ("audio/spoof/missing.flac", "spoof", "beta", None)]
    labels = root / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "label", "speaker", "attack", "corpus"])
        for rel, label, corpus, _ in rows:
            writer.writerow([rel, label, "s1", "-" if label == "bonafide" else "tts", corpus])
    return labels


def test_bench_json_matches_the_predictor_and_metrics(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _fake_bench(tmp_path / "bench")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "xgboost.json").write_text(json.dumps({"test": {"eer": 0.125}, "other": {"eer": 0.5}}))
    out = tmp_path / "reports" / "bench.json"
    argv = ["--labels", str(labels), "--models", str(models_dir), "--metrics", str(metrics), "--out", str(out)]
    assert bench.main([*argv, "--batch-size", "4"]) == 0

    report = json.loads(out.read_text())
    assert report["labels"] == str(labels)
    assert set(report["stamp"]) == {"commit", "date_utc", "cpu", "cores"}
    assert set(report["models"]) == {"cnn_lstm", "xgboost"}
    clips = list(csv.DictReader(labels.open()))
    for name, m in report["models"].items():
        predictor = Predictor.load(models_dir / name)
        rows = predictor.predict_files([labels.parent / c["path"] for c in clips], scope="first", vad=False)
        ok = [(c, r) for c, r in zip(clips, rows) if r["error"] is None]
        assert len(ok) == len(clips) - 2  # the corrupt and the missing clip
        assert m["n_scored"] == len(ok) and m["n_failed"] == 2
        y = np.array([c["label"] == "bonafide" for c, _ in ok], dtype=int)
        s = np.array([r["score"] for _, r in ok])
        assert m["eer"] == pytest.approx(compute_eer(y, s)[0], abs=1e-12)
        assert set(m["per_corpus"]) == {"alpha", "beta"}  # gamma holds no bona fide clip
        beta = np.array([c["corpus"] == "beta" for c, _ in ok])
        assert m["per_corpus"]["beta"] == pytest.approx(compute_eer(y[beta], s[beta])[0], abs=1e-12)
        assert m["bundle_training_key"] == predictor.config["training_key"]
    assert report["models"]["xgboost"]["demo_test_eer"] == 0.125
    assert report["models"]["cnn_lstm"]["demo_test_eer"] is None  # no metrics/cnn_lstm.json

    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| model | demo test EER | bench pooled EER | per corpus |"
    assert table[3].startswith("| xgboost | 12.50% | ")
    assert table[2].startswith("| cnn_lstm | - | ")


def test_missing_labels_is_a_clear_error(tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "labels.csv"
    out = tmp_path / "bench.json"
    assert bench.main(["--labels", str(missing), "--models", str(models_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "../shared/bench" in err and "outside the project" in err
    assert not out.exists()


def test_unknown_label_and_no_bundles_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label,corpus\na.flac,fake,x\n")
    assert bench.main(["--labels", str(labels), "--models", str(tmp_path / "models")]) == 2
    assert "'fake' is not one of ['bonafide', 'spoof']" in capsys.readouterr().err
    labels.write_text("path,label,corpus\na.flac,spoof,x\n")
    assert bench.main(["--labels", str(labels), "--models", str(tmp_path / "models")]) == 2
    assert "no trained bundle" in capsys.readouterr().err
