"""AASIST: a spectro-temporal graph attention network over the raw waveform.

Jung et al., "AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal Graph Attention
Networks", ICASSP 2022. Written from the paper; the module and parameter names follow the
authors' published state dicts, so :func:`load_aasist_checkpoint` loads their weights with
``strict=True`` and reproduces their scores.

The network, for a batch of 16 kHz waveforms ``(B, n_samples)``:

1. a fixed sinc band-pass filterbank (``n_filters`` mel-spaced bands, ``sinc_kernel`` taps, as in
   RawNet2), then ``|.|``, a 3x3 max-pool over (bands, time), BatchNorm and SELU;
2. a residual encoder of six 2-D conv blocks over the (bands x time) image, each ending in a
   (1, 3) max-pool over time;
3. a spectral graph (max of ``|.|`` over time, one node per band row, plus a learned positional
   embedding) and a temporal graph (max of ``|.|`` over bands, one node per frame), each through a
   graph attention layer and top-k graph pooling;
4. two parallel branches, each with its own learned stack (master) node: a heterogeneous stacking
   graph attention layer (HS-GAL) over both graphs, graph pooling, a second HS-GAL added as a
   residual; the branches are merged by an element-wise max;
5. readout: max of ``|.|`` and mean of the temporal nodes and of the spectral nodes, and the stack
   node (``5 * gat_dims[1]`` values), dropout, a linear layer to two logits (index 1 = bona fide).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16_000
"""The published weights were trained on 16 kHz audio."""

N_SAMPLES = 64_600
"""Clip length (about 4 s at 16 kHz) that the authors train and evaluate on."""

AASIST_PRESET: dict = {
    "n_filters": 70,
    "sinc_kernel": 128,
    "filts": ((1, 32), (32, 32), (32, 64), (64, 64)),
    "gat_dims": (64, 32),
    "pool_ratios": (0.5, 0.7, 0.5, 0.5),
    "temperatures": (2.0, 2.0, 100.0, 100.0),
}
"""Constructor kwargs of the published AASIST (``AASIST.conf``; 0.83% EER on ASVspoof 2019 LA eval)."""

AASIST_L_PRESET: dict = {
    "n_filters": 70,
    "sinc_kernel": 128,
    "filts": ((1, 32), (32, 32), (32, 24), (24, 24)),
    "gat_dims": (24, 32),
    "pool_ratios": (0.4, 0.5, 0.7, 0.5),
    "temperatures": (2.0, 2.0, 100.0, 100.0),
}
"""Constructor kwargs of the published AASIST-L (``AASIST-L.conf``; 0.99% EER)."""

PRESETS: dict[str, dict] = {"AASIST": AASIST_PRESET, "AASIST-L": AASIST_L_PRESET}


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def sinc_filterbank(n_filters: int, kernel_size: int, sample_rate: int) -> np.ndarray:
    """Hamming-windowed ideal band-pass filters with band edges equally spaced in mel from 0 Hz to Nyquist.

    Args:
        n_filters: number of bands.
        kernel_size: taps; an even size is made odd (+1) so each filter is symmetric.
        sample_rate: Hz.

    Returns:
        float64 of shape ``(n_filters, kernel_size | 1)``.
    """
    kernel_size = kernel_size | 1
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_filters + 1))
    t = np.arange(kernel_size) - (kernel_size - 1) / 2  # tap times in samples, centred on 0
    low, high = edges[:-1, None], edges[1:, None]  # (n_filters, 1) Hz
    # Ideal band-pass = low-pass at the upper edge minus low-pass at the lower edge.
    ideal = 2 * high / sample_rate * np.sinc(2 * high * t / sample_rate) - 2 * low / sample_rate * np.sinc(
        2 * low * t / sample_rate
    )  # (n_filters, kernel_size)
    return ideal * np.hamming(kernel_size)


class SincConv(nn.Module):
    """A fixed (not learned) mel-spaced sinc filterbank over the raw waveform, no padding.

    Maps ``(B, 1, n_samples)`` to ``(B, n_filters, n_samples - (kernel_size | 1) + 1)``.
    """

    def __init__(self, *, n_filters: int, kernel_size: int, sample_rate: int) -> None:
        super().__init__()
        filters = sinc_filterbank(n_filters, kernel_size, sample_rate)
        # Not persistent: the filters follow from the hyper-parameters, and the published state
        # dicts do not hold them.
        self.register_buffer(
            "filters", torch.from_numpy(filters).float().unsqueeze(1), persistent=False
        )  # (n_filters, 1, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.filters)


class ResidualBlock(nn.Module):
    """(BN, SELU,) conv (2, 3), BN, SELU, conv (2, 3), plus a (1, 3)-conv shortcut where channels change,
    then a (1, 3) max-pool over time. Keeps the height (bands), divides the width (time) by 3.

    The first block of the encoder has no leading BN/SELU (its input already went through them).
    As in the published network, ``conv1`` reads the block input, not the ``bn1``/SELU output:
    ``bn1`` exists (its weights are in the checkpoints) but does not reach the output.
    """

    find_unused_parameters = True  # bn1 of the blocks after the first never reaches the output (DDP must know)

    def __init__(self, in_channels: int, out_channels: int, *, first: bool = False, time_pool: int = 3) -> None:
        super().__init__()
        self.first = first
        if not first:
            self.bn1 = nn.BatchNorm2d(in_channels)
        # (2, 3) kernels: padding (1, 1) then (0, 1) keeps the height, so the pair is "same" size.
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(2, 3), padding=(1, 1))
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(2, 3), padding=(0, 1))
        self.selu = nn.SELU()
        self.downsample = in_channels != out_channels
        if self.downsample:
            self.conv_downsample = nn.Conv2d(in_channels, out_channels, kernel_size=(1, 3), padding=(0, 1))
        self.mp = nn.MaxPool2d((1, time_pool))  # time_pool 1: keeps the width (the SSL back-end's short inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, C_out, H + 1, W)
        out = self.selu(self.bn2(out))
        out = self.conv2(out)  # (B, C_out, H, W)
        identity = self.conv_downsample(x) if self.downsample else x  # (B, C_out, H, W)
        return self.mp(out + identity)  # (B, C_out, H, W // 3)


class GraphAttention(nn.Module):
    """Graph attention over a fully connected graph, with a temperature on the attention logits.

    Attention between nodes i and j: ``w . tanh(A (h_i * h_j)) / temperature``, softmax over j.
    Output: ``SELU(BN(P1 (att @ h) + P2 h))``.
    """

    def __init__(self, in_dim: int, out_dim: int, *, temperature: float, input_dropout: float = 0.2) -> None:
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = nn.Parameter(torch.empty(out_dim, 1))
        nn.init.xavier_normal_(self.att_weight)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(input_dropout)
        self.act = nn.SELU()
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, in_dim)`` -> ``(B, N, out_dim)``."""
        x = self.input_drop(x)
        pairs = x.unsqueeze(2) * x.unsqueeze(1)  # (B, N, N, in_dim)
        logits = torch.tanh(self.att_proj(pairs)) @ self.att_weight  # (B, N, N, 1)
        att = F.softmax(logits.squeeze(-1) / self.temperature, dim=-1)  # (B, N, N)
        x = self.proj_with_att(att @ x) + self.proj_without_att(x)  # (B, N, out_dim)
        return self.act(_node_batch_norm(self.bn, x))


class HeteroGraphAttention(nn.Module):
    """Heterogeneous stacking graph attention layer (HS-GAL).

    Nodes of two graphs (type 1: temporal, type 2: spectral) are projected into a shared space and
    attend to each other with one attention vector per pair of types (11, 22, 12 = 21). A stack
    (master) node attends to all nodes with its own projection and vector; it is a linear update
    (no BN, no activation), unlike the graph nodes.
    """

    def __init__(self, in_dim: int, out_dim: int, *, temperature: float, input_dropout: float = 0.2) -> None:
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight22 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight12 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weightM = nn.Parameter(torch.empty(out_dim, 1))
        for weight in (self.att_weight11, self.att_weight22, self.att_weight12, self.att_weightM):
            nn.init.xavier_normal_(weight)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(input_dropout)
        self.act = nn.SELU()
        self.temperature = temperature

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update both graphs and the stack node.

        Args:
            x1: type-1 nodes ``(B, N1, in_dim)``.
            x2: type-2 nodes ``(B, N2, in_dim)``.
            master: the stack node ``(B or 1, 1, in_dim)``.

        Returns:
            ``(x1, x2, master)`` of shapes ``(B, N1, out_dim)``, ``(B, N2, out_dim)``, ``(B, 1, out_dim)``.
        """
        n1, n2 = x1.size(1), x2.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)  # (B, N1 + N2, in_dim)
        x = self.input_drop(x)

        # Stack node: attention over all nodes, keyed by the element-wise product with the node.
        logits_m = torch.tanh(self.att_projM(x * master)) @ self.att_weightM  # (B, N, 1)
        att_m = F.softmax(logits_m.squeeze(-1) / self.temperature, dim=-1).unsqueeze(1)  # (B, 1, N)
        master = self.proj_with_attM(att_m @ x) + self.proj_without_attM(master)  # (B, 1, out_dim)

        # Node pairs: one attention vector per pair of node types.
        hidden = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, out_dim)
        is_type1 = torch.arange(n1 + n2, device=x.device) < n1  # (N,)
        same = is_type1[:, None] == is_type1[None, :]  # (N, N)
        weight = torch.where(
            same[..., None],
            torch.where(is_type1[:, None, None], self.att_weight11[:, 0], self.att_weight22[:, 0]),
            self.att_weight12[:, 0],
        )  # (N, N, out_dim)
        logits = (hidden * weight).sum(-1)  # (B, N, N)
        att = F.softmax(logits / self.temperature, dim=-1)  # (B, N, N)
        x = self.proj_with_att(att @ x) + self.proj_without_att(x)  # (B, N, out_dim)
        x = self.act(_node_batch_norm(self.bn, x))
        return x[:, :n1], x[:, n1:], master  # (B, N1, out_dim), (B, N2, out_dim), (B, 1, out_dim)


def _node_batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over every node of every clip: ``(B, N, D)`` -> ``(B, N, D)``."""
    return bn(x.reshape(-1, x.size(-1))).reshape(x.shape)  # (B * N, D) -> (B, N, D)


class GraphPool(nn.Module):
    """Top-k graph pooling: keep the ``int(ratio * N)`` (at least 1) nodes with the highest gate,
    each scaled by its gate ``sigmoid(p . h)``."""

    def __init__(self, ratio: float, in_dim: int, *, dropout: float = 0.3) -> None:
        super().__init__()
        self.ratio = ratio
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, N, D)`` -> ``(B, max(int(ratio * N), 1), D)``."""
        n_keep = max(int(h.size(1) * self.ratio), 1)
        gate = torch.sigmoid(self.proj(self.drop(h)))  # (B, N, 1)
        _, idx = torch.topk(gate, n_keep, dim=1)  # (B, n_keep, 1)
        return torch.gather(h * gate, 1, idx.expand(-1, -1, h.size(-1)))  # (B, n_keep, D)


def init_graph(
    m: nn.Module,
    *,
    channels: int,
    n_spectral: int,
    gat_dims: Sequence[int],
    pool_ratios: Sequence[float],
    temperatures: Sequence[float],
    attention_dropout: float,
    pool_dropout: float,
    branch_dropout: float,
) -> None:
    """Give ``m`` AASIST's graph modules, under the published names, for :func:`graph_readout`.

    ``channels``: of the encoder output read by the graphs; ``n_spectral``: its height (the spectral
    nodes, each with a learned position).
    """
    dim0, dim1 = (int(d) for d in gat_dims)
    m.embedding_dim = 5 * dim1
    m.pos_S = nn.Parameter(torch.randn(1, n_spectral, channels))
    m.master1 = nn.Parameter(torch.randn(1, 1, dim0))
    m.master2 = nn.Parameter(torch.randn(1, 1, dim0))

    attention = {"input_dropout": attention_dropout}
    m.GAT_layer_S = GraphAttention(channels, dim0, temperature=temperatures[0], **attention)
    m.GAT_layer_T = GraphAttention(channels, dim0, temperature=temperatures[1], **attention)
    m.HtrgGAT_layer_ST11 = HeteroGraphAttention(dim0, dim1, temperature=temperatures[2], **attention)
    m.HtrgGAT_layer_ST12 = HeteroGraphAttention(dim1, dim1, temperature=temperatures[2], **attention)
    m.HtrgGAT_layer_ST21 = HeteroGraphAttention(dim0, dim1, temperature=temperatures[2], **attention)
    m.HtrgGAT_layer_ST22 = HeteroGraphAttention(dim1, dim1, temperature=temperatures[2], **attention)

    m.pool_S = GraphPool(pool_ratios[0], dim0, dropout=pool_dropout)
    m.pool_T = GraphPool(pool_ratios[1], dim0, dropout=pool_dropout)
    m.pool_hS1 = GraphPool(pool_ratios[2], dim1, dropout=pool_dropout)
    m.pool_hT1 = GraphPool(pool_ratios[2], dim1, dropout=pool_dropout)
    m.pool_hS2 = GraphPool(pool_ratios[2], dim1, dropout=pool_dropout)
    m.pool_hT2 = GraphPool(pool_ratios[2], dim1, dropout=pool_dropout)
    m.drop_way = nn.Dropout(branch_dropout)


def _branch(
    m: nn.Module,
    out_T: torch.Tensor,
    out_S: torch.Tensor,
    master: torch.Tensor,
    layers: tuple[HeteroGraphAttention, HeteroGraphAttention, GraphPool, GraphPool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HS-GAL, pool, a second HS-GAL added as a residual; then branch dropout."""
    first, second, pool_S, pool_T = layers
    h_T, h_S, master = first(out_T, out_S, master)  # (B, N_T, D1), (B, N_S, D1), (B, 1, D1)
    h_S, h_T = pool_S(h_S), pool_T(h_T)  # (B, N_S', D1), (B, N_T', D1)
    aug_T, aug_S, aug_master = second(h_T, h_S, master)
    h_T, h_S, master = h_T + aug_T, h_S + aug_S, master + aug_master
    return m.drop_way(h_T), m.drop_way(h_S), m.drop_way(master)


def graph_readout(m: nn.Module, e: torch.Tensor) -> torch.Tensor:
    """AASIST's graphs on an encoder output ``e`` ``(B, C, N_S, N_T)`` of a module set up by
    :func:`init_graph`: spectral and temporal graph attention, two HS-GAL branches, max readout.

    Returns:
        ``(B, 5 * gat_dims[1])``: max |.| and mean of the temporal nodes, the same of the
        spectral nodes, and the stack node.
    """
    e_S = torch.amax(torch.abs(e), dim=3)  # (B, C, N_S): max over time
    e_S = e_S.transpose(1, 2) + m.pos_S  # (B, N_S, C)
    out_S = m.pool_S(m.GAT_layer_S(e_S))  # (B, N_S', D0)

    e_T = torch.amax(torch.abs(e), dim=2)  # (B, C, N_T): max over bands
    e_T = e_T.transpose(1, 2)  # (B, N_T, C)
    out_T = m.pool_T(m.GAT_layer_T(e_T))  # (B, N_T', D0)

    T1, S1, m1 = _branch(
        m, out_T, out_S, m.master1, (m.HtrgGAT_layer_ST11, m.HtrgGAT_layer_ST12, m.pool_hS1, m.pool_hT1)
    )
    T2, S2, m2 = _branch(
        m, out_T, out_S, m.master2, (m.HtrgGAT_layer_ST21, m.HtrgGAT_layer_ST22, m.pool_hS2, m.pool_hT2)
    )
    out_T, out_S, master = torch.maximum(T1, T2), torch.maximum(S1, S2), torch.maximum(m1, m2)

    T_max = torch.amax(torch.abs(out_T), dim=1)  # (B, D1)
    T_avg = out_T.mean(dim=1)  # (B, D1)
    S_max = torch.amax(torch.abs(out_S), dim=1)  # (B, D1)
    S_avg = out_S.mean(dim=1)  # (B, D1)
    return torch.cat([T_max, T_avg, S_max, S_avg, master.squeeze(1)], dim=1)  # (B, 5 * D1)


class AASIST(nn.Module):
    """AASIST over raw 16 kHz waveforms; returns two logits (index 1 = bona fide).

    Args:
        n_filters: sinc filterbank bands (the authors' ``filts[0]``); the spectral graph has
            ``n_filters // 3`` nodes.
        sinc_kernel: sinc filter taps (``first_conv``; made odd).
        filts: ``(in, out)`` channels of the first four residual blocks (``filts[1:]``); the last
            pair is repeated for blocks five and six.
        gat_dims: node dims of the graph attention layers and of the HS-GALs.
        pool_ratios: top-k ratios of the spectral pool, the temporal pool and the pools after the
            first HS-GALs (the fourth is unused, as in the published configs).
        temperatures: of the spectral GAT, the temporal GAT and the HS-GALs (the fourth is unused).
        sample_rate: Hz, places the sinc band edges.
        dropout: before the output layer.
        branch_dropout: on the nodes and stack node of each branch before the max.
        attention_dropout: on the inputs of each graph attention layer.
        pool_dropout: on the inputs of each pool's gate projection.
    """

    def __init__(
        self,
        *,
        n_filters: int = 70,
        sinc_kernel: int = 128,
        filts: Sequence[Sequence[int]] = AASIST_PRESET["filts"],
        gat_dims: Sequence[int] = AASIST_PRESET["gat_dims"],
        pool_ratios: Sequence[float] = AASIST_PRESET["pool_ratios"],
        temperatures: Sequence[float] = AASIST_PRESET["temperatures"],
        sample_rate: int = SAMPLE_RATE,
        dropout: float = 0.5,
        branch_dropout: float = 0.2,
        attention_dropout: float = 0.2,
        pool_dropout: float = 0.3,
    ) -> None:
        super().__init__()
        filts = tuple(tuple(int(c) for c in pair) for pair in filts)
        if len(filts) != 4 or any(len(pair) != 2 for pair in filts) or filts[0][0] != 1:
            raise ValueError(f"filts must be four (in, out) channel pairs starting from 1 channel, got {filts}")
        if any(filts[i][1] != filts[i + 1][0] for i in range(3)) or filts[3][0] != filts[3][1]:
            raise ValueError(f"filts {filts}: each block must read the previous block's channels, the last keeps them")
        if len(gat_dims) != 2 or len(pool_ratios) < 3 or len(temperatures) < 3:
            raise ValueError(
                f"need 2 gat_dims, >= 3 pool_ratios and >= 3 temperatures, got {gat_dims}, {pool_ratios}, {temperatures}"
            )
        if n_filters < 3:
            raise ValueError(f"n_filters must be at least 3 (the 3x3 max-pool), got {n_filters}")
        channels = filts[-1][-1]
        dim0, dim1 = (int(d) for d in gat_dims)

        self.n_filters = n_filters
        self.sinc_kernel = sinc_kernel
        self.sample_rate = sample_rate
        self.embedding_dim = 5 * dim1

        self.conv_time = SincConv(n_filters=n_filters, kernel_size=sinc_kernel, sample_rate=sample_rate)
        self.first_bn = nn.BatchNorm2d(1)
        self.selu = nn.SELU()
        # Nested Sequentials reproduce the published key names (encoder.<i>.0.<layer>).
        blocks = [ResidualBlock(*filts[0], first=True), *(ResidualBlock(*pair) for pair in filts[1:])]
        blocks += [ResidualBlock(channels, channels), ResidualBlock(channels, channels)]
        self.encoder = nn.Sequential(*(nn.Sequential(block) for block in blocks))

        init_graph(
            self,
            channels=channels,
            n_spectral=n_filters // 3,
            gat_dims=(dim0, dim1),
            pool_ratios=pool_ratios,
            temperatures=temperatures,
            attention_dropout=attention_dropout,
            pool_dropout=pool_dropout,
            branch_dropout=branch_dropout,
        )
        self.drop = nn.Dropout(dropout)
        self.out_layer = nn.Linear(self.embedding_dim, 2)

    def min_samples(self) -> int:
        """The shortest input that leaves at least one frame after the six time pools."""
        # The sinc conv drops (kernel - 1) samples, then the first pool and the six blocks divide by 3 each.
        return (self.sinc_kernel | 1) - 1 + 3**7

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The readout before the output layer (before its dropout).

        Args:
            x: float32 waveforms at ``sample_rate``, ``(B, n_samples)`` or ``(B, 1, n_samples)``;
                the published weights saw 64,600 samples.

        Returns:
            ``(B, 5 * gat_dims[1])``: max |.| and mean of the temporal nodes, the same of the
            spectral nodes, and the stack node.
        """
        if x.dim() == 2:
            x = x.unsqueeze(1)  # (B, 1, n_samples)
        if x.dim() != 3 or x.size(1) != 1:
            raise ValueError(f"AASIST reads waveforms (B, n_samples) or (B, 1, n_samples), got {tuple(x.shape)}")
        if x.size(-1) < self.min_samples():
            raise ValueError(f"AASIST needs at least {self.min_samples()} samples, got {x.size(-1)}")
        x = self.conv_time(x)  # (B, F, n_samples - kernel + 1)
        x = x.unsqueeze(1)  # (B, 1, F, T0)
        x = F.max_pool2d(torch.abs(x), (3, 3))  # (B, 1, F // 3, T0 // 3)
        x = self.selu(self.first_bn(x))
        e = self.encoder(x)  # (B, C, F // 3, T0 // 3**7)

        return graph_readout(self, e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, n_samples)`` or ``(B, 1, n_samples)`` -> logits ``(B, 2)``, index 1 = bona fide."""
        return self.out_layer(self.drop(self.embed(x)))


_SHAPE_KEYS = (
    "pos_S",
    "master1",
    *(f"encoder.{i}.0.conv1.weight" for i in range(6)),
    "GAT_layer_S.att_proj.weight",
    "HtrgGAT_layer_ST11.att_proj.weight",
    "out_layer.weight",
)


def infer_aasist_config(state_dict: Mapping[str, Any]) -> dict:
    """The constructor kwargs of the published variant (AASIST or AASIST-L) whose shapes these weights have.

    The residual channels, the graph dims and the number of spectral nodes come from the tensor
    shapes; pool ratios, temperatures and the sinc front-end are not stored in the weights, so the
    shapes must match one of :data:`PRESETS`, whose values are then returned.

    Returns:
        a fresh copy of the matching preset, ready for ``AASIST(**config)``.

    Raises:
        ValueError: not a mapping of tensors, a key AASIST needs is missing, or the shapes match no
            published variant (the message gives the inferred shapes).
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"an AASIST state dict is a mapping of names to tensors, got {type(state_dict).__name__}")
    missing = [k for k in _SHAPE_KEYS if not isinstance(state_dict.get(k), torch.Tensor)]
    if missing:
        raise ValueError(f"not an AASIST state dict: no tensor {', '.join(missing)}")
    try:
        conv1 = [tuple(state_dict[f"encoder.{i}.0.conv1.weight"].shape) for i in range(6)]
        filts = tuple((shape[1], shape[0]) for shape in conv1[:4])  # conv weight is (out, in, kh, kw)
        gat_dims = (
            int(state_dict["GAT_layer_S.att_proj.weight"].shape[0]),
            int(state_dict["HtrgGAT_layer_ST11.att_proj.weight"].shape[0]),
        )
        n_spectral = int(state_dict["pos_S"].shape[1])
    except IndexError as exc:
        raise ValueError(f"not an AASIST state dict: a tensor has too few dimensions ({exc})") from exc
    for preset in PRESETS.values():
        if filts == preset["filts"] and gat_dims == preset["gat_dims"] and n_spectral == preset["n_filters"] // 3:
            return dict(preset)
    raise ValueError(
        f"AASIST weights with residual channels {filts}, gat_dims {gat_dims} and {n_spectral} spectral nodes "
        f"match no published variant ({', '.join(PRESETS)}); their pool ratios and temperatures are not "
        "stored in the weights, so build AASIST(...) with its own config and load the weights into it"
    )


def load_aasist_checkpoint(path: Path | str) -> tuple[AASIST, dict]:
    """Load a published AASIST or AASIST-L state dict into a model in eval mode, on the CPU.

    Loads with ``weights_only=True`` (no arbitrary unpickling), infers the variant from the weight
    shapes (:func:`infer_aasist_config`) and loads with ``strict=True``.

    Returns:
        ``(model, config)`` where ``config`` are the constructor kwargs.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming ``path``: not a torch file, not a plain state dict, or not AASIST's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a PyTorch state dict that loads with weights_only=True ({exc})") from exc
    try:
        config = infer_aasist_config(state_dict)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    model = AASIST(**config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit AASIST {config}: {exc}") from exc
    return model.eval(), config
