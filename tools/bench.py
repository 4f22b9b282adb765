#!/usr/bin/env python3
"""Score every trained bundle on the external bench, so each demo EER is read next to a bench EER.

The bench (``../shared/bench``) is real bona fide speech and real outputs of published TTS, VC and
vocoder systems that no model here was trained on. It lives outside the project and must never be
committed into it, nor used to choose anything (features, params, thresholds, models): this tool
only measures.

Reads:

* ``--labels`` (default ``../shared/bench/dev/labels.csv``): columns ``path`` (relative to the
  labels file's folder), ``label`` (``bonafide`` | ``spoof``) and ``corpus``;
* every bundle under ``--models`` (a folder with ``config.json``), scored with its own features,
  scaler and crop/pad (:meth:`deepfake_audio.predict.Predictor.predict_files`);
* ``--metrics``/``<model>.json``: the demo test EER (``test.eer``), where the file exists.

Writes ``--out`` (default ``reports/bench.json``)::

    {"stamp": {commit, date_utc, cpu, cores}, "labels": "<--labels as given>",
     "models": {<bundle name>: {"eer", "per_corpus": {<corpus>: eer}, "n_scored", "n_failed",
                                "demo_test_eer", "bundle_training_key"}}}

and prints a markdown table. EERs are :func:`deepfake_audio.metrics.compute_eer` (label 1 = bona
fide, higher score = more bona fide) over the clips that decoded; a corpus gets an EER only when
its scored clips hold both classes. ``python -m tools.docs_results`` puts the pooled EER in the
README and docs/results.md.

Usage (from the repository root)::

    python -m tools.bench [--labels ../shared/bench/dev/labels.csv] [--models data/models] [--out reports/bench.json]

Exit status: 0; 2 for a missing or malformed labels file, no bundle, or a bundle that does not load.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from deepfake_audio.io import read_json, write_json
from deepfake_audio.metrics import compute_eer
from deepfake_audio.predict import Predictor, ScoringOptions, list_bundles
from tools.stamp import stamp

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = Path("../shared/bench/dev/labels.csv")
LABELS = {"bonafide": 1, "spoof": 0}
REQUIRED_COLUMNS = ("path", "label", "corpus")

log = logging.getLogger("bench")


class BenchError(Exception):
    """A bench run that cannot start: the message says what to fix."""


def read_labels(labels_csv: Path) -> list[dict]:
    """The bench clips: ``{path (absolute), label (1 = bona fide), corpus}``, in file order.

    Raises:
        BenchError: no such file, a missing column, an unknown label, or no rows.
    """
    if not labels_csv.is_file():
        raise BenchError(
            f"{labels_csv}: no such labels file. The external bench lives outside the project "
            f"(../shared/bench/dev/labels.csv from the repository root) and is never committed into it; "
            f"pass --labels PATH"
        )
    with labels_csv.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchError(f"{labels_csv}: missing column(s) {missing}; found {reader.fieldnames}")
        rows = list(reader)
    if not rows:
        raise BenchError(f"{labels_csv}: no clips")
    base = labels_csv.resolve().parent
    clips = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        if row["label"] not in LABELS:
            raise BenchError(f"{labels_csv}:{i}: label {row['label']!r} is not one of {sorted(LABELS)}")
        clips.append({"path": base / row["path"], "label": LABELS[row["label"]], "corpus": row["corpus"]})
    return clips


def _eer(labels: list[int], scores: list[float]) -> float | None:
    """compute_eer, or ``None`` when a class is missing (the EER is undefined)."""
    if len(set(labels)) < 2:
        return None
    return compute_eer(np.asarray(labels), np.asarray(scores, dtype=np.float64))[0]


def score_bundle(predictor: Predictor, clips: list[dict], *, batch_size: int) -> tuple[dict, list[dict]]:
    """Score every clip with one bundle.

    Returns:
        ``({eer, per_corpus, n_scored, n_failed}, rows)`` where ``rows`` are
        :meth:`Predictor.predict_files` rows; failed clips (``error`` set) count in ``n_failed``
        and nowhere else.
    """
    # The first clip length and no speech check: each clip scores as the pipeline's eval_score@ scores it.
    rows = predictor.predict_files(
        [c["path"] for c in clips], ScoringOptions(scope="first", vad=False), batch_size=batch_size, progress=True
    )
    ok = [(c, r) for c, r in zip(clips, rows) if not r["error"]]
    reasons = Counter(r["error"].split(":", 1)[0] for r in rows if r["error"])
    if reasons:
        log.warning(
            "%s: %d clips failed to decode: %s", predictor.bundle_dir.name, sum(reasons.values()), dict(reasons)
        )
    per_corpus = {}
    for corpus in sorted({c["corpus"] for c, _ in ok}):
        eer = _eer(
            [c["label"] for c, _ in ok if c["corpus"] == corpus], [r["score"] for c, r in ok if c["corpus"] == corpus]
        )
        if eer is not None:  # only corpora that hold both classes
            per_corpus[corpus] = eer
    result = {
        "eer": _eer([c["label"] for c, _ in ok], [r["score"] for _, r in ok]),
        "per_corpus": per_corpus,
        "n_scored": len(ok),
        "n_failed": len(rows) - len(ok),
    }
    return result, rows


def demo_test_eer(metrics_dir: Path, name: str) -> float | None:
    """``test.eer`` of ``metrics_dir/<name>.json`` (the evaluate stage's demo test split), else ``None``."""
    path = metrics_dir / f"{name}.json"
    if not path.is_file():
        return None
    data = read_json(path)
    test = data.get("test") if isinstance(data, dict) else None
    eer = test.get("eer") if isinstance(test, dict) else None
    return float(eer) if isinstance(eer, (int, float)) else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def markdown_table(models: dict[str, dict]) -> list[str]:
    """model | demo test EER | bench pooled EER | per corpus, one row per model."""
    lines = ["| model | demo test EER | bench pooled EER | per corpus |", "| --- | ---: | ---: | --- |"]
    for name, m in models.items():
        corpora = ", ".join(f"{c} {_pct(e)}" for c, e in m["per_corpus"].items()) or "-"
        lines.append(f"| {name} | {_pct(m['demo_test_eer'])} | {_pct(m['eer'])} | {corpora} |")
    return lines


def run(
    labels_csv: Path, models_dir: Path, metrics_dir: Path, *, batch_size: int = 32, scores_dir: Path | None = None
) -> dict[str, dict]:
    """``{model: result}`` for every bundle under ``models_dir`` (see the module docstring).

    Raises:
        BenchError: a bad labels file, no bundle, or a bundle that does not load.
    """
    clips = read_labels(labels_csv)
    bundles = list_bundles(models_dir)
    if not bundles:
        raise BenchError(f"no trained bundle (a folder with config.json) under {models_dir}: run `dvc repro` first")
    log.info("%d bench clips, %d bundles under %s", len(clips), len(bundles), models_dir)
    out = {}
    for b in bundles:
        try:
            predictor = Predictor.load(b["path"])
        except ValueError as exc:
            raise BenchError(f"bundle {b['path']} does not load: {exc}") from exc
        result, rows = score_bundle(predictor, clips, batch_size=batch_size)
        result["demo_test_eer"] = demo_test_eer(metrics_dir, b["name"])
        result["bundle_training_key"] = predictor.config.get("training_key")
        out[b["name"]] = result
        if scores_dir is not None:  # for a cross-check with ../shared/bench/score.py; never commit these
            scores_dir.mkdir(parents=True, exist_ok=True)
            with (scores_dir / f"{b['name']}.csv").open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(["path", "score"])
                writer.writerows([r["path"], r["score"]] for r in rows if not r["error"])
        log.info(
            "%s: bench EER %s over %d clips (%d failed); demo test EER %s",
            b["name"],
            _pct(result["eer"]),
            result["n_scored"],
            result["n_failed"],
            _pct(result["demo_test_eer"]),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--labels", type=Path, default=DEFAULT_LABELS, help=f"bench labels.csv (default: {DEFAULT_LABELS})"
    )
    parser.add_argument("--models", type=Path, default=Path("data/models"), help="bundles, one per folder")
    parser.add_argument("--metrics", type=Path, default=Path("metrics"), help="where <model>.json holds test.eer")
    parser.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    parser.add_argument("--batch-size", type=int, default=32, help="clips per model call")
    parser.add_argument(
        "--scores", type=Path, default=None, help="also write <model>.csv (path,score) here, for score.py"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    start = time.monotonic()
    try:
        models = run(args.labels, args.models, args.metrics, batch_size=args.batch_size, scores_dir=args.scores)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    ignore = (out.relative_to(ROOT).as_posix(),) if out.is_relative_to(ROOT) else ()
    write_json(args.out, {"stamp": stamp(ROOT, ignore=ignore), "labels": str(args.labels), "models": models})
    print("\n".join(markdown_table(models)))
    log.info("%s: %d models in %.1f s", args.out, len(models), time.monotonic() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
