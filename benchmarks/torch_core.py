"""Would torch beat the extractor on the STFT -> mel -> dB -> MFCC core? Times both on the same clips.

Usage (from the repository root)::

    python -m benchmarks.torch_core                  # 256 demo clips if present, else generated ones
    python -m benchmarks.torch_core --batch 64 --clips 512 --synthetic

Clips are decoded first (not timed), so only the core is compared:

* ``project``      -- ``FeatureExtractor``'s own path, one clip at a time: scipy real FFT in float64
  (librosa's window), float32 magnitude, mel matmul, ``power_to_db``, DCT-II;
* ``torch-cpu-f32`` / ``torch-cpu-f64`` -- ``torch.stft`` on batches of ``--batch`` clips, the
  same mel filterbank as a matmul, dB and the 80-dB floor per clip, the DCT as a matmul;
* ``torch-cuda-f32`` -- the same on the GPU when there is one (host-to-device copy included,
  synchronised before the clock stops).

CPU figures are per core (one torch and one BLAS thread). Each line gives ms per clip, the real-time
factor (seconds of audio per second) and the largest |MFCC difference| from ``project`` in dB,
so a speed-up bought with other numbers shows. The extractor uses torch only if it wins here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.features import DEFAULT_MANIFEST, pick_clips
from deepfake_audio.features import FeatureExtractor
from deepfake_audio.params import AudioParams, FeatureParams
from tools.stamp import stamp


def project_core(extractor: FeatureExtractor, clips: np.ndarray) -> np.ndarray:
    """MFCC ``(n, n_mfcc, n_frames)`` of each clip through the extractor's own functions."""
    from scipy import fft

    n_mfcc = extractor.params.mfcc.n_mfcc
    out = []
    for y in clips:
        log_mel = extractor._log_mel(extractor._magnitude(y) ** 2)
        out.append(fft.dct(log_mel, type=2, norm="ortho", axis=0)[:n_mfcc])
    return np.stack(out)


class TorchCore:
    """The same core in torch, batched: ``(batch, n_samples)`` -> MFCC ``(batch, n_mfcc, n_frames)``."""

    def __init__(self, extractor: FeatureExtractor, *, device: str, dtype) -> None:
        import torch
        from scipy import fft

        p = extractor.params
        self.torch, self.device, self.dtype = torch, device, dtype
        self.n_fft, self.hop_length = p.n_fft, p.hop_length
        self.window = torch.as_tensor(extractor.window, dtype=dtype, device=device)
        self.mel = torch.as_tensor(extractor.mel_basis, dtype=dtype, device=device)  # (n_mels, bins)
        dct = fft.dct(np.eye(p.n_mels), type=2, norm="ortho", axis=0)[: p.mfcc.n_mfcc]  # (n_mfcc, n_mels)
        self.dct = torch.as_tensor(dct, dtype=dtype, device=device)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        y = torch.as_tensor(batch, device=self.device).to(self.dtype)
        spec = torch.stft(
            y, self.n_fft, self.hop_length, window=self.window, center=True, pad_mode="constant", return_complex=True
        )  # (batch, bins, frames)
        power = spec.abs() ** 2
        db = 10.0 * torch.log10(torch.clamp(self.mel @ power, min=1e-10))  # (batch, n_mels, frames)
        peak = db.amax(dim=(1, 2), keepdim=True)
        db = torch.maximum(db, peak - 80.0)
        mfcc = self.dct @ db
        if self.device == "cuda":
            torch.cuda.synchronize()
        return mfcc.cpu().numpy()


def _time(fn, clips: np.ndarray, batch: int, repeats: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        parts = [fn(clips[i : i + batch]) for i in range(0, len(clips), batch)]
        best = min(best, time.perf_counter() - start)
        out = np.concatenate(parts)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64, help="clips per torch call")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
    parser.add_argument("--synthetic", action="store_true", help="generated clips even if a corpus exists")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the results, stamped with the commit and machine, to this JSON file",
    )
    args = parser.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    audio, params = AudioParams(), FeatureParams()
    extractor = FeatureExtractor(audio, params)
    manifest = None if args.synthetic or not DEFAULT_MANIFEST.exists() else DEFAULT_MANIFEST
    with tempfile.TemporaryDirectory(prefix="bench_torch_") as tmp:
        paths, source = pick_clips(manifest, args.clips, seed=args.seed, tmp=Path(tmp))
        clips = np.stack([extractor.load(p) for p in paths])
    n = len(clips)
    audio_s = n * audio.duration_s
    print(
        f"STFT -> mel -> dB -> MFCC core: {source}; n_fft {params.n_fft}, hop {params.hop_length}, "
        f"{params.n_mels} mels, {params.mfcc.n_mfcc} MFCC; decode not timed\n"
    )
    print(f"  {'pipeline':16s} {'ms/clip':>8s} {'x real time':>12s} {'max |dMFCC| dB':>15s}")
    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(limits=1):
        project_core(extractor, clips[:2])  # warm-up
        wall, reference = _time(lambda b: project_core(extractor, b), clips, args.batch, args.repeats)
        rows.append(("project", wall, 0.0))
        for name, device, dtype in (
            ("torch-cpu-f32", "cpu", torch.float32),
            ("torch-cpu-f64", "cpu", torch.float64),
            ("torch-cuda-f32", "cuda", torch.float32),
        ):
            if device == "cuda" and not torch.cuda.is_available():
                print(f"  {name:16s} (no CUDA device here)")
                continue
            core = TorchCore(extractor, device=device, dtype=dtype)
            core(clips[: args.batch])  # warm-up (kernels, allocator)
            wall, got = _time(core, clips, args.batch, args.repeats)
            rows.append((name, wall, float(np.abs(got - reference).max())))
    for name, wall, diff in rows:
        print(f"  {name:16s} {1e3 * wall / n:8.3f} {audio_s / wall:11.0f}x {diff:15.2g}")
    print("\n  CPU rows: one thread each (per core); best of", args.repeats, "runs", file=sys.stdout)
    if args.json is not None:
        results = [
            {"pipeline": name, "ms_per_clip": 1e3 * wall / n, "realtime": audio_s / wall, "max_abs_diff_db": diff}
            for name, wall, diff in rows
        ]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"source": source, "n_clips": n, "repeats": args.repeats, "results": results, "stamp": stamp()},
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
