"""Time RawNet2 on the CPU: training samples/s (forward, backward, Adam step) and inference clips/s.

    PYTHONPATH=. python -m tools.rawnet2_speed --threads 2 --steps 5

Prints one line per config (paper size and two small CPU variants) on batches of
``--batch`` random ``--n-samples``-sample crops; each rate is from the median step time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from deepfake_audio.models.rawnet2 import RawNet2

CONFIGS = {
    "paper": {},
    "small": dict(sinc_kernel_size=251, block_channels=(20, 20, 64, 64), gru_hidden=128, fc_features=128),
    # Six blocks pool 64,600 samples down to 29 GRU steps, as the paper's do; four leave 264.
    "small_6blocks": dict(
        sinc_kernel_size=251, block_channels=(20, 20, 64, 64, 64, 64), gru_hidden=128, fc_features=128
    ),
}


def median_seconds(step, n: int) -> float:
    step()  # warm-up: allocator, oneDNN primitives
    times = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_config(net: RawNet2, x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
    """Median seconds of one training step and of one inference batch."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def sync() -> None:
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        net.train()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()

    def infer_step() -> None:
        net.eval()
        with torch.no_grad():
            net(x)
        sync()

    return median_seconds(train_step, steps), median_seconds(infer_step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n-samples", type=int, default=64600)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.n_samples, device=device) * 0.1
    y = torch.randint(0, 2, (args.batch,), device=device)
    for name, config in CONFIGS.items():
        net = RawNet2(**config).to(device)
        train_s, infer_s = time_config(net, x, y, args.steps)
        n_params = sum(p.numel() for p in net.parameters())
        print(
            f"{name}: {n_params / 1e6:.2f}M params, train {args.batch / train_s:.1f} samples/s "
            f"({train_s:.2f} s/step), inference {args.batch / infer_s:.1f} clips/s ({infer_s:.2f} s/batch) "
            f"[{device}, {args.threads} threads, batch {args.batch} x {args.n_samples}]"
        )


if __name__ == "__main__":
    main()
