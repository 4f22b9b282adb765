"""Stage ``ssl_checkpoint``: check the SSL settings first, and fingerprint the checkpoint they name.

Reads: ``models/ssl`` (where checkpoints are kept; a hub id is read from the local Hugging Face
cache) and params ``ssl`` and ``train.models`` (and the sections those name).
Writes: ``<out>`` (data/ssl/checkpoint.json): the checkpoint ``ssl.checkpoint`` names, the SHA-256
of its config and weight files, and whether a model of ``train.models`` reads cached embeddings.
The ``embeddings`` and ``train@<model>`` stages depend on this file, not on the folder: new weights
of the named checkpoint re-run them, another checkpoint copied into models/ssl does not (this stage
re-runs and writes the same bytes).

It has no upstream stage, so ``dvc repro`` runs it first: a checkpoint that is not on this machine,
a layer it lacks, or a crop too short for a model fails here, before any other work.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_audio.io import write_json
from deepfake_audio.models import check_model_params
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    kinds = check_model_params(params)
    sections = {name: kind.section(params) for name, kind in kinds.items()}
    for name, kind in kinds.items():
        if kind.check_setup is not None:
            kind.check_setup(sections[name])
    readers = sorted(name for name, kind in kinds.items() if kind.input_for(sections[name]) == "embeddings")
    record: dict = {"checkpoint": params.ssl.checkpoint, "embed": bool(readers), "fingerprint": None}
    if params.ssl.checkpoint is not None:
        from deepfake_audio.frontends.ssl import fingerprint

        record["fingerprint"] = fingerprint(params.ssl.checkpoint)  # fails at once, naming it, when it is not here
    write_json(args.out, record)
    if record["fingerprint"] is None:
        return "no SSL checkpoint (ssl.checkpoint: null)"
    files = ", ".join(f"{k} {v[:12]}" for k, v in record["fingerprint"]["files"].items())
    return f"{params.ssl.checkpoint}: {files}; cached embeddings read by: {', '.join(readers) or 'none'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    run_stage("ssl_checkpoint", parser, body, argv)


if __name__ == "__main__":
    main()
