"""Tests for the published-corpus kinds (ASVspoof 2019 LA, ASVspoof 5, In-the-Wild, SceneFake).

Each corpus is rebuilt in miniature with its published layout (protocol files and archive names)
and a handful of short generated clips. Downloads come from a local HTTP server on 127.0.0.1
that serves a dict of ``name -> bytes``, supports Range requests and can cut a connection; no
test touches the network or the repository's ``data/``.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_audio.data import materialize, materialize_eval_set
from deepfake_audio.errors import ParamError
from deepfake_audio.fetch import ChecksumError, UnsafeArchiveError
from deepfake_audio.params import DataParams, from_dict
from deepfake_audio.sources import build_source
from tests.conftest import FileServer, synth, write_signal

SR = 16000
CLIP_S = 0.3
ROW_COLUMNS = ["utt_id", "label", "speaker", "attack", "partition"]


def _clip(path: Path, seed: int) -> Path:
    """0.3 s of seeded noise: every clip differs from every other."""
    return write_signal(path, synth("noise", n_samples=int(SR * CLIP_S), sample_rate=SR, seed=seed), SR)


def _zip_tree(src: Path, dest: Path) -> Path:
    """Zip ``src`` (its own folder name included as the top level), directory entries too."""
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src.parent).as_posix())
    return dest


def _tar_files(dest: Path, files: dict[str, Path | bytes]) -> Path:
    """A tar (gzip if the name ends in .gz) with ``member name -> file or bytes``."""
    mode = "w:gz" if dest.name.endswith(".gz") else "w"
    with tarfile.open(dest, mode) as tf:
        for name, src in files.items():
            data = src.read_bytes() if isinstance(src, Path) else src
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return dest


def _expected(rows: list[tuple]) -> pd.DataFrame:
    return _sorted(pd.DataFrame(rows, columns=ROW_COLUMNS))


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df[ROW_COLUMNS].sort_values("utt_id").reset_index(drop=True).astype(str)


# ---------------------------------------------------------------- miniature corpora

LA_PROTOCOLS = {
    "train": (
        "ASVspoof2019.LA.cm.train.trn.txt",
        [
            "LA_0079 LA_T_1138215 - - bonafide",
            "LA_0079 LA_T_1271820 - A01 spoof",
            "LA_0080 LA_T_1000137 - - bonafide",
            "LA_0080 LA_T_2000001 - A02 spoof",
        ],
    ),
    "dev": (
        "ASVspoof2019.LA.cm.dev.trl.txt",
        [
            "LA_0069 LA_D_1047731 - - bonafide",
            "LA_0069 LA_D_1105538 - A03 spoof",
        ],
    ),
    "eval": (
        "ASVspoof2019.LA.cm.eval.trl.txt",
        [
            "LA_0039 LA_E_2834763 - A11 spoof",
            "LA_0014 LA_E_8877452 - - bonafide",
            "LA_0014 LA_E_1000001 - A19 spoof",
        ],
    ),
}


def make_la(base: Path) -> Path:
    """``base/LA/...`` as in LA.zip; returns the ``LA`` folder."""
    la = base / "LA"
    protos = la / "ASVspoof2019_LA_cm_protocols"
    protos.mkdir(parents=True)
    seed = 0
    for partition, (name, lines) in LA_PROTOCOLS.items():
        (protos / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        for line in lines:
            seed += 1
            _clip(la / f"ASVspoof2019_LA_{partition}" / "flac" / f"{line.split()[1]}.flac", seed)
    asv = la / "ASVspoof2019_LA_asv_scores"
    asv.mkdir()
    for partition, lines in LA_ASV_SCORES.items():
        (asv / f"ASVspoof2019.LA.asv.{partition}.gi.trl.scores.txt").write_text("\n".join(lines) + "\n")
    return la


# The organisers' ASV scores: "<bonafide|attack> <target|nontarget|spoof> <score>" per trial.
LA_ASV_SCORES = {
    "dev": ["bonafide target 2.5", "bonafide target 1.5", "bonafide nontarget -3.0", "A03 spoof 0.5"],
    "eval": [
        "bonafide target 3.0",
        "bonafide target 1.0",
        "bonafide nontarget -1.0",
        "bonafide nontarget -2.0",
        "A11 spoof -0.5",
        "A11 spoof 1.5",
        "A12 spoof 3.0",
        "A12 spoof 0.0",
    ],
}


LA_ROWS = _expected(
    [
        (
            line.split()[1],
            line.split()[4],
            line.split()[0],
            line.split()[3] if line.split()[4] == "spoof" else "-",
            partition,
        )
        for partition, (_, lines) in LA_PROTOCOLS.items()
        for line in lines
    ]
)

ASV5_PROTOCOLS = {
    "train": (
        "ASVspoof5.train.tsv",
        "T",
        [
            "T_4850 T_0000000000 F - - - AC3 A05 spoof -",
            "T_1138 T_0000000001 M - - - - bonafide bonafide -",
            "T_4850 T_0000000002 F - - - AC1 A02 spoof -",
            "T_1138 T_0000000003 M - - - - bonafide bonafide -",
            "T_2000 T_0000000004 F - - - AC2 A03 spoof -",
        ],
    ),
    "dev": (
        "ASVspoof5.dev.track_1.tsv",
        "D",
        [
            "D_0062 D_0000000000 F - - - - bonafide bonafide -",
            "D_0062 D_0000000001 F - - - AC1 A11 spoof -",
            "D_0755 D_0000000002 M - - - AC2 A14 spoof -",
        ],
    ),
    "eval": (
        "ASVspoof5.eval.track_1.tsv",
        "E",
        [
            f"E_{i % 3:04d} E_{i:010d} {'FM'[i % 2]} C0{i % 9} 3 2541 - "
            + ("bonafide bonafide -" if i % 3 == 0 else f"A{17 + i} spoof -")
            for i in range(10)
        ],
    ),
}
ASV5_AUDIO = {"train": "flac_T", "dev": "flac_D", "eval": "flac_E_eval"}
ASV5_ARCHIVE_COUNT = {"T": 5, "D": 3, "E": 10}


def _asv5_archive(letter: str, i: int) -> str:
    return f"flac_{letter}_a{chr(ord('a') + i)}.tar"


def make_asvspoof5(base: Path) -> tuple[Path, Path]:
    """An extracted copy (``base/extracted``) and a folder of every published archive
    (``base/archives``): the protocols tarball and one clip per flac_*.tar archive."""
    ext = base / "extracted"
    arch = base / "archives"
    protos = ext / "ASVspoof5_protocols"  # audio folders sit one level above the protocols
    protos.mkdir(parents=True)
    arch.mkdir()
    seed = 100
    for partition, (name, letter, lines) in ASV5_PROTOCOLS.items():
        (protos / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert len(lines) == ASV5_ARCHIVE_COUNT[letter]
        for i, line in enumerate(lines):
            seed += 1
            member = f"{ASV5_AUDIO[partition]}/{line.split()[1]}.flac"
            clip = _clip(ext / member, seed)
            _tar_files(arch / _asv5_archive(letter, i), {member: clip})
    _tar_files(arch / "ASVspoof5_protocols.tar.gz", {name: protos / name for name, _, _ in ASV5_PROTOCOLS.values()})
    return ext, arch


ASV5_ROWS = _expected(
    [
        (
            line.split()[1],
            "spoof" if line.split()[8] == "spoof" else "bonafide",
            line.split()[0],
            line.split()[7] if line.split()[8] == "spoof" else "-",
            partition,
        )
        for partition, (_, _, lines) in ASV5_PROTOCOLS.items()
        for line in lines
    ]
)

ITW_META = [
    ("0.wav", "Alec Guinness", "spoof"),
    ("1.wav", "Alec Guinness", "bona-fide"),
    ("2.wav", "Barack Obama", "spoof"),
    ("3.wav", "Barack Obama", "bona-fide"),
    ("4.wav", "Barack Obama", "spoof"),
]


def make_in_the_wild(base: Path, meta: list[tuple[str, str, str]] = ITW_META) -> Path:
    root = base / "release_in_the_wild"
    root.mkdir(parents=True)
    lines = ["file,speaker,label"] + [",".join(row) for row in meta]
    (root / "meta.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for i, (name, _, _) in enumerate(meta):
        _clip(root / name, 200 + i)
    return root


ITW_ROWS = _expected(
    [
        (f[:-4], "bonafide" if lab == "bona-fide" else "spoof", spk, "unknown" if lab == "spoof" else "-", "")
        for f, spk, lab in ITW_META
    ]
)

SCENEFAKE_FILES = {
    # relative path: (label, speaker, attack, partition)
    "train/real/LA_T_1000137.wav": ("bonafide", "la:LA_T_1000137", "-", "train"),
    "train/fake/LA_T_1000137_airport.wav": ("spoof", "la:LA_T_1000137", "scene", "train"),
    "train/fake/street_01.wav": ("spoof", "file:train/fake/street_01.wav", "scene", "train"),
    "dev/real/LA_D_1000001.wav": ("bonafide", "la:LA_D_1000001", "-", "dev"),
    "dev/fake/LA_D_1000001_park.wav": ("spoof", "la:LA_D_1000001", "scene", "dev"),
    "eval/seen/real/LA_E_1000002.wav": ("bonafide", "la:LA_E_1000002", "-", "eval"),
    "eval/seen/fake/LA_E_1000002_bus.wav": ("spoof", "la:LA_E_1000002", "scene-seen", "eval"),
    "eval/unseen/real/LA_E_1000003.wav": ("bonafide", "la:LA_E_1000003", "-", "eval"),
    "eval/unseen/fake/LA_E_1000003_metro.wav": ("spoof", "la:LA_E_1000003", "scene-unseen", "eval"),
}


def make_scenefake(base: Path) -> Path:
    root = base / "SceneFake"
    for i, rel in enumerate(SCENEFAKE_FILES):
        _clip(root / rel, 300 + i)
    (root / "README.txt").write_text("not audio", encoding="utf-8")
    return root


SCENEFAKE_ROWS = _expected([(rel[:-4], *row) for rel, row in SCENEFAKE_FILES.items()])


class Corpus:
    """One miniature corpus: what ``path:``, ``archive:`` and ``url:`` point at, and the rows."""

    def __init__(
        self, kind: str, extracted: Path, archive: Path, served: dict[str, bytes], url_name: str, rows: pd.DataFrame
    ) -> None:
        self.kind, self.extracted, self.archive, self.served = kind, extracted, archive, served
        self.url_name = url_name  # the archive's name on the mirror; "" where url is a folder
        self.rows = rows


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Corpus]:
    """Every miniature corpus, built once. Read-only: tests copy before they change anything."""
    base = tmp_path_factory.mktemp("corpora")
    out: dict[str, Corpus] = {}

    la = make_la(base / "la")
    la_zip = _zip_tree(la, base / "LA.zip")
    out["asvspoof2019_la"] = Corpus(
        "asvspoof2019_la", base / "la", la_zip, {"LA.zip": la_zip.read_bytes()}, "LA.zip", LA_ROWS
    )

    ext, arch = make_asvspoof5(base / "asv5")
    out["asvspoof5"] = Corpus("asvspoof5", ext, arch, {p.name: p.read_bytes() for p in arch.iterdir()}, "", ASV5_ROWS)

    itw = make_in_the_wild(base / "itw")
    itw_zip = _zip_tree(itw, base / "release_in_the_wild.zip")
    out["in_the_wild"] = Corpus(
        "in_the_wild", itw, itw_zip, {itw_zip.name: itw_zip.read_bytes()}, itw_zip.name, ITW_ROWS
    )

    sf_root = make_scenefake(base / "scenefake")
    sf_zip = _zip_tree(sf_root, base / "SceneFake.zip")
    out["scenefake"] = Corpus(
        "scenefake", base / "scenefake", sf_zip, {sf_zip.name: sf_zip.read_bytes()}, sf_zip.name, SCENEFAKE_ROWS
    )
    return out


# ---------------------------------------------------------------- a local mirror


@pytest.fixture
def mirror(file_server: FileServer) -> FileServer:
    return file_server


def _base_url(srv: FileServer) -> str:
    return srv.url("mirror")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from tmp_path: the loaders write paths relative to the working directory."""
    monkeypatch.chdir(tmp_path)


def _build(spec: dict, tmp_path: Path) -> pd.DataFrame:
    return build_source(spec, key="data.sources[0]", out_dir=tmp_path / "out", n_jobs=1)


def _url_for(corpus: Corpus, srv: FileServer) -> str:
    return f"{_base_url(srv)}/{corpus.url_name}" if corpus.url_name else _base_url(srv)


def _assert_paths_exist(rows: pd.DataFrame, under: Path) -> None:
    assert len(rows) > 0
    for p in rows["path"]:
        path = Path(p)
        assert path.is_file(), f"{p} does not exist (relative to {Path.cwd()})"
        assert under.resolve() in path.resolve().parents, f"{p} is not under {under}"


# ---------------------------------------------------------------- each loader, each way of getting it

KINDS = ["asvspoof2019_la", "asvspoof5", "in_the_wild", "scenefake"]


@pytest.mark.parametrize("kind", KINDS)
def test_loader_from_extracted_path(kind: str, corpora: dict[str, Corpus], mirror: FileServer, tmp_path: Path) -> None:
    corpus = corpora[kind]
    downloads = tmp_path / "dl"
    rows = _build(
        {"kind": kind, "path": str(corpus.extracted), "url": _url_for(corpus, mirror), "download_dir": str(downloads)},
        tmp_path,
    )
    pd.testing.assert_frame_equal(_sorted(rows), corpus.rows)
    assert rows["utt_id"].is_unique
    _assert_paths_exist(rows, corpus.extracted)
    assert mirror.requests == [], "path: must not download"
    assert not downloads.exists(), "path: must not extract anything"
    assert rows["duration_s"].isna().all() and (rows["sample_rate"] == 0).all()  # filled by materialize


@pytest.mark.parametrize("kind", KINDS)
def test_loader_from_downloaded_archive(
    kind: str, corpora: dict[str, Corpus], mirror: FileServer, tmp_path: Path
) -> None:
    corpus = corpora[kind]
    mirror.files = dict(corpus.served)
    downloads = tmp_path / "dl"
    rows = _build(
        {"kind": kind, "archive": str(corpus.archive), "url": _url_for(corpus, mirror), "download_dir": str(downloads)},
        tmp_path,
    )
    pd.testing.assert_frame_equal(_sorted(rows), corpus.rows)
    assert mirror.requests == [], "archive: takes precedence over url: and downloads nothing"
    _assert_paths_exist(rows, downloads / kind / "extracted")
    # The archive is read where it is, not copied into download_dir.
    assert not any(p.is_file() and p.name in corpus.served for p in (downloads / kind).iterdir())


@pytest.mark.parametrize("kind", KINDS)
def test_loader_downloads_from_url(kind: str, corpora: dict[str, Corpus], mirror: FileServer, tmp_path: Path) -> None:
    corpus = corpora[kind]
    mirror.files = dict(corpus.served)
    downloads = tmp_path / "dl"
    rows = _build({"kind": kind, "url": _url_for(corpus, mirror), "download_dir": str(downloads)}, tmp_path)
    pd.testing.assert_frame_equal(_sorted(rows), corpus.rows)
    assert sorted(name for name, _ in mirror.requests) == sorted(corpus.served), "each archive fetched once"
    assert all(rng is None for _, rng in mirror.requests)
    for name, data in corpus.served.items():
        assert (downloads / kind / name).read_bytes() == data
        assert (downloads / kind / "extracted" / f".extracted-{name}.json").is_file()
    assert not list((downloads / kind).glob("*.part"))
    _assert_paths_exist(rows, downloads / kind / "extracted")


def test_asvspoof5_train_only_fetches_protocols_and_train_archives(
    corpora: dict[str, Corpus], mirror: FileServer, tmp_path: Path
) -> None:
    corpus = corpora["asvspoof5"]
    mirror.files = dict(corpus.served)
    downloads = tmp_path / "dl"
    rows = _build(
        {"kind": "asvspoof5", "url": _base_url(mirror) + "/", "partitions": ["train"], "download_dir": str(downloads)},
        tmp_path,
    )
    wanted = {"ASVspoof5_protocols.tar.gz"} | {_asv5_archive("T", i) for i in range(5)}
    assert sorted(name for name, _ in mirror.requests) == sorted(wanted)
    assert {p.name for p in (downloads / "asvspoof5").iterdir() if p.is_file()} == wanted
    assert set(rows["partition"]) == {"train"}
    pd.testing.assert_frame_equal(
        _sorted(rows), corpus.rows[corpus.rows["partition"] == "train"].reset_index(drop=True)
    )
    assert not (downloads / "asvspoof5" / "extracted" / "flac_D").exists()


def test_asvspoof5_archive_folder_uses_the_archives_present(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    """Only flac_T_aa, flac_D_aa and flac_E_aa fetched: missing: error names the count, skip uses them."""
    corpus = corpora["asvspoof5"]
    folder = tmp_path / "some"
    folder.mkdir()
    for name in ("ASVspoof5_protocols.tar.gz", "flac_T_aa.tar", "flac_D_aa.tar", "flac_E_aa.tar"):
        shutil.copy(corpus.archive / name, folder / name)
    spec = {"kind": "asvspoof5", "archive": str(folder), "download_dir": str(tmp_path / "dl")}
    with pytest.raises(FileNotFoundError, match=r"ASVspoof 5: 15 of 18 files .* missing: skip"):
        _build(spec, tmp_path)
    rows = _build({**spec, "missing": "skip"}, tmp_path)
    assert sorted(rows["utt_id"]) == ["D_0000000000", "E_0000000000", "T_0000000000"]
    assert dict(zip(rows["utt_id"], rows["partition"])) == {
        "T_0000000000": "train",
        "D_0000000000": "dev",
        "E_0000000000": "eval",
    }
    _assert_paths_exist(rows, tmp_path / "dl" / "asvspoof5" / "extracted")


@pytest.mark.parametrize("how", ["path", "archive"])
def test_asvspoof5_relative_paths_with_protocols_in_a_subfolder(
    how: str, corpora: dict[str, Corpus], tmp_path: Path
) -> None:
    """params.yaml gives relative paths; the audio folders sit next to ``ASVspoof5_protocols/``."""
    corpus = corpora["asvspoof5"]
    if how == "path":
        shutil.copytree(corpus.extracted, tmp_path / "asv5")
        spec = {"path": "asv5"}
        under = tmp_path / "asv5"
    else:
        folder = tmp_path / "archives"
        shutil.copytree(corpus.archive, folder)
        protos = corpus.extracted / "ASVspoof5_protocols"
        _tar_files(
            folder / "ASVspoof5_protocols.tar.gz",
            {f"ASVspoof5_protocols/{p.name}": p for p in sorted(protos.iterdir())},
        )
        spec = {"archive": "archives", "download_dir": "dl"}
        under = tmp_path / "dl" / "asvspoof5" / "extracted"
    rows = _build({"kind": "asvspoof5", **spec}, tmp_path)
    pd.testing.assert_frame_equal(_sorted(rows), corpus.rows)
    _assert_paths_exist(rows, under)


def test_archive_folder_without_any_archive_of_the_corpus(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="none of ASVspoof 5's archives"):
        _build(
            {"kind": "asvspoof5", "archive": str(tmp_path / "empty"), "download_dir": str(tmp_path / "dl")}, tmp_path
        )


# ---------------------------------------------------------------- download once, extract once, resume, verify


def test_second_build_neither_downloads_nor_extracts_again(
    corpora: dict[str, Corpus], mirror: FileServer, tmp_path: Path
) -> None:
    corpus = corpora["asvspoof2019_la"]
    mirror.files = dict(corpus.served)
    spec = {"kind": "asvspoof2019_la", "url": _url_for(corpus, mirror), "download_dir": str(tmp_path / "dl")}
    first = _build(spec, tmp_path)
    assert mirror.requests == [("LA.zip", None)]
    extracted = tmp_path / "dl" / "asvspoof2019_la" / "extracted" / "LA"
    # Edit the extracted eval protocol: a second extraction would restore the dropped line.
    proto = extracted / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    proto.write_text("\n".join(LA_PROTOCOLS["eval"][1][:2]) + "\n", encoding="utf-8")
    second = _build(spec, tmp_path)
    assert mirror.requests == [("LA.zip", None)], "the verified archive is not downloaded again"
    assert len(second) == len(first) - 1, "the archive was extracted a second time"
    assert "LA_E_1000001" not in set(second["utt_id"])


def test_download_resumes_after_a_cut_connection(
    corpora: dict[str, Corpus], mirror: FileServer, tmp_path: Path
) -> None:
    corpus = corpora["asvspoof2019_la"]
    data = corpus.served["LA.zip"]
    mirror.files = {"LA.zip": data}
    cut = len(data) // 2
    mirror.cut_after = cut
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    rows = _build(
        {
            "kind": "asvspoof2019_la",
            "url": _url_for(corpus, mirror),
            "download_dir": str(tmp_path / "dl"),
            "checksums": {"LA.zip": sha},
        },
        tmp_path,
    )
    assert mirror.requests == [("LA.zip", None), ("LA.zip", f"bytes={cut}-")]
    assert (tmp_path / "dl" / "asvspoof2019_la" / "LA.zip").read_bytes() == data
    pd.testing.assert_frame_equal(_sorted(rows), corpus.rows)


def test_checksum_mismatch_raises_and_leaves_nothing(
    corpora: dict[str, Corpus], mirror: FileServer, tmp_path: Path
) -> None:
    corpus = corpora["asvspoof2019_la"]
    mirror.files = dict(corpus.served)
    work = tmp_path / "dl" / "asvspoof2019_la"
    spec = {
        "kind": "asvspoof2019_la",
        "url": _url_for(corpus, mirror),
        "download_dir": str(tmp_path / "dl"),
        "checksums": {"LA.zip": "sha256:" + "0" * 64},
    }
    with pytest.raises(ChecksumError, match=r"LA\.zip: sha256 [0-9a-f]{64}, expected 0{64}"):
        _build(spec, tmp_path)
    assert len(mirror.requests) == 1
    assert not (work / "LA.zip").exists() and not (work / "LA.zip.part").exists()
    assert not (work / "extracted").exists()
    # A checksum for a file the corpus does not have is a typo, not something to ignore.
    ok = "sha256:" + hashlib.sha256(corpus.served["LA.zip"]).hexdigest()
    with pytest.raises(ParamError, match="other.zip"):
        _build({**spec, "checksums": {"LA.zip": ok, "other.zip": "sha256:" + "0" * 64}}, tmp_path)
    rows = _build({**spec, "checksums": {"LA.zip": ok}}, tmp_path)
    assert len(rows) == len(corpus.rows)


# ---------------------------------------------------------------- unsafe archives


def _la_zip_with(tmp_path: Path, corpus: Corpus, *, extra: str | None = None, symlink: str | None = None) -> Path:
    dest = tmp_path / "bad" / "LA.zip"
    dest.parent.mkdir()
    with zipfile.ZipFile(corpus.archive) as src, zipfile.ZipFile(dest, "w") as zf:
        for info in src.infolist():
            zf.writestr(info, src.read(info))
        if extra:
            zf.writestr(extra, b"evil")
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return dest


@pytest.mark.parametrize("how", ["dotdot", "nested_dotdot", "symlink"])
def test_unsafe_zip_is_refused_before_writing(
    how: str, corpora: dict[str, Corpus], mirror: FileServer, tmp_path: Path
) -> None:
    corpus = corpora["asvspoof2019_la"]
    bad = {
        "dotdot": dict(extra="../evil.txt"),
        "nested_dotdot": dict(extra="LA/../../../evil.txt"),
        "symlink": dict(symlink="LA/ASVspoof2019_LA_train/flac/link.flac"),
    }[how]
    archive = _la_zip_with(tmp_path, corpus, **bad)
    downloads = tmp_path / "dl"
    for spec in ({"archive": str(archive)}, {"url": f"{_base_url(mirror)}/LA.zip"}):
        shutil.rmtree(downloads, ignore_errors=True)
        mirror.files = {"LA.zip": archive.read_bytes()}
        with pytest.raises(UnsafeArchiveError):
            _build({"kind": "asvspoof2019_la", "download_dir": str(downloads), **spec}, tmp_path)
        target = downloads / "asvspoof2019_la" / "extracted"
        written = [p for p in target.rglob("*")] if target.exists() else []
        assert written == [], f"nothing may be extracted from an unsafe archive, got {written[:3]}"
        assert not list(tmp_path.rglob("evil.txt"))
        assert not (tmp_path / "dl" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("member", ["symlink", "dotdot"])
def test_unsafe_tar_member_in_asvspoof5_is_refused(member: str, corpora: dict[str, Corpus], tmp_path: Path) -> None:
    corpus = corpora["asvspoof5"]
    folder = tmp_path / "archives"
    shutil.copytree(corpus.archive, folder)
    bad = folder / "flac_T_aa.tar"
    with tarfile.open(bad, "a") as tf:
        if member == "symlink":
            info = tarfile.TarInfo("flac_T/T_9999999999.flac")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
        else:
            info = tarfile.TarInfo("../../evil.flac")
            info.size = 4
            tf.addfile(info, io.BytesIO(b"evil"))
    downloads = tmp_path / "dl"
    with pytest.raises(UnsafeArchiveError):
        _build(
            {"kind": "asvspoof5", "archive": str(folder), "partitions": ["train"], "download_dir": str(downloads)},
            tmp_path,
        )
    target = downloads / "asvspoof5" / "extracted"
    assert not (target / "flac_T" / "T_9999999999.flac").exists()
    assert not (target / "flac_T" / "T_0000000000.flac").exists(), "no member of the unsafe archive is written"
    assert not list(tmp_path.rglob("evil.flac"))


# ---------------------------------------------------------------- partitions, missing files, sampling


def test_eval_partition_only(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    la = corpora["asvspoof2019_la"]
    rows = _build({"kind": "asvspoof2019_la", "path": str(la.extracted), "partitions": ["eval"]}, tmp_path)
    assert set(rows["partition"]) == {"eval"}
    assert sorted(rows["utt_id"]) == sorted(line.split()[1] for line in LA_PROTOCOLS["eval"][1])

    asv5 = corpora["asvspoof5"]
    downloads = tmp_path / "dl"
    rows = _build(
        {"kind": "asvspoof5", "archive": str(asv5.archive), "partitions": ["eval"], "download_dir": str(downloads)},
        tmp_path,
    )
    assert set(rows["partition"]) == {"eval"} and len(rows) == 10
    extracted = downloads / "asvspoof5" / "extracted"
    markers = sorted(p.name for p in extracted.glob(".extracted-*"))
    assert markers == sorted(
        [".extracted-ASVspoof5_protocols.tar.gz.json"] + [f".extracted-{_asv5_archive('E', i)}.json" for i in range(10)]
    )
    assert not (extracted / "flac_T").exists() and not (extracted / "flac_D").exists()


def test_eval_partition_of_an_extracted_copy_without_train_audio(tmp_path: Path) -> None:
    """An eval-only ASVspoof 5 copy: protocols + flac_E_eval/ only."""
    root = tmp_path / "asv5"
    name, _, lines = ASV5_PROTOCOLS["eval"]
    for n, _, ls in ASV5_PROTOCOLS.values():
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_text("\n".join(ls) + "\n", encoding="utf-8")
    for i, line in enumerate(lines):
        _clip(root / "flac_E_eval" / f"{line.split()[1]}.flac", i)
    rows = _build({"kind": "asvspoof5", "path": str(root), "partitions": ["eval"]}, tmp_path)
    assert len(rows) == 10 and set(rows["partition"]) == {"eval"}
    with pytest.raises(FileNotFoundError, match="flac_T"):
        _build({"kind": "asvspoof5", "path": str(root), "partitions": ["train"]}, tmp_path)


@pytest.mark.parametrize("kind", ["asvspoof2019_la", "asvspoof5", "scenefake"])
def test_unknown_partition_is_a_param_error(kind: str, corpora: dict[str, Corpus], tmp_path: Path) -> None:
    with pytest.raises(ParamError) as info:
        _build({"kind": kind, "path": str(corpora[kind].extracted), "partitions": ["eval", "test"]}, tmp_path)
    assert info.value.key == "data.sources[0].partitions"
    assert "train" in info.value.allowed and "eval" in info.value.allowed


def test_in_the_wild_has_no_partitions(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="no official partitions"):
        _build({"kind": "in_the_wild", "path": str(corpora["in_the_wild"].extracted), "partitions": ["eval"]}, tmp_path)
    rows = _build({"kind": "in_the_wild", "path": str(corpora["in_the_wild"].extracted)}, tmp_path)
    assert (rows["partition"] == "").all()


def test_option_errors_are_param_errors(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    la = corpora["asvspoof2019_la"]
    cases = [
        ({"path": str(la.extracted), "archive": str(la.archive)}, "archive"),
        ({"path": str(tmp_path / "nope")}, "path"),
        ({"archive": str(tmp_path / "nope.zip")}, "archive"),
        ({"path": str(la.extracted), "missing": "ignore"}, "missing"),
        ({"path": str(la.extracted), "max_clips": -1}, "max_clips"),
        ({"path": str(la.extracted), "colour": "red"}, "colour"),
    ]
    for extra, key in cases:
        with pytest.raises(ParamError) as info:
            _build({"kind": "asvspoof2019_la", **extra}, tmp_path)
        assert info.value.key == f"data.sources[0].{key}", extra


def test_not_a_corpus_folder_names_the_marker(tmp_path: Path) -> None:
    (tmp_path / "elsewhere" / "x").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="ASVspoof2019_LA_cm_protocols.*datashare"):
        _build({"kind": "asvspoof2019_la", "path": str(tmp_path / "elsewhere")}, tmp_path)


def test_missing_file_error_names_the_count_and_skip_drops_it(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    base = tmp_path / "copy"
    shutil.copytree(corpora["asvspoof2019_la"].extracted, base)
    gone = base / "LA" / "ASVspoof2019_LA_dev" / "flac" / "LA_D_1105538.flac"
    gone.unlink()
    spec = {"kind": "asvspoof2019_la", "path": str(base)}
    with pytest.raises(FileNotFoundError) as info:
        _build(spec, tmp_path)
    assert "1 of 9 files" in str(info.value) and "LA_D_1105538.flac" in str(info.value)
    rows = _build({**spec, "missing": "skip"}, tmp_path)
    assert len(rows) == 8 and "LA_D_1105538" not in set(rows["utt_id"])
    _assert_paths_exist(rows, base)
    # Only the missing file's partition is affected.
    assert rows["partition"].value_counts().to_dict() == {"train": 4, "eval": 3, "dev": 1}


def test_missing_protocol_and_wrong_column_count(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    base = tmp_path / "copy"
    shutil.copytree(corpora["asvspoof2019_la"].extracted, base)
    protos = base / "LA" / "ASVspoof2019_LA_cm_protocols"
    (protos / "ASVspoof2019.LA.cm.dev.trl.txt").write_text("LA_0069 LA_D_1047731 bonafide\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected 5 whitespace-separated columns, found 3"):
        _build({"kind": "asvspoof2019_la", "path": str(base)}, tmp_path)
    (protos / "ASVspoof2019.LA.cm.dev.trl.txt").unlink()
    with pytest.raises(FileNotFoundError, match="ASVspoof2019.LA.cm.dev.trl.txt"):
        _build({"kind": "asvspoof2019_la", "path": str(base)}, tmp_path)
    rows = _build({"kind": "asvspoof2019_la", "path": str(base), "partitions": ["train", "eval"]}, tmp_path)
    assert set(rows["partition"]) == {"train", "eval"}


def test_max_clips_per_partition_is_seeded(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    la = corpora["asvspoof2019_la"]
    spec = {"kind": "asvspoof2019_la", "path": str(la.extracted), "max_clips": 2}
    picks = {}
    for seed in range(12):
        rows = _build({**spec, "seed": seed}, tmp_path)
        assert rows["partition"].value_counts().to_dict() == {"train": 2, "dev": 2, "eval": 2}
        assert rows["utt_id"].is_unique
        assert set(rows["utt_id"]) <= set(la.rows["utt_id"])
        again = _build({**spec, "seed": seed}, tmp_path)
        pd.testing.assert_frame_equal(rows, again)
        picks[seed] = tuple(rows["utt_id"])
    assert len(set(picks.values())) > 1, "the seed must change the sample"
    # A cap above the partition sizes keeps everything.
    rows = _build({**spec, "max_clips": 100}, tmp_path)
    pd.testing.assert_frame_equal(_sorted(rows), la.rows)
    # No partitions (In-the-Wild): the cap applies to the whole corpus.
    rows = _build({"kind": "in_the_wild", "path": str(corpora["in_the_wild"].extracted), "max_clips": 3}, tmp_path)
    assert len(rows) == 3


# ---------------------------------------------------------------- SceneFake and In-the-Wild specifics


def test_scenefake_needs_a_source_and_names_the_homepage(mirror: FileServer, tmp_path: Path) -> None:
    downloads = tmp_path / "dl"
    with pytest.raises(ValueError) as info:
        _build({"kind": "scenefake", "download_dir": str(downloads)}, tmp_path)
    message = str(info.value)
    assert "https://zenodo.org/records/7663324" in message
    assert "archive:" in message and "path:" in message and "url:" in message
    assert not (downloads / "scenefake" / "SceneFake.zip").exists()
    assert mirror.requests == []


def test_scenefake_attacks_and_grouping(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    rows = _build({"kind": "scenefake", "path": str(corpora["scenefake"].extracted)}, tmp_path)
    by_id = rows.set_index("utt_id")
    assert set(rows.loc[rows["label"] == "spoof", "attack"]) == {"scene", "scene-seen", "scene-unseen"}
    assert set(rows.loc[rows["label"] == "bonafide", "attack"]) == {"-"}
    assert by_id.loc["train/real/LA_T_1000137", "speaker"] == "la:LA_T_1000137"
    assert by_id.loc["train/fake/LA_T_1000137_airport", "speaker"] == "la:LA_T_1000137"
    assert by_id.loc["train/fake/LA_T_1000137_airport", "label"] == "spoof"
    assert by_id.loc["train/fake/street_01", "speaker"] == "file:train/fake/street_01.wav"
    assert by_id.loc["eval/unseen/fake/LA_E_1000003_metro", "attack"] == "scene-unseen"
    assert not rows["path"].str.endswith(".txt").any()


def test_scenefake_speakers_csv(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    speakers = tmp_path / "speakers.csv"
    speakers.write_text(
        "path,speaker\ntrain/fake/street_01.wav,spk_a\ntrain/real/LA_T_1000137.wav,spk_a\n", encoding="utf-8"
    )
    rows = _build(
        {
            "kind": "scenefake",
            "path": str(corpora["scenefake"].extracted),
            "speakers": str(speakers),
            "partitions": ["train"],
        },
        tmp_path,
    ).set_index("utt_id")
    assert rows.loc["train/fake/street_01", "speaker"] == "spk_a"
    assert rows.loc["train/real/LA_T_1000137", "speaker"] == "spk_a"
    assert rows.loc["train/fake/LA_T_1000137_airport", "speaker"] == "la:LA_T_1000137"


def test_in_the_wild_bad_label_names_the_row(tmp_path: Path) -> None:
    meta = [("0.wav", "A", "spoof"), ("1.wav", "A", "bona-fide"), ("2.wav", "B", "maybe")]
    root = make_in_the_wild(tmp_path / "itw", meta)
    with pytest.raises(ValueError) as info:
        _build({"kind": "in_the_wild", "path": str(root.parent)}, tmp_path)
    message = str(info.value)
    assert "meta.csv row 4" in message and "'maybe'" in message


def test_in_the_wild_missing_column(tmp_path: Path) -> None:
    root = make_in_the_wild(tmp_path / "itw")
    (root / "meta.csv").write_text("file,label\n0.wav,spoof\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"missing columns \['speaker'\]"):
        _build({"kind": "in_the_wild", "path": str(root)}, tmp_path)


# ---------------------------------------------------------------- through materialize


def test_materialize_with_an_eval_only_corpus(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    data = from_dict(
        DataParams,
        {
            "sources": [{"kind": "in_the_wild", "path": str(corpora["in_the_wild"].extracted)}],
            "eval_sets": {
                "la_eval": {
                    "kind": "asvspoof2019_la",
                    "path": str(corpora["asvspoof2019_la"].extracted),
                    "partitions": ["eval"],
                }
            },
        },
        prefix="data",
    )
    train = materialize(data, out_dir=tmp_path / "raw", n_jobs=1)
    ev = materialize_eval_set(data, "la_eval", out_dir=tmp_path / "eval", n_jobs=1)
    manifest = pd.concat([train, ev], ignore_index=True)
    assert len(train) == len(ITW_META) and len(ev) == 3
    assert (train["source"] == "in_the_wild").all() and train["utt_id"].str.startswith("in_the_wild/").all()
    assert (ev["eval_set"] == "la_eval").all() and (ev["source"] == "la_eval").all()
    assert sorted(ev["utt_id"]) == sorted(f"la_eval/{line.split()[1]}" for line in LA_PROTOCOLS["eval"][1])
    assert (ev["partition"] == "eval").all() and (train["partition"] == "").all()
    assert set(ev["attack"]) == {"-", "A11", "A19"}
    assert (manifest["content_hash"].str.len() > 0).all()
    assert manifest["content_hash"].is_unique  # every generated clip differs
    assert np.allclose(manifest["duration_s"], CLIP_S) and (manifest["sample_rate"] == SR).all()
    for p in manifest["path"]:
        assert Path(p).is_file()


def test_asvspoof2019_la_keeps_the_asv_scores_for_tdcf(corpora: dict[str, Corpus], tmp_path: Path) -> None:
    from deepfake_audio.evaluation import asv_scores_for
    from deepfake_audio.sources.corpora import ASV_SCORES

    rows = _build({"kind": "asvspoof2019_la", "path": str(corpora["asvspoof2019_la"].extracted)}, tmp_path)
    asv = pd.read_parquet(tmp_path / "out" / ASV_SCORES)
    assert sorted(asv["partition"].unique()) == ["dev", "eval"]
    assert asv[asv["partition"] == "eval"]["key"].value_counts().to_dict() == {"target": 2, "nontarget": 2, "spoof": 4}
    # A set drawn from one partition of the source finds them; a mix of partitions does not.
    scored = rows.assign(source="out")
    found = asv_scores_for(scored[scored["partition"] == "eval"], tmp_path)
    assert found is not None and sorted(found["spoof"].tolist()) == [-0.5, 0.0, 1.5, 3.0]
    assert asv_scores_for(scored, tmp_path) is None


def test_asvspoof2019_la_rejects_a_malformed_asv_score_file(tmp_path: Path) -> None:
    la = make_la(tmp_path / "corpus")
    (la / "ASVspoof2019_LA_asv_scores" / "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt").write_text("A11 impostor 1.0\n")
    with pytest.raises(ValueError, match="unknown trial keys"):
        _build({"kind": "asvspoof2019_la", "path": str(la)}, tmp_path)
