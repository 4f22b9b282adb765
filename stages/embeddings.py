"""Stage ``embeddings``: a frozen self-supervised front-end's output for every clip, computed once.

Reads: ``<waveforms>/`` (data/waveforms: every clip decoded) and the checkpoint ``ssl.checkpoint``
names (a folder, e.g. under models/ssl, or a hub id in the local Hugging Face cache); params ``ssl``.
Writes: ``<out>/`` (data/embeddings): ``embeddings.f16``, ``index.parquet``, ``meta.json``
(:mod:`deepfake_audio.embeddings`). With ``ssl.checkpoint: null`` or ``ssl.freeze: false`` the store
is empty: no model reads it.

A checkpoint that is not on this machine fails here at once, naming it and how to get it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_audio.embeddings import empty_store, write_store
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    ssl = params.ssl
    if ssl.checkpoint is None:
        return str(empty_store(args.out, "ssl.checkpoint is null: no SSL front-end")["reason"])
    if not ssl.freeze:
        return str(empty_store(args.out, "ssl.freeze is false: the ssl_* models fine-tune it on the audio")["reason"])
    from deepfake_audio.frontends.ssl import describe, fingerprint, load_frontend

    print_ = fingerprint(ssl.checkpoint)  # resolves the checkpoint first: a missing one fails before any work
    frontend = load_frontend(ssl.checkpoint, layer=ssl.layer, normalize=ssl.normalize)
    s = write_store(args.waveforms, args.out, ssl, frontend, fingerprint=print_)
    about = describe(frontend)
    return (
        f"{s['n_clips']} clips through {about['model_type']} ({about['parameters']:,} weights, "
        f"{about['n_layers']} hidden states kept); {ssl.cache} blocks {s['shape'][1:]} of float16, "
        f"{s['bytes_per_clip'] / 1024:.1f} KiB per clip; {s['wall_s']:.1f} s ({s['clips_per_s']:.1f} clips/s)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waveforms", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    run_stage("embeddings", parser, body, argv)


if __name__ == "__main__":
    main()
