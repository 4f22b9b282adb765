"""Scoring of the test split and every eval set, and the metrics and plots made from the scores."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from deepfake_audio import plots
from deepfake_audio.calibration import Calibration
from deepfake_audio.io import atomic_path, write_csv, write_json
from deepfake_audio.manifest import CONDITION_COLUMNS
from deepfake_audio.metrics import metric_block
from deepfake_audio.params import EvaluateParams
from deepfake_audio.sources.corpora import ASV_KEYS, ASV_SCORES

if TYPE_CHECKING:  # types only: the report stage, which imports this module, runs no model code
    from deepfake_audio.bundle import Bundle
    from deepfake_audio.inputs import SplitData

log = logging.getLogger(__name__)


TEST_SCORES = "test.parquet"
"""A model's test-split scores, in its scores folder (data/scores/<model>/)."""


def eval_score_paths(scores_dir: Path, name: str) -> tuple[Path, Path]:
    """Where a model's scores on eval set ``name`` and its metrics block live, in its scores folder:
    ``eval/<name>.parquet`` and ``eval/<name>.json`` (stage ``eval_score@<name>-<model>``)."""
    return scores_dir / "eval" / f"{name}.parquet", scores_dir / "eval" / f"{name}.json"


def block_name(split: str) -> str:
    """Metrics block name of a split: ``test`` stays, ``eval:<name>`` becomes ``<name>``."""
    return split.split(":", 1)[1] if split.startswith("eval:") else split


def score_splits(bundle: Bundle, data: dict[str, SplitData]) -> pd.DataFrame:
    """One row per scored clip: utt_id, split, label (1 = bona fide), attack, source, score, and
    ``llr`` (the score through the bundle's dev-fitted calibration; NaN for a bundle without one)."""
    frames = []
    calibration = Calibration.from_dict(bundle.config["calibration"]) if "calibration" in bundle.config else None
    for split, part in data.items():
        if not part.ids:
            continue
        score = bundle.score(part.x)
        llr = calibration.llr(score) if calibration else np.full(score.shape, np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "utt_id": part.ids,
                    "split": split,
                    "label": part.y,
                    "attack": part.attacks,
                    "source": part.sources,
                    "score": score,
                    "llr": llr,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def asv_scores_for(rows: pd.DataFrame, raw_dir: Path | None) -> dict[str, np.ndarray] | None:
    """The ASV scores behind a set's t-DCF, or ``None`` where they don't exist.

    They exist when every clip of the set comes from one official partition of one source whose
    corpus ships ASV scores (``data/raw/<source>/asv_scores.parquet``, e.g. ASVspoof 2019 LA's
    dev and eval). A split that mixes partitions or sources has no matching ASV trials.
    """
    if raw_dir is None or "partition" not in rows.columns:
        return None
    sources, partitions = rows["source"].unique(), rows["partition"].unique()
    if len(sources) != 1 or len(partitions) != 1 or not partitions[0]:
        return None
    path = raw_dir / str(sources[0]) / ASV_SCORES
    if not path.is_file():
        return None
    table = pd.read_parquet(path)
    table = table[table["partition"] == partitions[0]]
    asv = {key: table.loc[table["key"] == key, "score"].to_numpy(dtype=np.float64) for key in ASV_KEYS}
    return asv if all(v.size for v in asv.values()) else None


def metrics_from_scores(
    scores: pd.DataFrame, *, threshold: float, params: EvaluateParams | None = None, raw_dir: Path | None = None
) -> dict:
    """``{block: metric_block}`` for every split in ``scores``, decisions at the bundle's dev threshold.

    Adds ``cllr`` and ``act_dcf`` where ``scores`` carries calibrated ``llr``, ``eer_ci``
    (``params.bootstrap`` replicates), per-source EERs, ``per_condition_eer`` for the columns of
    :data:`~deepfake_audio.manifest.CONDITION_COLUMNS` that ``scores`` has (any may be absent), and
    ``min_tdcf`` where :func:`asv_scores_for` finds ASV scores.
    A block whose set lacks one of the classes cannot have an EER; it records its counts and the
    reason instead of failing the stage.
    """
    params = params or EvaluateParams()
    condition_columns = [c for c in CONDITION_COLUMNS if c in scores.columns]
    out = {}
    for split, part in scores.groupby("split", sort=True):
        y, s = part["label"].to_numpy(), part["score"].to_numpy()
        name = block_name(str(split))
        if y.min() == y.max():
            out[name] = {
                "n_bonafide": int((y == 1).sum()),
                "n_spoof": int((y == 0).sum()),
                "error": "needs both bona fide and spoof clips for EER",
            }
            continue
        llr = part["llr"].to_numpy() if "llr" in part and part["llr"].notna().all() else None
        out[name] = metric_block(
            y,
            s,
            threshold=threshold,
            attacks=part["attack"].to_numpy(),
            sources=part["source"].to_numpy(),
            llr=llr,
            bootstrap=params.bootstrap,
            ci_level=params.ci_level,
            seed=params.seed,
            asv=asv_scores_for(part, raw_dir),
            conditions={c: part[c].to_numpy() for c in condition_columns} or None,
        )
    return out


def write_plots(
    scores: pd.DataFrame, *, model: str, threshold: float, out_dir: Path, metrics: dict | None = None
) -> None:
    """DVC plot data (ROC, DET, confusion of the test split) and PNG figures for every set.

    With ``metrics`` (from :func:`metrics_from_scores`) also ``attack_eer.png``, the per-attack EER
    of every set that has attacks, beside its pooled EER.
    """
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
    per_attack = {
        name: block["per_attack_eer"] for name, block in (metrics or {}).items() if block.get("per_attack_eer")
    }
    if per_attack:
        plots.save_attack_eer_png(
            out_dir / "attack_eer.png",
            per_attack,
            title=f"{model}: EER per attack",
            pooled={name: metrics[name]["eer"] for name in per_attack},
        )


SUMMARY_KEYS = (
    "eer",
    "eer_ci",
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "f1",
    "cllr",
    "min_cllr",
    "min_tdcf",
    "min_dcf",
    "act_dcf",
    "mean_source_eer",
    "n_bonafide",
    "n_spoof",
)


def summarize(metrics_by_model: dict[str, dict]) -> tuple[dict, pd.DataFrame]:
    """The report: ``{model: {set: {eer, eer_ci, accuracy, roc_auc, ...}}}`` and a long table of it."""
    summary, rows = {}, []
    for model in sorted(metrics_by_model):
        summary[model] = {}
        for name, block in sorted(metrics_by_model[model].items()):
            if "eer" not in block:
                continue
            summary[model][name] = {k: block[k] for k in SUMMARY_KEYS if k in block}
            rows.append({"model": model, "eval_set": name, **summary[model][name]})
    best = min(((m, b["test"]["eer"]) for m, b in summary.items() if "test" in b), key=lambda t: t[1], default=None)
    return {"models": summary, "best_model_by_test_eer": best[0] if best else None}, pd.DataFrame(rows)


def _cell(value: object, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, fmt)


def markdown_table(table: pd.DataFrame) -> str:
    """The report table as GitHub markdown: one row per model and scored set.

    EER with its bootstrap interval and accuracy (at the dev threshold) in percent; minDCF (ASVspoof 5
    costs), Cllr, minCllr and min t-DCF where the block has them, else "-".
    """
    lines = [
        "| model | set | EER % [95% CI] | accuracy % | ROC AUC | minDCF | Cllr | minCllr | min t-DCF | bona fide | spoof |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.to_dict("records"):
        ci = r.get("eer_ci")
        eer = f"{100 * r['eer']:.2f}" + (
            f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if isinstance(ci, (list, tuple, np.ndarray)) else ""
        )
        lines.append(
            f"| {r['model']} | {r['eval_set']} | {eer} | {100 * r['accuracy']:.2f} | {r['roc_auc']:.3f} "
            f"| {_cell(r.get('min_dcf'), '.3f')} | {_cell(r.get('cllr'), '.3f')} | {_cell(r.get('min_cllr'), '.3f')} "
            f"| {_cell(r.get('min_tdcf'), '.4f')} | {r['n_bonafide']} | {r['n_spoof']} |"
        )
    return "\n".join(lines) + "\n"


def cross_corpus(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The report table pivoted to models x sets for one metric column: ``test`` first, then the
    eval sets by name; NaN where a model has no value on a set."""
    if table.empty or column not in table.columns:
        return pd.DataFrame()
    grid = table.pivot(index="model", columns="eval_set", values=column)
    sets = sorted(grid.columns, key=lambda name: (name != "test", name))
    return grid[sets].sort_index()


def cross_corpus_markdown(table: pd.DataFrame) -> str:
    """The cross-corpus matrix as GitHub markdown: a row per model, a column per scored set, each
    cell ``EER % [interval] · minDCF`` (the interval and minDCF where the block has them)."""
    eer = cross_corpus(table, "eer")
    if eer.empty:
        return ""
    ci = cross_corpus(table, "eer_ci") if "eer_ci" in table.columns else None
    dcf = cross_corpus(table, "min_dcf") if "min_dcf" in table.columns else None
    lines = ["| model | " + " | ".join(eer.columns) + " |", "|---|" + "---:|" * len(eer.columns)]
    for model in eer.index:
        cells = []
        for name in eer.columns:
            value = eer.at[model, name]
            if value is None or np.isnan(value):
                cells.append("-")
                continue
            cell = f"{100 * value:.2f}"
            interval = ci.at[model, name] if ci is not None else None
            if isinstance(interval, (list, tuple, np.ndarray)):
                cell += f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
            cost = dcf.at[model, name] if dcf is not None else None
            if cost is not None and not np.isnan(cost):
                cell += f" · {cost:.3f}"
            cells.append(cell)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    metrics_by_model: dict[str, dict],
    *,
    summary_path: Path,
    figure_dir: Path,
    markdown_path: Path,
    scores_by_model: dict[str, pd.DataFrame] | None = None,
) -> dict:
    """``summary.json``, the markdown report and its figures in ``figure_dir``: the EER comparison
    chart and, with ``scores_by_model``, one ROC/DET figure per scored set with every model on it."""
    summary, table = summarize(metrics_by_model)
    write_json(summary_path, summary)
    figures = []
    if not table.empty:
        plots.save_comparison_png(
            figure_dir / "comparison.png", table, metric="eer", title="EER by model and set (lower is better)"
        )
        figures.append(("EER by model and set", "comparison.png"))
        eer = cross_corpus(table, "eer")
        dcf = cross_corpus(table, "min_dcf") if "min_dcf" in table.columns else None
        plots.save_cross_corpus_png(
            figure_dir / "cross_corpus.png",
            eer,
            title="Cross-corpus EER: trained once, scored on every set",
            secondary=dcf,
        )
        figures.append(("Cross-corpus EER (minDCF below)", "cross_corpus.png"))
    sets = sorted(
        {str(split) for df in (scores_by_model or {}).values() for split in df["split"].unique()},
        key=lambda name: (name != "test", name),
    )
    for split in sets:
        curves = {}
        for model, df in sorted((scores_by_model or {}).items()):
            part = df[df["split"] == split]
            if part["label"].nunique() == 2:
                curves[model] = (part["label"].to_numpy(), part["score"].to_numpy())
        if curves:
            name = block_name(split)
            plots.save_models_roc_det_png(figure_dir / f"roc_det_{name}.png", curves, title=f"{name}: every model")
            figures.append((f"ROC and DET on {name}", f"roc_det_{name}.png"))
    # Figure links are relative to the report: reports/summary.md -> plots/report/*.png
    rel = Path(os.path.relpath(figure_dir, markdown_path.parent))
    body = "".join(f"\n![{alt}]({(rel / name).as_posix()})\n" for alt, name in figures)
    with atomic_path(markdown_path) as tmp:
        matrix = cross_corpus_markdown(table)
        if matrix:
            matrix = (
                "\n## Cross-corpus matrix\n\nEER % [bootstrap interval] · minDCF (ASVspoof 5 costs), "
                "every model trained on the training pool alone.\n\n" + matrix
            )
        tmp.write_text("# Model comparison\n\n" + markdown_table(table) + matrix + body, encoding="utf-8")
    return summary
