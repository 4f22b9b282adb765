"""The ``xgboost`` kind: gradient-boosted trees on the utterance statistics table.

Reads the ``xgboost`` params section; saves XGBoost's own JSON model format (no pickle).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_audio.inputs import SplitData
from deepfake_audio.io import atomic_path
from deepfake_audio.metrics import compute_eer
from deepfake_audio.models import FitContext, ModelKind, register_model
from deepfake_audio.params import XGBoostParams
from deepfake_audio.runtime import select_device
from deepfake_audio.sampling import class_weights, oversample_indices

log = logging.getLogger(__name__)

WEIGHTS = "model.json"


def fit(data: dict[str, SplitData], ctx: FitContext) -> dict:
    """Gradient-boosted trees on utterance statistics, early-stopped on dev log-loss."""
    import xgboost as xgb

    params: XGBoostParams = ctx.section
    train_params, live = ctx.train, ctx.live
    train, dev = data["train"], data["dev"]
    if train_params.balance == "oversample":
        train = train.take(oversample_indices(train.y, seed=train_params.seed))
    weight = np.where(train.y == 1, class_weights(train.y, train_params.balance), 1.0)
    device = xgboost_device(train_params.device)
    model = xgb.XGBClassifier(
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        learning_rate=params.learning_rate,
        subsample=params.subsample,
        colsample_bytree=params.colsample_bytree,
        min_child_weight=params.min_child_weight,
        reg_lambda=params.reg_lambda,
        early_stopping_rounds=params.early_stopping_rounds,
        eval_metric="logloss",
        tree_method="hist",
        device=device,
        n_jobs=params.n_jobs,
        random_state=params.seed,
    )
    t0 = time.perf_counter()
    model.fit(train.x, train.y, sample_weight=weight, eval_set=[(train.x, train.y), (dev.x, dev.y)], verbose=False)
    elapsed = time.perf_counter() - t0
    history = model.evals_result()
    if live is not None:
        for tr, dv in zip(history["validation_0"]["logloss"], history["validation_1"]["logloss"]):
            live.log_metric("train/loss", tr)
            live.log_metric("dev/loss", dv)
            live.next_step()
    dev_eer, threshold = compute_eer(dev.y, score(model, dev.x))
    if live is not None:
        live.summary["dev/eer"] = dev_eer
    with atomic_path(ctx.out_dir / WEIGHTS) as tmp:
        model.save_model(tmp.with_suffix(".json"))
        tmp.with_suffix(".json").replace(tmp)
    return {
        "best_iteration": int(model.best_iteration),
        "dev_eer": dev_eer,
        "threshold": threshold,
        "device": device,
        "n_features": int(train.x.shape[1]),
        "train_samples_per_s": len(train.y) / elapsed,
    }


def xgboost_device(preference: str) -> str:
    """``cuda`` when torch sees a GPU and the installed XGBoost was built with CUDA, else ``cpu``.

    The ``xgboost-cpu`` wheel this project installs has no CUDA; asking it for ``cuda`` would fail
    on a GPU machine, so one tiny boosting round decides, and a fallback is logged.
    """
    if select_device(preference).type != "cuda":
        return "cpu"
    import xgboost as xgb

    try:
        probe = xgb.DMatrix(np.array([[0.0], [1.0]], dtype=np.float32), label=np.array([0.0, 1.0]))
        xgb.train({"device": "cuda", "tree_method": "hist", "verbosity": 0}, probe, num_boost_round=1)
    except xgb.core.XGBoostError as exc:
        log.warning("XGBoost trains on the CPU: this build has no CUDA support (%s)", str(exc).splitlines()[0])
        return "cpu"
    return "cuda"


def load(bundle_dir: Path, config: dict, params: XGBoostParams) -> Any:
    import xgboost as xgb

    model = xgb.XGBClassifier()
    model.load_model(bundle_dir / WEIGHTS)
    return model


def score(model: Any, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Log-odds of bona fide (a score where higher means more bona fide)."""
    return model.predict(x, output_margin=True).astype(np.float64)


register_model(
    ModelKind(
        "xgboost",
        "xgboost",
        XGBoostParams,
        "utterances",
        WEIGHTS,
        fit,
        load,
        score,
        uses=tuple(f.name for f in dataclasses.fields(XGBoostParams)),
    )
)
