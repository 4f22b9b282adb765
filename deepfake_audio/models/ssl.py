"""Back-ends on a self-supervised speech front-end (:mod:`deepfake_audio.frontends.ssl`).

Three kinds, each with its own params section and the shared ``ssl`` section (the front-end):

- ``ssl_linear``: the pooled embedding (mean, or mean and standard deviation over frames), then a
  linear layer: logistic regression on a frozen SSL model, the set-up of Pascu et al. (2023);
  ``hidden_units`` > 0 puts one hidden layer before it.
- ``ssl_attm``: a layer-wise back-end, an attentive merge of the hidden layers (after Pan et al.,
  2024): each clip weighs the layers by attention on their pooled embeddings, then a small MLP.
- ``ssl_aasist``: AASIST's graph-attention back-end on the SSL frames (Tak et al., 2022): a linear
  projection to a 2-D map, residual blocks, spectral and temporal graph attention, HS-GAL.

With ``ssl.freeze: true`` a kind reads the embedding store (input ``embeddings``: computed once,
so the back-end trains in seconds on a CPU) and its bundle holds the back-end alone; scoring
audio (``predict``, the web page) runs the checkpoint it names, whose weights must be the ones it
was trained on. With ``ssl.freeze: false`` it reads audio crops (input ``waveform``, with
``train.augment``), the front-end trains at ``ssl.lr``, and the bundle holds both networks and a
copy of the checkpoint's config, so it needs nothing else.

``ssl.layer: null`` gives every kind a learned softmax weighting of all hidden states; ``k`` feeds
hidden state ``k`` alone.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepfake_audio.frontends.ssl import (
    CheckpointError,
    check_fits,
    default_normalize,
    fingerprint,
    load_frontend,
    pool_frames,
    read_config,
    resolve_checkpoint,
)
from deepfake_audio.io import read_json, write_json
from deepfake_audio.models import FitContext, ModelKind, register_model
from deepfake_audio.models.aasist import ResidualBlock, graph_readout, init_graph
from deepfake_audio.params import ParamError, SSLParams
from deepfake_audio.runtime import select_device
from deepfake_audio.training import WEIGHTS, predict_torch, resumable_epoch, train_neural

FRONTEND_FILE = "frontend.json"
"""Beside a bundle's weights: the front-end as trained (checkpoint fingerprint, its config.json,
input normalisation, the shape the back-end reads)."""

SCORE_BATCH = 16


# ---------------------------------------------------------------- params sections


def _frontend() -> SSLParams:
    return SSLParams()


@dataclasses.dataclass(frozen=True)
class SSLLinearParams:
    """``ssl_linear``: a linear (logistic) layer on the pooled SSL embedding."""

    frontend: SSLParams = dataclasses.field(default_factory=_frontend)  # filled from the `ssl` section
    pooling: Literal["mean", "mean_std"] = "mean_std"  # over frames, after the layer weighting
    hidden_units: int = 0  # 0: logistic regression; > 0: one hidden ReLU layer of this width first
    dropout: float = 0.1

    def validate(self, prefix: str) -> None:
        _check(prefix, self, ints=("hidden_units",), allow_zero=True)


@dataclasses.dataclass(frozen=True)
class SSLAttMParams:
    """``ssl_attm``: attentive merge of the hidden layers, then an MLP on the pooled merge."""

    frontend: SSLParams = dataclasses.field(default_factory=_frontend)
    attention_dim: int = 64  # of the layer-scoring attention
    hidden_units: int = 128
    dropout: float = 0.3

    def validate(self, prefix: str) -> None:
        _check(prefix, self, ints=("attention_dim", "hidden_units"))


@dataclasses.dataclass(frozen=True)
class SSLAasistParams:
    """``ssl_aasist``: AASIST's graph back-end on SSL frames (Tak et al. 2022 use ``proj_dim`` 128,
    channels ``[[1,32],[32,32],[32,64],[64,64]]``, ``gat_dims [64,32]``)."""

    frontend: SSLParams = dataclasses.field(default_factory=_frontend)
    proj_dim: int = 128  # the linear layer from the SSL width to the 2-D map's height
    channels: tuple[tuple[int, int], ...] = ((1, 32), (32, 32), (32, 24), (24, 24))  # residual blocks (in, out)
    time_pools: tuple[int, ...] = (3, 1, 1, 1)  # each block's max-pool over frames (4 s: 67 frames -> 22 graph nodes)
    gat_dims: tuple[int, ...] = (24, 32)
    pool_ratios: tuple[float, ...] = (0.5, 0.5, 0.5)
    temperatures: tuple[float, ...] = (2.0, 2.0, 100.0)
    dropout: float = 0.5

    def validate(self, prefix: str) -> None:
        _check(prefix, self, ints=("proj_dim",))
        if self.proj_dim < 3:
            raise ParamError(f"{prefix}.proj_dim", self.proj_dim, "at least 3 (the first 3x3 max-pool)")
        if not self.channels or self.channels[0][0] != 1 or any(len(c) != 2 or min(c) < 1 for c in self.channels):
            raise ParamError(f"{prefix}.channels", [list(c) for c in self.channels], "[in, out] pairs starting at 1")
        if any(a[1] != b[0] for a, b in zip(self.channels, self.channels[1:])):
            raise ParamError(
                f"{prefix}.channels", [list(c) for c in self.channels], "each block reads the last one's out"
            )
        if len(self.time_pools) != len(self.channels) or min(self.time_pools) < 1:
            raise ParamError(f"{prefix}.time_pools", list(self.time_pools), "one pool >= 1 per block of channels")
        if len(self.gat_dims) != 2 or min(self.gat_dims) < 1:
            raise ParamError(f"{prefix}.gat_dims", list(self.gat_dims), "two positive widths")
        if len(self.pool_ratios) != 3 or not all(0 < r <= 1 for r in self.pool_ratios):
            raise ParamError(f"{prefix}.pool_ratios", list(self.pool_ratios), "three fractions in (0, 1]")
        if len(self.temperatures) != 3 or not all(t > 0 for t in self.temperatures):
            raise ParamError(f"{prefix}.temperatures", list(self.temperatures), "three positive numbers")


def _check(prefix: str, section: Any, *, ints: tuple[str, ...], allow_zero: bool = False) -> None:
    for name in ints:
        value = getattr(section, name)
        if value < 0 or (value == 0 and not allow_zero):
            raise ParamError(f"{prefix}.{name}", value, ">= 0" if allow_zero else "> 0")
    if not 0 <= section.dropout < 1:
        raise ParamError(f"{prefix}.dropout", section.dropout, "a fraction in [0, 1)")


# ---------------------------------------------------------------- networks


class LayerMix(nn.Module):
    """A learned softmax weighting of ``n_layers`` hidden states: ``(B, L, R, D)`` -> ``(B, R, D)``."""

    def __init__(self, n_layers: int) -> None:
        super().__init__()
        # One hidden state (a fixed ssl.layer) has nothing to weigh: no weight that never learns.
        self.weights = nn.Parameter(torch.zeros(n_layers)) if n_layers > 1 else None  # uniform at the start

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.weights is None:
            return h[:, 0]
        return torch.einsum("l,blrd->brd", torch.softmax(self.weights, dim=0), h)


def _stats(h: torch.Tensor, pooled: bool, pooling: str = "mean_std") -> torch.Tensor:
    """``(B, R, D)``: frames, or the pooled [mean, std] rows -> ``(B, D)`` or ``(B, 2D)``."""
    mean, std = (h[:, 0], h[:, 1]) if pooled else (h.mean(dim=1), h.std(dim=1, unbiased=False))
    return mean if pooling == "mean" else torch.cat([mean, std], dim=1)


class SSLLinear(nn.Module):
    def __init__(self, n_layers: int, dim: int, pooled: bool, section: SSLLinearParams) -> None:
        super().__init__()
        self.pooled, self.pooling = pooled, section.pooling
        self.mix = LayerMix(n_layers)
        width = dim * (1 if section.pooling == "mean" else 2)
        head: list[nn.Module] = [nn.Dropout(section.dropout)]
        if section.hidden_units:
            head += [nn.Linear(width, section.hidden_units), nn.ReLU(), nn.Dropout(section.dropout)]
            width = section.hidden_units
        self.head = nn.Sequential(*head, nn.Linear(width, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(_stats(self.mix(h), self.pooled, self.pooling)).squeeze(1)  # (B,) logit


class SSLAttM(nn.Module):
    """Each clip scores its layers by attention on their mean embeddings; the merge is pooled into an MLP."""

    def __init__(self, n_layers: int, dim: int, pooled: bool, section: SSLAttMParams) -> None:
        super().__init__()
        self.pooled = pooled
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Sequential(
            nn.Linear(dim, section.attention_dim), nn.Tanh(), nn.Linear(section.attention_dim, 1)
        )
        self.head = nn.Sequential(
            nn.Dropout(section.dropout),
            nn.Linear(2 * dim, section.hidden_units),
            nn.ReLU(),
            nn.Dropout(section.dropout),
            nn.Linear(section.hidden_units, 1),
        )
        self.last_weights: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        means = h[:, :, 0] if self.pooled else h.mean(dim=2)  # (B, L, D)
        a = torch.softmax(self.score(self.norm(means)).squeeze(-1), dim=1)  # (B, L)
        self.last_weights = a.detach()
        merged = torch.einsum("bl,blrd->brd", a, h)  # (B, R, D)
        return self.head(_stats(merged, self.pooled)).squeeze(1)


class SSLAasist(nn.Module):
    """AASIST's encoder and graphs on SSL frames ``(B, L, T, D)``; two logits (index 1 = bona fide)."""

    def __init__(self, n_layers: int, dim: int, pooled: bool, section: SSLAasistParams) -> None:
        super().__init__()
        if pooled:
            raise ValueError("ssl_aasist reads frames: set ssl.cache: frames, or ssl.freeze: false")
        self.pooled = False
        self.mix = LayerMix(n_layers)
        self.proj = nn.Linear(dim, section.proj_dim)
        self.first_bn = nn.BatchNorm2d(1)
        self.selu = nn.SELU()
        pools = section.time_pools
        blocks = [ResidualBlock(*section.channels[0], first=True, time_pool=pools[0])]
        blocks += [ResidualBlock(*pair, time_pool=pool) for pair, pool in zip(section.channels[1:], pools[1:])]
        self.encoder = nn.Sequential(*blocks)
        self.min_frames = 3 * math.prod(pools)
        init_graph(
            self,
            channels=section.channels[-1][1],
            n_spectral=section.proj_dim // 3,
            gat_dims=section.gat_dims,
            pool_ratios=section.pool_ratios,
            temperatures=section.temperatures,
            attention_dropout=0.2,
            pool_dropout=0.3,
            branch_dropout=0.2,
        )
        self.drop = nn.Dropout(section.dropout)
        self.out_layer = nn.Linear(self.embedding_dim, 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.mix(h))  # (B, T, P)
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, P, T): a map of P bands by T frames
        if x.size(-1) < self.min_frames:
            raise ValueError(
                f"ssl_aasist needs at least {self.min_frames} frames with ssl_aasist.time_pools, got {x.size(-1)}: "
                f"use longer crops (ssl.n_samples) or smaller pools"
            )
        x = self.selu(self.first_bn(F.max_pool2d(x, (3, 3))))  # (B, 1, P // 3, T // 3)
        e = self.encoder(x)  # (B, C, P // 3, T // (3 * prod(time_pools)))
        return self.out_layer(self.drop(graph_readout(self, e)))


class SSLDetector(nn.Module):
    """A back-end behind an SSL front-end.

    ``forward`` takes what the embedding store holds, ``(B, L, R, D)``, or audio ``(B, 1, n)``: audio
    goes through the front-end (loaded on first use for a frozen bundle) and, where the back-end was
    trained on pooled embeddings, through the same pooling.
    """

    def __init__(self, backend: nn.Module, frontend: nn.Module | None = None, *, frontend_loader: Any = None) -> None:
        super().__init__()
        self.backend = backend
        self.frontend = frontend
        self._frontend_loader = frontend_loader
        self.find_unused_parameters = frontend is not None  # time masking uses its embedding only some steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return self.backend(x)
        if self.frontend is None:
            if self._frontend_loader is None:
                raise ValueError(
                    "this back-end was trained on cached embeddings and has no front-end to read audio with"
                )
            self.frontend = self._frontend_loader().to(next(self.backend.parameters()).device).eval()
        h = self.frontend(x)
        return self.backend(pool_frames(h) if self.backend.pooled else h)

    def param_groups(self, lr: float, frontend_lr: float) -> list[dict]:
        """AdamW groups: the front-end (when fine-tuned) at ``frontend_lr``, the back-end at ``lr``."""
        groups = [{"params": list(self.backend.parameters()), "lr": lr}]
        if self.frontend is not None:
            groups.append({"params": [p for p in self.frontend.parameters() if p.requires_grad], "lr": frontend_lr})
        return groups


BACKENDS = {"ssl_linear": SSLLinear, "ssl_attm": SSLAttM, "ssl_aasist": SSLAasist}
SECTIONS = {"ssl_linear": SSLLinearParams, "ssl_attm": SSLAttMParams, "ssl_aasist": SSLAasistParams}


# ---------------------------------------------------------------- the kinds


def frontend_state(section: SSLParams) -> dict:
    """What a bundle records of its front-end: the checkpoint's identity, config and input normalisation."""
    normalize = section.normalize if section.normalize is not None else default_normalize(section.checkpoint)
    return {
        "checkpoint": section.checkpoint,
        "resolved": str(resolve_checkpoint(section.checkpoint).resolve()),
        "fingerprint": fingerprint(section.checkpoint),
        "config": read_config(section.checkpoint),
        "normalize": bool(normalize),
        "layer": section.layer,
        "freeze": section.freeze,
    }


STORE_KEYS = ("layer", "n_samples", "cache")
"""The ``ssl`` keys an embedding store was made with that a frozen back-end must share."""


def check_store(meta: dict, state: dict, frontend: SSLParams) -> None:
    """Refuse to train a frozen back-end on a store another front-end made (weights, layers, crop, input)."""
    made = meta.get("ssl", {})
    differ = [k for k in STORE_KEYS if made.get(k) != getattr(frontend, k)]
    if meta.get("fingerprint", {}).get("files") != state["fingerprint"]["files"]:
        differ.append("checkpoint weights")
    if made.get("normalize") != state["normalize"]:
        differ.append("normalize")
    if differ:
        raise ValueError(
            f"data/embeddings was made with other front-end settings ({', '.join(differ)}) than ssl now names: "
            f"re-run the embeddings stage (dvc repro) before training"
        )


def _check_frontend(name: str, section: Any) -> None:
    fe = section.frontend
    if fe.checkpoint is None:
        raise ParamError("ssl.checkpoint", None, f"{name} needs a self-supervised checkpoint (docs/ssl.md)")
    if name == "ssl_aasist" and fe.freeze and fe.cache != "frames":
        raise ParamError("ssl.cache", fe.cache, "ssl_aasist reads frames: set ssl.cache: frames, or ssl.freeze: false")


def _check_setup(name: str, section: Any) -> None:
    """The checkpoint is here, has the layer asked for, and the crop makes enough frames."""
    fe = section.frontend
    min_frames = 3 * math.prod(section.time_pools) if name == "ssl_aasist" else 1
    check_fits(read_config(fe.checkpoint), layer=fe.layer, n_samples=fe.n_samples, min_frames=min_frames)


def _frozen_loader(state: dict) -> Any:
    def load() -> nn.Module:
        spec = state["checkpoint"]
        folder = state.get("resolved")
        if folder and not Path(spec).expanduser().exists() and Path(folder).is_dir():
            spec = folder  # a relative folder, scored from elsewhere: the absolute one it was trained from
        now = fingerprint(spec)
        if now["files"] != state["fingerprint"]["files"]:
            raise CheckpointError(
                f"ssl.checkpoint={state['checkpoint']!r} is not the checkpoint this bundle's back-end was trained "
                f"on (its weights' SHA-256 differ): score with the checkpoint it names, or retrain"
            )
        frontend = load_frontend(spec, layer=state["layer"], normalize=state["normalize"])
        return frontend.requires_grad_(False)

    return load


def _dims(state: dict, section: Any) -> tuple[int, int, bool]:
    """(hidden states, width, pooled) of the back-end's input."""
    config = state["config"]
    n_layers = 1 if section.frontend.layer is not None else int(config["num_hidden_layers"]) + 1
    pooled = section.frontend.freeze and section.frontend.cache == "pooled"
    return n_layers, int(config["hidden_size"]), pooled


def build_detector(name: str, section: Any, state: dict, *, pretrained: bool) -> SSLDetector:
    """The network of kind ``name``; fine-tuned kinds get their front-end (pretrained or to be loaded)."""
    backend = BACKENDS[name](*_dims(state, section), section)
    if section.frontend.freeze:
        return SSLDetector(backend, frontend_loader=_frozen_loader(state))
    frontend = load_frontend(
        state["checkpoint"],
        layer=state["layer"],
        normalize=state["normalize"],
        config=state["config"],
        weights=pretrained,
    )
    return SSLDetector(backend, frontend)


def ssl_kind(name: str, params_type: type) -> ModelKind:
    uses = tuple(f.name for f in dataclasses.fields(params_type))

    def fit(data: dict, ctx: FitContext) -> dict:
        from deepfake_audio.models.waveform import crop_augmenter

        fe = ctx.section.frontend
        state = frontend_state(fe)
        if fe.freeze:
            check_store(data["train"].x.store.meta, state, fe)
        write_json(ctx.out_dir / FRONTEND_FILE, state)

        def build(n_features: int, n_frames: int) -> SSLDetector:
            # Called by train_neural after it seeds every generator: the back-end's initial weights
            # depend on train.seed alone, not on what the process drew before.
            net = build_detector(name, ctx.section, state, pretrained=True)
            if net.frontend is not None:
                # Every layer every step and no time masking: transformers draws both from global
                # random state that a checkpoint does not restore (Tak et al. fine-tune without masking).
                net.frontend.model.config.layerdrop = 0.0
                net.frontend.model.config.apply_spec_augment = False
                if fe.gradient_checkpointing:
                    net.frontend.model.activation_checkpointing_enable()
            return net

        augment = None if fe.freeze else crop_augmenter(ctx.train, int(ctx.config["audio"]["sample_rate"]))
        return train_neural(
            build,
            data,
            name=name,
            train_params=ctx.train,
            out_dir=ctx.out_dir,
            live=ctx.live,
            key=ctx.key,
            augment=augment,
            frontend_lr=fe.lr,
        )

    def load(bundle_dir: Path, config: dict, section: Any) -> SSLDetector:
        state = read_json(Path(bundle_dir) / FRONTEND_FILE)
        model = build_detector(name, section, state, pretrained=False)
        model.load_state_dict(torch.load(Path(bundle_dir) / WEIGHTS, map_location="cpu", weights_only=True))
        # ssl.device (an SSL model on a CPU is slow); a bundle trained with `cuda` still loads on a CPU-only machine
        device = select_device("cpu" if section.frontend.device == "cpu" else "auto")
        return model.to(device).eval()

    def score(model: nn.Module, x: Any, *, batch_size: int = SCORE_BATCH) -> Any:
        device = next(model.parameters()).device
        return predict_torch(model, x, device, min(batch_size, SCORE_BATCH)).astype("float64")

    return ModelKind(
        name,
        name,
        params_type,
        "embeddings",
        WEIGHTS,
        fit,
        load,
        score,
        uses=uses,
        distributed=True,
        resumable_epoch=resumable_epoch,
        crop_samples=lambda p, audio: p.frontend.n_samples,
        frontend="ssl",
        input_of=lambda p: "embeddings" if p.frontend.freeze else "waveform",
        check=functools.partial(_check_frontend, name),
        check_setup=functools.partial(_check_setup, name),
    )


for _name, _section in SECTIONS.items():
    register_model(ssl_kind(_name, _section))
