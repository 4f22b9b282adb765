"""Training of every model kind, and the bundle that a trained model is saved as.

A bundle is a folder: ``config.json`` (model kind, hyper-parameters, feature and scaler config,
the dev-set EER threshold) and the weights: ``weights.pt`` (a ``state_dict`` loaded with
``weights_only=True``) for neural models, ``model.json`` (XGBoost's own format) for XGBoost.
Nothing in a bundle is unpickled as arbitrary objects.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from deepfake_audio.features import read_frames
from deepfake_audio.io import atomic_path, write_json
from deepfake_audio.logs import progress
from deepfake_audio.metrics import compute_eer
from deepfake_audio.models import ModelKind, get_model_kind
from deepfake_audio.params import ModelParams, TrainParams, XGBoostParams, as_dict

log = logging.getLogger(__name__)

LABEL_IDS = {"bonafide": 1, "spoof": 0}


@dataclasses.dataclass
class SplitData:
    """Inputs of one split: ids, features, numeric labels (1 = bona fide) and attack names."""

    ids: list[str]
    x: np.ndarray  # (n, F, T) frames or (n, D) utterance features, float32
    y: np.ndarray  # (n,) int64
    attacks: np.ndarray  # (n,) str
    sources: np.ndarray  # (n,) str


def load_inputs(manifest: pd.DataFrame, *, kind: ModelKind, frames_path: Path, utterances_path: Path,
                splits: list[str]) -> dict[str, SplitData]:
    """Read the standardised features of the given splits, aligned with the manifest rows.

    Clips rejected by the features stage are absent from the feature tables and so skipped here.
    """
    if kind.input == "frames":
        ids, x = read_frames(frames_path)
    else:
        table = pq.read_table(utterances_path)
        ids = table.column("utt_id").to_pylist()
        names = [n for n in table.column_names if n != "utt_id"]
        x = np.stack([table.column(n).to_numpy() for n in names], axis=1).astype(np.float32)
    index = {u: i for i, u in enumerate(ids)}
    out = {}
    for split in splits:
        rows = manifest[(manifest["split"] == split) & manifest["utt_id"].isin(index)]
        take = np.array([index[u] for u in rows["utt_id"]], dtype=np.int64)
        out[split] = SplitData(rows["utt_id"].tolist(), x[take] if len(take) else x[:0],
                               rows["label"].map(LABEL_IDS).to_numpy(dtype=np.int64),
                               rows["attack"].to_numpy(dtype=str), rows["source"].to_numpy(dtype=str))
    return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA), and ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def select_device(preference: str) -> Any:
    """``auto``: CUDA when present, else the CPU. ``cuda`` without a GPU is an error."""
    import torch

    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but torch sees no CUDA device; use auto or cpu")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _class_weights(y: np.ndarray, balance: str) -> float:
    """Weight of the bona fide class relative to spoof, so both classes count equally.

    1 unless ``balance == "weights"`` (``oversample`` balances by repeating rows instead).
    """
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if balance != "weights" or n_pos == 0:
        return 1.0
    return n_neg / n_pos


def oversample_indices(y: np.ndarray, *, seed: int) -> np.ndarray:
    """Row indices in which the minority class is repeated up to the majority's count.

    Every minority row appears ``n_major // n_minor`` times, and a seeded sample of them once
    more for the remainder, so the classes are exactly balanced and each row is used about
    equally. The order is the original order with the copies appended; shuffling is the loader's.

    Returns:
        int64 indices into ``y``, of length ``2 * n_major`` (all rows if a class is empty).
    """
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0 or len(neg) == 0 or len(pos) == len(neg):
        return np.arange(len(y), dtype=np.int64)
    minor, major = (pos, neg) if len(pos) < len(neg) else (neg, pos)
    reps, rest = divmod(len(major), len(minor))
    extra = np.random.default_rng(seed).choice(minor, size=rest, replace=False)
    copies = np.concatenate([np.tile(minor, reps - 1), np.sort(extra)])
    return np.concatenate([np.arange(len(y)), copies]).astype(np.int64)


def _predict_torch(model: Any, x: np.ndarray, device: Any, batch_size: int) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i:i + batch_size]).to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out.append(model(xb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def train_neural(kind: ModelKind, data: dict[str, SplitData], *, model_params: ModelParams,
                 train_params: TrainParams, out_dir: Path, live: Any = None) -> dict:
    """Train a neural kind with early stopping on dev EER; write its bundle to ``out_dir``.

    Returns:
        a summary with the best epoch, its dev EER and threshold, and samples/s.
    """
    import torch

    seed_everything(train_params.seed)
    device = select_device(train_params.device)
    train, dev = data["train"], data["dev"]
    n_features, n_frames = train.x.shape[1], train.x.shape[2]
    model = kind.build(n_features, n_frames, model_params).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=train_params.lr, weight_decay=train_params.weight_decay)
    pos_weight = torch.tensor(_class_weights(train.y, train_params.balance), device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    gen = torch.Generator().manual_seed(train_params.seed)
    # oversample: the sampler draws a fresh permutation of the balanced index list each epoch, so
    # minority rows repeat without copying the feature array.
    order = (oversample_indices(train.y, seed=train_params.seed) if train_params.balance == "oversample"
             else np.arange(len(train.y)))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(train.x), torch.from_numpy(train.y.astype(np.float32))),
        batch_size=train_params.batch_size, sampler=torch.utils.data.SubsetRandomSampler(order.tolist(), generator=gen),
        generator=gen, num_workers=train_params.num_workers, pin_memory=device.type == "cuda",
        drop_last=len(order) > train_params.batch_size)
    best = {"dev_eer": float("inf"), "epoch": -1}
    best_state = None
    seen, t_train = 0, 0.0
    for epoch in progress(range(train_params.epochs), desc=f"train {kind.name}", unit="epoch"):
        model.train()
        t0, total, n = time.perf_counter(), 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(xb)
            loss = loss_fn(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if train_params.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_params.grad_clip)
            opt.step()
            total += loss.item() * len(yb)
            n += len(yb)
        t_train += time.perf_counter() - t0
        seen += n
        dev_scores = _predict_torch(model, dev.x, device, train_params.batch_size * 4)
        dev_eer, threshold = compute_eer(dev.y, dev_scores)
        log.info("epoch %d: train loss %.4f, dev EER %.2f%%", epoch, total / max(n, 1), 100 * dev_eer)
        if live is not None:
            live.log_metric("train/loss", total / max(n, 1))
            live.log_metric("dev/eer", dev_eer)
            live.log_metric("train/lr", opt.param_groups[0]["lr"])
            live.next_step()
        if dev_eer < best["dev_eer"]:
            best = {"dev_eer": dev_eer, "epoch": epoch, "threshold": threshold}
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        elif epoch - best["epoch"] >= train_params.patience:
            log.info("early stop at epoch %d (best %d)", epoch, best["epoch"])
            break
    # Saving through a handle keeps the temp file's random name out of the zip records, so the
    # same weights give the same bytes (and DVC sees an unchanged model).
    with atomic_path(out_dir / "weights.pt") as tmp, tmp.open("wb") as fh:
        torch.save(best_state, fh)
    return {"best_epoch": best["epoch"], "dev_eer": best["dev_eer"], "threshold": best["threshold"],
            "epochs_run": epoch + 1, "device": device.type, "n_features": n_features, "n_frames": n_frames,
            "train_samples_per_s": seen / max(t_train, 1e-9)}


def train_xgboost(data: dict[str, SplitData], *, params: XGBoostParams, train_params: TrainParams,
                  out_dir: Path, live: Any = None) -> dict:
    """Gradient-boosted trees on utterance statistics, early-stopped on dev log-loss."""
    import xgboost as xgb

    train, dev = data["train"], data["dev"]
    if train_params.balance == "oversample":
        take = oversample_indices(train.y, seed=train_params.seed)
        train = SplitData([train.ids[i] for i in take], train.x[take], train.y[take], train.attacks[take],
                          train.sources[take])
    weight = np.where(train.y == 1, _class_weights(train.y, train_params.balance), 1.0)
    device = "cuda" if select_device(train_params.device).type == "cuda" else "cpu"
    model = xgb.XGBClassifier(
        n_estimators=params.n_estimators, max_depth=params.max_depth, learning_rate=params.learning_rate,
        subsample=params.subsample, colsample_bytree=params.colsample_bytree,
        min_child_weight=params.min_child_weight, reg_lambda=params.reg_lambda,
        early_stopping_rounds=params.early_stopping_rounds, eval_metric="logloss", tree_method="hist",
        device=device, n_jobs=params.n_jobs, random_state=params.seed)
    t0 = time.perf_counter()
    model.fit(train.x, train.y, sample_weight=weight, eval_set=[(train.x, train.y), (dev.x, dev.y)], verbose=False)
    elapsed = time.perf_counter() - t0
    history = model.evals_result()
    if live is not None:
        for tr, dv in zip(history["validation_0"]["logloss"], history["validation_1"]["logloss"]):
            live.log_metric("train/loss", tr)
            live.log_metric("dev/loss", dv)
            live.next_step()
    dev_scores = xgb_scores(model, dev.x)
    dev_eer, threshold = compute_eer(dev.y, dev_scores)
    if live is not None:
        live.summary["dev/eer"] = dev_eer
    with atomic_path(out_dir / "model.json") as tmp:
        model.save_model(tmp.with_suffix(".json"))
        tmp.with_suffix(".json").replace(tmp)
    return {"best_iteration": int(model.best_iteration), "dev_eer": dev_eer, "threshold": threshold,
            "device": device, "n_features": int(train.x.shape[1]), "train_samples_per_s": len(train.y) / elapsed}


def xgb_scores(model: Any, x: np.ndarray) -> np.ndarray:
    """Log-odds of bona fide (a score where higher means more bona fide)."""
    return model.predict(x, output_margin=True).astype(np.float64)


@dataclasses.dataclass
class Bundle:
    """A trained model loaded for scoring."""

    config: dict
    kind: ModelKind
    model: Any

    def score(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Scores of shape ``(n,)``; higher means more bona fide."""
        if not self.kind.neural:
            return xgb_scores(self.model, x)
        import torch

        return _predict_torch(self.model, x, torch.device("cpu"), batch_size).astype(np.float64)


def save_config(out_dir: Path, config: dict) -> None:
    write_json(out_dir / "config.json", config)


def bundle_config(kind: ModelKind, summary: dict, *, params_section: Any, train_params: TrainParams,
                  audio: Any, features: Any, scaler: dict) -> dict:
    return {"model": kind.name, "input": kind.input, "params_section": kind.params_section,
            "hyper_parameters": as_dict(params_section), "train": as_dict(train_params),
            "audio": as_dict(audio), "features": as_dict(features), "scaler": scaler,
            "threshold": summary["threshold"], "dev_eer": summary["dev_eer"], "summary": summary}


def load_bundle(path: Path) -> Bundle:
    """Load a bundle written by the train stage (no arbitrary unpickling)."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    kind = get_model_kind(config["model"])
    if kind.neural:
        import torch

        params = ModelParams(**config["hyper_parameters"])
        model = kind.build(config["summary"]["n_features"], config["summary"]["n_frames"], params)
        model.load_state_dict(torch.load(path / "weights.pt", map_location="cpu", weights_only=True))
        model.eval()
    else:
        import xgboost as xgb

        model = xgb.XGBClassifier()
        model.load_model(path / "model.json")
    return Bundle(config, kind, model)
