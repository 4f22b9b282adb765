"""Stage ``report``: one comparison table and figure across models.

Reads: ``<metrics_dir>/<model>.json`` (data/evaluated: the evaluate stages' metrics) and the scores in ``<scores_dir>/<model>/`` (test and every set
of ``data.eval_sets``) for every model in ``train.models``.
Writes: ``<summary>`` (metrics/summary.json), ``<figures>/`` (plots/report: the EER comparison, the
cross-corpus heatmap of models x sets, and one ROC/DET figure per scored set, every model on it),
``<markdown>`` (reports/summary.md: the table and the cross-corpus matrix) and
``<machine>`` (metrics/machine.json: the stamp of the machine the metrics were made on, without a
date, so a re-run on one machine gives the same bytes; the metric gate compares stamps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.evaluation import TEST_SCORES, eval_score_paths, write_report
from deepfake_audio.io import read_json, write_json
from deepfake_audio.machine import machine_stamp
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    metrics, scores = {}, {}
    for model in params.train.models:
        folder = args.scores_dir / model
        paths = [args.metrics_dir / f"{model}.json", folder / TEST_SCORES]
        paths += [eval_score_paths(folder, name)[0] for name in sorted(params.data.eval_sets)]
        for needed in paths:
            if not needed.is_file():
                raise FileNotFoundError(f"{needed} is missing: run `dvc repro evaluate@{model}` first")
        metrics[model] = read_json(paths[0])
        scores[model] = pd.concat(
            [pd.read_parquet(p, columns=["split", "label", "score"]) for p in paths[1:]], ignore_index=True
        )
    summary = write_report(
        metrics, summary_path=args.summary, figure_dir=args.figures, markdown_path=args.markdown, scores_by_model=scores
    )
    stamp = machine_stamp()
    write_json(args.machine, stamp)
    best = summary["best_model_by_test_eer"]
    return f"{len(metrics)} models compared; best by test EER: {best}; machine {stamp['fingerprint']}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics-dir", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--scores-dir", type=Path, required=True)
    parser.add_argument("--figures", type=Path, required=True)
    parser.add_argument("--markdown", type=Path, required=True)
    parser.add_argument("--machine", type=Path, required=True, help="the machine stamp (JSON)")
    run_stage("report", parser, body, argv)


if __name__ == "__main__":
    main()
