"""Training throughput of the waveform models (aasist, rawnet2, lcnn_wave) with augmentation off and on.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 nice -n 5 python -m benchmarks.train_waveform              # all kinds, 64,600-sample crops
    python -m benchmarks.train_waveform --kinds aasist rawnet2 --n-samples 16000 --train-clips 64
    python -m benchmarks.train_waveform --size paper --device cuda --num-workers 6 --train-clips 1024

Unlike ``benchmarks/train.py`` (random tensors in RAM through a copy of the loop), this runs the
real path: a synthetic corpus of ``--clips`` WAVs (``--clip-s`` s, 16 kHz, half bona fide: a
voice-like harmonic signal with vibrato and a syllable envelope; half spoof: band-limited noise
with a buzz) is written once and decoded by ``deepfake_audio.waveforms.write_store`` into a store
under ``--tmp`` (reused when present). For each kind and each ``--augment`` setting, the kind's own
``fit`` trains ``--epochs`` epochs over the first ``--train-clips`` clips (random crops of
``--n-samples``, read from the store by ``WaveformDataset`` in ``--num-workers`` DataLoader
workers) and scores ``--dev-clips`` dev clips after each epoch, exactly as the train stage does.
Augmentation ``on`` is ``train.augment`` with ``prob: 1`` and every other key at its default: all
ops (RawBoost and the codecs included), chains of 1-2 ops.

From the summary ``train_neural`` returns:

* train samples/s: training crops per second of the training passes (dev scoring excluded);
* data wait: the share of that time the loop blocked on ``next(loader)``, i.e. when the model
  starved because reading, cropping and augmenting fell behind. The workers restart every epoch
  (no ``persistent_workers``), so the first batch of each epoch is never overlapped: with few
  steps per epoch that floor is a large part of the share;
* wall s: the whole ``fit`` call (building the model, workers starting, dev scoring, saving).

Crops longer than ``--clip-s`` are repeat-padded, as the store does for short clips. Sizes are
the params defaults (AASIST-L for ``aasist``, the CPU RawNet2, ``model`` for ``lcnn_wave``), or
with ``--size paper`` the full AASIST and the paper's RawNet2 of ``profiles/gpu.yaml``.
``lcnn_wave`` crops ``audio.duration_s``, which is set to ``--n-samples`` / 16 kHz. The machine
may be shared: the 1-minute load average is printed next to every row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.stamp import describe, stamp

SAMPLE_RATE = 16000
KINDS = ("aasist", "rawnet2", "lcnn_wave")
PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "gpu.yaml"


# ---------------------------------------------------------------- the synthetic corpus and store


def voice_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """A harmonic signal with vibrato and a 3-6 Hz syllable envelope, plus a little noise; float32 ``(n,)``."""
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(90.0, 240.0) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    n_harmonics = int(min(30, 7000 // f0.max()))
    y = sum(np.sin(k * phase) / k for k in range(1, n_harmonics + 1))
    y = y * np.sin(np.pi * rng.uniform(3, 6) * t + rng.uniform(0, np.pi)) ** 2
    y = y + 0.01 * rng.standard_normal(n)
    return (rng.uniform(0.2, 0.6) * y / np.max(np.abs(y))).astype(np.float32)


def noise_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise with a faint buzz and a slow envelope; float32 ``(n,)``."""
    from scipy import signal

    low, high = rng.uniform(100, 500), rng.uniform(3000, 7500)
    sos = signal.butter(4, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    t = np.arange(n) / SAMPLE_RATE
    y = signal.sosfilt(sos, rng.standard_normal(n)) + 0.2 * np.sign(np.sin(2 * np.pi * rng.uniform(80, 200) * t))
    y = y * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t) ** 2)
    return (rng.uniform(0.2, 0.6) * y / np.max(np.abs(y))).astype(np.float32)


def build_store(root: Path, *, clips: int, clip_s: float) -> tuple[Path, list[str]]:
    """Write (or reuse) ``clips`` WAVs and their waveform store under ``root``.

    Clip ``i`` is bona fide (voice-like) when ``i`` is even, else spoof (noise-like).

    Returns:
        the store folder and the labels (``bonafide``/``spoof``) in store order.
    """
    import pandas as pd
    import soundfile as sf

    from deepfake_audio.params import AudioParams
    from deepfake_audio.waveforms import META, write_store

    labels = ["bonafide" if i % 2 == 0 else "spoof" for i in range(clips)]
    store = root / f"store-{clips}x{clip_s:g}s"
    meta = store / META
    if meta.is_file() and json.loads(meta.read_text())["n_clips"] == clips:
        return store, labels
    wav_dir = root / f"wav-{clip_s:g}s"
    wav_dir.mkdir(parents=True, exist_ok=True)
    n = int(round(clip_s * SAMPLE_RATE))
    paths = []
    for i, label in enumerate(labels):
        path = wav_dir / f"{i:05d}_{label}.wav"
        if not path.is_file():
            rng = np.random.default_rng(i)
            y = voice_like(n, rng) if label == "bonafide" else noise_like(n, rng)
            sf.write(path, y, SAMPLE_RATE, subtype="PCM_16")
        paths.append(path.name)
    manifest = pd.DataFrame({"utt_id": [f"clip{i:05d}" for i in range(clips)], "path": paths})
    audio = AudioParams(sample_rate=SAMPLE_RATE, max_duration_s=max(clip_s, 10.0))
    write_store(manifest, raw_dir=wav_dir, out_dir=store, audio=audio, n_jobs=1, rejects_path=store / "rejects.csv")
    return store, labels


# ---------------------------------------------------------------- one training run


def sections(size: str, n_samples: int) -> dict:
    """Kind -> its params section at ``size`` (``default`` or ``paper``), cropping ``n_samples``."""
    import yaml

    from deepfake_audio.models.waveform import AasistParams, RawNet2Params
    from deepfake_audio.params import ModelParams, from_dict

    if size == "paper":
        profile = yaml.safe_load(PROFILE.read_text())
        aasist = from_dict(AasistParams, profile["aasist"], prefix="aasist")
        rawnet2 = from_dict(RawNet2Params, profile["rawnet2"], prefix="rawnet2")
    else:
        aasist, rawnet2 = AasistParams(), RawNet2Params()
    return {
        "aasist": dataclasses.replace(aasist, n_samples=n_samples),
        "rawnet2": dataclasses.replace(rawnet2, n_samples=n_samples),
        "lcnn_wave": ModelParams(),  # crops audio.duration_s, set from n_samples by the caller
    }


def bench_one(
    kind_name: str,
    section,
    *,
    store: Path,
    labels: list[str],
    augment: bool,
    args: argparse.Namespace,
) -> dict:
    """Train ``kind_name`` with its real ``fit`` and return the measured figures."""
    import pandas as pd

    from deepfake_audio.inputs import InputSource, load_inputs
    from deepfake_audio.models import FitContext, get_model_kind
    from deepfake_audio.params import AudioParams, FeatureParams, TrainParams, WaveAugmentParams, as_dict

    kind = get_model_kind(kind_name)
    audio = AudioParams(sample_rate=SAMPLE_RATE, duration_s=args.n_samples / SAMPLE_RATE)
    n_train, n_dev = args.train_clips, args.dev_clips
    split = ["train"] * n_train + ["dev"] * n_dev + ["test"] * (len(labels) - n_train - n_dev)
    manifest = pd.DataFrame(
        {
            "utt_id": [f"clip{i:05d}" for i in range(len(labels))],
            "split": split,
            "label": labels,
            "attack": ["-" if lab == "bonafide" else "synthetic" for lab in labels],
            "source": "bench",
        }
    )
    crop = kind.crop_samples(section, audio)
    data = load_inputs(
        manifest, input=kind.input, source=InputSource(waveforms=store, n_samples=crop), splits=["train", "dev"]
    )
    train = TrainParams(
        models={kind_name: kind.params_section},
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.num_workers,
        augment=WaveAugmentParams(prob=1.0 if augment else 0.0),
        seed=0,
    )
    config = {"audio": as_dict(audio), "features": as_dict(FeatureParams()), "scaler": {}}
    n_weights = sum(p.numel() for p in kind.build(1, crop, section, config).parameters())
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind_name}-") as out:
        t0 = time.perf_counter()
        summary = kind.fit(data, FitContext(section=section, train=train, out_dir=Path(out), key="", config=config))
        wall_s = time.perf_counter() - t0
    steps_per_epoch = n_train // args.batch_size if n_train > args.batch_size else 1
    return {
        "kind": kind_name,
        "size": args.size,
        "weights": n_weights,
        "augment": "on" if augment else "off",
        "n_samples": crop,
        "num_workers": args.num_workers,
        "batch_size": args.batch_size,
        "train_clips": n_train,
        "dev_clips": n_dev,
        "epochs": summary["epochs_run"],
        "steps": steps_per_epoch * summary["epochs_run"],
        "device": summary["device"],
        "train_samples_per_s": summary["train_samples_per_s"],
        "data_wait_share": summary["data_wait_share"],
        "wall_s": wall_s,
        "load_1m": os.getloadavg()[0],
    }


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--augment", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--n-samples", type=int, default=64600, help="crop length (default 64600, the authors')")
    parser.add_argument("--num-workers", type=int, default=1, help="train.num_workers (default 1)")
    parser.add_argument("--size", choices=["default", "paper"], default="default")
    parser.add_argument("--clips", type=int, default=256, help="clips in the synthetic store (default 256)")
    parser.add_argument("--clip-s", type=float, default=3.0, help="length of each clip in s (default 3)")
    parser.add_argument("--train-clips", type=int, default=128, help="the first clips, trained on (default 128)")
    parser.add_argument("--dev-clips", type=int, default=32, help="the next clips, scored per epoch (default 32)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--tmp", type=Path, default=None, help="where the clips and store go (default: $TMPDIR)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results and a stamp to this file")
    args = parser.parse_args(argv)
    if min(args.n_samples, args.clips, args.train_clips, args.dev_clips, args.epochs, args.batch_size) < 1:
        parser.error("--n-samples, --clips, --train-clips, --dev-clips, --epochs and --batch-size must be >= 1")
    if args.num_workers < 0:
        parser.error("--num-workers must be >= 0")
    if args.train_clips + args.dev_clips > args.clips:
        parser.error(f"--train-clips + --dev-clips ({args.train_clips} + {args.dev_clips}) exceed --clips {args.clips}")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    root = (args.tmp or Path(tempfile.gettempdir())) / "deepfake-audio-bench-train-waveform"
    store, labels = build_store(root, clips=args.clips, clip_s=args.clip_s)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(
        f"waveform training throughput on {where}; batch {args.batch_size}, {args.epochs} epoch(s) of "
        f"{args.train_clips} clips, {args.dev_clips} dev clips; store {store} ({args.clips} clips of {args.clip_s:g} s)\n"
    )
    print(
        "| kind | size | weights | augment | n_samples | num_workers | train samples/s | data wait % | wall s | load 1m |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    results = []
    for kind_name in args.kinds:
        section = sections(args.size, args.n_samples)[kind_name]
        for setting in args.augment:
            r = bench_one(kind_name, section, store=store, labels=labels, augment=setting == "on", args=args)
            results.append(r)
            print(
                f"| {r['kind']} | {r['size']} | {r['weights']:,} | {r['augment']} | {r['n_samples']} | "
                f"{r['num_workers']} | {r['train_samples_per_s']:.1f} | {100 * r['data_wait_share']:.1f} | "
                f"{r['wall_s']:.1f} | {r['load_1m']:.2f} |",
                flush=True,
            )
    s = stamp(Path(__file__).resolve().parents[1])
    load = os.getloadavg()
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; {describe(s)}")
    print(f"load average (1, 5, 15 min) at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"device": where, "torch_threads": torch.get_num_threads(), "results": results, "stamp": s}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
