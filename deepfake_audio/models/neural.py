"""Neural model kinds. Each reads the shared ``model`` params section (its docstring and its
``uses`` say which keys).

Inputs are standardised frame features of shape ``(batch, n_features, n_frames)``: the
``model.sequence_groups`` rows for the 1-D sequence models, one group's (bands x frames) image for
``cnn2d`` and ``lcnn``. Every model returns one logit per clip of shape ``(batch,)``, where higher
means more bona fide.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepfake_audio.inputs import SplitData
from deepfake_audio.models import FitContext, ModelKind, register_model
from deepfake_audio.params import ModelParams
from deepfake_audio.training import WEIGHTS, predict_torch, resumable_epoch, train_neural


def conv_blocks(in_channels: int, params: ModelParams) -> tuple[nn.Sequential, int]:
    """``n_conv_blocks`` x (Conv1d, BatchNorm, ReLU, MaxPool(2)) over time; returns (blocks, channels)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(params.n_conv_blocks):
        layers += [
            nn.Conv1d(channels, params.conv_channels, params.kernel_size, padding=params.kernel_size // 2),
            nn.BatchNorm1d(params.conv_channels),
            nn.ReLU(),
            nn.MaxPool1d(2),
        ]
        channels = params.conv_channels
    return nn.Sequential(*layers), channels


def dense_head(in_features: int, params: ModelParams) -> nn.Sequential:
    """Linear, ReLU, Dropout, Linear to one logit."""
    return nn.Sequential(
        nn.Linear(in_features, params.dense_units),
        nn.ReLU(),
        nn.Dropout(params.dropout),
        nn.Linear(params.dense_units, 1),
    )


def _check_pooling(n_frames: int, n_blocks: int) -> None:
    if n_frames < 2**n_blocks:
        raise ValueError(f"{n_frames} frames are too few for {n_blocks} pooling blocks")


def _sequence_groups(params: ModelParams) -> tuple[str, ...]:
    return params.sequence_groups


CONV_KEYS = ("conv_channels", "n_conv_blocks", "kernel_size")
LSTM_KEYS = ("lstm_units", "lstm_layers")
HEAD_KEYS = ("dense_units", "dropout")


class CNNLSTM(nn.Module):
    """Conv1d blocks, then an LSTM, then a dense head (seed 000).

    Uses ``model``: conv_channels, n_conv_blocks, kernel_size, lstm_units, lstm_layers,
    dense_units, dropout, sequence_groups.
    """

    def __init__(self, n_features: int, n_frames: int, params: ModelParams) -> None:
        super().__init__()
        _check_pooling(n_frames, params.n_conv_blocks)
        self.conv, channels = conv_blocks(n_features, params)
        self.lstm = nn.LSTM(
            channels,
            params.lstm_units,
            num_layers=params.lstm_layers,
            batch_first=True,
            dropout=params.dropout if params.lstm_layers > 1 else 0.0,
        )
        self.head = dense_head(params.lstm_units, params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # (B, C, T / 2**n_blocks)
        h = h.transpose(1, 2)  # (B, T', C)
        _, (h_n, _) = self.lstm(h)  # h_n: (layers, B, H)
        return self.head(h_n[-1]).squeeze(-1)  # (B,)


class SelfAttention(nn.Module):
    """Single-head scaled dot-product self-attention over time, projected to ``dim``."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(in_features, dim) for _ in range(3))
        self.scale = dim**-0.5

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # h: (B, T, in_features)
        weights = torch.softmax(self.query(h) @ self.key(h).transpose(1, 2) * self.scale, dim=-1)  # (B, T, T)
        return weights @ self.value(h)  # (B, T, dim)


class CNNBiLSTMAttention(nn.Module):
    """Conv1d blocks with max pooling, a bidirectional LSTM, self-attention over time, global max
    pooling, then a dense head with dropout (seed 001). Its L2 penalty is ``train.weight_decay``.

    Uses ``model``: conv_channels, n_conv_blocks, kernel_size, lstm_units, lstm_layers,
    attention_dim, dense_units, dropout, sequence_groups.
    """

    def __init__(self, n_features: int, n_frames: int, params: ModelParams) -> None:
        super().__init__()
        _check_pooling(n_frames, params.n_conv_blocks)
        self.conv, channels = conv_blocks(n_features, params)
        self.lstm = nn.LSTM(
            channels,
            params.lstm_units,
            num_layers=params.lstm_layers,
            batch_first=True,
            bidirectional=True,
            dropout=params.dropout if params.lstm_layers > 1 else 0.0,
        )
        self.attention = SelfAttention(2 * params.lstm_units, params.attention_dim)
        self.head = dense_head(params.attention_dim, params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).transpose(1, 2)  # (B, T', C)
        h, _ = self.lstm(h)  # (B, T', 2H)
        h = self.attention(h)  # (B, T', attention_dim)
        return self.head(h.amax(dim=1)).squeeze(-1)  # global max pool over time -> (B,)


class CNN(nn.Module):
    """Conv1d blocks, global average and max pooling over time, a dense head (seed 002's CNN
    ablation: what the convolutions alone give).

    Uses ``model``: conv_channels, n_conv_blocks, kernel_size, dense_units, dropout, sequence_groups.
    """

    def __init__(self, n_features: int, n_frames: int, params: ModelParams) -> None:
        super().__init__()
        _check_pooling(n_frames, params.n_conv_blocks)
        self.conv, channels = conv_blocks(n_features, params)
        self.head = dense_head(2 * channels, params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # (B, C, T')
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # (B, 2C)
        return self.head(pooled).squeeze(-1)


class LSTM(nn.Module):
    """An LSTM over the frames, its last hidden state into a dense head (seed 002's LSTM ablation).

    Uses ``model``: lstm_units, lstm_layers, dense_units, dropout, sequence_groups.
    """

    def __init__(self, n_features: int, n_frames: int, params: ModelParams) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            params.lstm_units,
            num_layers=params.lstm_layers,
            batch_first=True,
            dropout=params.dropout if params.lstm_layers > 1 else 0.0,
        )
        self.head = dense_head(params.lstm_units, params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(x.transpose(1, 2))  # (B, T, F) in; h_n: (layers, B, H)
        return self.head(h_n[-1]).squeeze(-1)


class CNN2D(nn.Module):
    """A 2-D CNN with BatchNorm on a (bands x frames) image, by default the 128-band log-mel
    spectrogram of seeds 003 and 004: an average over ``image_pool`` x ``image_pool`` cells, then
    ``n_conv_blocks`` x (Conv2d 3x3, BatchNorm, ReLU, MaxPool 2x2), channels doubling from
    ``conv_channels / 4``, then global average pooling and a dense head.

    The first pooling is the cost lever: the convolutions at full resolution (128 x 251 for 4 s)
    took most of a CPU pipeline run's time, and a pool of 2 cuts their work about 4 times
    (``image_pool: 1`` is the seed projects' model).

    Uses ``model``: conv_channels, n_conv_blocks, dense_units, dropout, image_group, image_pool.
    """

    def __init__(self, n_features: int, n_frames: int, params: ModelParams) -> None:
        super().__init__()
        _check_pooling(min(n_features, n_frames) // params.image_pool, params.n_conv_blocks)
        layers: list[nn.Module] = [nn.AvgPool2d(params.image_pool)] if params.image_pool > 1 else []
        channels, width = 1, max(params.conv_channels // 4, 1)
        for _ in range(params.n_conv_blocks):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            channels, width = width, 2 * width
        self.conv = nn.Sequential(*layers)
        self.head = dense_head(channels, params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.unsqueeze(1))  # (B, 1, F, T) -> (B, C, F', T')
        return self.head(h.mean(dim=(2, 3))).squeeze(-1)


class MaxFeatureMap(nn.Module):
    """Max-Feature-Map: splits the channels in two halves and keeps their element-wise maximum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.maximum(a, b)


def _mfm_conv(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    """A convolution to ``2 * c_out`` channels and a Max-Feature-Map down to ``c_out``."""
    return [nn.Conv2d(c_in, 2 * c_out, kernel, padding=kernel // 2), MaxFeatureMap()]


class LCNN(nn.Module):
    """The LFCC-LCNN of the ASVspoof 2021 LA/DF baselines: a light CNN of Max-Feature-Map
    convolutions (5x5, then 1x1/3x3 pairs with BatchNorm and 2x2 max pooling) on the LFCC
    (coefficients x frames) image, two bidirectional LSTM layers over time with a skip connection,
    average pooling over time and a linear output. Channel widths scale with ``conv_channels``
    (64 gives the baseline's 32-48-64-32 MFM outputs).

    Uses ``model``: conv_channels, lstm_units, dropout. Reads the ``lfcc`` frame group.
    """

    def __init__(self, n_features: int, n_frames: int, params: ModelParams) -> None:
        super().__init__()
        _check_pooling(min(n_features, n_frames), 4)
        c = params.conv_channels
        c1, c2, c3 = c // 2, 3 * c // 4, c

        def bn(ch: int) -> nn.Module:
            return nn.BatchNorm2d(ch, affine=False)

        self.conv = nn.Sequential(
            *_mfm_conv(1, c1, 5),
            nn.MaxPool2d(2),
            *_mfm_conv(c1, c1, 1),
            bn(c1),
            *_mfm_conv(c1, c2, 3),
            nn.MaxPool2d(2),
            bn(c2),
            *_mfm_conv(c2, c2, 1),
            bn(c2),
            *_mfm_conv(c2, c3, 3),
            nn.MaxPool2d(2),
            *_mfm_conv(c3, c3, 1),
            bn(c3),
            *_mfm_conv(c3, c1, 3),
            bn(c1),
            *_mfm_conv(c1, c1, 1),
            bn(c1),
            *_mfm_conv(c1, c1, 3),
            nn.MaxPool2d(2),
            nn.Dropout(params.dropout),
        )
        width = c1 * (n_features // 16)  # channels x remaining coefficient rows
        self.lstm = nn.LSTM(width, params.lstm_units, num_layers=2, batch_first=True, bidirectional=True)
        self.skip = nn.Linear(width, 2 * params.lstm_units)
        self.out = nn.Linear(2 * params.lstm_units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.unsqueeze(1))  # (B, 1, F, T) -> (B, C, F/16, T/16)
        h = h.flatten(1, 2).transpose(1, 2)  # (B, T/16, C * F/16)
        seq, _ = self.lstm(h)  # (B, T/16, 2H)
        pooled = (seq + self.skip(h)).mean(dim=1)  # (B, 2H)
        return self.out(pooled).squeeze(-1)


# ---------------------------------------------------------------- the torch family


def neural_kind(
    name: str,
    module: Callable[..., nn.Module],
    *,
    uses: tuple[str, ...],
    input_groups: Callable[[Any], tuple[str, ...]] | None = None,
    section: str = "model",
    params_type: type = ModelParams,
    input: str = "frames",
) -> ModelKind:
    """A model kind for a ``torch.nn.Module`` built as ``module(n_features, n_frames, section_params)``.

    It trains with :func:`deepfake_audio.training.train_neural` (DDP, checkpoints, early stopping
    on dev EER), saves a ``state_dict`` and scores on the CPU in eval mode.
    """

    def fit(data: dict[str, SplitData], ctx: FitContext) -> dict:
        return train_neural(
            lambda n_features, n_frames: module(n_features, n_frames, ctx.section),
            data,
            name=name,
            train_params=ctx.train,
            out_dir=ctx.out_dir,
            live=ctx.live,
            key=ctx.key,
        )

    def load(bundle_dir: Path, config: dict, params: Any) -> nn.Module:
        summary = config["summary"]
        model = module(summary["n_features"], summary["n_frames"], params)
        model.load_state_dict(torch.load(bundle_dir / WEIGHTS, map_location="cpu", weights_only=True))
        return model.eval()

    def score(model: nn.Module, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        return predict_torch(model, x, torch.device("cpu"), batch_size).astype(np.float64)

    return ModelKind(
        name,
        section,
        params_type,
        input,
        WEIGHTS,
        fit,
        load,
        score,
        uses=uses,
        input_groups=input_groups,
        distributed=True,
        resumable_epoch=resumable_epoch,
        build=module,
    )


SEQUENCE_KEYS = ("sequence_groups",)
SEQUENCE_MODELS = {
    "cnn_lstm": (CNNLSTM, CONV_KEYS + LSTM_KEYS + HEAD_KEYS),
    "cnn_bilstm_attention": (CNNBiLSTMAttention, CONV_KEYS + LSTM_KEYS + ("attention_dim",) + HEAD_KEYS),
    "cnn": (CNN, CONV_KEYS + HEAD_KEYS),
    "lstm": (LSTM, LSTM_KEYS + HEAD_KEYS),
}
for _name, (_cls, _keys) in SEQUENCE_MODELS.items():
    register_model(neural_kind(_name, _cls, uses=_keys + SEQUENCE_KEYS, input_groups=_sequence_groups))
register_model(
    neural_kind(
        "cnn2d",
        CNN2D,
        uses=("conv_channels", "n_conv_blocks") + HEAD_KEYS + ("image_group", "image_pool"),
        input_groups=lambda p: (p.image_group,),
    )
)
register_model(
    neural_kind("lcnn", LCNN, uses=("conv_channels", "lstm_units", "dropout"), input_groups=lambda p: ("lfcc",))
)
