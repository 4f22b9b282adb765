"""Turn published checkpoints into bundles: ``deepfake-audio import aasist PATH --out DIR``.

An imported bundle is a bundle like any other: ``predict``, the ``evaluate`` stage, ``tools.bench``
and the web page load it, and ``train.init_from`` fine-tunes from it. It scores the way its
authors evaluated: the first ``n_samples`` samples of a clip at 16 kHz, repeat-padded.

The weights are never shipped with this package: users pass the path of the file they downloaded
(the AASIST authors publish ``AASIST.pth`` and ``AASIST-L.pth``, MIT licence).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepfake_audio.bundle import SCHEMA_VERSION, has_weights, save_config
from deepfake_audio.io import atomic_path, sha256_file
from deepfake_audio.params import AudioParams, FeatureParams, TrainParams, as_dict

log = logging.getLogger(__name__)

AASIST_SAMPLES = 64600
"""The authors' crop: the first 64,600 samples (about 4 s at 16 kHz), repeat-padded."""


def import_aasist(path: Path | str, out_dir: Path | str, *, dev: Path | str | None = None) -> dict:
    """Write a bundle for a published AASIST or AASIST-L state dict.

    The variant is inferred from the weights' shapes. Without ``dev`` the bundle has no fitted
    threshold (0.0 on the bona fide logit) and no calibration; with ``dev`` (a CSV with
    ``path,label`` columns, paths relative to it) the dev-set EER threshold and the score
    calibration are fitted on those clips, as the train stage does on the dev split.

    Returns:
        the bundle's config.json.

    Raises:
        ValueError: ``path`` is missing or not an AASIST state dict; ``out_dir`` holds a bundle.
    """
    import torch

    from deepfake_audio.models import get_model_kind
    from deepfake_audio.models.aasist import PRESETS, infer_aasist_config
    from deepfake_audio.models.waveform import AasistParams, build_aasist
    from deepfake_audio.training import TORCH_LOAD_ERRORS

    path, out_dir = Path(path), Path(out_dir)
    if not path.is_file():
        raise ValueError(f"import aasist: {path} is not a file (pass the AASIST.pth or AASIST-L.pth you downloaded)")
    kind = get_model_kind("aasist")
    if has_weights(out_dir, kind):
        raise ValueError(f"import aasist: {out_dir} already holds a bundle; remove it or pick another --out")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as exc:
        raise ValueError(f"import aasist: {path} is not a torch state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"import aasist: {path} holds a {type(state).__name__}, not a state dict")
    arch = infer_aasist_config(state)  # ValueError naming what does not fit
    section = AasistParams(
        n_samples=AASIST_SAMPLES,
        sinc_filters=int(arch["n_filters"]),
        sinc_kernel=int(arch["sinc_kernel"]),
        channels=tuple(tuple(int(c) for c in pair) for pair in arch["filts"]),
        gat_dims=tuple(int(d) for d in arch["gat_dims"]),
        pool_ratios=tuple(float(r) for r in arch["pool_ratios"]),
        temperatures=tuple(float(t) for t in arch["temperatures"]),
    )
    audio = AudioParams(sample_rate=16000, duration_s=AASIST_SAMPLES / 16000, pad="repeat", crop="start")
    base = {"audio": as_dict(audio), "features": as_dict(FeatureParams()), "scaler": {}}
    net = build_aasist(section, base)
    net.load_state_dict(state, strict=True)  # every tensor of the checkpoint, and only those
    variant = next(name for name, preset in PRESETS.items() if preset == arch)
    config = {
        "schema_version": SCHEMA_VERSION,
        "model": kind.name,
        "input": kind.input,
        "params_section": kind.params_section,
        "hyper_parameters": as_dict(section),
        "train": as_dict(TrainParams(models={"aasist": "aasist"})),
        **base,
        "n_samples": AASIST_SAMPLES,
        "threshold": 0.0,
        "dev_eer": None,
        "summary": {"device": "cpu", "n_features": 1, "n_frames": AASIST_SAMPLES},
        "imported": {
            "family": "aasist",
            "variant": variant,
            "path": str(path),
            "sha256": sha256_file(path),
            "trained_on": "the checkpoint's own data (the published AASIST weights: ASVspoof 2019 LA train)",
            "score": "bona fide logit (index 1) of the first 64,600 samples, repeat-padded",
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / kind.weights) as tmp, tmp.open("wb") as fh:
        torch.save(net.state_dict(), fh)
    save_config(out_dir, config)
    if dev is not None:
        config = fit_threshold(out_dir, Path(dev))
    log.info("imported %s (%s) from %s into %s", variant, kind.name, path, out_dir)
    return config


def fit_threshold(bundle_dir: Path, dev_csv: Path, *, progress: Callable | None = None) -> dict:
    """Fit a bundle's dev EER threshold and score calibration on labelled clips (``path,label`` CSV)."""
    import pandas as pd

    from deepfake_audio.bundle import read_config
    from deepfake_audio.calibration import fit_calibration
    from deepfake_audio.inputs import LABEL_IDS
    from deepfake_audio.metrics import compute_eer
    from deepfake_audio.predict import Predictor

    table = pd.read_csv(dev_csv)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise ValueError(f"{dev_csv}: no {', '.join(sorted(missing))} column (need path,label)")
    bad = sorted(set(table["label"]) - set(LABEL_IDS))
    if bad:
        raise ValueError(f"{dev_csv}: labels {bad} are not bonafide/spoof")
    predictor = Predictor.load(bundle_dir)
    # Scored as the pipeline scores a clip (its first crop, no speech check), which the threshold is for.
    rows = predictor.predict_files([dev_csv.parent / p for p in table["path"]], scope="first", vad=False)
    ok = [i for i, r in enumerate(rows) if r["error"] is None]
    y = table["label"].map(LABEL_IDS).to_numpy()[ok]
    scores = np.array([rows[i]["score"] for i in ok])
    if len(set(y.tolist())) < 2:
        raise ValueError(f"{dev_csv}: the clips that decoded hold one class only; a threshold needs both")
    eer, threshold = compute_eer(y, scores)
    calibration = fit_calibration(y, scores)
    config = read_config(bundle_dir)
    config.update(
        threshold=float(threshold),
        dev_eer=float(eer),
        calibration={**calibration.to_dict(), "fitted_on": str(dev_csv)},
    )
    save_config(bundle_dir, config)
    log.info(
        "%s: dev EER %.2f%% on %d clips (%d failed to decode)", bundle_dir, 100 * eer, len(ok), len(rows) - len(ok)
    )
    return config
