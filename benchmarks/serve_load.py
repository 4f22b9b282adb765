"""Load test of ``deepfake-audio serve`` on the loopback: latency, throughput, errors and memory.

Starts the server as a child process on a free port, then runs ``--clients`` concurrent clients
for ``--seconds`` (each client sends one request at a time, so at most ``--clients`` are in
flight). A fraction ``--bad`` of the requests are bad inputs, drawn in turn from
:data:`BAD_KINDS` (empty, not audio, a text file, silence, too short, NaN PCM, no file field, a
bad option); the rest are real clips cut to exactly ``--clip-s`` seconds (repeated when shorter)
and sent as 16-bit WAV uploads.

Printed: requests/s, p50/p90/p99/max latency of the valid clips, the status counts, errors
(a valid clip not answered 200, or a bad input not answered 4xx with a JSON error), the server's
CPU time per request, and its RSS after start-up, after a warm-up, every 10 s under load and at
the end. The load generator runs on the same machine and takes CPU from the server. Figures are
printed, not asserted::

    python -m benchmarks.serve_load --model data/models/cnn --clients 8 --seconds 60
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from deepfake_audio.audio import read_audio, resample
from deepfake_audio.machine import cpu_info
from deepfake_audio.predict import expand_paths

SR = 16000


def _wav(y: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _bad_requests() -> dict[str, dict]:
    """Request kwargs (httpx) of each bad-input kind."""
    t = np.arange(SR) / SR
    return {
        "empty": {"files": {"file": ("a.wav", b"")}},
        "not_audio": {"files": {"file": ("a.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 50)}},
        "text_file": {"files": {"file": ("notes.txt", b"hello")}},
        "silence": {"files": {"file": ("a.wav", _wav(np.zeros(SR, np.float32)))}},
        "too_short": {"files": {"file": ("a.wav", _wav((0.3 * np.sin(2 * np.pi * 200 * t[:500])).astype(np.float32)))}},
        "nan_pcm": {
            "content": np.full(SR, np.nan, "<f4").tobytes(),
            "headers": {"content-type": "audio/pcm"},
            "params": {"sample_rate": "16000", "format": "f32le"},
        },
        "no_file_field": {"files": {"other": ("a.wav", b"x")}},
        "bad_option": {"files": {"file": ("a.wav", _wav(np.zeros(10, np.float32)))}, "params": {"scope": "all"}},
    }


BAD_KINDS = tuple(_bad_requests())


def load_clips(root: Path, *, n: int, clip_s: float, seed: int = 0) -> list[bytes]:
    """``n`` real clips under ``root`` (a seeded draw), each cut or repeated to ``clip_s`` s at 16 kHz."""
    paths = expand_paths([root])
    if not paths:
        raise SystemExit(f"no audio files under {root}")
    rng = np.random.default_rng(seed)
    want = int(round(clip_s * SR))
    out = []
    for i in rng.permutation(len(paths))[:n]:
        y, sr = read_audio(paths[i])
        y = resample(y, orig_sr=sr, target_sr=SR)
        out.append(_wav(np.resize(y, want)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children that have ended (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live child processes (uvicorn's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(k) for k in children.read_text().split()] if children.exists() else []
    return _cpu_s(pid) + sum(_tree_cpu_s(k) for k in kids)


def _tree_rss_mb(pid: int) -> float:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(k) for k in children.read_text().split()] if children.exists() else []
    return _rss_mb(pid) + sum(_tree_rss_mb(k) for k in kids)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the bundle to serve")
    parser.add_argument("--runtime", default="auto", help="as `deepfake-audio serve --runtime`")
    parser.add_argument("--clips", type=Path, default=Path("data/raw"), help="a folder of real clips")
    parser.add_argument("--clip-s", type=float, default=4.0, help="seconds of each valid clip (default 4)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients send (default 60)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests")
    parser.add_argument("--bad", type=float, default=0.1, help="fraction of bad inputs (default 0.1)")
    parser.add_argument("--serve-args", default="", help="more arguments for `deepfake-audio serve`")
    args = parser.parse_args(argv)

    clips = load_clips(args.clips, n=64, clip_s=args.clip_s)
    bad = _bad_requests()
    port = _free_port()
    cmd = [sys.executable, "-m", "deepfake_audio.cli", "serve", "--model", str(args.model), "--runtime", args.runtime]
    cmd += ["--port", str(port), *args.serve_args.split()]
    server = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        rss_start = _tree_rss_mb(server.pid)
        with httpx.Client(timeout=30) as c:  # warm-up: first calls load lazily (numba, the VAD)
            for body in clips[:4]:
                c.post(f"{base}/v1/score", files={"file": ("clip.wav", body)}).raise_for_status()
        rss_warm = _tree_rss_mb(server.pid)

        lock = threading.Lock()
        counter = itertools.count()
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        errors: list[str] = []
        stop_at = time.monotonic() + args.seconds

        def client(worker: int) -> None:
            rng = np.random.default_rng(worker)
            with httpx.Client(timeout=30) as c:
                while time.monotonic() < stop_at:
                    i = next(counter)
                    if i >= args.max_requests:
                        return
                    is_bad = rng.random() < args.bad
                    kind = BAD_KINDS[i % len(BAD_KINDS)] if is_bad else "clip"
                    kwargs = bad[kind] if is_bad else {"files": {"file": ("clip.wav", clips[i % len(clips)])}}
                    t0 = time.perf_counter()
                    try:
                        r = c.post(f"{base}/v1/score", **kwargs)
                        status, body = r.status_code, r.json()
                    except (httpx.HTTPError, ValueError) as exc:
                        status, body = 0, {"error": str(exc)}
                    elapsed = time.perf_counter() - t0
                    with lock:
                        statuses[f"{kind}:{status}"] = statuses.get(f"{kind}:{status}", 0) + 1
                        if not is_bad:
                            latencies.append(elapsed)
                            if status != 200 or body.get("score") is None and body.get("decision") != "no_speech":
                                errors.append(f"{kind}: {status} {str(body)[:200]}")
                        elif not (400 <= status < 500 and "error" in body):
                            errors.append(f"{kind}: {status} {str(body)[:200]}")

        rss_samples: list[float] = []
        done = threading.Event()

        def sample_rss() -> None:  # the server's memory every 10 s under load: is it flat?
            while not done.wait(10):
                rss_samples.append(_tree_rss_mb(server.pid))

        cpu_start = _tree_cpu_s(server.pid)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(w,)) for w in range(args.clients)]
        sampler = threading.Thread(target=sample_rss)
        sampler.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        sampler.join()
        wall = time.perf_counter() - t0
        rss_end = _tree_rss_mb(server.pid)
        cpu_used = _tree_cpu_s(server.pid) - cpu_start
        health = httpx.get(f"{base}/healthz", timeout=5).json()
    finally:
        server.terminate()
        server.wait(timeout=30)

    n = sum(statuses.values())
    lat = np.array(latencies) * 1000
    cpu = cpu_info()[0]
    print(f"# serve load test: {args.model} ({args.runtime} runtime), {args.clients} clients for {wall:.1f} s")
    print(f"# machine: {cpu['model_name']}, {cpu['count']} cores; valid clips {args.clip_s:g} s from {args.clips}")
    print(f"requests: {n} ({n / wall:.1f}/s), valid {len(lat)} ({len(lat) / wall:.1f}/s), bad {n - len(lat)}")
    if len(lat):
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        print(f"latency of valid clips (ms): p50 {p50:.0f}, p90 {p90:.0f}, p99 {p99:.0f}, max {lat.max():.0f}")
    print(f"model batches: {health['batches']} for {health['requests']} requests")
    print(
        f"server CPU: {cpu_used:.1f} s ({cpu_used / wall:.2f} cores busy, {1000 * cpu_used / max(n, 1):.1f} ms per request)"
    )
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors[:10]))
    print("statuses: " + ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items())))
    print(f"server RSS (MB): after start {rss_start:.0f}, after warm-up {rss_warm:.0f}, at the end {rss_end:.0f}")
    print("server RSS every 10 s under load (MB): " + ", ".join(f"{r:.0f}" for r in rss_samples))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
