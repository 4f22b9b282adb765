"""Model kinds that read the waveform: AASIST, RawNet2, and the LCNN behind a torch LFCC front-end.

They train on random crops of ``crop_samples`` samples drawn afresh every epoch from the
memory-mapped waveform store (:mod:`deepfake_audio.waveforms`), with ``train.augment`` applied to
each crop in the DataLoader workers (:func:`deepfake_audio.wave_augment.augment_waveform`), and
score the first ``crop_samples`` samples of a clip, repeat-padded (the authors' evaluation), or
windows of that length (``deepfake-audio predict --window-s``).

Each kind has its own params section (``aasist``, ``rawnet2``); ``lcnn_wave`` reads the LCNN's keys
of ``model`` and crops ``audio.duration_s``, the clip length its front-end's frames match.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepfake_audio.models import FitContext, ModelKind, register_model
from deepfake_audio.models.aasist import AASIST
from deepfake_audio.models.neural import LCNN
from deepfake_audio.models.rawnet2 import RawNet2
from deepfake_audio.params import AudioParams, FeatureParams, ModelParams, ParamError, from_dict
from deepfake_audio.training import WEIGHTS, predict_torch, resumable_epoch, train_neural

# ---------------------------------------------------------------- params sections


def _check_positive(prefix: str, section: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(section, name)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            flat = v if isinstance(v, tuple) else (v,)
            if any(not x > 0 for x in flat):
                raise ParamError(f"{prefix}.{name}", value, "positive numbers")


@dataclasses.dataclass(frozen=True)
class AasistParams:
    """``aasist``: AASIST (Jung et al., ICASSP 2022). The defaults are the AASIST-L size (85k
    weights); the full AASIST is ``channels [[1,32],[32,32],[32,64],[64,64]]``, ``gat_dims [64,32]``,
    ``pool_ratios [0.5,0.7,0.5,0.5]`` (params-gpu.yaml)."""

    n_samples: int = 64600  # crop length (about 4 s at 16 kHz), as the authors train and score
    sinc_filters: int = 70  # band-pass filters of the sinc front-end
    sinc_kernel: int = 128  # their length in samples (made odd)
    channels: tuple[tuple[int, int], ...] = ((1, 32), (32, 32), (32, 24), (24, 24))  # residual blocks (in, out)
    gat_dims: tuple[int, ...] = (24, 32)  # graph attention widths: first layers, then the HS-GAL
    pool_ratios: tuple[float, ...] = (0.4, 0.5, 0.7, 0.5)  # share of nodes each graph pooling keeps
    temperatures: tuple[float, ...] = (2.0, 2.0, 100.0, 100.0)  # attention softmax temperatures

    def validate(self, prefix: str) -> None:
        _check_positive(prefix, self, ("n_samples", "sinc_filters", "sinc_kernel", "channels", "gat_dims"))
        if len(self.gat_dims) != 2:
            raise ParamError(f"{prefix}.gat_dims", list(self.gat_dims), "two widths")
        if len(self.pool_ratios) != 4 or not all(0 < r <= 1 for r in self.pool_ratios):
            raise ParamError(f"{prefix}.pool_ratios", list(self.pool_ratios), "four fractions in (0, 1]")
        if len(self.temperatures) != 4 or not all(t > 0 for t in self.temperatures):
            raise ParamError(f"{prefix}.temperatures", list(self.temperatures), "four positive numbers")
        if not self.channels or self.channels[0][0] != 1 or any(len(c) != 2 for c in self.channels):
            raise ParamError(f"{prefix}.channels", [list(c) for c in self.channels], "[in, out] pairs starting at 1")
        for (_, out), (nxt, _) in zip(self.channels, self.channels[1:]):
            if out != nxt:
                raise ParamError(
                    f"{prefix}.channels", [list(c) for c in self.channels], "each block reads the last one's out"
                )


@dataclasses.dataclass(frozen=True)
class RawNet2Params:
    """``rawnet2``: RawNet2 (Tak et al., ICASSP 2021). The defaults are a CPU size; the paper's is
    ``sinc_kernel 1025`` (1024 in the paper; the sinc filters need an odd length), ``channels [20,20,128,128,128,128]``, ``gru_units 1024``, ``gru_layers 3``,
    ``fc_units 1024`` (params-gpu.yaml)."""

    n_samples: int = 64600
    sinc_filters: int = 20
    sinc_kernel: int = 251  # odd
    # Out channels of the residual blocks, each pooling time by 3: six blocks leave the GRU 29
    # steps of a 64,600-sample crop (four would leave it 264, most of a CPU step's time).
    channels: tuple[int, ...] = (20, 20, 64, 64, 64, 64)
    gru_units: int = 128
    gru_layers: int = 1
    fc_units: int = 128

    def validate(self, prefix: str) -> None:
        _check_positive(
            prefix,
            self,
            ("n_samples", "sinc_filters", "sinc_kernel", "channels", "gru_units", "gru_layers", "fc_units"),
        )
        if self.sinc_kernel % 2 == 0:
            raise ParamError(f"{prefix}.sinc_kernel", self.sinc_kernel, "an odd number of taps (e.g. 251 or 1025)")


SCORE_BATCH = 16
"""Crops per forward pass when scoring on the CPU: AASIST's activations grow with the batch (scoring
AASIST-L on 32 crops of 64,600 samples a time took 6.7 GB of RSS on a 2-core machine)."""

AASIST_KEYS = tuple(f.name for f in dataclasses.fields(AasistParams))
RAWNET2_KEYS = tuple(f.name for f in dataclasses.fields(RawNet2Params))
LCNN_KEYS = ("conv_channels", "lstm_units", "dropout")


# ---------------------------------------------------------------- networks


def build_aasist(section: AasistParams, config: dict) -> nn.Module:
    return AASIST(
        n_filters=section.sinc_filters,
        sinc_kernel=section.sinc_kernel,
        filts=[list(c) for c in section.channels],
        gat_dims=list(section.gat_dims),
        pool_ratios=list(section.pool_ratios),
        temperatures=list(section.temperatures),
        sample_rate=int(config.get("audio", {}).get("sample_rate", 16000)),
    )


def build_rawnet2(section: RawNet2Params, config: dict) -> nn.Module:
    return RawNet2(
        sinc_channels=section.sinc_filters,
        sinc_kernel_size=section.sinc_kernel,
        block_channels=tuple(section.channels),
        gru_hidden=section.gru_units,
        gru_layers=section.gru_layers,
        fc_features=section.fc_units,
        sample_rate=int(config.get("audio", {}).get("sample_rate", 16000)),
    )


class FrontendLCNN(nn.Module):
    """The LCNN of :mod:`deepfake_audio.models.neural` behind LFCC computed in torch.

    ``net`` has the same weights as an ``lcnn`` bundle's network, and the front-end equals the
    features stage's LFCC and standardisation, so either path scores a clip the same.
    """

    def __init__(self, section: ModelParams, config: dict) -> None:
        super().__init__()
        from deepfake_audio.torch_features import TorchFrontend

        audio = from_dict(AudioParams, config["audio"], prefix="audio")
        features = from_dict(FeatureParams, config["features"], prefix="features")
        scaler = config.get("scaler", {}).get("frames")
        self.frontend = TorchFrontend("lfcc", features=features, audio=audio, scaler=scaler)
        with torch.no_grad():
            n_rows, n_frames = self.frontend(torch.zeros(1, audio.n_samples)).shape[1:]  # (1, rows, frames)
        self.net = LCNN(n_rows, n_frames, section)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.frontend(x))  # (B, 1, n) audio -> (B, rows, frames) -> (B,)


def build_lcnn_wave(section: ModelParams, config: dict) -> nn.Module:
    return FrontendLCNN(section, config)


def with_loss_head(net: nn.Module, train: Any) -> nn.Module:
    """``net`` as trained under ``train.loss``: OC-Softmax puts a cosine head on its embedding."""
    loss = train.get("loss", "cross_entropy") if isinstance(train, dict) else train.loss
    if loss != "oc_softmax":
        return net
    from deepfake_audio.losses import OCSoftmaxHead

    oc = train.get("oc_softmax", {}) if isinstance(train, dict) else dataclasses.asdict(train.oc_softmax)
    return OCSoftmaxHead(net, in_features=net.embedding_dim, **oc)


# ---------------------------------------------------------------- the kinds


def crop_augmenter(train: Any, sample_rate: int) -> Any:
    """``train.augment`` as ``augment(crop, rng) -> crop`` for the DataLoader, or ``None`` when off."""
    from deepfake_audio.wave_augment import augment_waveform

    if train.augment.prob <= 0:
        return None
    return functools.partial(_augment, fn=augment_waveform, sample_rate=sample_rate, config=train.augment)


def _augment(y: np.ndarray, rng: np.random.Generator, *, fn: Any, sample_rate: int, config: Any) -> np.ndarray:
    return fn(y, sample_rate=sample_rate, config=config, rng=rng)


def waveform_kind(
    name: str,
    build: Any,
    *,
    section: str,
    params_type: type,
    uses: tuple[str, ...],
    crop_samples: Any,
    losses: tuple[str, ...] = ("cross_entropy", "oc_softmax"),
) -> ModelKind:
    """A torch model kind that reads ``(B, 1, n_samples)`` audio crops.

    ``build(section, config) -> nn.Module`` with ``config`` holding ``audio``, ``features`` and
    ``scaler`` (the bundle's config.json). It trains with :func:`deepfake_audio.training.train_neural`
    and scores on the CPU in eval mode.
    """

    def fit(data: dict, ctx: FitContext) -> dict:
        sample_rate = int(ctx.config["audio"]["sample_rate"])
        return train_neural(
            lambda n_features, n_frames: with_loss_head(build(ctx.section, ctx.config), ctx.train),
            data,
            name=name,
            train_params=ctx.train,
            out_dir=ctx.out_dir,
            live=ctx.live,
            key=ctx.key,
            augment=crop_augmenter(ctx.train, sample_rate),
        )

    def load(bundle_dir: Path, config: dict, params: Any) -> nn.Module:
        model = with_loss_head(build(params, config), config.get("train", {}))
        model.load_state_dict(torch.load(Path(bundle_dir) / WEIGHTS, map_location="cpu", weights_only=True))
        return model.eval()

    def score(model: nn.Module, x: Any, *, batch_size: int = SCORE_BATCH) -> np.ndarray:
        # Capped: callers size batches for features, and a batch of 256 AASIST crops needs tens of GB.
        return predict_torch(model, x, torch.device("cpu"), min(batch_size, SCORE_BATCH)).astype(np.float64)

    return ModelKind(
        name,
        section,
        params_type,
        "waveform",
        WEIGHTS,
        fit,
        load,
        score,
        uses=uses,
        distributed=True,
        resumable_epoch=resumable_epoch,
        build=lambda n_features, n_frames, params, config=None: build(params, config or {}),
        crop_samples=crop_samples,
        losses=losses,
    )


register_model(
    waveform_kind(
        "aasist",
        build_aasist,
        section="aasist",
        params_type=AasistParams,
        uses=AASIST_KEYS,
        crop_samples=lambda p, audio: p.n_samples,
    )
)
register_model(
    waveform_kind(
        "rawnet2",
        build_rawnet2,
        section="rawnet2",
        params_type=RawNet2Params,
        uses=RAWNET2_KEYS,
        crop_samples=lambda p, audio: p.n_samples,
    )
)
register_model(
    waveform_kind(
        "lcnn_wave",
        build_lcnn_wave,
        section="model",
        params_type=ModelParams,
        uses=LCNN_KEYS,
        crop_samples=lambda p, audio: audio.n_samples,
        losses=("cross_entropy",),
    )
)
