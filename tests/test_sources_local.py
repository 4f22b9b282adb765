"""Tests for the ``manifest`` and ``folder`` source kinds and for ``data.materialize``."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from deepfake_audio.data import materialize, materialize_eval_set, source_names
from deepfake_audio.errors import ParamError
from deepfake_audio.manifest import COLUMNS, EXTRA_COLUMNS, validate_manifest
from deepfake_audio.params import DataParams, from_dict
from deepfake_audio.sources import build_source, known_kinds
from tests.conftest import synth, write_signal

BINDING_WITHOUT_CALLER = [c for c in COLUMNS if c != "source"]


def _clip(path: Path, *, sample_rate: int = 16000, seconds: float = 0.25, seed: int = 0) -> Path:
    return write_signal(
        path, synth("harmonic", n_samples=int(sample_rate * seconds), sample_rate=sample_rate, seed=seed), sample_rate
    )


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _build(spec: dict, tmp_path: Path) -> pd.DataFrame:
    return build_source(spec, key="data.sources[0]", out_dir=tmp_path / "out", n_jobs=1)


# ---------------------------------------------------------------- manifest kind


def test_manifest_paths_are_relative_to_the_csv(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _clip(root / "audio" / "a.wav")
    _clip(root / "audio" / "b.flac", sample_rate=8000, seconds=0.5)
    csv = _write_csv(
        root / "labels.csv", "path,label,speaker,attack\naudio/a.wav,bonafide,s1,-\naudio/b.flac,spoof,s1,A07\n"
    )
    rows = _build({"kind": "manifest", "path": str(csv)}, tmp_path)
    assert list(rows.columns)[: len(BINDING_WITHOUT_CALLER)] == BINDING_WITHOUT_CALLER
    assert rows["utt_id"].tolist() == ["audio/a", "audio/b"]
    # Output paths resolve from the working directory to the files next to the CSV.
    assert [Path(p).resolve() for p in rows["path"]] == [
        (root / "audio" / "a.wav").resolve(),
        (root / "audio" / "b.flac").resolve(),
    ]
    assert rows["label"].tolist() == ["bonafide", "spoof"]
    assert rows["attack"].tolist() == ["-", "A07"]
    assert rows["speaker"].tolist() == ["s1", "s1"]
    assert rows["sample_rate"].tolist() == [16000, 8000]
    assert rows["duration_s"].tolist() == pytest.approx([0.25, 0.5])


def test_manifest_paths_resolve_from_another_working_directory(tmp_path: Path, monkeypatch) -> None:
    """Relative to the CSV, not to wherever the stage happens to run."""
    _clip(tmp_path / "c" / "x.wav")
    csv = _write_csv(tmp_path / "c" / "labels.csv", "path,label\nx.wav,real\n")
    elsewhere = tmp_path / "run" / "here"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    rows = _build({"kind": "manifest", "path": str(csv)}, tmp_path)
    assert Path(rows.loc[0, "path"]).resolve() == (tmp_path / "c" / "x.wav").resolve()
    assert rows.loc[0, "sample_rate"] == 16000


def test_manifest_absolute_path_is_kept(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "abs" / "x.wav")
    csv = _write_csv(tmp_path / "elsewhere.csv", f"path,label\n{clip.resolve()},spoof\n")
    rows = _build({"kind": "manifest", "path": str(csv)}, tmp_path)
    assert Path(rows.loc[0, "path"]).resolve() == clip.resolve()


@pytest.mark.parametrize(
    "spelling,label",
    [
        ("bonafide", "bonafide"),
        ("bona-fide", "bonafide"),
        ("Bona Fide", "bonafide"),
        ("real", "bonafide"),
        ("genuine", "bonafide"),
        ("1", "bonafide"),
        ("1.0", "bonafide"),
        (" REAL ", "bonafide"),
        ("spoof", "spoof"),
        ("fake", "spoof"),
        ("0", "spoof"),
        ("Spoof", "spoof"),
        ("0.0", "spoof"),
    ],
)
def test_manifest_label_spellings(tmp_path: Path, spelling: str, label: str) -> None:
    _clip(tmp_path / "x.wav")
    csv = _write_csv(tmp_path / "labels.csv", f"path,label\nx.wav,{spelling}\n")
    rows = _build({"kind": "manifest", "path": str(csv)}, tmp_path)
    assert rows.loc[0, "label"] == label
    assert rows.loc[0, "attack"] == ("-" if label == "bonafide" else "unknown")


@pytest.mark.parametrize("bad", ["maybe", "2", "", "bonafide?"])
def test_manifest_unknown_label_names_the_row(tmp_path: Path, bad: str) -> None:
    for name in ("a", "b", "c"):
        _clip(tmp_path / f"{name}.wav")
    csv = _write_csv(tmp_path / "labels.csv", f"path,label\na.wav,real\nb.wav,fake\nc.wav,{bad}\n")
    with pytest.raises(ValueError) as info:
        _build({"kind": "manifest", "path": str(csv)}, tmp_path)
    message = str(info.value)
    assert "row 4" in message  # line 4 of the file: header + 3 rows
    assert str(csv) in message
    assert repr(bad) in message


@pytest.mark.parametrize("header,missing", [("file,label", "path"), ("path,class", "label")])
def test_manifest_missing_column_raises(tmp_path: Path, header: str, missing: str) -> None:
    _clip(tmp_path / "x.wav")
    csv = _write_csv(tmp_path / "labels.csv", f"{header}\nx.wav,spoof\n")
    with pytest.raises(ValueError, match=f"missing column '{missing}'"):
        _build({"kind": "manifest", "path": str(csv)}, tmp_path)


def test_manifest_empty_path_and_no_rows_raise(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "labels.csv", "path,label\n,spoof\n")
    with pytest.raises(ValueError, match="row 2: empty path"):
        _build({"kind": "manifest", "path": str(csv)}, tmp_path)
    csv = _write_csv(tmp_path / "empty.csv", "path,label\n")
    with pytest.raises(ValueError, match="no rows"):
        _build({"kind": "manifest", "path": str(csv)}, tmp_path)


def test_manifest_unreadable_file_is_kept(tmp_path: Path, bad_files: dict[str, Path]) -> None:
    """Unreadable or missing files stay in the manifest (duration nan, rate 0) for the features stage to reject."""
    _clip(tmp_path / "ok.wav")
    lines = [
        "path,label",
        "ok.wav,real",
        f"{bad_files['not_audio']},fake",
        f"{bad_files['zero_bytes']},fake",
        "missing.wav,fake",
    ]
    csv = _write_csv(tmp_path / "labels.csv", "\n".join(lines) + "\n")
    rows = _build({"kind": "manifest", "path": str(csv)}, tmp_path)
    assert len(rows) == 4
    assert rows.loc[0, "sample_rate"] == 16000
    for i in (1, 2, 3):
        assert math.isnan(rows.loc[i, "duration_s"])
        assert rows.loc[i, "sample_rate"] == 0


def test_manifest_missing_speaker_makes_each_file_its_own_group(tmp_path: Path) -> None:
    _clip(tmp_path / "a.wav")
    _clip(tmp_path / "b.wav")
    csv = _write_csv(tmp_path / "labels.csv", "path,label,speaker\na.wav,real,\nb.wav,real,s9\n")
    rows = _build({"kind": "manifest", "path": str(csv)}, tmp_path)
    assert rows["speaker"].tolist() == ["file:a.wav", "s9"]


def test_manifest_csv_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ParamError) as info:
        _build({"kind": "manifest", "path": str(tmp_path / "nope.csv")}, tmp_path)
    assert info.value.key == "data.sources[0].path"


def test_manifest_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ParamError) as info:
        _build({"kind": "manifest", "path": "x.csv", "colour": "red"}, tmp_path)
    assert info.value.key == "data.sources[0].colour"
    with pytest.raises(ParamError, match="path"):
        _build({"kind": "manifest"}, tmp_path)


def test_corpus_fixture_builds_as_a_manifest(corpus: Path, tmp_path: Path) -> None:
    rows = _build({"kind": "manifest", "path": str(corpus)}, tmp_path)
    assert len(rows) == 48
    assert rows.groupby("speaker")["label"].nunique().eq(2).all()
    assert set(rows.loc[rows["label"] == "spoof", "attack"]) == {"A01", "A02"}
    assert (rows["sample_rate"] == 16000).all() and (rows["duration_s"] == 1.0).all()


# ---------------------------------------------------------------- folder kind


def _folder(root: Path, *, real: str = "real", fake: str = "fake") -> Path:
    _clip(root / real / "r1.wav")
    _clip(root / real / "sub" / "r2.flac")
    _clip(root / fake / "A01" / "f1.wav")
    _clip(root / fake / "A02" / "deep" / "f2.wav")
    _clip(root / fake / "f3.wav")
    (root / fake / "notes.txt").write_text("not audio", encoding="utf-8")
    return root


def test_folder_labels_and_attacks_from_subfolders(tmp_path: Path) -> None:
    root = _folder(tmp_path / "corpus")
    rows = _build({"kind": "folder", "path": str(root)}, tmp_path).set_index("utt_id")
    assert sorted(rows.index) == ["fake/A01/f1", "fake/A02/deep/f2", "fake/f3", "real/r1", "real/sub/r2"]
    assert rows.loc["real/r1", "label"] == "bonafide" and rows.loc["real/r1", "attack"] == "-"
    assert rows.loc["real/sub/r2", "attack"] == "-"
    assert rows.loc["fake/A01/f1", "attack"] == "A01"
    assert rows.loc["fake/A02/deep/f2", "attack"] == "A02"
    assert rows.loc["fake/f3", "attack"] == "unknown"
    assert (rows.loc[rows.index.str.startswith("fake"), "label"] == "spoof").all()
    assert rows.loc["real/r1", "speaker"] == "file:real/r1.wav"
    assert Path(rows.loc["fake/A01/f1", "path"]).resolve() == (root / "fake" / "A01" / "f1.wav").resolve()


def test_folder_alternative_names_and_speakers_csv(tmp_path: Path) -> None:
    root = _folder(tmp_path / "corpus", real="bonafide", fake="spoof")
    speakers = _write_csv(tmp_path / "speakers.csv", "path,speaker\nbonafide/r1.wav,alice\nspoof/A01/f1.wav,alice\n")
    rows = _build({"kind": "folder", "path": str(root), "speakers": str(speakers)}, tmp_path).set_index("utt_id")
    assert rows.loc["bonafide/r1", "speaker"] == "alice"
    assert rows.loc["spoof/A01/f1", "speaker"] == "alice"
    assert rows.loc["spoof/f3", "speaker"] == "file:spoof/f3.wav"


@pytest.mark.parametrize("present,needed", [("real", "fake/ or spoof/"), ("fake", "real/ or bonafide/")])
def test_folder_missing_subfolder_raises(tmp_path: Path, present: str, needed: str) -> None:
    _clip(tmp_path / "corpus" / present / "x.wav")
    with pytest.raises(ValueError, match=needed):
        _build({"kind": "folder", "path": str(tmp_path / "corpus")}, tmp_path)


def test_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ParamError) as info:
        _build({"kind": "folder", "path": str(tmp_path / "nope")}, tmp_path)
    assert info.value.key == "data.sources[0].path"


# ---------------------------------------------------------------- registry


def test_unknown_kind_lists_known_kinds(tmp_path: Path) -> None:
    with pytest.raises(ParamError) as info:
        _build({"kind": "s3_bucket", "path": "x"}, tmp_path)
    assert info.value.key == "data.sources[0].kind"
    assert info.value.value == "s3_bucket"
    for kind in ("demo", "folder", "manifest"):
        assert kind in known_kinds()
        assert kind in info.value.allowed


# ---------------------------------------------------------------- materialize


def _data_params(train_csv: Path, eval_csv: Path, **train_spec) -> DataParams:
    return from_dict(
        DataParams,
        {
            "sources": [{"kind": "manifest", "path": str(train_csv), **train_spec}],
            "eval_sets": {"bench": {"kind": "manifest", "path": str(eval_csv)}},
        },
        prefix="data",
    )


def test_materialize_builds_sources_and_each_eval_set_apart(corpus: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    _clip(bench / "wav" / "spk00_bona_00.wav", seed=1)  # same relative name as a corpus clip
    _clip(bench / "wav" / "z.wav", seed=2)
    bench_csv = _write_csv(bench / "labels.csv", "path,label,speaker\nwav/spk00_bona_00.wav,real,x\nwav/z.wav,fake,y\n")
    data = _data_params(corpus, bench_csv, name="tiny")
    train = materialize(data, out_dir=tmp_path / "raw", n_jobs=1)
    ev = materialize_eval_set(data, "bench", out_dir=tmp_path / "eval", n_jobs=1)
    manifest = pd.concat([train, ev], ignore_index=True)
    for part in (train, ev):
        validate_manifest(part)
        assert list(part.columns)[: len(COLUMNS) + len(EXTRA_COLUMNS)] == list(COLUMNS) + list(EXTRA_COLUMNS)
        assert part["utt_id"].is_monotonic_increasing
    assert manifest["utt_id"].is_unique
    assert (train["eval_set"] == "").all()
    assert len(train) == 48 and len(ev) == 2
    assert train["utt_id"].str.startswith("tiny/").all() and (train["source"] == "tiny").all()
    assert ev["utt_id"].str.startswith("bench/").all() and (ev["source"] == "bench").all()
    assert (ev["eval_set"] == "bench").all()
    assert set(ev["label"]) == {"bonafide", "spoof"}
    assert manifest["sample_rate"].dtype == "int64" and manifest["duration_s"].dtype == "float64"


def test_materialize_names_sources_by_kind(corpus: Path, tmp_path: Path) -> None:
    data = from_dict(
        DataParams,
        {"sources": [{"kind": "manifest", "path": str(corpus)}, {"kind": "manifest", "path": str(corpus)}]},
        prefix="data",
    )
    assert source_names(data) == ["manifest0", "manifest1"]
    manifest = materialize(data, out_dir=tmp_path / "raw", n_jobs=1)
    assert len(manifest) == 96 and manifest["utt_id"].is_unique
    assert set(manifest["source"]) == {"manifest0", "manifest1"}
    assert (manifest["eval_set"] == "").all()


def test_materialize_refuses_duplicate_source_names(corpus: Path, tmp_path: Path) -> None:
    data = from_dict(
        DataParams,
        {
            "sources": [
                {"kind": "manifest", "path": str(corpus), "name": "a"},
                {"kind": "manifest", "path": str(corpus), "name": "a"},
            ]
        },
        prefix="data",
    )
    with pytest.raises(ValueError, match="unique"):
        materialize(data, out_dir=tmp_path / "raw", n_jobs=1)


def test_materialize_unknown_kind_in_eval_set(corpus: Path, tmp_path: Path) -> None:
    data = from_dict(
        DataParams,
        {"sources": [{"kind": "manifest", "path": str(corpus)}], "eval_sets": {"bench": {"kind": "nope"}}},
        prefix="data",
    )
    with pytest.raises(ParamError) as info:
        materialize_eval_set(data, "bench", out_dir=tmp_path / "eval", n_jobs=1)
    assert info.value.key == "data.eval_sets.bench.kind"
    assert len(materialize(data, out_dir=tmp_path / "raw", n_jobs=1)) == 48  # the training pool builds regardless


def test_folder_missing_speakers_csv_is_a_param_error(tmp_path: Path) -> None:
    root = _folder(tmp_path / "corpus")
    with pytest.raises(ParamError) as info:
        _build({"kind": "folder", "path": str(root), "speakers": str(tmp_path / "nope.csv")}, tmp_path)
    assert info.value.key == "data.sources[0].speakers"


def test_materialize_eval_set_refuses_an_unknown_name_and_a_clash(corpus: Path, tmp_path: Path) -> None:
    data = _data_params(corpus, corpus, name="tiny")
    with pytest.raises(ValueError, match=r"no set 'nope' \(configured: bench\)"):
        materialize_eval_set(data, "nope", out_dir=tmp_path / "eval", n_jobs=1)
    clash = from_dict(
        DataParams,
        {
            "sources": [{"kind": "manifest", "path": str(corpus)}],
            "eval_sets": {"manifest": {"kind": "manifest", "path": str(corpus)}},
        },
        prefix="data",
    )
    for build in (
        lambda: materialize(clash, out_dir=tmp_path / "raw", n_jobs=1),
        lambda: materialize_eval_set(clash, "manifest", out_dir=tmp_path / "eval", n_jobs=1),
    ):
        with pytest.raises(ValueError, match="also a training source's name"):
            build()


def test_manifest_keeps_condition_columns_and_maps_more(tmp_path: Path) -> None:
    _clip(tmp_path / "a.wav", seed=1)
    _clip(tmp_path / "b.wav", seed=2)
    csv = _write_csv(tmp_path / "labels.csv", "path,label,codec,corpus\na.wav,real,mp3,vctk\nb.wav,fake,opus,tts_x\n")
    rows = build_source(
        {"kind": "manifest", "path": str(csv), "conditions": {"source_corpus": "corpus"}},
        key="s",
        out_dir=tmp_path,
        n_jobs=1,
    )
    assert rows["codec"].tolist() == ["mp3", "opus"] and rows["source_corpus"].tolist() == ["vctk", "tts_x"]
    assert "corpus" not in rows.columns
    with pytest.raises(ParamError) as info:
        build_source(
            {"kind": "manifest", "path": str(csv), "conditions": {"corpus": "corpus"}},
            key="s",
            out_dir=tmp_path,
            n_jobs=1,
        )
    assert info.value.key == "s.conditions"
    with pytest.raises(ValueError, match="missing column 'lang'"):
        build_source(
            {"kind": "manifest", "path": str(csv), "conditions": {"language": "lang"}},
            key="s",
            out_dir=tmp_path,
            n_jobs=1,
        )
