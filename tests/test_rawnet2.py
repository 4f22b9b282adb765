"""RawNet2: shapes, the fixed sinc filterbank, FMS, gradients and a tiny training run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepfake_audio.losses import OCSoftmaxHead
from deepfake_audio.models.rawnet2 import FilterwiseScaling, RawNet2, ResidualBlock, SincConv, hz_to_mel

SMALL = dict(sinc_kernel_size=251, block_channels=(20, 20, 64, 64), gru_hidden=128, fc_features=128)
"""A CPU-sized variant."""


def small_net(seed: int = 0) -> RawNet2:
    torch.manual_seed(seed)
    return RawNet2(**SMALL)


def noise_pair(n: int, n_samples: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n // 2`` white noise clips (label 1) then low-passed noise clips (label 0, band below
    sample_rate / 8), both at RMS 0.1, shuffled together."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_samples, generator=gen)
    spectrum = torch.fft.rfft(x[n // 2 :], dim=1)  # (n - n // 2, n_samples // 2 + 1)
    spectrum[:, spectrum.shape[1] // 4 :] = 0
    low = torch.fft.irfft(spectrum, n=n_samples, dim=1)  # (n - n // 2, n_samples)
    x = 0.1 * torch.cat([x[: n // 2], low / low.std(dim=1, keepdim=True)])
    y = torch.cat([torch.ones(n // 2), torch.zeros(n - n // 2)]).long()
    order = torch.randperm(n, generator=gen)
    return x[order], y[order]


def recalibrate_batchnorm(net: nn.Module, batches: list[torch.Tensor]) -> None:
    # BatchNorm's running estimates start at var 1 and move 10% a step; after a dozen steps they
    # are still far from the tiny variances of quiet sinc outputs, so a short test run re-estimates
    # them (a cumulative average over a few batches) before scoring in eval mode.
    for module in net.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        for x in batches:
            net(x)


# ---------------------------------------------------------------- SincConv


def test_sinc_filters_are_mel_spaced_band_passes_with_rising_centres():
    sample_rate, kernel_size = 16000, 1025
    sinc = SincConv(out_channels=20, kernel_size=kernel_size, sample_rate=sample_rate)
    assert sinc.filters.shape == (20, 1, kernel_size)
    assert sinc.low_hz[0] == 0 and sinc.high_hz[-1] == pytest.approx(sample_rate / 2)
    assert torch.allclose(sinc.low_hz[1:], sinc.high_hz[:-1])
    mel_widths = torch.diff(torch.stack([hz_to_mel(sinc.low_hz), hz_to_mel(sinc.high_hz)]), dim=0)
    assert torch.allclose(mel_widths, mel_widths.mean(), rtol=1e-3)  # equal widths on the mel scale

    n_fft = 8192
    response = torch.fft.rfft(sinc.filters.squeeze(1).double(), n=n_fft).abs()  # (20, n_fft / 2 + 1)
    freqs = torch.fft.rfftfreq(n_fft, 1 / sample_rate)
    peak_hz = freqs[response.argmax(dim=1)]
    assert torch.all(torch.diff(peak_hz) > 0)
    resolution = 2 * sample_rate / kernel_size  # about the Hamming transition width
    assert torch.all(peak_hz >= sinc.low_hz - resolution) and torch.all(peak_hz <= sinc.high_hz + resolution)
    peak = response.max(dim=1).values
    assert torch.allclose(peak, torch.ones(20, dtype=torch.float64), atol=0.02)  # unit pass-band gain
    # Band-pass: no DC except the lowest band (0 Hz up), no Nyquist except the highest.
    assert torch.all(response[1:, 0] < 0.01 * peak[1:])
    assert torch.all(response[:-1, -1] < 0.01 * peak[:-1])
    centre = (freqs * response**2).sum(dim=1) / (response**2).sum(dim=1)
    assert torch.all(torch.diff(centre) > 0)


def test_sinc_filters_are_a_fixed_buffer():
    net = small_net()
    assert not any(name.startswith("sinc.") for name, _ in net.named_parameters())
    assert "sinc.filters" in dict(net.named_buffers())
    assert not any(key.startswith("sinc.") for key in net.state_dict())  # rebuilt from the config


def test_sinc_output_length_and_bad_config():
    sinc = SincConv(out_channels=8, kernel_size=101, sample_rate=16000)
    assert sinc(torch.randn(3, 1, 1000)).shape == (3, 8, 900)
    with pytest.raises(ValueError, match="kernel_size must be odd.*1024"):
        SincConv(out_channels=20, kernel_size=1024, sample_rate=16000)
    with pytest.raises(ValueError, match="out_channels"):
        SincConv(out_channels=0, kernel_size=101, sample_rate=16000)
    with pytest.raises(ValueError, match="sample_rate"):
        SincConv(out_channels=4, kernel_size=101, sample_rate=0)


# ---------------------------------------------------------------- FMS and residual blocks


def test_fms_scales_and_shifts_by_sigmoid_of_channel_mean():
    fms = FilterwiseScaling(3)
    with torch.no_grad():
        fms.fc.weight.copy_(torch.eye(3))
        fms.fc.bias.zero_()
    x = torch.randn(2, 3, 7)
    s = torch.sigmoid(x.mean(dim=2, keepdim=True))  # (2, 3, 1)
    torch.testing.assert_close(fms(x), x * s + s)


def test_block_ends_in_fms():
    torch.manual_seed(0)
    block = ResidualBlock(4, 6, negative_slope=0.3).eval()
    x = torch.randn(2, 4, 30)
    pooled = block.pool(block.body(x) + block.skip(x))  # (2, 6, 10), the block before FMS
    with torch.no_grad():
        block.fms.fc.weight.zero_()
        block.fms.fc.bias.fill_(30.0)  # s = 1: x * 1 + 1
        torch.testing.assert_close(block(x), pooled + 1)
        block.fms.fc.bias.fill_(-30.0)  # s = 0: x * 0 + 0
        torch.testing.assert_close(block(x), torch.zeros_like(pooled), atol=1e-6, rtol=0)
    assert block(x).shape == (2, 6, 10)


def test_block_skip_is_1x1_conv_only_when_channels_change():
    assert isinstance(ResidualBlock(4, 6, negative_slope=0.3).skip, nn.Conv1d)
    assert isinstance(ResidualBlock(6, 6, negative_slope=0.3).skip, nn.Identity)


# ---------------------------------------------------------------- the network


@pytest.mark.parametrize("n_samples", [493, 16000, 64600])
def test_output_and_embedding_shapes(n_samples):
    net = small_net().eval()
    x = torch.randn(3, n_samples)
    with torch.no_grad():
        assert net(x).shape == (3, 2)
        assert net.embed(x).shape == (3, 128)
        assert net(x).dtype == torch.float32


def test_paper_size_defaults():
    net = RawNet2().eval()
    assert net.sinc.out_channels == 20 and net.sinc.kernel_size == 1025
    assert [b.fms.fc.in_features for b in net.blocks] == [20, 20, 128, 128, 128, 128]
    assert (net.gru.hidden_size, net.gru.num_layers, net.fc.out_features) == (1024, 3, 1024)
    frames = []
    net.gru.register_forward_hook(lambda _m, inputs, _out: frames.append(inputs[0].shape))
    with torch.no_grad():
        assert net(torch.randn(1, 64600)).shape == (1, 2)
    assert frames == [(1, 29, 128)]  # the paper's 29 frames of 128 channels into the GRU


def test_channel_dim_optional_and_eval_deterministic():
    net = small_net().eval()
    x = torch.randn(2, 8000)
    with torch.no_grad():
        a, b, c = net(x), net(x.unsqueeze(1)), net(x)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_bad_inputs_raise():
    net = small_net()
    assert net.min_samples == 250 + 3**5
    net(torch.randn(2, net.min_samples))
    with pytest.raises(ValueError, match="too few.*493"):
        net(torch.randn(2, net.min_samples - 1))
    with pytest.raises(ValueError, match="expected a waveform"):
        net(torch.randn(2, 2, 1000))
    with pytest.raises(ValueError, match="block_channels"):
        RawNet2(block_channels=())
    with pytest.raises(ValueError, match="gru_hidden"):
        RawNet2(gru_hidden=0)


def test_gradient_reaches_every_trainable_parameter():
    net = small_net()
    x, y = noise_pair(4, 2000, seed=0)
    F.cross_entropy(net(x), y).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_small_config_learns_white_vs_lowpassed_noise():
    net = small_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    for step in range(15):
        x, y = noise_pair(16, 4000, seed=step)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    recalibrate_batchnorm(net, [noise_pair(16, 4000, seed=100 + i)[0] for i in range(4)])
    x, y = noise_pair(64, 4000, seed=999)
    with torch.no_grad():
        logits = net.eval()(x)
    assert (logits.argmax(dim=1) == y).float().mean() >= 0.95


def test_oc_softmax_head_on_rawnet2_learns():
    torch.manual_seed(0)
    model = OCSoftmaxHead(RawNet2(**SMALL), in_features=128)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    x0, y0 = noise_pair(16, 4000, seed=0)
    first = model.loss(model(x0), y0).item()
    for step in range(15):
        x, y = noise_pair(16, 4000, seed=step)
        loss = model.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    recalibrate_batchnorm(model, [noise_pair(16, 4000, seed=100 + i)[0] for i in range(4)])
    x, y = noise_pair(64, 4000, seed=999)
    with torch.no_grad():
        scores = model.eval()(x)
    assert scores.shape == (64,)
    assert scores[y == 1].min() > scores[y == 0].max()  # separated, bona fide above
    assert model.loss(scores, y).item() < first


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    net = small_net().eval()
    x = torch.randn(2, 16000)
    with torch.no_grad():
        cpu = net(x)
        gpu = net.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)
