"""What every stage entry point shares: argument parsing, logging, params, the summary line."""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from deepfake_audio.logs import setup_logging
from deepfake_audio.params import Params, load_params


def run_stage(
    name: str,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace, Params], str],
    argv: Sequence[str] | None = None,
) -> None:
    """Parse arguments, load ``--params``, run ``body`` and log its one-line summary with wall time."""
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    args = parser.parse_args(argv)
    # MKL (torch's CPU BLAS) may take another code path, and round differently, depending on how
    # its inputs happen to be aligned in memory: one training run in three on the demo corpus
    # drifted from epoch 4 on. Strict conditional reproducibility fixes the path; set before any
    # BLAS call, so before the stage imports torch.
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    setup_logging()
    log = logging.getLogger(f"stages.{name}")
    t0 = time.perf_counter()
    params = load_params(args.params)
    summary = body(args, params)
    log.info("%s done in %.1f s: %s", name, time.perf_counter() - t0, summary)
