"""The bundle: a trained model as a folder that loads and scores without its training code.

A bundle is ``config.json`` plus the kind's weights file (``weights.pt``, a ``state_dict`` loaded
with ``weights_only=True``, for neural kinds; XGBoost's own ``model.json``). Nothing in a bundle is
unpickled as arbitrary objects. ``config.json`` records:

- ``schema_version`` (:data:`SCHEMA_VERSION`), ``model`` (the kind), ``input`` and
  ``params_section``, ``hyper_parameters`` (that section) and ``train`` (the training options);
- the audio contract: ``audio`` (sample rate, clip length, padding and cropping) and
  ``n_samples`` (the clip length in samples: a waveform model's crop, scored as the first
  ``n_samples`` of a clip, repeat-padded, or in windows of that length);
- ``features`` (the extractor's config) and ``scaler`` (the standardisation fitted on train);
- ``threshold`` and ``dev_eer`` (the dev-set EER threshold, fixed before test is scored),
  ``calibration`` (``llr = slope * score + offset`` fitted on dev), ``summary`` and
  ``training_key``.

This module scores through the model registry and imports no model family.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_audio.calibration import fit_calibration
from deepfake_audio.io import write_json
from deepfake_audio.models import ModelKind, get_model_kind
from deepfake_audio.params import as_dict

SCHEMA_VERSION = 1
"""Bumped when config.json changes incompatibly; bundles of a newer version are refused."""

CONFIG = "config.json"


@dataclasses.dataclass
class Bundle:
    """A trained model loaded for scoring."""

    config: dict
    kind: ModelKind
    model: Any

    @property
    def section(self) -> Any:
        """The hyper-parameters it was trained with, as its kind's params dataclass."""
        return self.kind.section_from_config(self.config)

    @property
    def input(self) -> str:
        """What it reads (:data:`deepfake_audio.models.INPUTS`), as it was trained."""
        return str(self.config.get("input", self.kind.input))

    @property
    def frame_groups(self) -> tuple[str, ...] | None:
        """The frame groups the model reads (``None``: all of its input)."""
        return self.kind.groups(self.section)

    def score(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Scores of shape ``(n,)``; higher means more bona fide."""
        return self.kind.score(self.model, x, batch_size=batch_size)


def save_config(out_dir: Path, config: dict) -> None:
    write_json(out_dir / CONFIG, config)


def read_config(path: Path) -> dict:
    """A bundle's config.json.

    Raises:
        ValueError: it was written by a newer schema than this code reads.
    """
    config = json.loads((Path(path) / CONFIG).read_text(encoding="utf-8"))
    version = config.get("schema_version", 0)
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"{path}/{CONFIG} has schema_version {version}; this deepfake-audio reads up to "
            f"{SCHEMA_VERSION}: upgrade it"
        )
    return config


def bundle_config(
    kind: ModelKind,
    summary: dict,
    *,
    section: Any,
    train_params: Any,
    audio: Any,
    features: Any,
    scaler: dict,
    n_samples: int | None = None,
) -> dict:
    """The config.json of a bundle; ``n_samples``: a waveform model's crop, else ``audio``'s clip."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": kind.name,
        "input": kind.input_for(section),
        "params_section": kind.params_section,
        "hyper_parameters": as_dict(section),
        "train": as_dict(train_params),
        "audio": as_dict(audio),
        "n_samples": int(n_samples) if n_samples is not None else audio.n_samples,
        "features": as_dict(features),
        "scaler": scaler,
        "threshold": summary["threshold"],
        "dev_eer": summary["dev_eer"],
        "summary": summary,
    }


def check_bundle(path: Path) -> None:
    """Raise ``ValueError`` naming what is missing when ``path`` is not a loadable bundle."""
    path = Path(path)
    config_path = path / CONFIG
    if not path.is_dir():
        raise ValueError(f"{path} is not a model bundle: no such folder (a bundle is a folder of data/models/)")
    if not config_path.is_file():
        raise ValueError(f"{path} is not a model bundle: it has no {CONFIG} (train one with `dvc repro`)")
    try:
        config = read_config(path)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{config_path} is not a bundle config: {exc}") from exc
    missing = [k for k in ("model", "audio", "features", "scaler", "threshold") if k not in config]
    if missing:
        raise ValueError(f"{config_path} is not a bundle config: no {', '.join(missing)}")
    try:
        kind = get_model_kind(config["model"])
    except ValueError as exc:
        raise ValueError(f"{config_path}: {exc}") from exc
    if not (path / kind.weights).is_file():
        raise ValueError(f"{path} is not a complete bundle: no weights ({kind.weights})")


def load_bundle(path: Path) -> Bundle:
    """Load a bundle written by the train stage (no arbitrary unpickling)."""
    path = Path(path)
    config = read_config(path)
    kind = get_model_kind(config["model"])
    return Bundle(config, kind, kind.load(path, config, kind.section_from_config(config)))


def has_weights(path: Path, kind: ModelKind) -> bool:
    """Whether ``path`` holds a config and the weights of ``kind``."""
    return (Path(path) / CONFIG).exists() and (Path(path) / kind.weights).exists()


def calibrate(out_dir: Path, y: np.ndarray, x: np.ndarray) -> str:
    """Fit the bundle's score calibration on dev labels ``y`` and inputs ``x``; store it in its config.

    Outside the training key: calibrating never retrains, and a kept bundle is calibrated again
    (with identical results) so that bundles from before calibration existed gain one.
    """
    bundle = load_bundle(out_dir)
    calibration = fit_calibration(y, bundle.score(x))
    save_config(out_dir, {**bundle.config, "calibration": {**calibration.to_dict(), "fitted_on": "dev"}})
    return f"calibration llr = {calibration.slope:.3g} * score + {calibration.offset:.3g}"


def training_key(
    kind: ModelKind,
    *,
    section: Any,
    train_params: Any,
    device: str,
    inputs: Sequence[Path],
    code: Sequence[Path],
    config: dict,
) -> str:
    """A digest of everything a training run's result depends on.

    The hyper-parameters the kind declares it uses (not the whole section), the training options,
    the resolved device, the bytes of the code the train stage runs (``code``: its import closure,
    :func:`deepfake_audio.codedeps.code_files`), the bytes of every input file and ``config``
    (audio and feature params). The train stage keeps an existing bundle whose key matches
    instead of retraining, so ``dvc exp run -S model.lstm_units=128`` retrains only the models that
    read ``lstm_units``, and an edit to any code training runs (the EER that picks the best
    epoch, the feature reader) retrains every model.
    """
    train = {k: v for k, v in as_dict(train_params).items() if k not in ("models", "num_workers", "device")}
    if kind.input_for(section) != "waveform":  # waveform augmentation reaches only models that read audio crops
        train.pop("augment", None)
    described = {
        "model": kind.name,
        "hyper_parameters": kind.hyper_parameters(section),
        "train": train,
        "device": device,
        "config": config,
    }
    digest = hashlib.blake2b(json.dumps(described, sort_keys=True).encode(), digest_size=16)
    for path in (*code, *inputs):
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()
