#!/usr/bin/env python3
"""Seconds per spoof of every demo-corpus engine, on the clips the default corpus gives it.

Takes a seeded sample of the default demo plan (the bona fide clips and the attacks assigned to
them) and makes each spoof one at a time in this process, the way a build worker does
(``demo._build_one``: read the clip, measure its channel, synthesise or vocode, apply the channel,
write FLAC). Prints, per attack, the spoofs made, the mean seconds per spoof (each engine's first
call, which loads its model, included) and the seconds of CPU per second of spoof audio.

Usage (from the repository root)::

    python -m benchmarks.engines [--clips 120] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from deepfake_audio.sources import demo
from deepfake_audio.sources import engines as eng
from tools.stamp import stamp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=120, help="bona fide clips sampled from the default plan")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    options = demo.DemoOptions()
    items = demo.select_bonafide(demo.inventory(), per_speaker=options.max_bonafide_per_speaker, seed=options.seed)
    plan = demo.assign_attacks(items, options.selected_attacks(), per_clip=options.spoofs_per_bonafide, seed=0)
    chosen = np.random.default_rng(args.seed).permutation(len(items))[: args.clips]
    seconds: dict[str, float] = defaultdict(float)
    audio_s: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    with tempfile.TemporaryDirectory(prefix="deepfake_audio-engines-") as tmp:
        for i in chosen:
            for attack in plan[i]:
                t0 = time.perf_counter()
                rows = demo._build_one(items[i], [attack], out_dir=Path(tmp), options=options)
                seconds[attack] += time.perf_counter() - t0
                count[attack] += 1
                audio_s[attack] += sum(r["duration_s"] for r in rows if r["label"] == "spoof")
    s = stamp(Path(__file__).resolve().parents[1])
    print(f"# demo engines: {args.clips} clips of the default plan ({s['commit']}, {s['date_utc']}, {s['cpu']})")
    print("| attack | engine | spoofs | s per spoof | s per s of audio |")
    print("|---|---|---:|---:|---:|")
    for attack in sorted(count):
        rtf = seconds[attack] / audio_s[attack] if audio_s[attack] else float("nan")
        print(
            f"| {attack} | {eng.get_engine(attack).name} | {count[attack]} | "
            f"{seconds[attack] / count[attack]:.3f} | {rtf:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
