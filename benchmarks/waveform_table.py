#!/usr/bin/env python3
"""Train waveform-model variants on the pipeline's data and score each on the external bench.

Each variant is params.yaml with overrides (mappings merge, anything else replaces). For each one
the real stages run into ``--out/<variant>/``: ``stages.train`` (its bundle in ``models/<variant>``),
``stages.evaluate`` (``metrics.json``: the demo test EER), and at the end ``tools.bench`` scores
every bundle in ``--out/models`` (plus any bundle given with ``--extra``, e.g. the published
AASIST made by ``deepfake-audio import aasist``) on ``--labels``.

A re-run keeps each bundle whose training key is unchanged (the train stage's own rule), so
adding a variant or re-scoring costs only the new training. It reads the data the pipeline already built (``dvc repro waveforms standardize``) and never
writes into ``data/``, ``metrics/`` or params.yaml. The bench only measures: no variant, param or
threshold is chosen on it here.

Usage (from the repository root)::

    python -m benchmarks.waveform_table [--variants aasist_l rawnet2 ...] [--epochs 6] [--n-samples 16000]
        [--extra /path/to/imported_bundle ...] [--out /tmp/waveform_table]

Prints a markdown table: variant, demo test EER, bench pooled EER and the per-corpus EERs, the
training wall time and samples/s, with the machine stamp.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tools.ci_profile import merge
from tools.stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
AUGMENT_ON = {"train": {"augment": {"prob": 0.8}}}
VARIANTS = {
    # name -> (model kind, overrides); the crop and epochs come from the command line
    "aasist_l": ("aasist", {}),
    "aasist_l_aug": ("aasist", AUGMENT_ON),
    "rawnet2": ("rawnet2", {}),
    "rawnet2_aug": ("rawnet2", AUGMENT_ON),
    "lcnn_wave": ("lcnn_wave", {}),
    "lcnn_wave_aug": ("lcnn_wave", AUGMENT_ON),
}
PUBLISHED_AASIST = {  # the full AASIST's shapes, so train.init_from can load the published weights
    "aasist": {
        "channels": [[1, 32], [32, 32], [32, 64], [64, 64]],
        "gat_dims": [64, 32],
        "pool_ratios": [0.5, 0.7, 0.5, 0.5],
    }
}


def variant_params(base: dict, kind: str, overrides: dict, *, epochs: int, n_samples: int, extra: dict) -> dict:
    section = "model" if kind == "lcnn_wave" else kind
    params = copy.deepcopy(base)
    params["train"]["models"] = {kind: section}
    params["train"]["epochs"] = epochs
    if kind in ("aasist", "rawnet2"):
        params = merge(params, {kind: {"n_samples": n_samples}})
    return merge(merge(params, overrides), extra)


def run(cmd: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        res = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=os.environ.copy())
    if res.returncode != 0:
        raise SystemExit(f"waveform_table: `{' '.join(cmd)}` failed ({res.returncode}); see {log}")
    return time.perf_counter() - t0


def evaluate(name: str, bundle: Path, params_file: Path, work: Path) -> float:
    """The demo test EER of ``bundle`` (the score and evaluate stages, as `dvc repro` runs them)."""
    score = [sys.executable, "-m", "stages.score", "--bundle", str(bundle), "--params", str(params_file)]
    score += ["--manifest", "data/split/manifest.parquet", "--split", "test", "--scaled", "data/scaled"]
    score += ["--waveforms", "data/waveforms", "--scores", str(work / "scores" / "test.parquet")]
    run(score, work / "log.txt")
    cmd = [sys.executable, "-m", "stages.evaluate", "--bundle", str(bundle), "--params", str(params_file)]
    cmd += ["--scores", str(work / "scores"), "--raw", "data/raw", "--metrics", str(work / "metrics.json")]
    run(cmd + ["--plots", str(work / "plots")], work / "log.txt")
    return json.loads((work / "metrics.json").read_text(encoding="utf-8"))["test"]["eer"]


def _train_time(timing: Path, log: Path) -> dict:
    """The training wall time of an earlier run: its train_time.json, else the train stage's summary line."""
    if timing.exists():
        return json.loads(timing.read_text(encoding="utf-8"))
    found = re.findall(r"train done in ([0-9.]+) s", log.read_text(encoding="utf-8")) if log.exists() else []
    return {"train_wall_s": float(found[-1])} if found else {}


def finalize_checkpoint(params_file: Path, bundle: Path) -> str:
    """Write the bundle of a training run stopped after some epochs from its last checkpoint.

    The weights are the checkpoint's best epoch by dev EER, the config is what the train stage
    writes (marked ``stopped_from_checkpoint``), and the calibration is fitted on dev, as the
    train stage does. For runs cut short by a time budget; the table says how many epochs ran.
    """
    import pandas as pd
    import torch

    from deepfake_audio.bundle import bundle_config, calibrate, save_config
    from deepfake_audio.inputs import InputSource, load_inputs
    from deepfake_audio.io import read_json
    from deepfake_audio.models import check_model_params
    from deepfake_audio.params import load_params
    from deepfake_audio.training import CHECKPOINT, WEIGHTS

    params = load_params(params_file)
    name, kind = next(iter(check_model_params(params).items()))
    section = kind.section(params)
    state = torch.load(bundle / CHECKPOINT, map_location="cpu", weights_only=True)
    with (bundle / WEIGHTS).open("wb") as fh:
        torch.save(state["best_state"], fh)
    n_samples = kind.crop_samples(section, params.audio)
    summary = {
        "best_epoch": state["best"]["epoch"],
        "dev_eer": state["best"]["dev_eer"],
        "threshold": state["best"]["threshold"],
        "epochs_run": state["epoch"] + 1,
        "device": "cpu",
        "n_features": 1,
        "n_frames": n_samples,
        "stopped_from_checkpoint": True,
    }
    scaler = read_json(ROOT / "data" / "scaled" / "scaler.json")
    config = bundle_config(
        kind,
        summary,
        section=section,
        train_params=params.train,
        audio=params.audio,
        features=params.features,
        scaler=scaler,
        n_samples=n_samples,
    )
    save_config(bundle, config)
    manifest = pd.read_parquet(ROOT / "data" / "features" / "manifest.parquet")
    source = InputSource(scaled=ROOT / "data" / "scaled", waveforms=ROOT / "data" / "waveforms", n_samples=n_samples)
    dev = load_inputs(manifest, input=kind.input, source=source, splits=["dev"])["dev"]
    calibrate(bundle, dev.y, dev.x)
    return f"{name}: {state['epoch'] + 1} epochs"


def train_and_evaluate(name: str, params: dict, out: Path, *, evaluate_only: bool = False) -> dict:
    kind = next(iter(params["train"]["models"]))
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    params_file = work / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    bundle = out / "models" / name
    log = work / "log.txt"
    py = sys.executable
    common = ["--params", str(params_file), "--manifest"]
    timing = work / "train_time.json"
    if evaluate_only and not (bundle / "config.json").exists() and (bundle / "checkpoint.pt").exists():
        print(f"{name}: bundle written from its checkpoint ({finalize_checkpoint(params_file, bundle)})", flush=True)
    if evaluate_only and (bundle / "config.json").exists():
        row = {"demo_test_eer": evaluate(name, bundle, params_file, work)}
        return {**row, **_train_time(timing, log)}
    train_s = run(
        [
            py,
            "-m",
            "stages.train",
            "--model",
            kind,
            *common,
            "data/features/manifest.parquet",
            "--scaled",
            "data/scaled",
        ]
        + ["--waveforms", "data/waveforms", "--out", str(bundle), "--live", str(work / "dvclive")],
        log,
    )
    timing.write_text(json.dumps({"train_wall_s": train_s}), encoding="utf-8")
    return {"demo_test_eer": evaluate(name, bundle, params_file, work), "train_wall_s": train_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS) + ["aasist_finetuned"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-samples", type=int, default=16000, help="training crop of aasist/rawnet2 (samples)")
    parser.add_argument("--finetune-from", type=Path, help="an imported AASIST bundle (for aasist_finetuned)")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more bundles to score on the bench")
    parser.add_argument("--labels", type=Path, default=Path("../shared/bench/dev/labels.csv"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/waveform_table"))
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="a variant whose bundle exists is evaluated, not trained again; one whose run was stopped gets "
        "its bundle from the last checkpoint (best epoch by dev EER)",
    )
    parser.add_argument(
        "--merge-bench", type=Path, nargs="*", default=[], help="bench.json files of tools.bench to add rows from"
    )
    parser.add_argument("--no-copy", action="store_true", help="--extra bundles: evaluate in place, do not bench them")
    parser.add_argument(
        "--report", type=Path, help="also write the table as markdown here (e.g. reports/waveform_table.md)"
    )
    args = parser.parse_args(argv)

    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    rows: dict[str, dict] = {}
    for name in args.variants:
        if name == "aasist_finetuned":
            if args.finetune_from is None:
                raise SystemExit("aasist_finetuned needs --finetune-from (a bundle of `deepfake-audio import aasist`)")
            extra = merge(PUBLISHED_AASIST, {"train": {"init_from": str(args.finetune_from.resolve()), "lr": 1e-4}})
            params = variant_params(
                base, "aasist", {}, epochs=args.finetune_epochs, n_samples=args.n_samples, extra=extra
            )
        else:
            kind, overrides = VARIANTS[name]
            params = variant_params(base, kind, overrides, epochs=args.epochs, n_samples=args.n_samples, extra={})
        rows[name] = train_and_evaluate(name, params, args.out, evaluate_only=args.evaluate_only)
        print(f"{name}: demo test EER {100 * rows[name]['demo_test_eer']:.2f}%", flush=True)
    models = args.out / "models"
    for extra in args.extra:
        target = extra if args.no_copy else models / extra.name
        if not target.exists():
            shutil.copytree(extra, target)
        work = args.out / extra.name
        work.mkdir(parents=True, exist_ok=True)
        if args.evaluate_only and (work / "metrics.json").exists():
            eer = json.loads((work / "metrics.json").read_text(encoding="utf-8"))["test"]["eer"]
        else:
            eer = evaluate(extra.name, target, ROOT / "params.yaml", work)
        rows[extra.name] = {"demo_test_eer": eer}
        print(f"{extra.name}: demo test EER {100 * rows[extra.name]['demo_test_eer']:.2f}%", flush=True)
    bench = {}
    if not args.skip_bench:
        out_json = args.out / "bench.json"
        run(
            [sys.executable, "-m", "tools.bench", "--models", str(models), "--labels", str(args.labels)]
            + ["--metrics", str(args.out / "none"), "--out", str(out_json)],
            args.out / "bench_log.txt",
        )
        bench = json.loads(out_json.read_text(encoding="utf-8"))["models"]
    for done in args.merge_bench:  # bundles already scored by `python -m tools.bench` (it takes a while for AASIST)
        bench.update(json.loads(done.read_text(encoding="utf-8"))["models"])
    corpora = sorted({c for b in bench.values() for c in b.get("per_corpus", {})})
    print(f"\n{stamp()}\n")
    print("| variant | demo test EER | bench EER | " + " | ".join(corpora) + " | train s |")
    print("|---" * (4 + len(corpora)) + "|")
    table = []
    for name in sorted(set(rows) | set(bench)):
        demo = rows.get(name, {}).get("demo_test_eer")
        b = bench.get(name, {})
        cells = [f"{100 * demo:.2f}%" if demo is not None else "-", f"{100 * b['eer']:.2f}%" if "eer" in b else "-"]
        cells += [f"{100 * b['per_corpus'][c]:.1f}%" if c in b.get("per_corpus", {}) else "-" for c in corpora]
        cells.append(f"{rows[name]['train_wall_s']:.0f}" if "train_wall_s" in rows.get(name, {}) else "-")
        table.append(f"| {name} | " + " | ".join(cells) + " |")
        print(table[-1])
    (args.out / "table.json").write_text(json.dumps({"rows": rows, "bench": bench}, indent=2), encoding="utf-8")
    if args.report is not None:
        lines = [
            "<!-- generated by `python -m benchmarks.waveform_table`; do not edit -->",
            f"Made by `python -m benchmarks.waveform_table {' '.join(argv if argv is not None else sys.argv[1:])}`",
            f"on {stamp()}.",
            "",
            "| variant | demo test EER | bench EER | " + " | ".join(corpora) + " | train s |",
            "|---" * (4 + len(corpora)) + "|",
            *table,
        ]
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
