"""Speed of each ``train.augment`` op on one training crop, per core.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 taskset -c 0 python -m benchmarks.wave_augment --runs 30

Times ``augment_waveform`` with each op alone (``prob: 1``, ``max_ops: 1``) on a 64,600-sample
(4.04 s at 16 kHz, AASIST's crop) voice-like clip, and each codec and RawBoost algorithm on its
own. Each row gives the median wall and CPU time of ``--runs`` calls after one warm-up, each call with a fresh seed, so
the drawn parameters vary as in training. DataLoader workers run this per crop: a crop costs its
chain's sum.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

from deepfake_audio.params import RAWBOOST_ALGOS, WAVE_AUGMENT_OPS, WAVE_CODECS, WaveAugmentParams
from deepfake_audio.wave_augment import augment_waveform

SAMPLE_RATE = 16000
N_SAMPLES = 64600


def _clip() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(N_SAMPLES) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(140.0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / SAMPLE_RATE
    y = sum(np.sin(k * phase) / k for k in range(1, 40)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    y = 0.5 * y / np.max(np.abs(y)) + 0.002 * rng.standard_normal(N_SAMPLES)
    return y.astype(np.float32)


def _median_ms(y: np.ndarray, config: WaveAugmentParams, runs: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds per call (CPU time is the fairer figure on a shared core)."""
    augment_waveform(y, sample_rate=SAMPLE_RATE, config=config, rng=np.random.default_rng(10**6))  # warm-up
    wall, cpu = [], []
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        augment_waveform(y, sample_rate=SAMPLE_RATE, config=config, rng=rng)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="calls per row; the median is reported (default 30)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    y = _clip()
    base = WaveAugmentParams(prob=1.0, max_ops=1)
    rows = [(op, dataclasses.replace(base, ops=(op,))) for op in WAVE_AUGMENT_OPS]
    rows += [(f"codec={c}", dataclasses.replace(base, ops=("codec",), codecs=(c,))) for c in WAVE_CODECS]
    rows += [
        (
            f"rawboost={a}",
            dataclasses.replace(base, ops=("rawboost",), rawboost=dataclasses.replace(base.rawboost, algos=(a,))),
        )
        for a in RAWBOOST_ALGOS
    ]
    print(f"ms per {N_SAMPLES}-sample crop, median of {args.runs} calls")
    print(f"{'op':14s} {'wall':>8s} {'cpu':>8s}")
    for name, config in rows:
        wall_ms, cpu_ms = _median_ms(y, config, args.runs)
        print(f"{name:14s} {wall_ms:8.1f} {cpu_ms:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
