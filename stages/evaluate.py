"""Stage ``evaluate@<model>``: one model's metrics and plots on ``test`` and every eval set.

It scores nothing itself: ``score@<model>`` scored the test split and ``eval_score@<set>-<model>``
each eval set (with its metrics block), so adding an eval set re-runs this stage in seconds.

Reads: ``<scores>/`` (data/scores/<model>: ``test.parquet``, and ``eval/<set>.parquet`` and
``eval/<set>.json`` for every set of params ``data.eval_sets``), ``<bundle>/config.json`` (the
dev threshold) and ``<raw>/`` for the ASV scores of corpora that ship them (the test block's t-DCF).
Writes: ``<metrics>`` (metrics/<model>.json: one block per set; decisions at the dev-set threshold;
the same again at ``<evaluated>``, data/evaluated/<model>.json, a cached output the report depends on)
and ``<plots>/`` (roc/det/confusion CSV of the test split for DVC, PNG figures of every set).
Params: ``evaluate`` (bootstrap replicates of the EER interval), ``data.eval_sets`` (which sets).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deepfake_audio.evaluation import TEST_SCORES, eval_score_paths, metrics_from_scores, write_plots
from deepfake_audio.io import read_json, write_json
from deepfake_audio.stage import run_stage


def body(args: argparse.Namespace, params) -> str:
    config = read_json(args.bundle / "config.json")
    threshold = float(config["threshold"])  # the dev-set EER threshold
    test = pd.read_parquet(args.scores / TEST_SCORES)
    metrics = metrics_from_scores(test, threshold=threshold, params=params.evaluate, raw_dir=args.raw)
    frames = [test]
    for name in sorted(params.data.eval_sets):
        scores_path, block_path = eval_score_paths(args.scores, name)
        for needed in (scores_path, block_path):
            if not needed.is_file():
                raise FileNotFoundError(f"{needed} is missing: run `dvc repro eval_score@{name}-{config['model']}`")
        metrics[name] = read_json(block_path)
        frames.append(pd.read_parquet(scores_path))
    write_json(args.metrics, metrics)
    if args.evaluated is not None:  # a cached copy: what the report stage depends on and reads
        write_json(args.evaluated, metrics)
    scores = pd.concat(frames, ignore_index=True)
    write_plots(scores, model=config["model"], threshold=threshold, out_dir=args.plots, metrics=metrics)
    return "; ".join(
        f"{k}: EER {100 * v['eer']:.2f}% on {v['n_bonafide']}+{v['n_spoof']}" if "eer" in v else f"{k}: {v['error']}"
        for k, v in metrics.items()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True, help="data/models/<model>: its config.json")
    parser.add_argument("--scores", type=Path, required=True, help="data/scores/<model>")
    parser.add_argument("--raw", type=Path, default=None, help="data/raw: ASV scores of corpora that ship them")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    parser.add_argument(
        "--evaluated", type=Path, default=None, help="also write the metrics here (data/evaluated/<model>.json)"
    )
    run_stage("evaluate", parser, body, argv)


if __name__ == "__main__":
    main()
