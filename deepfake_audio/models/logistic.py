"""The ``logistic`` kind: L2-regularised logistic regression on the utterance statistics table.

A linear baseline beside XGBoost, and the worked example of adding a model kind (docs/models.md):
this file is the whole of it. It brings its own params section, ``logistic``, which
``train.models`` names (``logistic: logistic``), fits with scikit-learn, and saves its
coefficients as JSON, so loading unpickles nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from deepfake_audio.inputs import SplitData
from deepfake_audio.io import write_json
from deepfake_audio.metrics import compute_eer
from deepfake_audio.models import FitContext, ModelKind, register_model
from deepfake_audio.params import ParamError
from deepfake_audio.sampling import class_weights

WEIGHTS = "logistic.json"


@dataclasses.dataclass(frozen=True)
class LogisticParams:
    """``logistic``: inverse regularisation strength and the solver's iteration budget."""

    c: float = 1.0
    max_iter: int = 1000

    def validate(self, prefix: str) -> None:
        if not self.c > 0:
            raise ParamError(f"{prefix}.c", self.c, "must be > 0")
        if self.max_iter < 1:
            raise ParamError(f"{prefix}.max_iter", self.max_iter, "must be >= 1")


@dataclasses.dataclass(frozen=True)
class Linear:
    """A fitted linear scorer: ``score = x @ coef + intercept`` (the log-odds of bona fide)."""

    coef: np.ndarray  # (n_features,) float64
    intercept: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept


def fit(data: dict[str, SplitData], ctx: FitContext) -> dict:
    from sklearn.linear_model import LogisticRegression

    params: LogisticParams = ctx.section
    train, dev = data["train"], data["dev"]
    weight = np.where(train.y == 1, class_weights(train.y, ctx.train.balance), 1.0)
    t0 = time.perf_counter()
    model = LogisticRegression(C=params.c, max_iter=params.max_iter).fit(train.x, train.y, sample_weight=weight)
    elapsed = time.perf_counter() - t0
    linear = Linear(model.coef_[0].astype(np.float64), float(model.intercept_[0]))
    dev_eer, threshold = compute_eer(dev.y, linear(dev.x))
    write_json(ctx.out_dir / WEIGHTS, {"coef": linear.coef.tolist(), "intercept": linear.intercept})
    return {
        "dev_eer": dev_eer,
        "threshold": threshold,
        "device": "cpu",
        "n_features": int(train.x.shape[1]),
        "iterations": int(model.n_iter_[0]),
        "train_samples_per_s": len(train.y) / max(elapsed, 1e-9),
    }


def load(bundle_dir: Path, config: dict, params: LogisticParams) -> Linear:
    saved = json.loads((bundle_dir / WEIGHTS).read_text(encoding="utf-8"))
    return Linear(np.asarray(saved["coef"], dtype=np.float64), float(saved["intercept"]))


def score(model: Linear, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    return model(x)


register_model(
    ModelKind("logistic", "logistic", LogisticParams, "utterances", WEIGHTS, fit, load, score, uses=("c", "max_iter"))
)
