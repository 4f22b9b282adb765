#!/usr/bin/env python3
"""What each demo-corpus addition does to the default models, in-domain and on the external bench.

Each variant is ``params.yaml`` with overrides (mappings merge, lists and scalars replace), run as
the real pipeline: the project is copied into ``--workdir/<variant>`` (a git + DVC repository of
its own, as ``tools.ci_profile`` does), ``dvc repro`` builds the corpus and trains and scores every
default model, then ``tools.bench`` scores every bundle on ``--labels`` (pooled and per corpus).
A variant whose folder holds a finished run is only re-read, so adding a variant costs only its own
run; ``unseen`` starts from a finished ``after`` (the same corpus), so only its split onwards runs. The workspace's own ``data/``, ``metrics/`` and params are never touched.

Variants (``--variants``, default all, in this order):

* ``before``: the corpus as it was before Kokoro, HiFi-GAN, LPCNet and the Asterisk prompts
  (``exclude_attacks: [A10, A11, A12]``, ``exclude_bonafide: [asterisk-core-sounds]``);
* ``asterisk``: ``before`` plus the Asterisk read prompts as bona fide speech;
* ``kokoro``: that plus Kokoro-82M (A10);
* ``after``: the default corpus: that plus HiFi-GAN (A11) and LPCNet (A12);
* ``unseen``: the default corpus with ``split.strategy: unseen_attacks`` and the three new attacks
  held out of training: their test EER says whether a detector of the old attacks catches them.

The bench only measures here: nothing is chosen on it.

Usage (from the repository root)::

    python -m benchmarks.demo_attacks [--variants before after unseen] [--workdir /tmp/demo_attacks]
        [--labels ../shared/bench/dev/labels.csv] [--out reports/demo_attacks.md]

Writes ``--out`` (a markdown table with the machine stamp) and ``<workdir>/<variant>/result.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from tools.ci_profile import _run, build_repo, merge, scratch_env
from tools.stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
NEW_ATTACKS = ["A10", "A11", "A12"]
BEFORE = {"exclude_attacks": NEW_ATTACKS, "exclude_bonafide": ["asterisk-core-sounds"]}
VARIANTS: dict[str, dict] = {
    "before": {"data": {"sources": [{"kind": "demo", **BEFORE}]}},
    "asterisk": {"data": {"sources": [{"kind": "demo", "exclude_attacks": NEW_ATTACKS}]}},
    "kokoro": {"data": {"sources": [{"kind": "demo", "exclude_attacks": ["A11", "A12"]}]}},
    "after": {},
    "unseen": {"split": {"strategy": "unseen_attacks", "unseen_attacks": NEW_ATTACKS}},
}
SAME_CORPUS = {"unseen": "after"}  # variant -> a variant with the same corpus, whose build it reuses
DESCRIPTION = {
    "before": "A01-A09, no Asterisk prompts (the corpus before this change)",
    "asterisk": "+ Asterisk read prompts (bona fide)",
    "kokoro": "+ Kokoro-82M (A10)",
    "after": "+ HiFi-GAN (A11) + LPCNet (A12): the default corpus",
    "unseen": "default corpus; A10-A12 only in test (unseen_attacks)",
}

log = logging.getLogger("demo_attacks")


def run_variant(name: str, work: Path, labels: Path) -> dict:
    """Run (or re-read) one variant; returns its result (also written to ``work/result.json``)."""
    done = work / "result.json"
    if done.exists():
        return json.loads(done.read_text(encoding="utf-8"))
    env = scratch_env("bench")
    if (work / "repro.json").exists():  # built and trained: only the scoring is left
        run = json.loads((work / "repro.json").read_text(encoding="utf-8"))
        return _score(name, work, labels, env, run["repro_s"], run["stage_s"])
    base = work.parent / SAME_CORPUS.get(name, "")
    if name in SAME_CORPUS and (base / "result.json").exists():
        # The same corpus as a finished variant: start from its repository (and DVC cache), so
        # `dvc repro` re-runs only what the overrides change, from the split on.
        shutil.copytree(base, work, symlinks=True, ignore=shutil.ignore_patterns("result.json", "bench.json"))
        params = merge(yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8")), VARIANTS[name])
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        _run(["git", "commit", "-qam", f"variant {name}"], work, env)
    else:
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
            yaml.safe_dump(VARIANTS[name], fh)
        build_repo(work, Path(fh.name), env)
        Path(fh.name).unlink()
    t0 = time.perf_counter()
    with (work / "repro.log").open("w", encoding="utf-8") as out:
        res = subprocess.run(["dvc", "repro"], cwd=work, env=env, stdout=out, stderr=out)
    if res.returncode != 0:
        raise SystemExit(f"demo_attacks: dvc repro failed in {work}; see {work / 'repro.log'}")
    repro_s = time.perf_counter() - t0
    stages = stage_times(work / "repro.log")
    (work / "repro.json").write_text(json.dumps({"repro_s": repro_s, "stage_s": stages}), encoding="utf-8")
    return _score(name, work, labels, env, repro_s, stages)


def stage_times(log_file: Path) -> dict[str, float]:
    """Seconds per stage from the stages' summary lines ("<stage> done in <s> s"), summed over the
    stages of one name (every train@<model> counts to "train")."""
    times: dict[str, float] = {}
    for line in log_file.read_text(encoding="utf-8").splitlines():
        head, sep, tail = line.partition(" done in ")
        seconds = tail.split(" s")[0]
        if sep and head.split() and seconds.replace(".", "", 1).isdigit():
            name = head.split()[-1]
            times[name] = times.get(name, 0.0) + float(seconds)
    return times


def _score(name: str, work: Path, labels: Path, env: dict[str, str], repro_s: float, stages: dict) -> dict:
    """Score every bundle of a finished run on the bench and gather the metrics into result.json."""
    stages = stage_times(work / "repro.log")
    _run(
        [
            sys.executable,
            "-m",
            "tools.bench",
            "--labels",
            str(labels),
            "--models",
            "data/models",
            "--metrics",
            "metrics",
            "--out",
            "bench.json",
        ],
        work,
        env,
    )
    bench = json.loads((work / "bench.json").read_text(encoding="utf-8"))["models"]
    manifest = pd.read_parquet(work / "data" / "split" / "manifest.parquet")
    models = {}
    for path in sorted((work / "metrics").glob("*.json")):
        metrics = json.loads(path.read_text(encoding="utf-8"))
        if "test" not in metrics:  # split.json, summary.json: not a model's metrics
            continue
        test = metrics["test"]
        b = bench.get(path.stem, {})
        models[path.stem] = {
            "test_eer": test["eer"],
            "test_per_attack_eer": test.get("per_attack_eer", {}),
            "bench_eer": b.get("eer"),
            "bench_per_corpus": b.get("per_corpus", {}),
        }
    result = {
        "variant": name,
        "overrides": VARIANTS[name],
        "repro_s": repro_s,
        "stage_s": stages,
        "clips": {
            split: {label: int(n) for label, n in group["label"].value_counts().items()}
            for split, group in manifest.groupby("split")
        },
        "models": models,
    }
    (work / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def table(results: list[dict]) -> str:
    corpora = sorted({c for r in results for m in r["models"].values() for c in m["bench_per_corpus"]})
    head = ["variant", "model", "demo test EER", "bench EER", *corpora]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in results:
        for model, m in sorted(r["models"].items(), key=lambda kv: kv[0]):
            cells = [r["variant"], model.removesuffix(".json"), _pct(m["test_eer"]), _pct(m["bench_eer"])]
            cells += [_pct(m["bench_per_corpus"].get(c)) for c in corpora]
            lines.append("| " + " | ".join(cells) + " |")
    out = ["EER in %. Bench columns: `../shared/bench/dev`, pooled and per corpus.", "", *lines, ""]
    unseen = [r for r in results if r["variant"] == "unseen"]
    if unseen:
        out += ["Held-out attacks (`unseen`): test EER of each new attack against the test bona fide.", ""]
        out += ["| model | " + " | ".join(NEW_ATTACKS) + " | seen attacks (mean) |", "|---|" + "---:|" * 4]
        for model, m in sorted(unseen[0]["models"].items()):
            per = m["test_per_attack_eer"]
            seen = [v for k, v in per.items() if k not in NEW_ATTACKS]
            mean_seen = sum(seen) / len(seen) if seen else None
            out.append(f"| {model} | " + " | ".join(_pct(per.get(a)) for a in NEW_ATTACKS) + f" | {_pct(mean_seen)} |")
        out.append("")
    out += [
        "`dvc repro` s: the variant's own wall time (for a variant that reuses another's corpus, from the split",
        "on); a run that shared the CPU with other jobs, or was paused, reads slower than it is.",
        "",
        "| variant | corpus | clips (train / dev / test) | `dvc repro` s | demo build s |",
        "|---|---|---|---:|---:|",
    ]
    for r in results:
        counts = " / ".join(str(sum(r["clips"].get(s, {}).values())) for s in ("train", "dev", "test"))
        build = r["stage_s"].get("download")
        out.append(
            f"| {r['variant']} | {DESCRIPTION[r['variant']]} | {counts} | {r['repro_s']:.0f} | "
            f"{'-' if build is None else f'{build:.0f}'} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "demo_attacks")
    parser.add_argument("--labels", type=Path, default=ROOT.parent / "shared" / "bench" / "dev" / "labels.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "demo_attacks.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.labels.is_file():
        parser.error(f"--labels {args.labels} does not exist")
    results = []
    for name in args.variants:
        log.info("variant %s: %s", name, DESCRIPTION[name])
        results.append(run_variant(name, args.workdir / name, args.labels.resolve()))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        s = stamp(ROOT, ignore=(str(args.out.relative_to(ROOT)) if args.out.is_relative_to(ROOT) else "",))
        args.out.write_text(
            "# Demo-corpus additions: demo and bench EER of the default models\n\n"
            f"Generated by `python -m benchmarks.demo_attacks` ({s['commit']}, {s['date_utc']}, {s['cpu']}, "
            f"{s['cores']} cores). Never edit by hand.\n\n" + table(results),
            encoding="utf-8",
        )
    print(args.out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
