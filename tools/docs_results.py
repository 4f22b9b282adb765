#!/usr/bin/env python3
"""Generate docs/results.md, and the README's results table, from the pipeline's outputs.

No figure from a run is typed into the docs by hand: this script reads the outputs and writes
every number, stamped with the git commit, the UTC date and the machine (CPU model, cores) it
ran on. A number whose source file is absent is written as "not measured", never guessed.

Reads (each optional; paths relative to ``--root``):

* ``metrics/<model>.json``: every model's metric blocks (``test`` and each eval set);
* ``metrics/split.json``: clips, classes, speakers and attacks per split, and the leakage report;
* ``dvclive/<model>/metrics.json``: the training run's best dev EER and last step;
* ``ci/metrics/<model>.json``: the CI profile's committed metrics (what the gate compares to);
* ``dvc.lock``: the content hashes of the data-stage outputs;
* ``params.yaml``: feature counts the feature registry gives for these params;
* ``data/features/`` and ``data/scaled/``: the feature counts the features stage actually wrote;
* ``reports/benchmarks/*.json``: benchmark results written by ``python -m benchmarks.<name> --json``;
* ``reports/bench.json``: every bundle's external-bench EER, written by ``python -m tools.bench``. When
  present, its pooled EER is the README's bench column; else the column shows eval sets named
  ``*bench*`` in the metrics, or ``-``.

Writes ``docs/results.md`` (``--out``) and rewrites the block between ``<!-- results:begin -->`` and
``<!-- results:end -->`` in ``README.md`` (``--readme``; ``--no-readme`` to leave it alone).

Usage (from the repository root)::

    python -m tools.docs_results [--out docs/results.md] [--readme README.md] [--root .]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tools.stamp import describe, stamp

log = logging.getLogger("docs_results")

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
NOT_MEASURED = "not measured"
NON_MODEL_METRICS = ("split.json", "summary.json")
DATA_STAGES = ("download", "split", "features", "examples", "standardize")
BENCHMARKS = {  # name -> the command that writes its JSON
    "features": "python -m benchmarks.features --json reports/benchmarks/features.json",
    "features_memory": "python -m benchmarks.features_memory --json reports/benchmarks/features_memory.json",
    "predict": "python -m benchmarks.predict --json reports/benchmarks/predict.json",
    "train": "python -m benchmarks.train --json reports/benchmarks/train.json",
    "torch_core": "python -m benchmarks.torch_core --json reports/benchmarks/torch_core.json",
}


# --------------------------------------------------------------------------- reading


def read_json(path: Path) -> Any:
    """The parsed file, or ``None`` when it is absent or not valid JSON (logged)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.warning("%s: not valid JSON (%s); treated as absent", path, exc)
        return None


def model_metrics(metrics_dir: Path) -> dict[str, dict[str, dict]]:
    """``{model: {set name: metric block}}`` from ``metrics_dir/<model>.json``, models sorted by name."""
    out: dict[str, dict[str, dict]] = {}
    if not metrics_dir.is_dir():
        return out
    for path in sorted(metrics_dir.glob("*.json")):
        if path.name in NON_MODEL_METRICS:
            continue
        data = read_json(path)
        if isinstance(data, dict):
            blocks = {name: block for name, block in data.items() if isinstance(block, dict) and "eer" in block}
            if blocks:
                out[path.stem] = blocks
    return out


def committed_state(root: Path, paths: list[str]) -> str:
    """Whether ``paths`` hold the files committed at HEAD: ``committed``, ``modified`` or ``unknown``."""
    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths], cwd=root, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return "modified" if proc.stdout.strip() else "committed"


def last_change(root: Path, path: str) -> str | None:
    """``<short commit> (<date>)`` of the last commit that changed ``path``, or ``None``."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%h (%cs)", "--", path], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out or None


def lock_outputs(lock_path: Path) -> list[dict]:
    """Data-stage outputs of ``dvc.lock``: ``{stage, path, md5, size, nfiles}``, in pipeline order."""
    if not lock_path.is_file():
        return []
    stages = (yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}).get("stages", {})
    rows = []
    for stage in DATA_STAGES:
        for out in (stages.get(stage) or {}).get("outs", []):
            rows.append(
                {
                    "stage": stage,
                    "path": out.get("path"),
                    "md5": out.get("md5"),
                    "size": out.get("size"),
                    "nfiles": out.get("nfiles"),
                }
            )
    return rows


def expected_features(params_path: Path) -> dict | None:
    """Feature counts the feature registry gives for ``params_path`` (no audio is read).

    Returns ``None`` when there is no params file; ``{"error": ...}`` when the registry cannot be
    read (the library's layout changed, or the params are invalid).
    """
    if not params_path.is_file():
        return None
    try:
        from deepfake_audio.features import GROUPS, extracted_groups
        from deepfake_audio.params import load_params

        p = load_params(params_path)
        f = p.features
        rows = {g: len(GROUPS[g].rows(f)) for g in extracted_groups(f)}
        frame = {g: n for g, n in rows.items() if g in f.frame_groups}
        sequence = sum(n for g, n in frame.items() if g in p.model.sequence_groups)
        utterance = sum(n for g, n in rows.items() if g in f.utterance_groups) * len(f.stats)
        return {
            "groups": rows,
            "frame_groups": list(frame),
            "frame_rows": sum(frame.values()),
            "sequence_rows": sequence,
            "image_group": p.model.image_group,
            "image_rows": frame.get(p.model.image_group),
            "utterance_columns": utterance,
            "stats": list(f.stats),
            "n_frames": 1 + p.audio.n_samples // f.hop_length,
        }
    except (ImportError, AttributeError, KeyError, TypeError, ValueError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def measured_features(data_dir: Path) -> dict:
    """Counts read from the features and standardize outputs; absent files are left out."""
    out: dict[str, Any] = {}
    features, scaled = data_dir / "features", data_dir / "scaled"
    if not any(p.exists() for p in (features, scaled)):
        return out
    import pyarrow.parquet as pq

    frames = features / "frames.parquet"
    if frames.is_file():
        meta = pq.read_schema(frames).metadata or {}
        out["frame_rows"] = int(meta[b"n_features"]) if b"n_features" in meta else None
        out["n_frames"] = int(meta[b"n_frames"]) if b"n_frames" in meta else None
        out["clips"] = pq.ParquetFile(frames).metadata.num_rows
    utterances = features / "utterances.parquet"
    if utterances.is_file():
        out["utterance_columns"] = len(pq.read_schema(utterances).names) - 1  # less utt_id
    rejects = features / "rejects.csv"
    if rejects.is_file():
        lines = [line for line in rejects.read_text(encoding="utf-8").splitlines() if line.strip()]
        out["rejects"] = max(len(lines) - 1, 0)
    scaled_utt = scaled / "utterances.parquet"
    if scaled_utt.is_file():
        out["scaled_utterance_columns"] = len(pq.read_schema(scaled_utt).names) - 1
    return out


# --------------------------------------------------------------------------- formatting


def pct(value: Any, digits: int = 2) -> str:
    return f"{100 * value:.{digits}f}%" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def eer_with_ci(block: dict) -> str:
    ci = block.get("eer_ci")
    text = pct(block.get("eer"))
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """A markdown table; ``align`` has one letter per column, ``r`` for right-aligned."""
    align = align.ljust(len(header), "l")
    rule = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(rule) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def by_test_eer(models: dict[str, dict[str, dict]]) -> list[str]:
    def key(name: str) -> tuple[float, str]:
        eer = models[name].get("test", {}).get("eer")
        return (eer if isinstance(eer, (int, float)) else math.inf, name)

    return sorted(models, key=key)


def bench_report(path: Path) -> dict | None:
    """``reports/bench.json`` (``python -m tools.bench``), or ``None`` when absent or not its layout."""
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        return data
    if data is not None:
        log.warning('%s: no "models" object; treated as absent', path)
    return None


def bench_source(bench: dict) -> str:
    """Where the bench figures came from, with the bench run's own stamp."""
    s = bench.get("stamp")
    when = describe(s) if isinstance(s, dict) else "an unstamped run"
    return f"`python -m tools.bench` on `{bench.get('labels', '?')}` (`reports/bench.json`): {when}"


def model_order(models: dict[str, dict[str, dict]], bench: dict | None) -> list[str]:
    """Models by demo test EER, then models only the bench run scored, by name."""
    extra = sorted(n for n in (bench or {}).get("models", {}) if n not in models)
    return by_test_eer(models) + extra


def bench_sets(models: dict[str, dict[str, dict]]) -> list[str]:
    """Eval sets named like the external bench (``bench_dev``, ...), in name order."""
    return sorted({s for blocks in models.values() for s in blocks if s != "test" and "bench" in s.lower()})


def readme_table(models: dict[str, dict[str, dict]], s: dict, bench: dict | None = None) -> list[str]:
    """The README's one results table: model, demo test EER, and bench EER where scored.

    The bench column is ``bench``'s pooled EER (``reports/bench.json``) when given, else the eval
    sets named like the bench in the metrics.
    """
    if bench is not None:
        scored = bench["models"]
        rows = [
            [
                name,
                eer_with_ci(models[name]["test"]) if "test" in models.get(name, {}) else "-",
                pct(scored[name].get("eer")) if isinstance(scored.get(name), dict) else "-",
            ]
            for name in model_order(models, bench)
        ]
        return table(["model", "demo test EER [95% CI]", "bench EER"], rows or [[NOT_MEASURED, "-", "-"]], "lrr") + [
            "",
            f"Generated by `python -m tools.docs_results` from `metrics/*.json`: {describe(s)}. Bench EER "
            f"(pooled over every clip that decoded) from {bench_source(bench)}. Details, and what each figure "
            "means: [docs/results.md](docs/results.md).",
        ]
    benches = bench_sets(models)
    header = ["model", "demo test EER [95% CI]"] + ([f"{b} EER" for b in benches] or ["bench EER"])
    rows = []
    for name in by_test_eer(models):
        blocks = models[name]
        test = eer_with_ci(blocks["test"]) if "test" in blocks else "-"
        rows.append([name, test] + ([pct(blocks[b]["eer"]) if b in blocks else "-" for b in benches] or ["-"]))
    if not rows:
        rows = [[NOT_MEASURED, "-", "-"]]
    lines = table(header, rows, "lrr" + "r" * max(len(benches) - 1, 0))
    return lines + [
        "",
        f"Generated by `python -m tools.docs_results` from `metrics/*.json`: {describe(s)}. "
        "Details, and what each figure means: [docs/results.md](docs/results.md).",
    ]


def metric_rows(models: dict[str, dict[str, dict]]) -> list[list[str]]:
    rows = []
    for name in by_test_eer(models):
        blocks = models[name]
        for set_name in sorted(blocks, key=lambda n: (n != "test", n)):
            b = blocks[set_name]
            extra = [num(b.get(k)) for k in ("min_dcf", "act_dcf", "min_tdcf")]
            rows.append(
                [
                    name,
                    set_name,
                    eer_with_ci(b),
                    pct(b.get("accuracy")),
                    num(b.get("roc_auc")),
                    num(b.get("cllr")),
                    num(b.get("min_cllr")),
                    *extra,
                    str(b.get("n_bonafide", "-")),
                    str(b.get("n_spoof", "-")),
                ]
            )
    return rows


def external_bench_section(models: dict[str, dict[str, dict]], bench: dict | None) -> list[str]:
    """The bench run's pooled and per-corpus EER of every model; nothing without ``reports/bench.json``."""
    if bench is None:
        return []
    scored = {n: m for n, m in bench["models"].items() if isinstance(m, dict)}
    names = [n for n in model_order(models, bench) if n in scored]
    lines = [
        "## External bench",
        "",
        f"From {bench_source(bench)}. Every trained bundle scored every bench clip with its own features, "
        "scaler and crop/pad; the EER is over the clips that decoded (label 1 = bona fide). The bench lives "
        "outside the project, is never committed and is never tuned on. The demo test EER is `test.eer` of "
        "`metrics/<model>.json` as the bench run read it.",
        "",
    ]
    rows = [
        [
            n,
            pct(scored[n].get("demo_test_eer")),
            pct(scored[n].get("eer")),
            str(scored[n].get("n_scored", "-")),
            str(scored[n].get("n_failed", "-")),
        ]
        for n in names
    ]
    lines += table(["model", "demo test EER", "bench pooled EER", "clips scored", "failed"], rows, "lrrrr")
    stale = [
        n
        for n in names
        if isinstance(models.get(n, {}).get("test", {}).get("eer"), (int, float))
        and models[n]["test"]["eer"] != scored[n].get("demo_test_eer")
    ]
    if stale:
        lines += [
            "",
            f"The demo test EER of {', '.join(stale)} in `metrics/` differs from the one the bench run read: "
            "the models changed since. Re-run `python -m tools.bench`.",
        ]
    per_corpus = {n: scored[n].get("per_corpus") or {} for n in names}
    corpora = sorted({c for pc in per_corpus.values() for c in pc})
    if corpora:
        lines += [
            "",
            "### Bench EER per corpus",
            "",
            "The EER within each corpus of the bench that holds both classes.",
            "",
            *table(
                ["model", *corpora],
                [[n, *(pct(per_corpus[n].get(c), 1) for c in corpora)] for n in names],
                "l" + "r" * len(corpora),
            ),
        ]
    return lines + [""]


def split_section(split: dict | None) -> list[str]:
    lines = ["## Clips per split", ""]
    if not isinstance(split, dict) or not isinstance(split.get("splits"), dict):
        return lines + [f"{NOT_MEASURED} (no `metrics/split.json`).", ""]
    rows, totals = [], {"n_clips": 0, "n_bonafide": 0, "n_spoof": 0, "n_speakers": 0}
    for name in sorted(split["splits"], key=lambda n: (["train", "dev", "test"] + [n]).index(n)):
        s = split["splits"][name]
        rows.append(
            [
                name,
                *(str(s.get(k, "-")) for k in totals),
                str(len(s.get("attacks", {}))),
                ", ".join(f"{k} {v}" for k, v in sorted(s.get("sources", {}).items())),
            ]
        )
        for k in totals:
            totals[k] += int(s.get(k, 0) or 0)
    rows.append(["all", *(str(v) for v in totals.values()), "", ""])
    leak = split.get("leakage", {})
    lines += [
        f"Split strategy `{split.get('strategy', '?')}`, from `metrics/split.json` (the `split` stage). "
        "Speakers are disjoint between splits under every strategy but `random`, so the speaker "
        "total is the corpus's speaker count there.",
        "",
    ]
    lines += table(["split", "clips", "bona fide", "spoof", "speakers", "attacks", "sources"], rows, "lrrrrr")
    lines += [
        "",
        f"Leakage report: {leak.get('n_shared_speakers', '-')} speakers and "
        f"{leak.get('n_shared_audio', '-')} identical clips shared between splits; "
        f"eval sets checked: {', '.join(sorted(leak.get('eval_sets', {}))) or 'none'}.",
        "",
    ]
    return lines


def feature_section(expected: dict | None, measured: dict) -> list[str]:
    lines = ["## Feature counts", ""]
    if expected is None:
        lines += [f"From params: {NOT_MEASURED} (no `params.yaml`).", ""]
    elif "error" in expected:
        lines += [f"From params: not computed; the feature registry could not be read ({expected['error']}).", ""]
    else:
        e = expected
        lines += [
            "What the feature registry (`deepfake_audio/features.py`, `GROUPS`) gives for `params.yaml` "
            "at this commit; no audio is read:",
            "",
        ]
        lines += table(
            ["group", "rows per frame", "in the frame table"],
            [
                [g, str(n), "yes" if g in e["frame_groups"] else "no (utterance statistics only)"]
                for g, n in e["groups"].items()
            ],
            "lr",
        )
        lines += [
            "",
            f"- frames per clip: {e['n_frames']}",
            f"- frame table: {e['frame_rows']} rows per frame (every group in `features.frame_groups`)",
            f"- 1-D sequence models (`model.sequence_groups`): {e['sequence_rows']} x {e['n_frames']} per clip",
            f"- 2-D image (`model.image_group: {e['image_group']}`): "
            f"{e['image_rows'] if e['image_rows'] is not None else '-'} x {e['n_frames']} per clip",
            f"- utterance table (XGBoost): {e['utterance_columns']} columns "
            f"({', '.join(e['stats'])} of every row of `features.utterance_groups`)",
            "",
        ]
    if measured:
        m = measured
        lines += [
            "Read from the outputs in `data/` (the features and standardize stages of the last run):",
            "",
            f"- clips in `data/features/frames.parquet`: {m.get('clips', NOT_MEASURED)}",
            f"- frame rows x frames: {m.get('frame_rows', NOT_MEASURED)} x {m.get('n_frames', NOT_MEASURED)}",
            f"- utterance columns: {m.get('utterance_columns', NOT_MEASURED)} "
            f"(scaled: {m.get('scaled_utterance_columns', NOT_MEASURED)})",
            f"- rejected clips (`data/features/rejects.csv`): {m.get('rejects', NOT_MEASURED)}",
            "",
        ]
    else:
        lines += [
            f"From the outputs in `data/features/`: {NOT_MEASURED} (no `data/` here; run `make repro`, "
            "then this script).",
            "",
        ]
    return lines


def lock_section(rows: list[dict]) -> list[str]:
    lines = ["## Data-stage output hashes", ""]
    if not rows:
        return lines + [f"{NOT_MEASURED} (no `dvc.lock`).", ""]
    lines += [
        "From `dvc.lock`: the content hash DVC recorded for each data-stage output when it was last "
        "built. Compare them with another machine's `dvc.lock` to see which stages agree byte for "
        "byte ([pipeline.md](pipeline.md#reproducibility)).",
        "",
    ]
    lines += table(
        ["stage", "output", "md5", "bytes", "files"],
        [
            [
                r["stage"],
                f"`{r['path']}`",
                f"`{r['md5']}`",
                str(r["size"] if r["size"] is not None else "-"),
                str(r["nfiles"] if r["nfiles"] is not None else 1),
            ]
            for r in rows
        ],
        "lllrr",
    )
    return lines + [""]


def training_section(root: Path, models: list[str]) -> list[str]:
    rows = []
    for name in models:
        live = read_json(root / "dvclive" / name / "metrics.json")
        if isinstance(live, dict):
            rows.append([name, pct(live.get("dev/best_eer")), str(live.get("step", "-"))])
        else:
            rows.append([name, NOT_MEASURED, NOT_MEASURED])
    if not rows:
        return []
    return [
        "## Training runs",
        "",
        "From `dvclive/<model>/metrics.json`: the best dev EER (early stopping and the decision threshold "
        "use the dev set) and the last logged step (epoch for the neural models, boosting round for "
        "XGBoost).",
        "",
        *table(["model", "best dev EER", "last step"], rows, "lrr"),
        "",
    ]


def attack_section(models: dict[str, dict[str, dict]]) -> list[str]:
    names = [n for n in by_test_eer(models) if models[n].get("test", {}).get("per_attack_eer")]
    if not names:
        return []
    attacks = sorted({a for n in names for a in models[n]["test"]["per_attack_eer"]})
    rows = [[n, *(pct(models[n]["test"]["per_attack_eer"].get(a), 1) for a in attacks)] for n in names]
    return [
        "## Test EER per attack",
        "",
        "Each attack's spoofs against every bona fide clip of the test split.",
        "",
        *table(["model", *attacks], rows, "l" + "r" * len(attacks)),
        "",
    ]


def ci_section(ci: dict[str, dict[str, dict]], state: str) -> list[str]:
    lines = ["## CI profile", ""]
    if not ci:
        return lines + [f"{NOT_MEASURED} (no `ci/metrics/`).", ""]
    lines += [
        f"`ci/metrics/*.json` ({state} files): what `make gate` compares a fresh run of the CI profile "
        "(`ci/profile.yaml`: a smaller demo corpus, every model kind, few epochs) against. These are not "
        "the demo results above: the profile is built to be quick, not accurate.",
        "",
    ]
    rows = [
        [
            n,
            eer_with_ci(ci[n]["test"]) if "test" in ci[n] else "-",
            pct(ci[n].get("test", {}).get("accuracy")),
            num(ci[n].get("test", {}).get("roc_auc")),
        ]
        for n in by_test_eer(ci)
    ]
    return lines + table(["model", "test EER [95% CI]", "accuracy", "ROC AUC"], rows, "lrrr") + [""]


def _benchmark_lines(name: str, data: Any) -> list[str]:
    """The headline figures of one benchmark's JSON (as its script prints them)."""
    r = data.get("results", data) if isinstance(data, dict) else data
    if name == "features" and isinstance(r, dict):
        lines = [
            f"- {r.get('n_clips', '?')} clips; source: {r.get('source', '?')}; best of {r.get('repeats', '?')} "
            "runs, one thread:"
        ]
        for p, b in (r.get("pipelines") or {}).items():
            lines.append(
                f"  - {p}: {num(b.get('ms_per_clip'), 2)} ms per clip, "
                f"{num(b.get('realtime_per_core'), 0)}x real time per core"
            )
        lines.append(
            f"- the project's extractor is {num(r.get('naive_over_project'), 2)}x faster than the "
            f"one-librosa-call-per-feature approach; CPU/wall {num(r.get('cpu_over_wall'), 2)}"
        )
        ratio = r.get("cpu_over_wall")
        if isinstance(ratio, (int, float)) and ratio < 0.9:
            lines.append("- CPU/wall below 0.9: the core was shared during the run, so the wall times are inflated")
        return lines
    if name == "features_memory" and isinstance(r, list):
        return [
            f"- {x.get('clips')} clips: {num(x.get('wall_s'), 1)} s; peak RSS parent "
            f"{num((x.get('parent_peak_kb') or math.nan) / 1024, 0)} MiB, largest worker "
            f"{num((x.get('worker_peak_kb') or math.nan) / 1024, 0)} MiB, sampled total "
            f"{num((x.get('total_peak_kb') or math.nan) / 1024, 0)} MiB"
            for x in r
            if isinstance(x, dict)
        ]
    if name == "predict" and isinstance(r, dict):
        return [
            f"- model `{r.get('model', '?')}`, {r.get('threads', '?')} thread(s)",
            f"- latency of one 4-s clip: median {num(r.get('latency_median_ms'), 1)} ms, "
            f"p90 {num(r.get('latency_p90_ms'), 1)} ms",
            f"- folder of {r.get('files', '?')} clips: {num(r.get('files_per_s'), 1)} files/s",
            f"- stream: {num(r.get('stream_realtime'), 0)}x real time",
        ]
    if name == "train" and isinstance(r, list):
        device = data.get("device", "?") if isinstance(data, dict) else "?"
        return [
            f"- {x.get('model')} on {device}: {num(x.get('samples_per_s'), 0)} training samples/s"
            for x in r
            if isinstance(x, dict)
        ]
    if name == "torch_core" and isinstance(r, list):
        return [
            f"- {x.get('pipeline')}: {num(x.get('ms_per_clip'), 3)} ms per clip, "
            f"{num(x.get('realtime'), 0)}x real time, max |dMFCC| {x.get('max_abs_diff_db', math.nan):.2g} dB"
            for x in r
            if isinstance(x, dict)
        ]
    return ["- (unrecognised layout; see the file)"]


def benchmark_section(bench_dir: Path) -> list[str]:
    lines = [
        "## Benchmarks",
        "",
        "Each benchmark writes its figures with its own stamp (the commit and machine it ran on, which "
        "need not be this page's).",
        "",
    ]
    for name, command in BENCHMARKS.items():
        data = read_json(bench_dir / f"{name}.json")
        lines.append(f"### `benchmarks/{name}.py`")
        lines.append("")
        if data is None:
            lines += [f"{NOT_MEASURED}. Measure it with `{command}`, then re-run this script.", ""]
            continue
        s = data.get("stamp") if isinstance(data, dict) else None
        lines.append(
            f"Measured at {describe(s)}."
            if isinstance(s, dict)
            else "Measured on an unstamped run (commit and machine unknown)."
        )
        lines += ["", *_benchmark_lines(name, data), ""]
    return lines


def results_page(root: Path, s: dict) -> tuple[list[str], dict, dict | None]:
    """The lines of docs/results.md, and the model metrics and bench report they came from."""
    models = model_metrics(root / "metrics")
    bench = bench_report(root / "reports" / "bench.json")
    state = committed_state(root, ["metrics"])
    changed = last_change(root, "metrics")
    source = {
        "committed": f"the files committed at `{s['commit'].split('+')[0]}`"
        + (f", last changed by commit `{changed.split()[0]}` {changed.split()[1]}" if changed else ""),
        "modified": "workspace files that differ from the last commit",
        "unknown": "the workspace files",
    }[state]
    lines = [
        "# Results",
        "",
        "<!-- Generated by `python -m tools.docs_results`. Do not edit by hand: re-run the script. -->",
        "",
        f"Generated at {describe(s)}. The metrics are {source} (`metrics/*.json`, written by the "
        "`evaluate` stages); the stamp names the machine that ran this script, and the files do not record "
        "which machine ran the pipeline. On the same machine and params a rerun gives the same numbers; "
        "on another machine expect them to differ ([pipeline.md](pipeline.md#reproducibility)).",
        "",
    ]
    lines += ["## Models", ""]
    if models:
        lines += [
            "Every scored set of every model (`test`: the demo corpus's speaker-disjoint test split; other "
            "rows: eval sets, never trained on). EER with its 95% bootstrap interval; accuracy at the dev-set "
            "threshold; Cllr and minCllr in bits; min DCF, act DCF and min t-DCF where the block has them. "
            "Definitions: [evaluation.md](evaluation.md).",
            "",
        ]
        lines += table(
            [
                "model",
                "set",
                "EER [95% CI]",
                "accuracy",
                "ROC AUC",
                "Cllr",
                "minCllr",
                "min DCF",
                "act DCF",
                "min t-DCF",
                "bona fide",
                "spoof",
            ],
            metric_rows(models),
            "llrrrrrrrrrr",
        )
        if bench is None and not bench_sets(models):
            lines += [
                "",
                "No bench eval set was scored in these metrics and there is no `reports/bench.json`: bench "
                "EER is not measured here. Run `python -m tools.bench`, or score the bench as an eval set "
                "([corpora.md](corpora.md#eval-sets)); always read a demo EER next to a bench EER.",
            ]
        lines.append("")
    else:
        lines += [f"{NOT_MEASURED} (no `metrics/<model>.json`).", ""]
    lines += external_bench_section(models, bench)
    lines += attack_section(models)
    lines += training_section(root, sorted(models))
    lines += split_section(read_json(root / "metrics" / "split.json"))
    lines += feature_section(expected_features(root / "params.yaml"), measured_features(root / "data"))
    lines += lock_section(lock_outputs(root / "dvc.lock"))
    lines += ci_section(model_metrics(root / "ci" / "metrics"), committed_state(root, ["ci/metrics"]))
    lines += benchmark_section(root / "reports" / "benchmarks")
    lines += [
        "## Not measured by any output",
        "",
        "- wall time of a full `make repro` or of each stage (DVC records none);",
        "- peak memory of the whole pipeline.",
        "",
    ]
    return lines, models, bench


def replace_block(text: str, block: list[str], *, where: str) -> str:
    """``text`` with the lines between the results markers replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{where}: needs a {BEGIN} ... {END} block for the results table")
    return text[: start + len(BEGIN)] + "\n" + "\n".join(block) + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."), help="the project to read (default: .)")
    parser.add_argument("--out", type=Path, default=None, help="default: <root>/docs/results.md")
    parser.add_argument("--readme", type=Path, default=None, help="default: <root>/README.md")
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    root = args.root.resolve()
    out = args.out or root / "docs" / "results.md"
    readme = args.readme or root / "README.md"
    ignore = tuple(p.resolve().relative_to(root).as_posix() for p in (out, readme) if p.resolve().is_relative_to(root))
    s = stamp(root, ignore=ignore)
    lines, models, bench = results_page(root, s)
    if not args.no_readme:
        try:
            text = replace_block(readme.read_text(encoding="utf-8"), readme_table(models, s, bench), where=str(readme))
        except (OSError, ValueError) as exc:
            print(f"docs_results: {exc}", file=sys.stderr)
            return 2
        readme.write_text(text, encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    log.info("%s: %d models; stamp %s", out, len(models), describe(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
