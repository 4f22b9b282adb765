"""Score files that the official ASVspoof evaluation packages read, made from the pipeline's scores.

The evaluation stages write scores as Parquet, one file per model and scored set or one per model,
with columns ``utt_id, split, label, attack, source, score, llr`` and maybe more (``partition``,
conditions). This module turns one split of such a file into:

* ``asvspoof5``: the ASVspoof 5 CM score file, a TSV with the header ``filename\\tcm-score`` and
  one ``<trial id>\\t<score>`` line per clip. The official package (``evaluation-package/util.py``
  of github.com/asvspoof-challenge/asvspoof5) reads it with ``pandas.read_csv(sep="\\t",
  header=0)`` and joins it to the key file on ``filename``.
* ``asvspoof2021``: the ASVspoof 2021 LA/DF score file, ``<trial id> <score>`` per line, no header.
  The official ``eval-package/{LA,DF}/package-stage-1/evaluate.py`` of
  github.com/asvspoof-challenge/2021 reads it with ``pandas.read_csv(sep=" ", header=None)``,
  refuses more than two columns and joins column 0 to the trial id of its key file.
* ``csv``: ``utt_id,score,label`` (the project's own ids, label 1 = bona fide), for anything else.

**Trial ids.** ``utt_id`` is ``<source name>/<the corpus's own id>``; the trial id is the corpus's
own id: ``utt_id`` without the row's ``<source>/`` prefix (without everything up to the first
``/`` where the prefix is not the row's source). Anything after that is kept, folders included:
the id of a ``folder`` source (``real/a``, ``fake/a``) is unique only with its folders.

Scores are written with Python's shortest round-trip ``repr``, so a file read back gives the exact
floats. Higher = more bona fide, as both packages expect.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_audio.io import atomic_path

__all__ = [
    "FORMATS",
    "FORMAT_ALIASES",
    "SCORE_COLUMNS",
    "ScoreFileError",
    "format_scores",
    "select_scores",
    "trial_ids",
    "write_score_file",
]

FORMATS = ("asvspoof5", "asvspoof2021", "csv")
"""The formats :func:`format_scores` writes."""

FORMAT_ALIASES = {"asvspoof": "asvspoof5"}
"""Other names accepted for a format."""

SCORE_COLUMNS = ("score", "llr")
"""The score columns a file can be written from: the raw score or the calibrated LLR."""


class ScoreFileError(ValueError):
    """A scores table that cannot become the requested score file; the message says why."""


def trial_ids(utt_ids: pd.Series, sources: pd.Series | None = None) -> pd.Series:
    """The corpus's own trial id of every ``utt_id`` (see the module docstring).

    Args:
        utt_ids: ``<source>/<id>`` strings.
        sources: the rows' source names; where ``utt_id`` starts with ``<source>/`` exactly that
            prefix is removed, else everything up to the first ``/``.
    """
    ids = utt_ids.astype(str)
    after_first = ids.str.split("/", n=1).str[-1]
    if sources is None:
        return after_first
    prefix = sources.astype(str) + "/"
    has_prefix = pd.Series([i.startswith(p) for i, p in zip(ids, prefix)], index=ids.index, dtype=bool)
    stripped = pd.Series([i[len(p) :] for i, p in zip(ids, prefix)], index=ids.index, dtype=object)
    return stripped.where(has_prefix, after_first)


def _split_names(splits: pd.Series) -> list[str]:
    return sorted(str(s) for s in splits.unique())


def select_scores(scores: pd.DataFrame, *, split: str | None = None, score: str = "score") -> pd.DataFrame:
    """The rows of one split with ``utt_id``, ``trial_id``, ``label`` and ``value`` (the chosen score).

    Args:
        scores: a pipeline scores table.
        split: the split to keep, as stored (``eval:la``) or as its metrics block is named
            (``la``); ``None`` keeps every row and needs a table of one split.
        score: ``score`` (raw) or ``llr`` (calibrated).

    Raises:
        ScoreFileError: a missing column, an unknown or ambiguous split, no rows, non-finite
            values (``llr`` is NaN for a bundle without calibration).
    """
    if score not in SCORE_COLUMNS:
        raise ScoreFileError(f"score must be one of {list(SCORE_COLUMNS)}, got {score!r}")
    missing = [c for c in ("utt_id", "label", score) if c not in scores.columns]
    if missing:
        raise ScoreFileError(f"the scores table has no column {missing[0]!r}; it has {list(scores.columns)}")
    rows = scores
    if "split" in scores.columns:
        present = _split_names(scores["split"])
        if split is not None:
            names = scores["split"].astype(str)
            exact = names == split
            # "la" names the block of "eval:la", unless a split is called "la" itself
            keep = exact if exact.any() else names.map(lambda s: s.startswith("eval:") and s[5:] == split)
            rows = scores[keep.to_numpy(dtype=bool)]
            if rows.empty:
                raise ScoreFileError(f"no split {split!r} in the scores; present: {present}")
        elif len(present) > 1:
            raise ScoreFileError(f"the scores hold several splits; choose one with --split: {present}")
    elif split is not None:
        raise ScoreFileError(f"the scores table has no split column, so --split {split} cannot be applied")
    if rows.empty:
        raise ScoreFileError("the scores table has no rows")
    value = pd.to_numeric(rows[score], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(value)
    if bad.any():
        hint = " (the bundle has no calibration: use --score score)" if score == "llr" else ""
        raise ScoreFileError(
            f"{int(bad.sum())} of {value.size} rows have a NaN or infinite {score}{hint}; "
            f"first: {rows['utt_id'].iloc[int(np.argmax(bad))]!r}"
        )
    ids = trial_ids(rows["utt_id"], rows["source"] if "source" in rows.columns else None)
    return pd.DataFrame(
        {
            "utt_id": rows["utt_id"].astype(str).to_numpy(),
            "trial_id": ids.to_numpy(),
            "label": rows["label"].to_numpy(),
            "value": value,
        }
    )


def _canonical(fmt: str) -> str:
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ScoreFileError(f"unknown format {fmt!r}; known: {[*FORMATS, *FORMAT_ALIASES]}")
    return fmt


def _check_keys(rows: pd.DataFrame, fmt: str) -> None:
    """The ids that key the rows of ``fmt`` are unique, and the whitespace-separated formats' have no
    whitespace."""
    column = "utt_id" if fmt == "csv" else "trial_id"
    ids = rows[column].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        where = "" if fmt == "csv" else " once the source prefix is removed"
        raise ScoreFileError(
            f"{column} {dup.iloc[0]!r} appears more than once{where} "
            f"({int(ids.duplicated(keep=False).sum())} rows share an id); a score file keys its rows by it"
        )
    if fmt != "csv":
        spaced = ids[ids.str.contains(r"\s", regex=True)]
        if len(spaced):
            raise ScoreFileError(f"trial id {spaced.iloc[0]!r} holds whitespace, which the {fmt} format cannot carry")


def format_scores(rows: pd.DataFrame, fmt: str) -> str:
    """The text of a score file from :func:`select_scores` rows, in ``fmt`` (:data:`FORMATS`).

    Raises:
        ScoreFileError: an unknown format, or ids that repeat (trial ids; ``utt_id`` for ``csv``)
            or hold whitespace (the ASVspoof formats).
    """
    fmt = _canonical(fmt)
    _check_keys(rows, fmt)
    values = [repr(float(v)) for v in rows["value"]]
    if fmt == "asvspoof5":
        return "filename\tcm-score\n" + "".join(f"{t}\t{v}\n" for t, v in zip(rows["trial_id"], values))
    if fmt == "asvspoof2021":
        return "".join(f"{t} {v}\n" for t, v in zip(rows["trial_id"], values))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["utt_id", "score", "label"])
    writer.writerows(zip(rows["utt_id"], values, (int(v) for v in rows["label"])))
    return buf.getvalue()


def write_score_file(
    scores_path: Path | str, out: Path | str, *, fmt: str, split: str | None = None, score: str = "score"
) -> pd.DataFrame:
    """Write one split of the scores in ``scores_path`` (Parquet) to ``out`` in ``fmt``, atomically.

    Returns:
        The rows written (:func:`select_scores`).

    Raises:
        ScoreFileError: ``scores_path`` is not a file, or any reason of :func:`select_scores`.
    """
    fmt = _canonical(fmt)
    scores_path = Path(scores_path)
    if not scores_path.is_file():
        raise ScoreFileError(f"{scores_path}: no such file")
    rows = select_scores(pd.read_parquet(scores_path), split=split, score=score)
    text = format_scores(rows, fmt)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return rows
