"""Source kinds: named recipes that materialise clips and their manifest rows.

``data.sources`` and ``data.eval_sets`` in params.yaml pick kinds by name. A kind is registered
once; registering a name twice is a bug and raises.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from deepfake_audio.params import ParamError, from_dict

DISCOVERS_SUBMODULES = True


@dataclasses.dataclass(frozen=True)
class SourceKind:
    """A registered source kind.

    ``build(options, out_dir=..., n_jobs=...)`` materialises the clips under ``out_dir`` (or
    references files in place) and returns manifest rows with the binding columns, except
    ``source`` and ``eval_set`` which the caller fills.
    """

    name: str
    options: type
    build: Callable[..., pd.DataFrame]


_REGISTRY: dict[str, SourceKind] = {}


def register_source(name: str, options: type) -> Callable[[Callable[..., pd.DataFrame]], Callable[..., pd.DataFrame]]:
    def decorator(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        if name in _REGISTRY:
            raise ValueError(f"source kind {name!r} is already registered")
        _REGISTRY[name] = SourceKind(name, options, fn)
        return fn

    return decorator


_DISCOVERED = False


def _load_builtin_kinds() -> None:
    # Every module of the package, on first use: importing the package stays cheap, and a new
    # kind is one new file (DISCOVERS_SUBMODULES tells deepfake_audio.codedeps so).
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            importlib.import_module(f"{__name__}.{info.name}")


def known_kinds() -> list[str]:
    _load_builtin_kinds()
    return sorted(_REGISTRY)


def get_kind(name: str, *, key: str = "kind") -> SourceKind:
    _load_builtin_kinds()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ParamError(key, name, f"unknown source kind; known kinds: {', '.join(sorted(_REGISTRY))}") from None


def parse_spec(spec: dict[str, Any], *, key: str) -> tuple[SourceKind, Any]:
    """Validate a source spec (``{kind: ..., **options}``) into its kind and options object."""
    kind = get_kind(spec.get("kind"), key=f"{key}.kind")
    options = from_dict(kind.options, {k: v for k, v in spec.items() if k != "kind"}, prefix=key)
    return kind, options


def build_source(spec: dict[str, Any], *, key: str, out_dir: Path, n_jobs: int) -> pd.DataFrame:
    """Materialise one source spec and return its manifest rows."""
    kind, options = parse_spec(spec, key=key)
    return kind.build(options, out_dir=out_dir, n_jobs=n_jobs)
