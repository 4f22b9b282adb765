"""Self-supervised speech front-ends (wav2vec 2.0 / XLS-R, WavLM, HuBERT) loaded through ``transformers``.

``ssl.checkpoint`` names a folder holding ``config.json`` and ``model.safetensors`` (or
``pytorch_model.bin``, read with ``weights_only``: nothing is unpickled), or a hub id resolved from
the local Hugging Face cache. Nothing is ever downloaded: a checkpoint that is not on this machine
fails at once with :class:`CheckpointError`, which says how to get it.

:class:`SSLFrontend` maps ``(B, n_samples)`` audio to ``(B, L, T, D)`` hidden states: every hidden
state (``L`` = layers + 1, the input of the first transformer layer first) when the back-end learns a
weighted sum of them (``ssl.layer: null``), or hidden state ``k`` alone (``L`` = 1, and the layers
after it are never run).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepfake_audio.io import sha256_file

log = logging.getLogger(__name__)

FAMILIES = {
    "wav2vec2": "wav2vec 2.0 / XLS-R",
    "wavlm": "WavLM",
    "hubert": "HuBERT",
}
"""``config.json`` ``model_type`` -> the family it is; anything else is refused."""

SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"


class CheckpointError(ValueError):
    """An SSL checkpoint that is missing, not on this machine, or not of a supported family."""


def _how_to_get(spec: str) -> str:
    return (
        f"On a machine with internet access run `hf download {spec} --local-dir models/ssl/<name>` and copy "
        f"that folder here (or copy its ~/.cache/huggingface/hub), then set "
        f"ssl.checkpoint to that folder; or save any model with save_pretrained() and point ssl.checkpoint "
        f"at the folder (docs/ssl.md lists the public checkpoints)."
    )


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_checkpoint(spec: str) -> Path:
    """The local folder of ``ssl.checkpoint``: a folder as given, or a hub id's cached snapshot.

    Raises:
        CheckpointError: no such folder and no cached snapshot (naming it and how to get it), or a
            folder without ``config.json``, weights, or a supported ``model_type``.
    """
    if not spec or not str(spec).strip():
        raise CheckpointError("ssl.checkpoint is not set: name a checkpoint folder or a hub id (docs/ssl.md)")
    path = Path(spec).expanduser()
    if not path.exists() and _looks_like_hub_id(spec):
        path = _cached_snapshot(spec)
    if not path.is_dir():
        raise CheckpointError(
            f"ssl.checkpoint={spec!r} is not available on this machine: no such folder, and no snapshot "
            f"in the local Hugging Face cache ({_hub_cache_dir()}); nothing is downloaded. {_how_to_get(spec)}"
        )
    _check_folder(path, spec)
    return path


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~")) and os.sep not in spec.replace("/", "")


def _cached_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        log.debug("no cached snapshot of %s: %s", repo_id, exc)
        return Path(f"/nonexistent/{repo_id}")  # reported by the caller with the full message


def _check_folder(path: Path, spec: str) -> None:
    config = path / CONFIG
    if not config.is_file():
        raise CheckpointError(f"ssl.checkpoint={spec!r}: {path} has no {CONFIG}; is it a transformers checkpoint?")
    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    if model_type not in FAMILIES:
        raise CheckpointError(
            f"ssl.checkpoint={spec!r}: model_type {model_type!r} is not a supported family "
            f"({', '.join(f'{k} ({v})' for k, v in FAMILIES.items())})"
        )
    if weights_file(path) is None:
        raise CheckpointError(
            f"ssl.checkpoint={spec!r}: {path} holds no weights ({', '.join(SAFETENSORS + PICKLE_WEIGHTS)})"
        )


def weights_file(path: Path) -> Path | None:
    """The weights (or shard index) of a checkpoint folder, safetensors first; ``None`` if absent."""
    for name in SAFETENSORS + PICKLE_WEIGHTS:
        if (path / name).is_file():
            return path / name
    return None


def checkpoint_files(spec: str) -> list[Path]:
    """The files that make a checkpoint: ``config.json``, its weights (and every shard they name)."""
    path = resolve_checkpoint(spec)
    files = [path / CONFIG, weights_file(path)]
    index = files[1]
    if index.name.endswith(".index.json"):  # sharded: every shard it names
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files += [path / s for s in shards]
    return files


def fingerprint(spec: str) -> dict:
    """What identifies a checkpoint's weights: its family and the SHA-256 of its config and weight files.

    Recorded in the embedding store and in bundles; a bundle refuses a checkpoint whose weights differ.
    """
    path = resolve_checkpoint(spec)
    files = checkpoint_files(spec)
    model_type = json.loads((path / CONFIG).read_text(encoding="utf-8"))["model_type"]
    return {"model_type": model_type, "files": {f.name: sha256_file(f) for f in files}}


def read_config(spec: str) -> dict:
    """The checkpoint's ``config.json``: a fine-tuned bundle keeps a copy and needs nothing else."""
    return json.loads((resolve_checkpoint(spec) / CONFIG).read_text(encoding="utf-8"))


def default_normalize(spec: str) -> bool:
    """Whether the checkpoint's authors normalised its input (``do_normalize`` of its preprocessor)."""
    pre = resolve_checkpoint(spec) / PREPROCESSOR
    if not pre.is_file():
        return False
    return bool(json.loads(pre.read_text(encoding="utf-8")).get("do_normalize", False))


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def build_model(config: dict, *, checkpoint: Path | None = None) -> nn.Module:
    """A transformers model of ``config`` (a ``config.json`` mapping); with ``checkpoint``, its weights.

    Weights are read from safetensors when the folder has them, else with ``weights_only=True``.
    """
    from transformers import AutoConfig, AutoModel

    quiet_transformers()
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise CheckpointError(f"model_type {model_type!r} is not a supported SSL family ({', '.join(FAMILIES)})")
    cfg = AutoConfig.for_model(**config)
    if checkpoint is None:
        return AutoModel.from_config(cfg)
    use_safetensors = weights_file(checkpoint).name in SAFETENSORS
    return AutoModel.from_pretrained(
        checkpoint, config=cfg, local_files_only=True, use_safetensors=use_safetensors, weights_only=True
    )


def n_hidden_layers(config: dict) -> int:
    return int(config["num_hidden_layers"])


class SSLFrontend(nn.Module):
    """A pretrained speech model as a feature extractor: ``(B, n)`` or ``(B, 1, n)`` audio -> ``(B, L, T, D)``.

    Args:
        model: a ``transformers`` wav2vec 2.0 / WavLM / HuBERT model.
        layer: ``None`` for every hidden state; ``k`` for hidden state ``k`` alone. The transformer
            layers that hidden state ``k`` does not depend on are removed, so they cost nothing; what
            is kept gives the same hidden state ``k`` as the whole model.
        normalize: zero-mean unit-variance each clip first (what the checkpoint was trained on).
    """

    def __init__(self, model: nn.Module, *, layer: int | None, normalize: bool) -> None:
        super().__init__()
        config = model.config
        total = int(config.num_hidden_layers)
        check_fits(config.to_dict(), layer=layer, n_samples=1 << 20)
        if layer is not None:
            model.encoder.layers = model.encoder.layers[:layer]
            if getattr(config, "do_stable_layer_norm", False):
                # Stable-layer-norm encoders (XLS-R, WavLM large) normalise the output of their last
                # layer into last_hidden_state; hidden state k (the whole model's hidden_states[k]) is not.
                model.encoder.layer_norm = nn.Identity()
        self.model = model
        self.layer = layer
        self.normalize = normalize
        self.n_layers = 1 if layer is not None else total + 1
        self.dim = int(config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, 0]
        if x.dim() != 2:
            raise ValueError(f"SSL front-ends read audio (B, n) or (B, 1, n), got {tuple(x.shape)}")
        x = x.float()
        if self.normalize:
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-7)
        if self.layer is not None:  # the kept layers end at hidden state k (and no final norm follows)
            return self.model(x).last_hidden_state.unsqueeze(1)  # (B, 1, T, D)
        hidden = self.model(x, output_hidden_states=True).hidden_states
        return torch.stack(hidden, dim=1)  # (B, L + 1, T, D)

    def n_frames(self, n_samples: int) -> int:
        """Frames of the hidden states for an input of ``n_samples``."""
        return n_frames(self.model.config.to_dict(), n_samples)


def n_frames(config: dict, n_samples: int) -> int:
    """Frames the convolutional feature encoder of ``config`` makes of ``n_samples`` (0: too short)."""
    length = n_samples
    for kernel, stride in zip(config["conv_kernel"], config["conv_stride"]):
        length = max((length - kernel) // stride + 1, 0)
    return length


def check_fits(config: dict, *, layer: int | None, n_samples: int, min_frames: int = 1) -> None:
    """Refuse an ``ssl.layer`` the checkpoint lacks, or a crop too short for it (ParamError)."""
    from deepfake_audio.params import ParamError

    total = int(config["num_hidden_layers"])
    if layer is not None and layer > total:
        raise ParamError("ssl.layer", layer, f"0..{total}: this checkpoint has {total} transformer layers")
    frames = n_frames(config, n_samples)
    if frames < min_frames:
        shortest = next(n for n in range(1, 10 * 16000) if n_frames(config, n) >= min_frames)
        raise ParamError(
            "ssl.n_samples", n_samples, f"at least {shortest}: it makes {frames} frames, and {min_frames} are needed"
        )


def pool_frames(h: torch.Tensor) -> torch.Tensor:
    """``(B, L, T, D)`` hidden states -> ``(B, L, 2, D)``: the mean and standard deviation over frames."""
    return torch.stack([h.mean(dim=2), h.std(dim=2, unbiased=False)], dim=2)


def load_frontend(
    spec: str,
    *,
    layer: int | None,
    normalize: bool | None,
    config: dict | None = None,
    weights: bool = True,
) -> SSLFrontend:
    """Load ``ssl.checkpoint`` as an :class:`SSLFrontend`.

    Args:
        spec: the checkpoint folder or hub id.
        layer, normalize: ``ssl.layer`` and ``ssl.normalize`` (``None``: the checkpoint's own choice).
        config: build from this ``config.json`` mapping instead of the checkpoint's (a fine-tuned
            bundle's copy); the checkpoint is then not needed unless ``weights``.
        weights: load the pretrained weights (``False``: random, to be overwritten by a bundle's).
    """
    folder = resolve_checkpoint(spec) if weights or config is None else None
    if config is None:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    model = build_model(config, checkpoint=folder if weights else None)
    if normalize is None:
        normalize = default_normalize(spec)
    return SSLFrontend(model, layer=layer, normalize=normalize)


def describe(frontend: SSLFrontend) -> dict[str, Any]:
    """A short account of a loaded front-end for logs and bundles."""
    config = frontend.model.config
    return {
        "model_type": config.model_type,
        "hidden_size": frontend.dim,
        "n_layers": frontend.n_layers,
        "parameters": sum(p.numel() for p in frontend.parameters()),
    }


TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [16] * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
"""A few-thousand-weight config of each family: the real architecture and loading code, for tests and CI."""


def save_random(out: Path, family: str, *, seed: int = 0, size: dict | None = None) -> Path:
    """Save a randomly initialised ``family`` model with ``save_pretrained`` (safetensors) into ``out``.

    ``size``: config overrides (default :data:`TINY`); e.g. the XLS-R 300M shape, for measuring speed
    and memory without its weights. Nothing is downloaded; the same seed gives the same bytes.
    """
    from transformers import AutoConfig, AutoModel

    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: one of {', '.join(FAMILIES)}")
    quiet_transformers()
    torch.manual_seed(seed)
    config = AutoConfig.for_model(family, **(TINY if size is None else size))
    model = AutoModel.from_config(config)
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    return out
