"""The ``deepfake-audio`` command.

``predict`` scores audio files with a trained bundle, through the exact feature and scaler
pipeline stored in the bundle. ``attacks`` lists the demo corpus's attacks and whether their
engines are installed. ``gate`` fails when a metric got worse than at a git revision
(:mod:`deepfake_audio.gate`).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from deepfake_audio.logs import setup_logging

log = logging.getLogger("deepfake_audio")



def best_bundle(models_dir: Path) -> Path:
    """The bundle under ``models_dir`` with the lowest dev EER."""
    candidates = []
    for config in sorted(models_dir.glob("*/config.json")):
        data = json.loads(config.read_text(encoding="utf-8"))
        candidates.append((float(data["dev_eer"]), config.parent))
    if not candidates:
        raise FileNotFoundError(f"no trained model under {models_dir}: run `dvc repro` first, or pass --model DIR")
    return min(candidates)[1]


def expand_paths(paths: list[str]) -> list[Path]:
    from deepfake_audio.sources.local import AUDIO_SUFFIXES

    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES))
        else:
            out.append(p)
    return out


def predict(paths: list[Path], bundle_dir: Path) -> list[dict]:
    """Score files; a file that cannot be decoded gets ``error`` set and no score."""
    from deepfake_audio.errors import AudioError
    from deepfake_audio.features import FeatureExtractor
    from deepfake_audio.params import AudioParams, FeatureParams, from_dict
    from deepfake_audio.scaling import Scaler
    from deepfake_audio.training import load_bundle

    bundle = load_bundle(bundle_dir)
    cfg = bundle.config
    extractor = FeatureExtractor(from_dict(AudioParams, cfg["audio"], prefix="audio"),
                                 from_dict(FeatureParams, cfg["features"], prefix="features"))
    scaler = Scaler.from_json(cfg["scaler"]["frames" if bundle.kind.input == "frames" else "utterances"])
    threshold = float(cfg["threshold"])
    groups = bundle.frame_groups
    rows = [i for i, g in enumerate(extractor.layout.frame_groups) if groups is None or g in groups]
    out = []
    for path in paths:
        row = {"path": str(path), "score": None, "decision": None, "error": None}
        try:
            frames, utt = extractor.extract(extractor.load(path))
        except AudioError as exc:
            row["error"] = f"{exc.reason}: {exc}"
            out.append(row)
            continue
        x = (scaler.transform_frames(frames[None])[:, rows] if bundle.kind.input == "frames"
             else scaler.transform_table(utt[None]))
        score = float(bundle.score(x)[0])
        row.update(score=score, decision="bonafide" if score >= threshold else "spoof")
        out.append(row)
    return out


def _cmd_predict(args: argparse.Namespace) -> int:
    paths = expand_paths(args.paths)
    if not paths:
        print("predict: no audio files found", file=sys.stderr)
        return 2
    bundle_dir = args.model or best_bundle(args.models_dir)
    log.info("model: %s", bundle_dir)
    rows = predict(paths, bundle_dir)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=["path", "score", "decision", "error"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        width = max(len(r["path"]) for r in rows)
        for r in rows:
            result = f"{r['score']:+8.3f}  {r['decision']}" if r["error"] is None else f"error: {r['error']}"
            print(f"{r['path']:<{width}}  {result}")
    return 1 if any(r["error"] for r in rows) else 0


def _cmd_attacks(args: argparse.Namespace) -> int:
    from deepfake_audio.sources import engines

    for e in engines.all_engines():
        status = e.version() if e.available() else f"MISSING: install {e.packages}"
        print(f"{e.attack}  {e.name:<22} {e.kind:<8} {status}")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from deepfake_audio.gate import run_gate

    return run_gate(args.against, args.targets, args.params)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepfake-audio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="score audio files (higher = more bona fide)")
    p.add_argument("paths", nargs="+", help="files or folders (searched recursively)")
    p.add_argument("--model", type=Path, help="a bundle folder (default: the best under --models-dir by dev EER)")
    p.add_argument("--models-dir", type=Path, default=Path("data/models"))
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=_cmd_predict)
    a = sub.add_parser("attacks", help="list the demo corpus's attacks and their engines")
    a.set_defaults(func=_cmd_attacks)
    g = sub.add_parser("gate", help="exit 1 when a metric got worse than at a git revision (params.yaml: gate)")
    g.add_argument("--against", default="HEAD", metavar="REV", help="git revision to compare with (default: HEAD)")
    g.add_argument("--targets", nargs="+", metavar="PATH", help="metrics files (default: gate.targets, else all)")
    g.add_argument("--params", type=Path, default=Path("params.yaml"), help="holds the gate section")
    g.set_defaults(func=_cmd_gate)
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
