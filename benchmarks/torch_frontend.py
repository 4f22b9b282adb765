"""TorchFrontend against the extractor: speed of one group per core, and the largest differences.

Usage (from the repository root)::

    python -m benchmarks.torch_frontend                      # lfcc, batch 32 of 4-s clips, best of 3
    python -m benchmarks.torch_frontend --group mfcc --batch 64 --repeats 5

On one batch of generated 16 kHz clips (seeded speech-like noise, ``audio.n_samples`` each):

* ``extractor``  -- ``FeatureExtractor.extract`` with only ``--group`` picked, one clip at a time
  (what the features stage runs per clip, from decoded audio);
* ``torch-cpu``  -- ``TorchFrontend(--group)`` on the whole batch;
* ``torch-cuda`` -- the same on the GPU when there is one (host-to-device copy included,
  synchronised before the clock stops).

CPU figures are per core: one torch thread and BLAS pools limited to one thread. Each pipeline is
warmed up once, then timed ``--repeats`` times; the best run is reported. Then the largest
|difference| from the extractor for each group and test signal of tests/test_torch_features.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from deepfake_audio.features import FeatureExtractor
from deepfake_audio.params import AudioParams, FeatureParams
from deepfake_audio.torch_features import SUPPORTED_GROUPS, TorchFrontend


def _best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    from tests.test_torch_features import SIGNALS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", default="lfcc", choices=SUPPORTED_GROUPS)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    threadpool_limits(1)
    audio = AudioParams()
    features = dataclasses.replace(FeatureParams(), frame_groups=(args.group,), utterance_groups=())
    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((args.batch, audio.n_samples))).astype(np.float32)
    extractor = FeatureExtractor(audio, features)
    frontend = TorchFrontend(args.group, features=features, audio=audio)
    batch = torch.from_numpy(clips)
    n_frames = extractor.layout.n_frames

    rows = [("extractor", _best(lambda: [extractor.extract(y) for y in clips], args.repeats))]
    with torch.inference_mode():
        rows.append(("torch-cpu", _best(lambda: frontend(batch), args.repeats)))
        if torch.cuda.is_available():
            cuda = TorchFrontend(args.group, features=features, audio=audio).cuda()

            def on_gpu() -> None:
                cuda(batch.cuda())
                torch.cuda.synchronize()

            rows.append(("torch-cuda", _best(on_gpu, args.repeats)))
    print(
        f"{args.group}: batch {args.batch} x {audio.n_samples} samples ({n_frames} frames each), best of {args.repeats}"
    )
    print(f"  {'pipeline':12s} {'ms/batch':>9s} {'clips/s':>9s} {'frames/s':>10s}")
    for name, wall in rows:
        print(f"  {name:12s} {1e3 * wall:9.1f} {args.batch / wall:9.0f} {args.batch * n_frames / wall:10.0f}")

    print("\nmax |TorchFrontend - extractor| per test signal (default features):")
    print(f"  {'group':8s} " + " ".join(f"{name:>10s}" for name in SIGNALS))
    stacked = torch.from_numpy(np.stack(list(SIGNALS.values())))
    for group in SUPPORTED_GROUPS:
        only = dataclasses.replace(FeatureParams(), frame_groups=(group,), utterance_groups=())
        ex = FeatureExtractor(audio, only)
        got = TorchFrontend(group, features=only, audio=audio)(stacked).numpy()
        worst = [np.abs(got[i] - ex.extract(y)[0]).max() for i, y in enumerate(SIGNALS.values())]
        print(f"  {group:8s} " + " ".join(f"{w:10.1e}" for w in worst))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
