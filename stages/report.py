"""Stage ``report``: one comparison table and figure across models.

Reads: ``<metrics_dir>/<model>.json`` for every model in ``train.models``.
Writes: ``<summary>`` (metrics/summary.json), ``<figure>`` (plots/report/comparison.png) and
``<markdown>`` (reports/summary.md).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_audio.evaluation import write_report
from deepfake_audio.io import read_json
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    metrics = {}
    for model in params.train.models:
        path = args.metrics_dir / f"{model}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `dvc repro evaluate@{model}` first")
        metrics[model] = read_json(path)
    summary = write_report(metrics, summary_path=args.summary, figure_path=args.figure, markdown_path=args.markdown)
    best = summary["best_model_by_test_eer"]
    return f"{len(metrics)} models compared; best by test EER: {best}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics-dir", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--figure", type=Path, required=True)
    parser.add_argument("--markdown", type=Path, required=True)
    run_stage("report", parser, body, argv)


if __name__ == "__main__":
    main()
