"""Scoring of the test split and every eval set, and the metrics and plots made from the scores."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from deepfake_audio import plots
from deepfake_audio.io import atomic_path, write_csv, write_json
from deepfake_audio.metrics import metric_block
from deepfake_audio.training import Bundle, SplitData

log = logging.getLogger(__name__)


def block_name(split: str) -> str:
    """Metrics block name of a split: ``test`` stays, ``eval:<name>`` becomes ``<name>``."""
    return split.split(":", 1)[1] if split.startswith("eval:") else split


def score_splits(bundle: Bundle, data: dict[str, SplitData]) -> pd.DataFrame:
    """One row per scored clip: utt_id, split, label (1 = bona fide), attack, source, score."""
    frames = []
    for split, part in data.items():
        if not part.ids:
            continue
        frames.append(pd.DataFrame({"utt_id": part.ids, "split": split, "label": part.y, "attack": part.attacks,
                                    "source": part.sources, "score": bundle.score(part.x)}))
    return pd.concat(frames, ignore_index=True)


def metrics_from_scores(scores: pd.DataFrame, *, threshold: float) -> dict:
    """``{block: metric_block}`` for every split in ``scores``, at the bundle's dev threshold.

    A block whose set lacks one of the classes cannot have an EER; it records its counts and
    the reason instead of failing the stage.
    """
    out = {}
    for split, part in scores.groupby("split", sort=True):
        y, s = part["label"].to_numpy(), part["score"].to_numpy()
        name = block_name(str(split))
        if y.min() == y.max():
            out[name] = {"n_bonafide": int((y == 1).sum()), "n_spoof": int((y == 0).sum()),
                         "error": "needs both bona fide and spoof clips for EER"}
            continue
        out[name] = metric_block(y, s, threshold=threshold, attacks=part["attack"].to_numpy())
    return out


def write_plots(scores: pd.DataFrame, *, model: str, threshold: float, out_dir: Path) -> None:
    """DVC plot data (ROC, DET, confusion of the test split) and PNG figures for every set."""
    test = scores[scores["split"] == "test"]
    y, s = test["label"].to_numpy(), test["score"].to_numpy()
    write_csv(out_dir / "roc.csv", plots.roc_table(y, s))
    write_csv(out_dir / "det.csv", plots.det_table(y, s))
    write_csv(out_dir / "confusion.csv", plots.confusion_table(y, s, threshold=threshold))
    curves = {}
    for split, part in scores.groupby("split", sort=True):
        py = part["label"].to_numpy()
        if py.min() != py.max():
            curves[block_name(str(split))] = (py, part["score"].to_numpy())
    plots.save_roc_png(out_dir / "roc.png", curves, title=f"{model}: ROC")
    plots.save_det_png(out_dir / "det.png", curves, title=f"{model}: DET")
    plots.save_confusion_png(out_dir / "confusion.png", y, s, threshold=threshold, title=f"{model}: test confusion")
    plots.save_score_hist_png(out_dir / "scores.png", y, s, threshold=threshold, title=f"{model}: test scores")


def summarize(metrics_by_model: dict[str, dict]) -> tuple[dict, pd.DataFrame]:
    """The report: ``{model: {set: {eer, accuracy, roc_auc, ...}}}`` and a long table of it."""
    keys = ("eer", "accuracy", "balanced_accuracy", "roc_auc", "f1", "n_bonafide", "n_spoof")
    summary, rows = {}, []
    for model in sorted(metrics_by_model):
        summary[model] = {}
        for name, block in sorted(metrics_by_model[model].items()):
            if "eer" not in block:
                continue
            summary[model][name] = {k: block[k] for k in keys if k in block}
            rows.append({"model": model, "eval_set": name, **summary[model][name]})
    best = min(((m, b["test"]["eer"]) for m, b in summary.items() if "test" in b), key=lambda t: t[1], default=None)
    return {"models": summary, "best_model_by_test_eer": best[0] if best else None}, pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    """The report table as GitHub markdown (EER and accuracy in percent)."""
    lines = ["| model | set | EER % | accuracy % | ROC AUC | bona fide | spoof |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in table.itertuples():
        lines.append(f"| {r.model} | {r.eval_set} | {100 * r.eer:.2f} | {100 * r.accuracy:.2f} | {r.roc_auc:.3f} "
                     f"| {r.n_bonafide} | {r.n_spoof} |")
    return "\n".join(lines) + "\n"


def write_report(metrics_by_model: dict[str, dict], *, summary_path: Path, figure_path: Path,
                 markdown_path: Path) -> dict:
    summary, table = summarize(metrics_by_model)
    write_json(summary_path, summary)
    if not table.empty:
        plots.save_comparison_png(figure_path, table, metric="eer", title="EER by model and set (lower is better)")

    with atomic_path(markdown_path) as tmp:
        tmp.write_text("# Model comparison\n\n" + markdown_table(table)
                       + f"\n![EER by model]({figure_path.name})\n", encoding="utf-8")
    return summary



