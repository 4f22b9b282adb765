"""Stage ``examples``: example log-mel spectrograms of a few clips per class and attack.

A stage of its own, apart from ``features``: the figures need the plotting code, and restyling a
chart must not re-extract every clip (nor redrawing them wait for the extraction).

Reads: ``<manifest>`` (data/split/manifest.parquet) and the audio it points to (data/raw); params
``audio`` and the ``features`` keys the log-mel reads (``n_fft``, ``hop_length``, ``n_mels``,
``fmin``: :data:`deepfake_audio.examples.LOG_MEL_KEYS`).
Writes: ``<out>/`` (plots/examples: ``<group>.png`` per class and attack, and ``overview.png``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.examples import write_examples
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    manifest = pd.read_parquet(args.manifest)
    # Examples of the training pool's classes and attacks; eval sets are scored, not pictured.
    pool = manifest[~manifest["split"].astype(str).str.startswith("eval:")]
    figures = write_examples(pool, audio=params.audio, features=params.features, out_dir=args.out)
    return f"{len(pool)} clips in the training pool; {len(figures)} example spectrograms in {args.out}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True, help="the split manifest")
    parser.add_argument("--out", type=Path, required=True, help="folder for example spectrogram PNGs")
    run_stage("examples", parser, body, argv)


if __name__ == "__main__":
    main()
