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
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from deepfake_audio.codedeps import code_files
from deepfake_audio.features import read_frames
from deepfake_audio.io import atomic_path, write_json
from deepfake_audio.logs import progress
from deepfake_audio.metrics import compute_eer
from deepfake_audio.models import ModelKind, get_model_kind
from deepfake_audio.params import ModelParams, TrainParams, XGBoostParams, as_dict, from_dict

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
                splits: list[str], groups: tuple[str, ...] | None = None) -> dict[str, SplitData]:
    """Read the standardised features of the given splits, aligned with the manifest rows.

    Clips rejected by the features stage are absent from the feature tables and so skipped here.
    ``groups``: for frame inputs, only the rows of these feature groups (see :func:`input_groups`).
    """
    if kind.input == "frames":
        ids, x = read_frames(frames_path, groups=groups)
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


def input_groups(kind: ModelKind, model_params: ModelParams) -> tuple[str, ...] | None:
    """The frame groups a neural kind reads with these params; ``None`` for table inputs."""
    return kind.frame_groups(model_params) if kind.frame_groups is not None else None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA), and ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def select_device(preference: str) -> Any:
    """``auto``: CUDA when present, else the CPU. ``cuda`` without a GPU is an error. Under
    torchrun each process takes the GPU of its ``LOCAL_RANK``."""
    import torch

    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but torch sees no CUDA device; use auto or cpu")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def distributed() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless torch.distributed is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device_preference: str) -> bool:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1): NCCL on GPUs, gloo
    on CPUs. Returns whether this run is distributed."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        device = select_device(device_preference)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


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


CHECKPOINT = "checkpoint.pt"
"""Written to the bundle folder after every epoch and removed when training ends; a re-run with
the same training key resumes from it."""


def training_key(kind: ModelKind, *, section: Any, train_params: TrainParams, device: str, inputs: list[Path],
                 config: dict) -> str:
    """A digest of everything a training run's result depends on.

    The hyper-parameters the kind declares it uses (not the whole ``model`` section), the training
    options, the resolved device, every file of code the train stage runs, the bytes of every input file and
    ``config`` (audio and feature params). The train stage keeps an existing bundle whose key matches instead of retraining, so
    ``dvc exp run -S model.lstm_units=128`` retrains only the models that read ``lstm_units``.
    """
    import hashlib

    train = {k: v for k, v in as_dict(train_params).items() if k not in ("models", "num_workers", "device")}
    described = {"model": kind.name, "hyper_parameters": {k: as_dict(getattr(section, k)) for k in kind.uses},
                 "train": train, "device": device, "config": config}
    digest = hashlib.blake2b(json.dumps(described, sort_keys=True).encode(), digest_size=16)
    # The train stage's import closure, the code its dvc.yaml deps list: an edit to any of it must retrain.
    for path in (*code_files("stages.train"), *inputs):
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def resumable_epoch(out_dir: Path, key: str) -> int | None:
    """The last finished epoch of a checkpoint in ``out_dir`` written for ``key``, else ``None``."""
    import pickle

    import torch

    path = out_dir / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:  # a checkpoint cut off mid-write: start over
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    return int(state["epoch"]) if state.get("key") == key else None


def spec_augment(x: Any, params: Any, gen: Any) -> Any:
    """SpecAugment on a CPU batch ``(B, F, T)``: per clip, ``time_masks`` spans of up to
    ``max_time_frames`` frames and ``feature_masks`` spans of up to ``max_feature_rows`` rows set
    to 0 (the inputs are standardised, so 0 is the train mean). Returns a masked copy."""
    import torch

    x = x.clone()
    batch, n_rows, n_frames = x.shape
    for axis, n_masks, max_width in ((2, params.time_masks, params.max_time_frames),
                                     (1, params.feature_masks, params.max_feature_rows)):
        size = x.shape[axis]
        for _ in range(n_masks):
            width = torch.randint(0, min(max_width, size) + 1, (batch,), generator=gen)
            start = (torch.rand(batch, generator=gen) * (size - width + 1)).long()
            pos = torch.arange(size)
            mask = (pos[None] >= start[:, None]) & (pos[None] < (start + width)[:, None])  # (B, size)
            x.masked_fill_(mask[:, None, :] if axis == 2 else mask[:, :, None], 0.0)
    return x


def _seed_worker(worker_id: int) -> None:
    import torch

    seed = torch.initial_seed() % 2 ** 32  # distinct per worker, derived from the loader's generator
    np.random.seed(seed)
    random.seed(seed)


def _from_rank0(values: list[float], device: Any) -> list[float]:
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def _scheduler(opt: Any, train_params: TrainParams) -> Any:
    import torch

    if train_params.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=train_params.epochs)
    if train_params.lr_schedule == "plateau":  # halve the LR when dev EER stalls for a third of the patience
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5,
                                                          patience=max(train_params.patience // 3, 1))
    return None


def train_neural(kind: ModelKind, data: dict[str, SplitData], *, model_params: ModelParams,
                 train_params: TrainParams, out_dir: Path, live: Any = None, key: str = "",
                 stop_after: int | None = None) -> dict:
    """Train a neural kind with early stopping on dev EER; write its bundle weights to ``out_dir``.

    A checkpoint is written after every epoch; when ``out_dir`` holds one written for the same
    ``key`` (see :func:`training_key`), training resumes after its epoch with the model, optimiser,
    LR schedule and random streams restored, so the result equals an uninterrupted run.
    ``stop_after``: stop after this many epochs in this call, leaving the checkpoint (for tests of
    resuming).

    Returns:
        a summary with the best epoch, its dev EER and threshold, and samples/s.
    """
    import torch

    seed_everything(train_params.seed)
    device = select_device(train_params.device)
    train, dev = data["train"], data["dev"]
    n_features, n_frames = train.x.shape[1], train.x.shape[2]
    rank, world = distributed()
    net = kind.build(n_features, n_frames, model_params).to(device)
    model = net
    if world > 1:  # DistributedDataParallel: gradients are averaged across processes at backward
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    model = torch.compile(model) if train_params.compile else model
    opt = torch.optim.AdamW(net.parameters(), lr=train_params.lr, weight_decay=train_params.weight_decay)
    scheduler = _scheduler(opt, train_params)
    pos_weight = torch.tensor(_class_weights(train.y, train_params.balance), device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    gen = torch.Generator().manual_seed(train_params.seed)
    aug_gen = torch.Generator().manual_seed(train_params.seed + 1)  # its own stream: masks leave batches alone
    # oversample: the sampler draws a fresh permutation of the balanced index list each epoch, so
    # minority rows repeat without copying the feature array.
    order = (oversample_indices(train.y, seed=train_params.seed) if train_params.balance == "oversample"
             else np.arange(len(train.y)))
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(train.x), torch.from_numpy(train.y.astype(np.float32)))
    if world > 1:  # each process takes its own 1/world of a shared per-epoch permutation
        dataset = torch.utils.data.Subset(dataset, order.tolist())
        sampler = torch.utils.data.distributed.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                                                  seed=train_params.seed, drop_last=True)
    else:
        sampler = torch.utils.data.SubsetRandomSampler(order.tolist(), generator=gen)
    n_rows = len(order) // world
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=train_params.batch_size, sampler=sampler, generator=gen,
        num_workers=train_params.num_workers, pin_memory=device.type == "cuda", worker_init_fn=_seed_worker,
        drop_last=n_rows > train_params.batch_size)
    best = {"dev_eer": float("inf"), "epoch": -1}
    best_state = None
    seen, t_train, start = 0, 0.0, 0
    checkpoint = out_dir / CHECKPOINT
    if live is not None and rank > 0:
        raise ValueError("only rank 0 logs to DVCLive")
    if key and resumable_epoch(out_dir, key) is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["sampler_rng"])
        aug_gen.set_state(state["augment_rng"])
        torch.set_rng_state(state["torch_rng"])
        best, best_state = state["best"], state["best_state"]
        seen, t_train, start = state["seen"], state["train_s"], state["epoch"] + 1
        log.info("resuming %s from the checkpoint of epoch %d", kind.name, state["epoch"])
    epoch = start - 1
    for epoch in progress(range(start, train_params.epochs), desc=f"train {kind.name}", unit="epoch"):
        model.train()
        if world > 1:
            sampler.set_epoch(epoch)
        t0, total, n = time.perf_counter(), 0.0, 0
        for xb, yb in loader:
            if train_params.spec_augment.enabled:
                xb = spec_augment(xb, train_params.spec_augment, aug_gen)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(xb)
            loss = loss_fn(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if train_params.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), train_params.grad_clip)
            opt.step()
            total += loss.item() * len(yb)
            n += len(yb)
        t_train += time.perf_counter() - t0
        seen += n * world
        dev_scores = _predict_torch(net, dev.x, device, train_params.batch_size * 4)
        dev_eer, threshold = compute_eer(dev.y, dev_scores)
        if world > 1:  # BatchNorm statistics differ a little between processes: rank 0 decides for all
            dev_eer, threshold = _from_rank0([dev_eer, threshold], device)
        lr = opt.param_groups[0]["lr"]
        log.info("epoch %d: train loss %.4f, dev EER %.2f%%, lr %.2g", epoch, total / max(n, 1), 100 * dev_eer, lr)
        if live is not None:
            live.log_metric("train/loss", total / max(n, 1))
            live.log_metric("dev/eer", dev_eer)
            live.log_metric("train/lr", lr)
            live.next_step()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(dev_eer)
        elif scheduler is not None:
            scheduler.step()
        if dev_eer < best["dev_eer"]:
            best = {"dev_eer": dev_eer, "epoch": epoch, "threshold": threshold}
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        elif epoch - best["epoch"] >= train_params.patience:
            log.info("early stop at epoch %d (best %d)", epoch, best["epoch"])
            break
        if key and rank == 0:
            state = {"key": key, "epoch": epoch, "model": net.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else {},
                     "sampler_rng": gen.get_state(), "augment_rng": aug_gen.get_state(),
                     "torch_rng": torch.get_rng_state(), "best": best, "best_state": best_state,
                     "seen": seen, "train_s": t_train}
            with atomic_path(checkpoint) as tmp, tmp.open("wb") as fh:
                torch.save(state, fh)
        if stop_after is not None and epoch + 1 - start >= stop_after:
            return {"stopped_at": epoch}
    # Saving through a handle keeps the temp file's random name out of the zip records, so the
    # same weights give the same bytes (and DVC sees an unchanged model).
    if rank == 0:
        with atomic_path(out_dir / "weights.pt") as tmp, tmp.open("wb") as fh:
            torch.save(best_state, fh)
        checkpoint.unlink(missing_ok=True)
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
    device = xgboost_device(train_params.device)
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


def xgb_scores(model: Any, x: np.ndarray) -> np.ndarray:
    """Log-odds of bona fide (a score where higher means more bona fide)."""
    return model.predict(x, output_margin=True).astype(np.float64)


@dataclasses.dataclass
class Bundle:
    """A trained model loaded for scoring."""

    config: dict
    kind: ModelKind
    model: Any

    @property
    def frame_groups(self) -> tuple[str, ...] | None:
        """The frame groups the model reads (``None``: the utterance table)."""
        if not self.kind.neural:
            return None
        return input_groups(self.kind, from_dict(ModelParams, self.config["hyper_parameters"], prefix="model"))

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

        params = from_dict(ModelParams, config["hyper_parameters"], prefix="model")
        model = kind.build(config["summary"]["n_features"], config["summary"]["n_frames"], params)
        model.load_state_dict(torch.load(path / "weights.pt", map_location="cpu", weights_only=True))
        model.eval()
    else:
        import xgboost as xgb

        model = xgb.XGBClassifier()
        model.load_model(path / "model.json")
    return Bundle(config, kind, model)
