"""How a long file's window scores become one score: EER of each aggregate on labelled clips.

For every bundle, every clip of a labelled CSV (``path,label``; paths relative to the CSV) is
scored through :class:`deepfake_audio.predict.Predictor` four ways:

- ``first``: its first clip length only (``scope="first"``, how the pipeline crops a clip);
- ``mean``, ``median``, ``min``: whole, in windows of the bundle's clip length every ``--hop-s``
  seconds (default: the clip length), their scores aggregated so.

It prints the EER of each, over the clips longer than the model's window (where the choice
matters) and over all clips, with the machine. Nothing is tuned: the numbers say which aggregate
``predict`` should default to, and docs/serving.md quotes them with this command::

    python -m benchmarks.long_files --labels ../shared/bench/dev/labels.csv --models-dir data/models
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_audio.inputs import LABEL_IDS
from deepfake_audio.machine import cpu_info
from deepfake_audio.metrics import compute_eer
from deepfake_audio.predict import AGGREGATES, Predictor, ScoringOptions, list_bundles

WAYS = ("first", *AGGREGATES)


def score_ways(predictor: Predictor, paths: list[Path], *, hop_s: float | None, vad: bool) -> pd.DataFrame:
    """One row per clip: its duration and its score each way (``NaN`` when a way found no speech)."""
    whole = ScoringOptions(hop_s=hop_s, vad=vad)
    first = ScoringOptions(scope="first", vad=vad)
    rows = []
    for path in paths:
        y = predictor.decode(path)
        row = {"duration_s": len(y) / predictor.sample_rate}
        p = predictor.prepare(y, first)
        result = predictor.finish(p, predictor.run(p.inputs))
        row["first"] = np.nan if result["score"] is None else result["score"]
        p = predictor.prepare(y, whole)
        scores = predictor.run(p.inputs)
        row["n_windows"] = len(p.spans)
        for name, fn in AGGREGATES.items():
            row[name] = float(fn(scores)) if len(scores) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def eer_of(y: np.ndarray, scores: np.ndarray) -> float:
    keep = np.isfinite(scores)
    if len(set(y[keep].tolist())) < 2:
        return float("nan")
    return 100 * compute_eer(y[keep], scores[keep])[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, required=True, help="a CSV with path,label (paths relative to it)")
    parser.add_argument("--models-dir", type=Path, default=Path("data/models"))
    parser.add_argument("--models", nargs="*", help="bundle names (default: every bundle under --models-dir)")
    parser.add_argument("--hop-s", type=float, default=None, help="seconds between windows (default: the window)")
    parser.add_argument("--vad", action="store_true", help="with the speech check (default: without)")
    args = parser.parse_args(argv)

    table = pd.read_csv(args.labels)
    paths = [args.labels.parent / p for p in table["path"]]
    y = table["label"].map(LABEL_IDS).to_numpy()
    names = args.models or [b["name"] for b in list_bundles(args.models_dir)]
    cpu = cpu_info()[0]
    print(f"# {cpu['model_name']}, {cpu['count']} cores; torch runtime")
    print(
        f"# {args.labels}: {len(paths)} clips; hop {args.hop_s or 'window'} s; speech check {'on' if args.vad else 'off'}"
    )
    print(
        "| model | window s | clips > window | "
        + " | ".join(f"EER {w} (long) %" for w in WAYS)
        + " | "
        + " | ".join(f"EER {w} (all) %" for w in WAYS)
        + " | s |"
    )
    print("|---" * (3 + 2 * len(WAYS) + 1) + "|")
    for name in names:
        predictor = Predictor.load(args.models_dir / name, runtime="torch")
        t0 = time.perf_counter()
        ways = score_ways(predictor, paths, hop_s=args.hop_s, vad=args.vad)
        elapsed = time.perf_counter() - t0
        long = (ways["n_windows"] > 1).to_numpy()
        cells = [eer_of(y[long], ways[w].to_numpy()[long]) for w in WAYS]
        cells += [eer_of(y, ways[w].to_numpy()) for w in WAYS]
        print(
            f"| {name} | {predictor.window_s:g} | {int(long.sum())} | "
            + " | ".join(f"{c:.2f}" for c in cells)
            + f" | {elapsed:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
