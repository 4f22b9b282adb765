"""RawNet2 for anti-spoofing on raw audio (Tak et al., "End-to-end anti-spoofing with RawNet2",
ICASSP 2021), written from the paper.

A fixed sinc band-pass filterbank on mel-spaced bands, rectified and max-pooled; residual blocks
with filter-wise feature map scaling (FMS); a GRU over the remaining frames; a fully connected
layer; two output logits (index 1 = bona fide). Input is a mono waveform ``(batch, n_samples)``
or ``(batch, 1, n_samples)``, float32, at ``sample_rate``.

This module only defines the networks; the model kind that trains them is registered elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

POOL = 3
"""Max-pooling width after the sinc layer and after every residual block (the paper's 3)."""


def hz_to_mel(hz: float | torch.Tensor) -> float | torch.Tensor:
    """HTK mel scale: ``2595 log10(1 + hz / 700)``."""
    if isinstance(hz, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


class SincConv(nn.Module):
    """A fixed bank of windowed-sinc band-pass filters over raw audio (no learned parameters).

    The ``out_channels + 1`` band edges are equally spaced on the mel scale from 0 Hz to
    ``sample_rate / 2``; filter ``i`` passes ``[edge[i], edge[i + 1]]`` (so the first is a
    low-pass from 0 Hz and the last a high-pass up to Nyquist). Each is the difference of two
    ideal low-pass sincs, Hamming-windowed, with unit gain in its pass band. The convolution is
    "valid": ``n_samples`` in, ``n_samples - kernel_size + 1`` frames out.

    Args:
        out_channels: number of filters (bands).
        kernel_size: filter length in samples; odd, so each filter is symmetric about a centre
            tap (linear phase).
        sample_rate: Hz.

    Raises:
        ValueError: naming a bad ``out_channels``, ``kernel_size`` or ``sample_rate``.
    """

    def __init__(self, *, out_channels: int, kernel_size: int, sample_rate: int) -> None:
        super().__init__()
        if out_channels < 1:
            raise ValueError(f"out_channels must be at least 1, got {out_channels}")
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd and at least 3, got {kernel_size} (use 1025 for the paper's 1024)"
            )
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.out_channels, self.kernel_size, self.sample_rate = out_channels, kernel_size, sample_rate
        mel = torch.linspace(0.0, float(hz_to_mel(sample_rate / 2)), out_channels + 1, dtype=torch.float64)
        edges_hz = mel_to_hz(mel)  # (C + 1,)
        edges_hz[-1] = sample_rate / 2  # exactly Nyquist despite rounding
        self.register_buffer("low_hz", edges_hz[:-1].float(), persistent=False)  # (C,)
        self.register_buffer("high_hz", edges_hz[1:].float(), persistent=False)  # (C,)
        n = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2  # (K,) taps, centred
        low = (edges_hz[:-1] / sample_rate).unsqueeze(1)  # (C, 1) cycles per sample
        high = (edges_hz[1:] / sample_rate).unsqueeze(1)  # (C, 1)
        # torch.sinc(x) = sin(pi x) / (pi x): 2 f sinc(2 f n) is the ideal low-pass with cut-off f.
        band_pass = 2 * high * torch.sinc(2 * high * n) - 2 * low * torch.sinc(2 * low * n)  # (C, K)
        window = torch.hamming_window(kernel_size, periodic=False, dtype=torch.float64)  # (K,)
        filters = (band_pass * window).float().unsqueeze(1)  # (C, 1, K)
        self.register_buffer("filters", filters, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, N)`` waveform -> ``(B, out_channels, N - kernel_size + 1)`` band signals."""
        return F.conv1d(x, self.filters)

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, kernel_size={self.kernel_size}, sample_rate={self.sample_rate}"


class FilterwiseScaling(nn.Module):
    """Filter-wise feature map scaling (FMS): a per-channel scale from the channel's mean over
    time, applied both multiplicatively and additively: ``s = sigmoid(W mean_t(x) + b)``,
    ``x * s + s``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, T)
        s = torch.sigmoid(self.fc(x.mean(dim=2))).unsqueeze(2)  # (B, C) -> (B, C, 1)
        return x * s + s


class ResidualBlock(nn.Module):
    """[BN, LeakyReLU,] conv 3, BN, LeakyReLU, conv 3, plus a skip (a 1x1 conv when the channel
    count changes), max-pool 3, FMS. ``(B, in_channels, T)`` -> ``(B, out_channels, T // 3)``.

    Args:
        in_channels, out_channels: channel counts.
        preactivate: start with BN and LeakyReLU; the network's first block skips them because
            the layer before it already ends with BN and LeakyReLU.
        negative_slope: of the LeakyReLUs.
    """

    def __init__(self, in_channels: int, out_channels: int, *, preactivate: bool = True, negative_slope: float) -> None:
        super().__init__()
        pre = [nn.BatchNorm1d(in_channels), nn.LeakyReLU(negative_slope)] if preactivate else []
        self.body = nn.Sequential(
            *pre,
            nn.Conv1d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm1d(out_channels),
            nn.LeakyReLU(negative_slope),
            nn.Conv1d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.pool = nn.MaxPool1d(POOL)
        self.fms = FilterwiseScaling(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, T)
        h = self.body(x) + self.skip(x)  # (B, C_out, T)
        return self.fms(self.pool(h))  # (B, C_out, T // 3)


class RawNet2(nn.Module):
    """RawNet2 (Tak et al. 2021): raw waveform in, two logits out (index 1 = bona fide).

    Layers: fixed :class:`SincConv` -> abs -> max-pool 3 -> BN -> LeakyReLU; residual blocks
    (:class:`ResidualBlock`, each ending in max-pool 3 and FMS); BN -> LeakyReLU; a GRU whose
    last time step of the top layer goes to a fully connected layer (the embedding, see
    :meth:`embed`) and a linear output to two logits.

    Defaults are the paper's: 20 sinc filters of 1025 taps (the paper's 1024, made odd), blocks
    of 20, 20, 128, 128, 128, 128 channels, a 3-layer GRU of 1024 units, FC of 1024. A small
    CPU variant: ``sinc_kernel_size=251, block_channels=(20, 20, 64, 64), gru_hidden=128,
    fc_features=128``.

    Args:
        sample_rate: Hz of the input waveform.
        sinc_channels: number of sinc filters.
        sinc_kernel_size: their length in samples (odd).
        block_channels: output channels of each residual block, in order.
        gru_hidden: GRU hidden units.
        gru_layers: stacked GRU layers.
        fc_features: width of the fully connected layer (the embedding).
        negative_slope: of every LeakyReLU.

    Raises:
        ValueError: naming a bad size.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        sinc_channels: int = 20,
        sinc_kernel_size: int = 1025,
        block_channels: Sequence[int] = (20, 20, 128, 128, 128, 128),
        gru_hidden: int = 1024,
        gru_layers: int = 3,
        fc_features: int = 1024,
        negative_slope: float = 0.3,
    ) -> None:
        super().__init__()
        block_channels = tuple(block_channels)
        if not block_channels or min(block_channels) < 1:
            raise ValueError(f"block_channels must be a non-empty list of positive counts, got {block_channels}")
        for key, value in (("gru_hidden", gru_hidden), ("gru_layers", gru_layers), ("fc_features", fc_features)):
            if value < 1:
                raise ValueError(f"{key} must be at least 1, got {value}")
        self.sinc = SincConv(out_channels=sinc_channels, kernel_size=sinc_kernel_size, sample_rate=sample_rate)
        self.sinc_pool = nn.MaxPool1d(POOL)
        self.sinc_norm = nn.Sequential(nn.BatchNorm1d(sinc_channels), nn.LeakyReLU(negative_slope))
        blocks, channels = [], sinc_channels
        for i, out_channels in enumerate(block_channels):
            blocks.append(ResidualBlock(channels, out_channels, preactivate=i > 0, negative_slope=negative_slope))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pre_gru = nn.Sequential(nn.BatchNorm1d(channels), nn.LeakyReLU(negative_slope))
        self.gru = nn.GRU(channels, gru_hidden, num_layers=gru_layers, batch_first=True)
        self.fc = nn.Linear(gru_hidden, fc_features)
        self.out = nn.Linear(fc_features, 2)
        self.embedding_dim = fc_features  # width of embed(), for heads such as OC-Softmax
        self.fc_features = fc_features
        # One frame must survive the sinc layer and every max-pool.
        self.min_samples = sinc_kernel_size - 1 + POOL ** (1 + len(block_channels))

    def _waveform(self, x: torch.Tensor) -> torch.Tensor:
        """Accept ``(B, N)`` or ``(B, 1, N)``; return ``(B, 1, N)``."""
        if x.ndim == 2:
            x = x.unsqueeze(1)  # (B, N) -> (B, 1, N)
        if x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(
                f"expected a waveform of shape (batch, n_samples) or (batch, 1, n_samples), got {tuple(x.shape)}"
            )
        if x.shape[2] < self.min_samples:
            raise ValueError(f"{x.shape[2]} samples are too few for this RawNet2; it needs at least {self.min_samples}")
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (before the output logits).

        Args:
            x: float32 waveform, ``(B, N)`` or ``(B, 1, N)``, ``N >= self.min_samples``.

        Returns:
            ``(B, fc_features)``.
        """
        h = self.sinc(self._waveform(x))  # (B, 1, N) -> (B, C_sinc, N - K + 1)
        h = self.sinc_norm(self.sinc_pool(h.abs()))  # (B, C_sinc, (N - K + 1) // 3)
        h = self.pre_gru(self.blocks(h))  # (B, C, T), T = previous // 3**n_blocks
        seq, _ = self.gru(h.transpose(1, 2))  # (B, T, C) in; (B, T, H) out
        return self.fc(seq[:, -1])  # last time step (B, H) -> (B, fc_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` or ``(B, 1, N)`` float32 waveform -> ``(B, 2)`` logits (index 1 = bona fide)."""
        return self.out(self.embed(x))
