"""Tiny real model bundles for tests, trained by the pipeline's own stage entry points.

:func:`make_bundles` writes a small generated corpus (:func:`tests.conftest.make_corpus`) and runs
``download -> split -> features -> standardize -> train@<model>`` in-process on it, with params
shrunk the way the end-to-end test shrinks them (1-s clips, 32 mel bands, 8-unit networks, 2
epochs). The bundles are real: ``config.json`` with the scaler, threshold and dev-fitted
calibration, and the weights, loadable by :func:`deepfake_audio.bundle.load_bundle`. A call
takes a few seconds on a CPU (plus numba's one-time compilation in a fresh environment).

Layout under ``root`` (the pipeline's own, so tests can read the stage outputs too)::

    corpus/labels.csv  params.yaml
    data/raw/  data/split/manifest.parquet  data/features/  data/scaled/  data/models/<model>/

Use from a test module::

    @pytest.fixture(scope="session")
    def bundles(tmp_path_factory):
        return session_bundles(tmp_path_factory)
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_corpus

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_MODELS = ("cnn_lstm", "xgboost")

_LOCK = threading.Lock()


def tiny_params(models: tuple[str, ...], labels_csv: Path) -> dict:
    """The shipped params.yaml, shrunk so that every stage runs in about a second on a CPU."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["data"] = {"sources": [{"kind": "manifest", "path": str(labels_csv)}], "eval_sets": {}}
    params["audio"].update(duration_s=1.0)
    params["features"].update(n_mels=32, mfcc={"n_mfcc": 13, "deltas": 1}, n_jobs=1, chunk_size=16)
    params["features"]["augment"]["copies"] = 0
    params["model"].update(conv_channels=8, lstm_units=8, dense_units=8, attention_dim=8, n_conv_blocks=1)
    params["train"].update(epochs=2, batch_size=8, patience=2, device="cpu", num_workers=0, compile=False)
    params["train"]["models"] = {m: ("xgboost" if m == "xgboost" else "model") for m in models}
    params["xgboost"].update(n_estimators=20, early_stopping_rounds=10, n_jobs=1)
    return params


def _complete(bundle: Path) -> bool:
    return (bundle / "config.json").exists() and any((bundle / w).exists() for w in ("weights.pt", "model.json"))


def make_bundles(root: Path, models: tuple[str, ...] = DEFAULT_MODELS) -> dict[str, Path]:
    """Train tiny bundles of ``models`` under ``root/data/models``; returns model name -> bundle folder.

    Idempotent: bundles already complete under ``root`` are kept, so a second call is free.
    Thread-safe within one process. Paths given to the stages are absolute: nothing changes the
    working directory.
    """
    from stages import download, features, split, standardize, train

    root = Path(root).resolve()
    models = tuple(models)
    data = root / "data"
    out = {m: data / "models" / m for m in models}
    with _LOCK:
        if all(_complete(b) for b in out.values()):
            return out
        root.mkdir(parents=True, exist_ok=True)
        params_path = root / "params.yaml"
        if not (data / "scaled" / "scaler.json").exists():
            labels = make_corpus(root / "corpus", n_speakers=8, per_speaker=3, seed=5)
            params_path.write_text(yaml.safe_dump(tiny_params(models, labels), sort_keys=False), encoding="utf-8")
            p = ["--params", str(params_path)]
            download.main(["--out", str(data / "raw"), *p])
            split.main(
                [
                    "--manifest",
                    str(data / "raw" / "manifest.parquet"),
                    "--out",
                    str(data / "split" / "manifest.parquet"),
                    "--report",
                    str(root / "metrics" / "split.json"),
                    *p,
                ]
            )
            features.main(["--manifest", str(data / "split" / "manifest.parquet"), "--out", str(data / "features"), *p])
            standardize.main(
                [
                    "--features",
                    str(data / "features"),
                    "--manifest",
                    str(data / "features" / "manifest.parquet"),
                    "--out",
                    str(data / "scaled"),
                    *p,
                ]
            )
        params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
        missing = [m for m in models if m not in params["train"]["models"]]
        if missing:  # a later call asked for more kinds than the first: add them to train.models
            params["train"]["models"].update({m: ("xgboost" if m == "xgboost" else "model") for m in missing})
            params_path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        for model, bundle in out.items():
            if not _complete(bundle):
                train.main(
                    [
                        "--model",
                        model,
                        "--manifest",
                        str(data / "features" / "manifest.parquet"),
                        "--scaled",
                        str(data / "scaled"),
                        "--out",
                        str(bundle),
                        "--live",
                        str(root / "dvclive" / model),
                        "--params",
                        str(params_path),
                    ]
                )
    return out


def session_bundles(
    tmp_path_factory: pytest.TempPathFactory, models: tuple[str, ...] = DEFAULT_MODELS
) -> dict[str, Path]:
    """:func:`make_bundles` in one folder shared by every test module of a pytest session, so the
    bundles are trained once per session whichever modules ask for them."""
    return make_bundles(tmp_path_factory.getbasetemp() / "tiny_bundles", models)
