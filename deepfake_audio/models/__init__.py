"""Model kinds, registered by name. ``train.models`` in params.yaml picks them.

A :class:`ModelKind` owns everything that differs between model families: the input it reads,
its params section, and how it fits, saves, loads and scores. Stages, evaluation, predict and the
web page call these and never branch on the family.

Adding a kind is one new module in this package that calls :func:`register_model` at import:
the registry imports every module of the package the first time it is asked
(``DISCOVERS_SUBMODULES`` tells :mod:`deepfake_audio.codedeps` so).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_audio.params import ParamError, Params, as_dict, from_dict

DISCOVERS_SUBMODULES = True

INPUTS = ("frames", "utterances", "waveform", "embeddings")
"""What a kind reads: ``frames`` ``(n, F, T)`` frame features, ``utterances`` ``(n, D)`` per-clip
statistics, ``waveform`` ``(n, samples)`` audio, ``embeddings`` cached self-supervised features."""

AUDIO_INPUTS = ("waveform", "embeddings")
"""Inputs made from a fixed-length crop of the audio (the kind declares ``crop_samples``)."""


@dataclasses.dataclass(frozen=True)
class FitContext:
    """What a kind's ``fit`` gets besides the data.

    Attributes:
        section: the parsed params section of the kind (``kind.params_type``).
        train: the ``train`` section.
        out_dir: the bundle folder; ``fit`` writes ``kind.weights`` (and may checkpoint) there.
        live: a DVCLive logger on rank 0, else ``None``.
        key: the training key (see :func:`deepfake_audio.bundle.training_key`); a checkpoint
            written for another key is never resumed.
        config: ``audio``, ``features`` and ``scaler`` as the bundle's config.json records them
            (a model with a torch front-end builds it from these).
    """

    section: Any
    train: Any
    out_dir: Path
    live: Any = None
    key: str = ""
    config: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """A registered model kind.

    Attributes:
        name: registry name, also the ``train@<name>`` stage suffix.
        params_section: the params.yaml section holding its hyper-parameters.
        params_type: the frozen dataclass that section parses into.
        input: one of :data:`INPUTS`.
        weights: the file name of its weights in the bundle folder.
        fit: ``fit(data, ctx: FitContext) -> summary``: trains on ``data["train"]`` with early
            stopping on ``data["dev"]``, writes ``ctx.out_dir / weights``; the summary has at least
            ``dev_eer``, ``threshold``, ``device``, ``n_features`` and ``train_samples_per_s``.
        load: ``load(bundle_dir, config, section) -> model`` without unpickling arbitrary objects.
        score: ``score(model, x, batch_size=...) -> (n,) float64``; higher means more bona fide.
        uses: the keys of its params section it reads (its DVC params and training-key dependencies).
        input_groups: ``input_groups(section)`` -> the frame groups it reads; ``None`` reads them all
            (or its input has no groups).
        distributed: whether it trains under torchrun (DistributedDataParallel).
        resumable_epoch: ``resumable_epoch(out_dir, key)`` -> the last finished epoch of a checkpoint
            written for ``key``, else ``None``; ``None`` for kinds that do not checkpoint.
        build: for torch kinds, ``build(n_features, n_frames, section) -> nn.Module`` (benchmarks
            and exporters build the bare network with it); ``None`` otherwise.
        crop_samples: for waveform kinds, ``crop_samples(section, audio)`` -> the length in samples of
            the crops it trains on and scores (its audio contract); ``None`` otherwise.
        losses: the values of ``train.loss`` it trains with (``oc_softmax`` needs an embedding).
        frontend: a shared front-end section it also reads (``ssl``); its ``params_type`` then has a
            ``frontend`` field, filled from that section, so the front-end is part of its
            hyper-parameters, training key and bundle.
        input_of: ``input_of(section)`` -> the input it reads with these params, when that depends on
            them (an SSL back-end reads cached ``embeddings`` with a frozen front-end, else ``waveform``).
        check: ``check(section)`` raises :class:`ParamError` on settings that only this kind refuses.
        check_setup: ``check_setup(section)``: the checks that need files (a pretrained checkpoint is
            on this machine and fits the settings), run first thing by the ``ssl_checkpoint`` stage.
    """

    name: str
    params_section: str
    params_type: type
    input: str
    weights: str
    fit: Callable[..., dict]
    load: Callable[..., Any]
    score: Callable[..., np.ndarray]
    uses: tuple[str, ...] = ()
    input_groups: Callable[[Any], tuple[str, ...]] | None = None
    distributed: bool = False
    resumable_epoch: Callable[[Path, str], int | None] | None = None
    build: Callable[..., Any] | None = None
    crop_samples: Callable[[Any, Any], int] | None = None
    losses: tuple[str, ...] = ("cross_entropy",)
    frontend: str | None = None
    input_of: Callable[[Any], str] | None = None
    check: Callable[[Any], None] | None = None
    check_setup: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"model kind {self.name!r}: input {self.input!r} is not one of {', '.join(INPUTS)}")
        if (self.input in AUDIO_INPUTS) != (self.crop_samples is not None):
            raise ValueError(f"model kind {self.name!r}: kinds that read audio, and only they, declare crop_samples")
        fields = {f.name for f in dataclasses.fields(self.params_type)}
        unknown = sorted(set(self.uses) - fields)
        if unknown:
            raise ValueError(f"model kind {self.name!r} uses {unknown}, which {self.params_type.__name__} lacks")

    def section(self, params: Params) -> Any:
        """This kind's params section out of the whole params, parsed and validated."""
        section = params.section(self.params_section)
        if self.frontend is not None:
            if not isinstance(section, dict) or "frontend" in section:
                raise ParamError(
                    f"{self.params_section}.frontend",
                    section.get("frontend") if isinstance(section, dict) else section,
                    f"the front-end is set in the {self.frontend!r} section",
                )
            section = {**section, "frontend": as_dict(params.section(self.frontend))}
        if isinstance(section, self.params_type):
            return section
        if dataclasses.is_dataclass(section):
            raise ParamError(
                f"train.models.{self.name}",
                self.params_section,
                f"{self.name} reads a {self.params_type.__name__} section, not {type(section).__name__}",
            )
        return from_dict(self.params_type, section, prefix=self.params_section)

    def section_from_config(self, config: dict) -> Any:
        """The params section recorded in a bundle's config.json."""
        return from_dict(self.params_type, config["hyper_parameters"], prefix=self.params_section)

    def input_for(self, section: Any) -> str:
        """The input it reads with these params (:data:`INPUTS`)."""
        return self.input_of(section) if self.input_of is not None else self.input

    def groups(self, section: Any) -> tuple[str, ...] | None:
        """The frame groups it reads with these params; ``None`` for all of its input."""
        return self.input_groups(section) if self.input_groups is not None else None

    def hyper_parameters(self, section: Any) -> dict:
        """The keys of its section it reads, as plain data (part of the training key). A nested
        section that knows which of its keys change a trained model (``key_params()``) gives those."""
        values = {k: getattr(section, k) for k in self.uses}
        return {k: v.key_params() if hasattr(v, "key_params") else as_dict(v) for k, v in values.items()}


_REGISTRY: dict[str, ModelKind] = {}
_DISCOVERED = False


def register_model(kind: ModelKind) -> ModelKind:
    """Add a kind to the registry; registering a name twice is a bug and raises."""
    if kind.name in _REGISTRY:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind
    return kind


def _discover() -> None:
    # Imported on first use, not at package import: importing the package stays cheap, and a
    # model module may import this package's helpers without a cycle at import time.
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}")


def known_models() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_model_kind(name: str, *, section: str | None = None) -> ModelKind:
    """Look a model kind up; with ``section``, check it is the one ``train.models`` maps it to."""
    _discover()
    if name not in _REGISTRY:
        raise ParamError(f"train.models.{name}", section, f"unknown model kind; known: {', '.join(sorted(_REGISTRY))}")
    kind = _REGISTRY[name]
    if section is not None and section != kind.params_section:
        raise ParamError(
            f"train.models.{name}",
            section,
            f"{name} reads its hyper-parameters from the {kind.params_section!r} section; "
            f"write `{name}: {kind.params_section}`",
        )
    return kind


def check_model_params(params: Params) -> dict[str, ModelKind]:
    """Check every entry of ``train.models`` against the registry and the features it needs.

    Each name must be a known kind mapped to its own section; the section must parse; and the
    frame groups a frame model reads must be in ``features.frame_groups`` (else it would fail
    only when reading its inputs, after feature extraction).

    Returns:
        name -> kind, in ``train.models`` order.

    Raises:
        ParamError: naming the first bad key.
    """
    kinds = {}
    for name, section_name in params.train.models.items():
        kind = get_model_kind(name, section=section_name)
        section = kind.section(params)
        if kind.check is not None:
            kind.check(section)
        if params.train.loss not in kind.losses:
            raise ParamError(
                "train.loss",
                params.train.loss,
                f"{name} trains with {', '.join(kind.losses)}; drop it or change the loss",
            )
        groups = kind.groups(section) if kind.input == "frames" else None
        for group in groups or ():
            if group not in params.features.frame_groups:
                raise ParamError(
                    _key_holding(section, section_name, group),
                    group,
                    f"{name} reads this frame group, which features.frame_groups "
                    f"({', '.join(params.features.frame_groups)}) does not extract",
                )
        kinds[name] = kind
    return kinds


def _key_holding(section: Any, prefix: str, value: str) -> str:
    """The dotted key of ``section`` whose value is or lists ``value`` (for error messages)."""
    for field in dataclasses.fields(section):
        held = getattr(section, field.name)
        if held == value or (isinstance(held, tuple) and value in held):
            return f"{prefix}.{field.name}"
    return prefix
