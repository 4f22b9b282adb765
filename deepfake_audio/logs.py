"""Logging set-up for stage entry points, and progress bars that stay quiet off a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the root logger once, from a stage's ``main()``."""
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """A tqdm bar on a terminal; nothing when output is redirected (``disable=None``)."""
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, mininterval=1.0, dynamic_ncols=True))
