"""Stage ``embeddings``: a frozen self-supervised front-end's output for every clip, computed once.

Reads: ``<waveforms>/`` (data/waveforms: every clip decoded), ``<checkpoint>`` (data/ssl/checkpoint.json
of the ``ssl_checkpoint`` stage: which checkpoint, its SHA-256, and whether a model reads the store)
and the checkpoint it names; params ``ssl`` (but ``lr`` and ``gradient_checkpointing``).
Writes: ``<out>/`` (data/embeddings): ``embeddings.f16``, ``index.parquet``, ``meta.json``
(:mod:`deepfake_audio.embeddings`). The store is empty, in no time, when no model of ``train.models``
reads cached embeddings (``ssl.checkpoint: null``, ``ssl.freeze: false``, or no ``ssl_*`` model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_audio.embeddings import empty_store, write_store
from deepfake_audio.io import read_json
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    ssl = params.ssl
    checked = read_json(args.checkpoint)
    if checked["checkpoint"] != ssl.checkpoint:
        raise ValueError(f"{args.checkpoint} was written for ssl.checkpoint={checked['checkpoint']!r}: run dvc repro")
    if not checked["embed"]:
        reason = "no model of train.models reads cached SSL embeddings (ssl_* with ssl.freeze: true)"
        return str(empty_store(args.out, reason)["reason"])
    from deepfake_audio.frontends.ssl import describe, fingerprint, load_frontend
    from deepfake_audio.runtime import select_device

    print_ = fingerprint(ssl.checkpoint)
    if print_ != checked["fingerprint"]:
        raise ValueError(f"the weights of {ssl.checkpoint} changed since {args.checkpoint} was written: run dvc repro")
    frontend = load_frontend(ssl.checkpoint, layer=ssl.layer, normalize=ssl.normalize)
    device = select_device(ssl.device)
    s = write_store(args.waveforms, args.out, ssl, frontend, fingerprint=print_, device=device)
    about = describe(frontend)
    return (
        f"{s['n_clips']} clips through {about['model_type']} ({about['parameters']:,} weights, "
        f"{about['n_layers']} hidden states kept); {ssl.cache} blocks {s['shape'][1:]} of float16, "
        f"{s['bytes_per_clip'] / 1024:.1f} KiB per clip; {s['wall_s']:.1f} s on {device.type} ({s['clips_per_s']:.1f} clips/s)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waveforms", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True, help="data/ssl/checkpoint.json")
    parser.add_argument("--out", type=Path, required=True)
    run_stage("embeddings", parser, body, argv)


if __name__ == "__main__":
    main()
