"""The neural training loop: one epoch per function, early stopping on dev EER, checkpoints.

A model kind's ``fit`` (:mod:`deepfake_audio.models.neural`) calls :func:`train_neural`; this
module knows nothing of model families. It writes ``weights.pt`` (a ``state_dict`` saved through a
file handle, loaded back with ``weights_only=True``) into the bundle folder, and a checkpoint after
every epoch from which a killed run resumes to the same result as an uninterrupted one.
"""

from __future__ import annotations

import logging
import pickle
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_audio.inputs import SplitData
from deepfake_audio.io import atomic_path
from deepfake_audio.logs import progress
from deepfake_audio.metrics import compute_eer
from deepfake_audio.params import TrainParams
from deepfake_audio.runtime import distributed, from_rank0, seed_everything, select_device
from deepfake_audio.sampling import class_weights, oversample_indices, seed_worker, spec_augment

log = logging.getLogger(__name__)

WEIGHTS = "weights.pt"
TORCH_LOAD_ERRORS = (RuntimeError, EOFError, OSError, ValueError, struct.error, pickle.UnpicklingError)
"""What ``torch.load(..., weights_only=True)`` raises on a file that is not a (whole) state dict."""

CHECKPOINT = "checkpoint.pt"
"""Written to the bundle folder after every epoch and removed when training ends; a re-run with
the same training key resumes from it."""


def predict_torch(model: Any, x: Any, device: Any, batch_size: int) -> np.ndarray:
    """Scores of ``model`` on ``x`` in batches, in eval mode; float32 ``(n,)``.

    ``x`` is an array ``(n, ...)`` or anything whose slices are one (a
    :class:`~deepfake_audio.waveforms.WaveformSet` gives fixed crops). A model with two logits per
    clip scores by its bona fide logit (index 1, the convention of the ASVspoof baselines).
    """
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out.append(bonafide_score(model(xb)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def bonafide_score(out: Any) -> Any:
    """One score per clip from a network's output: ``(B,)`` as is, ``(B, 2)`` logits -> index 1."""
    return out[:, 1] if out.ndim == 2 else out


def resumable_epoch(out_dir: Path, key: str) -> int | None:
    """The last finished epoch of a checkpoint in ``out_dir`` written for ``key``, else ``None``."""
    import torch

    path = out_dir / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as exc:  # cut off mid-write: start over
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    return int(state["epoch"]) if state.get("key") == key else None


def _scheduler(opt: Any, train_params: TrainParams) -> Any:
    import torch

    if train_params.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=train_params.epochs)
    if train_params.lr_schedule == "plateau":  # halve the LR when dev EER stalls for a third of the patience
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=0.5, patience=max(train_params.patience // 3, 1)
        )
    return None


class _Run:
    """The state of one training run: model, optimiser, schedule, random streams, best so far."""

    def __init__(
        self,
        net: Any,
        train: SplitData,
        train_params: TrainParams,
        device: Any,
        augment: Any = None,
        frontend_lr: float | None = None,
    ) -> None:
        import torch

        self.net, self.device, self.params, self.augment = net, device, train_params, augment
        rank, world = distributed()
        self.rank, self.world = rank, world
        model = net
        if world > 1:  # DistributedDataParallel: gradients are averaged across processes at backward
            model = torch.nn.parallel.DistributedDataParallel(
                net,
                device_ids=[device.index] if device.type == "cuda" else None,
                # Modules with weights that some steps (or every step) leave out of the loss say so.
                find_unused_parameters=any(getattr(m, "find_unused_parameters", False) for m in net.modules()),
            )
        self.model = torch.compile(model) if train_params.compile else model
        # A pretrained front-end trains at its own (smaller) learning rate.
        groups = net.param_groups(train_params.lr, frontend_lr) if frontend_lr is not None else net.parameters()
        self.opt = torch.optim.AdamW(groups, lr=train_params.lr, weight_decay=train_params.weight_decay)
        self.scheduler = _scheduler(self.opt, train_params)
        self.bonafide_weight = class_weights(train.y, train_params.balance)
        self.gen = torch.Generator().manual_seed(train_params.seed)
        self.aug_gen = torch.Generator().manual_seed(train_params.seed + 1)  # its own stream: masks leave batches alone
        self.loader, self.sampler = self._loader(train)
        self.best: dict = {"dev_eer": float("inf"), "epoch": -1}
        self.best_state: dict | None = None
        self.seen, self.train_s, self.wait_s, self.start = 0, 0.0, 0.0, 0

    def _loader(self, train: SplitData) -> tuple[Any, Any]:
        import torch

        p = self.params
        # oversample: the sampler draws a fresh permutation of the balanced index list each epoch,
        # so minority rows repeat without copying the feature array.
        order = oversample_indices(train.y, seed=p.seed) if p.balance == "oversample" else np.arange(len(train.y))
        if isinstance(train.x, np.ndarray):
            dataset = torch.utils.data.TensorDataset(
                torch.from_numpy(train.x), torch.from_numpy(train.y.astype(np.float32))
            )
        else:  # audio read from the waveform store: a random crop (and augmentation) per clip and epoch
            dataset = train.x.dataset(train.y, seed=p.seed, train=True, augment=self.augment)
        self.epoch_dataset = getattr(dataset, "set_epoch", None)
        if self.world > 1:  # each process takes its own 1/world of a shared per-epoch permutation
            dataset = torch.utils.data.Subset(dataset, order.tolist())
            sampler = torch.utils.data.distributed.DistributedSampler(
                dataset, num_replicas=self.world, rank=self.rank, shuffle=True, seed=p.seed, drop_last=True
            )
        else:
            sampler = torch.utils.data.SubsetRandomSampler(order.tolist(), generator=self.gen)
        n_rows = len(order) // self.world
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=p.batch_size,
            sampler=sampler,
            generator=self.gen,
            num_workers=p.num_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=seed_worker,
            drop_last=n_rows > p.batch_size,
        )
        return loader, sampler

    def loss(self, out: Any, y: Any) -> Any:
        """The training loss of a batch: ``y`` float labels (1 = bona fide)."""
        import torch
        import torch.nn.functional as F

        if hasattr(self.net, "loss"):  # a head that brings its own loss (OC-Softmax)
            return self.net.loss(out, y, bonafide_weight=self.bonafide_weight)
        if out.ndim == 2:  # two logits: class-weighted cross-entropy
            weight = torch.tensor([1.0, self.bonafide_weight], device=out.device)
            return F.cross_entropy(out, y.long(), weight=weight)
        pos_weight = torch.tensor(self.bonafide_weight, device=out.device)
        return F.binary_cross_entropy_with_logits(out, y, pos_weight=pos_weight)

    def state(self, key: str, epoch: int) -> dict:
        import torch

        return {
            "key": key,
            "epoch": epoch,
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "sampler_rng": self.gen.get_state(),
            "augment_rng": self.aug_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best": self.best,
            "best_state": self.best_state,
            "seen": self.seen,
            "train_s": self.train_s,
        }

    def restore(self, state: dict) -> None:
        import torch

        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.gen.set_state(state["sampler_rng"])
        self.aug_gen.set_state(state["augment_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.best, self.best_state = state["best"], state["best_state"]
        self.seen, self.train_s, self.start = state["seen"], state["train_s"], state["epoch"] + 1


def train_epoch(run: _Run, epoch: int) -> float:
    """One pass over the training batches; returns the mean training loss."""
    import torch

    run.model.train()
    if run.world > 1:
        run.sampler.set_epoch(epoch)
    if run.epoch_dataset is not None:  # fresh crops and augmentation draws each epoch
        run.epoch_dataset(epoch)
    t0, total, n = time.perf_counter(), 0.0, 0
    batches = iter(run.loader)
    while True:
        t_wait = time.perf_counter()
        batch = next(batches, None)
        run.wait_s += time.perf_counter() - t_wait
        if batch is None:
            break
        xb, yb = batch
        if run.params.spec_augment.enabled and xb.ndim == 3 and xb.shape[1] > 1:  # frames, not audio
            xb = spec_augment(xb, run.params.spec_augment, run.aug_gen)
        xb, yb = xb.to(run.device, non_blocking=True), yb.to(run.device, non_blocking=True)
        with torch.autocast(device_type=run.device.type, dtype=torch.bfloat16, enabled=run.device.type == "cuda"):
            out = run.model(xb)
        loss = run.loss(out.float(), yb)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        if run.params.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.net.parameters(), run.params.grad_clip)
        run.opt.step()
        total += loss.item() * len(yb)
        n += len(yb)
    run.train_s += time.perf_counter() - t0
    run.seen += n * run.world
    return total / max(n, 1)


def val_epoch(run: _Run, dev: SplitData) -> tuple[float, float]:
    """Dev EER and its threshold of the current weights (rank 0's on every process)."""
    # Feature batches are small: score 4 at a time; audio crops feed large activations (AASIST's
    # 2-D encoder), so they go one training batch at a time.
    batch_size = run.params.batch_size * (4 if isinstance(dev.x, np.ndarray) else 1)
    dev_scores = predict_torch(run.net, dev.x, run.device, batch_size)
    dev_eer, threshold = compute_eer(dev.y, dev_scores)
    if run.world > 1:  # BatchNorm statistics differ a little between processes: rank 0 decides for all
        dev_eer, threshold = from_rank0([dev_eer, threshold], run.device)
    return dev_eer, threshold


def init_weights(net: Any, path: Path | str) -> str:
    """Load the weights of a bundle folder or a state-dict file into ``net`` (``train.init_from``).

    Keys are matched by name; a network wrapped in a head (OC-Softmax) also takes its bare
    network's weights. Keys present on one side only are left as they are (a new head starts
    fresh), but every shared key must have the same shape.

    Returns:
        a one-line account of what was loaded.

    Raises:
        ValueError: no such file, not a state dict, a shape mismatch, or no key in common.
    """
    import torch

    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"train.init_from={str(path)!r}: no such bundle folder ({WEIGHTS}) or weights file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as exc:
        raise ValueError(f"train.init_from={str(path)!r}: {file} is not a torch state dict: {exc}") from exc
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ValueError(f"train.init_from={str(path)!r}: {file} holds no state dict of tensors")
    target = net
    own = net.state_dict()
    if not set(state) & set(own) and hasattr(net, "net"):  # weights of the bare network under a head
        target, own = net.net, net.net.state_dict()
    shared = sorted(set(state) & set(own))
    if not shared:
        raise ValueError(
            f"train.init_from={str(path)!r}: none of its {len(state)} weights fit this model "
            f"(e.g. {next(iter(state), '-')!r} vs {next(iter(own), '-')!r}): another architecture?"
        )
    for k in shared:
        if tuple(state[k].shape) != tuple(own[k].shape):
            raise ValueError(
                f"train.init_from={str(path)!r}: {k} has shape {tuple(state[k].shape)}, this model "
                f"{tuple(own[k].shape)}: its hyper-parameters differ from those weights'"
            )
    target.load_state_dict({k: state[k] for k in shared}, strict=False)
    fresh = len(set(own) - set(state))
    return f"initialised {len(shared)} of {len(own)} tensors from {file}" + (f" ({fresh} left fresh)" if fresh else "")


def train_neural(
    build: Callable[[int, int], Any],
    data: dict[str, SplitData],
    *,
    name: str,
    train_params: TrainParams,
    out_dir: Path,
    live: Any = None,
    key: str = "",
    stop_after: int | None = None,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    frontend_lr: float | None = None,
) -> dict:
    """Train a network with early stopping on dev EER; write its weights to ``out_dir``.

    A checkpoint is written after every epoch; when ``out_dir`` holds one written for the same
    ``key`` (see :func:`deepfake_audio.bundle.training_key`), training resumes after its epoch
    with the model, optimiser, LR schedule and random streams restored, so the result equals an
    uninterrupted run. ``stop_after``: stop after this many epochs in this call, leaving the
    checkpoint (for tests of resuming).

    Args:
        build: ``build(n_features, n_frames) -> nn.Module`` returning one logit or two logits
            (index 1 = bona fide) per clip, or a head with its own ``loss`` (OC-Softmax).
        data: ``train`` and ``dev`` inputs of shape ``(n, n_features, n_frames)``: arrays, or
            :class:`~deepfake_audio.waveforms.WaveformSet` audio ``(n, 1, n_samples)``.
        name: the model's name, for logs.
        augment: for waveform inputs, ``augment(crop, rng) -> crop`` applied to every training
            crop with a generator drawn per clip and epoch (``train.augment``).
        frontend_lr: the learning rate of a pretrained front-end; the network then has
            ``param_groups(lr, frontend_lr)`` (an SSL detector being fine-tuned).

    Returns:
        a summary with the best epoch, its dev EER and threshold, and samples/s.
    """
    import torch

    seed_everything(train_params.seed)
    device = select_device(train_params.device)
    train, dev = data["train"], data["dev"]
    n_features, n_frames = train.x.shape[1], train.x.shape[2]
    net = build(n_features, n_frames)
    if train_params.init_from is not None:
        log.info("%s: %s", name, init_weights(net, train_params.init_from))
    run = _Run(net.to(device), train, train_params, device, augment=augment, frontend_lr=frontend_lr)
    checkpoint = out_dir / CHECKPOINT
    if live is not None and run.rank > 0:
        raise ValueError("only rank 0 logs to DVCLive")
    if key and resumable_epoch(out_dir, key) is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        run.restore(state)
        log.info("resuming %s from the checkpoint of epoch %d", name, state["epoch"])
    epoch = run.start - 1
    for epoch in progress(range(run.start, train_params.epochs), desc=f"train {name}", unit="epoch"):
        loss = train_epoch(run, epoch)
        dev_eer, threshold = val_epoch(run, dev)
        lr = run.opt.param_groups[0]["lr"]
        log.info("epoch %d: train loss %.4f, dev EER %.2f%%, lr %.2g", epoch, loss, 100 * dev_eer, lr)
        if live is not None:
            live.log_metric("train/loss", loss)
            live.log_metric("dev/eer", dev_eer)
            live.log_metric("train/lr", lr)
            live.next_step()
        if isinstance(run.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            run.scheduler.step(dev_eer)
        elif run.scheduler is not None:
            run.scheduler.step()
        if dev_eer < run.best["dev_eer"]:
            run.best = {"dev_eer": dev_eer, "epoch": epoch, "threshold": threshold}
            run.best_state = {k: v.detach().cpu().clone() for k, v in run.net.state_dict().items()}
        elif epoch - run.best["epoch"] >= train_params.patience:
            log.info("early stop at epoch %d (best %d)", epoch, run.best["epoch"])
            break
        if key and run.rank == 0:
            with atomic_path(checkpoint) as tmp, tmp.open("wb") as fh:
                torch.save(run.state(key, epoch), fh)
        if stop_after is not None and epoch + 1 - run.start >= stop_after:
            return {"stopped_at": epoch}
    # Saving through a handle keeps the temp file's random name out of the zip records, so the
    # same weights give the same bytes (and DVC sees an unchanged model).
    if run.rank == 0:
        with atomic_path(out_dir / WEIGHTS) as tmp, tmp.open("wb") as fh:
            torch.save(run.best_state, fh)
        checkpoint.unlink(missing_ok=True)
    return {
        "best_epoch": run.best["epoch"],
        "dev_eer": run.best["dev_eer"],
        "threshold": run.best["threshold"],
        "epochs_run": epoch + 1,
        "device": device.type,
        "n_features": n_features,
        "n_frames": n_frames,
        "train_samples_per_s": run.seen / max(run.train_s, 1e-9),
        "data_wait_share": run.wait_s / max(run.train_s, 1e-9),
    }
