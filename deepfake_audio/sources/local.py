"""Clips already on disk: ``manifest`` (a CSV) and ``folder`` (real/ + fake/ subfolders).

Files are referenced in place, never copied. Paths in the output manifest are relative to the
working directory (the repository root when run by DVC) when they can be, else absolute.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pandas as pd
import soundfile as sf

from deepfake_audio.errors import ParamError
from deepfake_audio.manifest import CONDITION_COLUMNS
from deepfake_audio.sources import register_source

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au")

_LABELS = {
    "bonafide": "bonafide",
    "bona-fide": "bonafide",
    "bona fide": "bonafide",
    "real": "bonafide",
    "genuine": "bonafide",
    "1": "bonafide",
    "spoof": "spoof",
    "fake": "spoof",
    "0": "spoof",
}


def normalise_label(value: object, *, where: str) -> str:
    """Map the label spellings corpora use onto ``bonafide``/``spoof``; anything else raises."""
    text = str(value).strip().lower()
    if text.endswith(".0"):  # pandas reads a 0/1 column with blanks as floats
        text = text[:-2]
    try:
        return _LABELS[text]
    except KeyError:
        raise ValueError(f"{where}: unknown label {value!r}; use bonafide/bona-fide/real/1 or spoof/fake/0") from None


def display_path(path: Path) -> str:
    """``path`` relative to the working directory where possible (portable manifests)."""
    path = Path(os.path.abspath(path))
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def probe(path: Path) -> tuple[float, int]:
    """``(duration_s, sample_rate)`` from the header; ``(nan, 0)`` if unreadable.

    An unreadable file is kept here and rejected with its reason by the features stage, so it
    never vanishes silently.
    """
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError):
        return math.nan, 0
    return float(info.frames) / info.samplerate if info.samplerate else math.nan, int(info.samplerate)


def _row(path: Path, *, utt_id: str, label: str, speaker: str, attack: str) -> dict:
    duration_s, sample_rate = probe(path)
    return {
        "utt_id": utt_id,
        "path": display_path(path),
        "label": label,
        "speaker": speaker,
        "attack": attack if label == "spoof" else "-",
        "duration_s": duration_s,
        "sample_rate": sample_rate,
    }


@dataclasses.dataclass(frozen=True)
class ManifestOptions:
    """``{kind: manifest, path: labels.csv}``: a CSV with ``path,label[,speaker,attack]``;
    paths are relative to the CSV's folder.

    Columns named like a condition (:data:`~deepfake_audio.manifest.CONDITION_COLUMNS`: codec,
    language, ...) are kept, and ``conditions`` maps more: ``{condition: CSV column}``, e.g.
    ``{source_corpus: corpus}``, so every metrics block gets an EER per value.
    """

    path: str
    conditions: dict = dataclasses.field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        if not Path(self.path).is_file():
            raise ParamError(f"{prefix}.path", self.path, "an existing CSV file")
        for name in self.conditions:
            if name not in CONDITION_COLUMNS:
                raise ParamError(f"{prefix}.conditions", name, f"one of {list(CONDITION_COLUMNS)}")


@register_source("manifest", ManifestOptions)
def build_manifest(options: ManifestOptions, *, out_dir: Path, n_jobs: int) -> pd.DataFrame:
    csv_path = Path(options.path)
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    columns = {**{c: c for c in CONDITION_COLUMNS if c in table.columns}, **options.conditions}
    for col in ("path", "label", *columns.values()):
        if col not in table.columns:
            raise ValueError(f"{csv_path}: missing column {col!r}; columns are {list(table.columns)}")
    rows = []
    for i, rec in enumerate(table.to_dict("records")):
        where = f"{csv_path} row {i + 2}"  # +2: header line, 1-based
        if not rec["path"]:
            raise ValueError(f"{where}: empty path")
        label = normalise_label(rec["label"], where=where)
        rel = Path(rec["path"])
        path = rel if rel.is_absolute() else csv_path.parent / rel
        speaker = rec.get("speaker") or f"file:{rec['path']}"
        attack = rec.get("attack") or ("unknown" if label == "spoof" else "-")
        row = _row(path, utt_id=rel.with_suffix("").as_posix(), label=label, speaker=speaker, attack=attack)
        rows.append(row | {name: rec[col] for name, col in columns.items()})
    if not rows:
        raise ValueError(f"{csv_path}: no rows")
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class FolderOptions:
    """``{kind: folder, path: DIR}``: ``DIR/real`` (or ``bonafide``) and ``DIR/fake`` (or ``spoof``).

    A spoof file in a subfolder of ``fake/`` takes that subfolder's name as its attack. Speakers
    come from an optional ``speakers`` CSV (``path,speaker``, paths relative to ``DIR``); without
    it each file is its own group, so the split cannot leak a file but may leak a speaker.
    """

    path: str
    speakers: str | None = None

    def validate(self, prefix: str) -> None:
        if not Path(self.path).is_dir():
            raise ParamError(f"{prefix}.path", self.path, "an existing folder")
        if self.speakers is not None and not Path(self.speakers).is_file():
            raise ParamError(f"{prefix}.speakers", self.speakers, "an existing CSV file (path,speaker)")


@register_source("folder", FolderOptions)
def build_folder(options: FolderOptions, *, out_dir: Path, n_jobs: int) -> pd.DataFrame:
    root = Path(options.path)
    speakers: dict[str, str] = {}
    if options.speakers:
        table = pd.read_csv(options.speakers, dtype=str, keep_default_na=False)
        speakers = dict(zip(table["path"], table["speaker"]))
    rows = []
    for names, label in ((("real", "bonafide"), "bonafide"), (("fake", "spoof"), "spoof")):
        dirs = [root / n for n in names if (root / n).is_dir()]
        if not dirs:
            raise ValueError(f"{root}: needs a {' or '.join(n + '/' for n in names)} subfolder")
        for base in dirs:
            for path in sorted(p for p in base.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
                rel = path.relative_to(root).as_posix()
                sub = path.relative_to(base).parts
                attack = sub[0] if label == "spoof" and len(sub) > 1 else "unknown"
                rows.append(
                    _row(
                        path,
                        utt_id=str(Path(rel).with_suffix("")),
                        label=label,
                        speaker=speakers.get(rel, f"file:{rel}"),
                        attack=attack,
                    )
                )
    return pd.DataFrame(rows)
