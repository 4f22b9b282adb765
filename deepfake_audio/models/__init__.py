"""Model kinds, registered by name. ``train.models`` in params.yaml picks them.

A neural kind builds a ``torch.nn.Module`` from the shared ``model`` params section; the
``xgboost`` kind trains on the utterance table with the ``xgboost`` section.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from deepfake_audio.errors import ParamError


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """A registered model kind.

    Attributes:
        name: registry name, also the ``train@<name>`` stage suffix.
        params_section: the params.yaml section holding its hyper-parameters.
        input: ``frames`` (n_features x n_frames per clip) or ``utterances`` (one row per clip).
        build: for neural kinds, ``build(n_features, n_frames, model_params) -> nn.Module``.
        uses: the keys of its params section it reads (its DVC params dependencies).
        frame_groups: for neural kinds, ``frame_groups(model_params)`` -> the feature groups of
            the frame table it reads.
    """

    name: str
    params_section: str
    input: str
    build: Callable[..., Any] | None = None
    uses: tuple[str, ...] = ()
    frame_groups: Callable[[Any], tuple[str, ...]] | None = None

    @property
    def neural(self) -> bool:
        return self.build is not None


_REGISTRY: dict[str, ModelKind] = {}


def register_model(kind: ModelKind) -> ModelKind:
    if kind.name in _REGISTRY:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind
    return kind


def _load_builtin() -> None:
    from deepfake_audio.models import neural  # noqa: F401 - registers the neural kinds

    if "xgboost" not in _REGISTRY:
        from deepfake_audio.params import XGBoostParams

        uses = tuple(f.name for f in dataclasses.fields(XGBoostParams))
        register_model(ModelKind("xgboost", "xgboost", "utterances", uses=uses))


def known_models() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_model_kind(name: str, *, section: str | None = None) -> ModelKind:
    """Look a model kind up; with ``section``, check it is the one ``train.models`` maps it to."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ParamError(f"train.models.{name}", section, f"unknown model kind; known: {', '.join(sorted(_REGISTRY))}")
    kind = _REGISTRY[name]
    if section is not None and section != kind.params_section:
        raise ParamError(f"train.models.{name}", section,
                         f"{name} reads its hyper-parameters from the {kind.params_section!r} section; "
                         f"write `{name}: {kind.params_section}`")
    return kind
