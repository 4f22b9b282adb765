"""Neural model kinds. Each reads the shared ``model`` params section.

Inputs are standardised frame features of shape ``(batch, n_features, n_frames)``; every model
returns one logit per clip of shape ``(batch,)``, where higher means more bona fide.
"""
from __future__ import annotations

import torch
from torch import nn

from deepfake_audio.models import ModelKind, register_model
from deepfake_audio.params import ModelParams


def conv_blocks(in_channels: int, params: ModelParams) -> tuple[nn.Sequential, int]:
    """``n_conv_blocks`` x (Conv1d, BatchNorm, ReLU, MaxPool(2)) over time; returns (blocks, channels)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(params.n_conv_blocks):
        layers += [nn.Conv1d(channels, params.conv_channels, params.kernel_size, padding=params.kernel_size // 2),
                   nn.BatchNorm1d(params.conv_channels), nn.ReLU(), nn.MaxPool1d(2)]
        channels = params.conv_channels
    return nn.Sequential(*layers), channels


class CNNLSTM(nn.Module):
    """Conv1d blocks, then an LSTM, then a dense head (seed 000).

    Uses ``model``: conv_channels, n_conv_blocks, kernel_size, lstm_units, lstm_layers,
    dense_units, dropout.
    """

    def __init__(self, n_features: int, n_frames: int, params: ModelParams) -> None:
        super().__init__()
        if n_frames < 2 ** params.n_conv_blocks:
            raise ValueError(f"{n_frames} frames are too few for {params.n_conv_blocks} pooling blocks")
        self.conv, channels = conv_blocks(n_features, params)
        self.lstm = nn.LSTM(channels, params.lstm_units, num_layers=params.lstm_layers, batch_first=True,
                            dropout=params.dropout if params.lstm_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Linear(params.lstm_units, params.dense_units), nn.ReLU(),
                                  nn.Dropout(params.dropout), nn.Linear(params.dense_units, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)                 # (B, C, T / 2**n_blocks)
        h = h.transpose(1, 2)            # (B, T', C)
        _, (h_n, _) = self.lstm(h)       # h_n: (layers, B, H)
        return self.head(h_n[-1]).squeeze(-1)  # (B,)


register_model(ModelKind("cnn_lstm", "model", "frames", CNNLSTM))
