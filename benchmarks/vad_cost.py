"""What the voice-activity check (:mod:`deepfake_audio.vad`) adds to a request, on one core.

Usage (from the repository root)::

    python -m benchmarks.vad_cost                       # a 60-s signal and 4-s clips
    python -m benchmarks.vad_cost --long-s 300 --clips 200 --runs 5

Each case runs ``SpeechDetector.frame_probs`` plus ``speech_seconds`` (what scoring a signal
asks of it) ``--runs`` times after a warm-up and reports the fastest run as a real-time factor:
CPU seconds per second of audio (``time.process_time``, so a busy machine does not inflate it),
with wall time beside it. Cases: the long signal at 16 kHz, with the tone guard on and off (the
guard's share), and at 44.1 kHz (resampling to 16 kHz included); ``--clips`` separate 4-s clips
at 16 kHz (per-call overhead included), also given as ms per clip. BLAS/OpenMP pools are held to
one thread and the ONNX session is single-threaded, so the figures are per core. The signal is
the seeded voice-like :func:`benchmarks.features.synthetic_clip`; the cost does not depend on
what the audio holds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.features import synthetic_clip

SAMPLE_RATE = 16_000
CLIP_S = 4.0


def _signal(duration_s: float, *, sample_rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    piece = int(CLIP_S * sample_rate)
    n = int(round(duration_s * sample_rate))
    return np.concatenate(
        [synthetic_clip(rng, n_samples=piece, sample_rate=sample_rate) for _ in range(-(-n // piece))]
    )[:n]


def _best(fn, runs: int) -> tuple[float, float]:
    """(CPU s, wall s) of the fastest of ``runs`` calls of ``fn``, after one warm-up call."""
    fn()
    best = (float("inf"), float("inf"))
    for _ in range(runs):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.process_time() - cpu0, time.perf_counter() - wall0))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-s", type=float, default=60.0, help="seconds of the long signal (default 60)")
    parser.add_argument("--clips", type=int, default=50, help="4-s clips per run (default 50)")
    parser.add_argument("--runs", type=int, default=5, help="runs per case; the fastest is reported (default 5)")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from deepfake_audio.vad import SpeechDetector, VadParams, default_detector

    load_wall = time.perf_counter()
    detector = default_detector()
    load_wall = time.perf_counter() - load_wall
    no_guard = SpeechDetector(detector.session, VadParams(tone_db=None))

    def check(d: SpeechDetector, y: np.ndarray, sample_rate: int) -> None:
        d.speech_seconds(d.frame_probs(y, sample_rate))

    long16 = _signal(args.long_s, sample_rate=SAMPLE_RATE, seed=0)
    long44 = _signal(args.long_s, sample_rate=44_100, seed=0)
    clips = [_signal(CLIP_S, sample_rate=SAMPLE_RATE, seed=i) for i in range(args.clips)]
    cases = [
        (f"{args.long_s:g}-s signal, 16 kHz", args.long_s, lambda: check(detector, long16, SAMPLE_RATE)),
        (f"{args.long_s:g}-s signal, 16 kHz, no tone guard", args.long_s, lambda: check(no_guard, long16, SAMPLE_RATE)),
        (f"{args.long_s:g}-s signal, 44.1 kHz", args.long_s, lambda: check(detector, long44, 44_100)),
        (
            f"{args.clips} x {CLIP_S:g}-s clips, 16 kHz",
            args.clips * CLIP_S,
            lambda: [check(detector, y, SAMPLE_RATE) for y in clips],
        ),
    ]
    print(
        f"VAD cost, one core, fastest of {args.runs} runs (model load: {load_wall * 1e3:.0f} ms wall, once per process)"
    )
    with threadpool_limits(limits=1):
        for name, audio_s, fn in cases:
            cpu, wall = _best(fn, args.runs)
            print(
                f"  {name:38s} RTF {cpu / audio_s:.5f} CPU s per audio s ({audio_s / cpu:,.0f}x real time); wall {wall * 1e3:7.1f} ms"
            )
        cpu, wall = _best(lambda: check(detector, clips[0], SAMPLE_RATE), args.runs * 10)
        print(f"  one {CLIP_S:g}-s clip: {cpu * 1e3:.2f} ms CPU, {wall * 1e3:.2f} ms wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
