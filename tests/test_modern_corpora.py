"""Tests for the newer published-corpus kinds: ASVspoof 2021 LA/DF, MLAAD, Fake-or-Real, CodecFake.

Each corpus is rebuilt in miniature in its published layout (keys and meta files, archive names,
folder names) with a handful of short generated clips. Downloads come from the local HTTP server
of tests/conftest.py; no test touches the network or the repository's ``data/``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_audio.data import materialize, materialize_eval_set
from deepfake_audio.errors import ParamError
from deepfake_audio.fetch import ChecksumError
from deepfake_audio.params import DataParams, from_dict
from deepfake_audio.sources import build_source
from deepfake_audio.sources.modern import mailabs_source
from tests.conftest import FileServer
from tests.test_corpora import CLIP_S, SR, _clip, _tar_files, _zip_tree

ROW_COLUMNS = ["utt_id", "label", "speaker", "attack", "partition"]


def _sorted(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return df[columns].sort_values("utt_id").reset_index(drop=True).astype(str)


def _tar_tree(src: Path, dest: Path, *, under: Path | None = None) -> Path:
    """A tar.gz of every file below ``src`` (member names relative to ``under``, default src's parent)."""
    base = under or src.parent
    return _tar_files(dest, {p.relative_to(base).as_posix(): p for p in sorted(src.rglob("*")) if p.is_file()})


# ---------------------------------------------------------------- ASVspoof 2021

LA21_KEYS = [
    "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval",
    "LA_0009 LA_E_5464494 none - bonafide bonafide notrim progress",
    "LA_0012 LA_E_1000001 opus loc_tx A13 spoof notrim hidden_track",
    "LA_0012 LA_E_1000002 ulaw sin_tx bonafide bonafide trim eval",
    "LA_0013 LA_E_1000003 gsm mad_tx A19 spoof notrim hidden",
]
LA21_CONDITIONS = ["subset", "codec", "channel"]
LA21_ROWS = pd.DataFrame(
    [
        ("LA_E_9332881", "spoof", "LA_0009", "A07", "eval", "eval", "alaw", "ita_tx"),
        ("LA_E_5464494", "bonafide", "LA_0009", "-", "eval", "progress", "none", "-"),
        ("LA_E_1000001", "spoof", "LA_0012", "A13", "eval", "hidden_track", "opus", "loc_tx"),
        ("LA_E_1000002", "bonafide", "LA_0012", "-", "eval", "eval", "ulaw", "sin_tx"),
        ("LA_E_1000003", "spoof", "LA_0013", "A19", "eval", "hidden_track", "gsm", "mad_tx"),
    ],
    columns=ROW_COLUMNS + LA21_CONDITIONS,
)

DF21_KEYS = [
    "LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -",
    "LA_0023 DF_E_2000012 nocodec asvspoof - bonafide notrim progress bonafide - - - -",
    "VCC2020_TEF1 DF_E_2000013 mp3m4a vcc2020 T05 spoof notrim eval neural_vocoder_autoregressive Task2 T05 F-F fin",
    "LA_0043 DF_E_2000026 low_mp3 asvspoof A09 spoof notrim eval waveform_concatenation - - - -",
    "LA_0044 DF_E_2000027 high_ogg vcc2018 - bonafide notrim hidden_track bonafide - - - -",
]
DF21_CONDITIONS = ["subset", "codec", "source_corpus", "vocoder", "language"]
DF21_ROWS = pd.DataFrame(
    [
        (
            "DF_E_2000011",
            "spoof",
            "LA_0023",
            "A14",
            "eval",
            "progress",
            "nocodec",
            "asvspoof",
            "traditional_vocoder",
            "",
        ),
        ("DF_E_2000012", "bonafide", "LA_0023", "-", "eval", "progress", "nocodec", "asvspoof", "", ""),
        (
            "DF_E_2000013",
            "spoof",
            "VCC2020_TEF1",
            "T05",
            "eval",
            "eval",
            "mp3m4a",
            "vcc2020",
            "neural_vocoder_autoregressive",
            "fin",
        ),
        (
            "DF_E_2000026",
            "spoof",
            "LA_0043",
            "A09",
            "eval",
            "eval",
            "low_mp3",
            "asvspoof",
            "waveform_concatenation",
            "",
        ),
        ("DF_E_2000027", "bonafide", "LA_0044", "-", "eval", "hidden_track", "high_ogg", "vcc2018", "", ""),
    ],
    columns=ROW_COLUMNS + DF21_CONDITIONS,
)


def make_asvspoof2021(base: Path, track: str, lines: list[str], *, seed: int) -> tuple[Path, Path]:
    """``base/extracted`` (audio folder + ``keys/``) and ``base/archives`` with the published archives.

    The keys archive also holds the ASV protocol (``keys/<track>/ASV/trial_metadata.txt``), whose
    name is the same as the CM one: a loader must not take it.
    """
    ext, arch = base / "extracted", base / "archives"
    audio = ext / f"ASVspoof2021_{track}_eval"
    for i, line in enumerate(lines):
        _clip(audio / "flac" / f"{line.split()[1]}.flac", seed + i)
    (audio / f"ASVspoof2021.{track}.cm.eval.trl.txt").write_text("\n".join(x.split()[1] for x in lines) + "\n")
    keys = ext / "keys" / track
    (keys / "CM").mkdir(parents=True)
    (keys / "CM" / "trial_metadata.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (keys / "ASV").mkdir()
    (keys / "ASV" / "trial_metadata.txt").write_text(
        "LA_0009-alaw LA_E_1-alaw alaw ita_tx bonafide target notrim eval\n"
    )
    arch.mkdir()
    _tar_tree(ext / "keys", arch / f"{track}-keys-full.tar.gz")
    flacs = sorted((audio / "flac").iterdir())
    if track == "LA":
        _tar_tree(audio, arch / "ASVspoof2021_LA_eval.tar.gz")
    else:  # four part archives, the README in the first
        for part in range(4):
            members = {f"ASVspoof2021_DF_eval/flac/{p.name}": p for p in flacs[part::4]}
            if part == 0:
                members["ASVspoof2021_DF_eval/ASVspoof2021.DF.cm.eval.trl.txt"] = (
                    audio / "ASVspoof2021.DF.cm.eval.trl.txt"
                )
            _tar_files(arch / f"ASVspoof2021_DF_eval_part0{part}.tar.gz", members)
    return ext, arch


# ---------------------------------------------------------------- MLAAD

MLAAD_HEADER = (
    "path|original_file|language|is_original_language|duration|training_data|model_name|architecture|transcript"
)
MLAAD_META = {
    # model folder: meta.csv rows
    "en/tts_models_en_ljspeech_vits": [
        "./fake/en/tts_models_en_ljspeech_vits/clip_0.wav|en_US/by_book/female/judy_bieber/ozma_of_oz/wavs/"
        "ozma_of_oz_01_f000001.wav|en|True|2.1|ljspeech|tts_models/en/ljspeech/vits|vits|Hello there",
        "./fake/en/tts_models_en_ljspeech_vits/clip_1.wav|en_US/by_book/mix/a_book/wavs/a_book_01_f000002.wav"
        "|en|True|1.8|ljspeech|tts_models/en/ljspeech/vits|vits|A mixed voice",
    ],
    # the language folder in `path` is misspelt (as in some MLAAD releases): the clip is beside meta.csv
    "de/facebook_mms-tts-deu": [
        "./fake/ge/facebook_mms-tts-deu/clip_0.wav|de_DE/by_book/male/karlsson/kleine_lord/wavs/kleine_lord_01_f000001.wav"
        "|de|True|2.5|mms|facebook/mms-tts-deu|facebook/mms-tts|Guten Tag",
        "./fake/de/facebook_mms-tts-deu/clip_1.wav|unknown.wav|de|True|2.5|mms|facebook/mms-tts-deu|facebook/mms-tts|Na",
    ],
}
MAILABS = [
    "en_US/by_book/female/judy_bieber/ozma_of_oz/wavs/ozma_of_oz_01_f000001.wav",
    "en_US/by_book/mix/a_book/wavs/a_book_01_f000002.wav",
    "de_DE/by_book/male/karlsson/kleine_lord/wavs/kleine_lord_01_f000001.wav",
]
MLAAD_CONDITIONS = ["language", "architecture"]
MLAAD_SPOOF_ROWS = pd.DataFrame(
    [
        (
            "fake/en/tts_models_en_ljspeech_vits/clip_0",
            "spoof",
            "mailabs:en_US/judy_bieber",
            "tts_models/en/ljspeech/vits",
            "",
            "en",
            "vits",
        ),
        (
            "fake/en/tts_models_en_ljspeech_vits/clip_1",
            "spoof",
            "mailabs:en_US/mix/a_book",
            "tts_models/en/ljspeech/vits",
            "",
            "en",
            "vits",
        ),
        (
            "fake/de/facebook_mms-tts-deu/clip_0",
            "spoof",
            "mailabs:de_DE/karlsson",
            "facebook/mms-tts-deu",
            "",
            "de",
            "facebook/mms-tts",
        ),
        (
            "fake/de/facebook_mms-tts-deu/clip_1",
            "spoof",
            "file:fake/de/facebook_mms-tts-deu/clip_1.wav",
            "facebook/mms-tts-deu",
            "",
            "de",
            "facebook/mms-tts",
        ),
    ],
    columns=ROW_COLUMNS + MLAAD_CONDITIONS,
)
MLAAD_BONA_ROWS = pd.DataFrame(
    [
        ("m-ailabs/" + MAILABS[0][:-4], "bonafide", "mailabs:en_US/judy_bieber", "-", "", "en", ""),
        ("m-ailabs/" + MAILABS[1][:-4], "bonafide", "mailabs:en_US/mix/a_book", "-", "", "en", ""),
        ("m-ailabs/" + MAILABS[2][:-4], "bonafide", "mailabs:de_DE/karlsson", "-", "", "de", ""),
    ],
    columns=ROW_COLUMNS + MLAAD_CONDITIONS,
)


def make_mlaad(base: Path) -> tuple[Path, Path]:
    """``base/mlaad/fake/<lang>/<model>/{meta.csv,*.wav}`` and ``base/mailabs`` (M-AILABS layout)."""
    root, mailabs = base / "mlaad", base / "mailabs"
    seed = 500
    for folder, rows in MLAAD_META.items():
        (root / "fake" / folder).mkdir(parents=True)
        (root / "fake" / folder / "meta.csv").write_text("\n".join([MLAAD_HEADER, *rows]) + "\n", encoding="utf-8")
        for row in rows:
            seed += 1
            _clip(root / "fake" / folder / Path(row.split("|")[0]).name, seed)
    for rel in MAILABS:
        seed += 1
        _clip(mailabs / rel, seed)
        (mailabs / rel).parent.parent.joinpath("metadata.csv").write_text("clip|text|text\n")
    return root, mailabs


# ---------------------------------------------------------------- Fake-or-Real

FOR_FOLDERS = {
    "for-original": "for-original",
    "for-norm": "for-norm",
    "for-2sec": "for-2seconds",
    "for-rerec": "for-rerecorded",
}
FOR_SPLITS = {"training": "train", "validation": "dev", "testing": "eval"}


def make_fake_or_real(base: Path) -> tuple[Path, Path, pd.DataFrame]:
    """Every version (one real and one fake clip per partition); the folder holding the versions,
    the folder of the four archives and the expected rows."""
    ext, arch = base / "for", base / "archives"
    arch.mkdir(parents=True)
    rows, seed = [], 700
    for version, folder in FOR_FOLDERS.items():
        for split, partition in FOR_SPLITS.items():
            for cls, label in (("real", "bonafide"), ("fake", "spoof")):
                name = f"file{seed}.wav_16k.wav_norm.wav"
                seed += 1
                _clip(ext / folder / split / cls / name, seed)
                rows.append(
                    (
                        f"{version}/{split}/{cls}/{name[:-4]}",
                        label,
                        f"for:{split}/{cls}/file{seed - 1}",
                        "for-tts" if label == "spoof" else "-",
                        partition,
                        version,
                    )
                )
        _tar_tree(ext / folder, arch / f"{version}.tar.gz")
    return ext, arch, pd.DataFrame(rows, columns=[*ROW_COLUMNS, "version"])


# ---------------------------------------------------------------- CodecFake

CODECS = ["encodec_24khz", "SpeechTokenizer"]
CODECFAKE_CLIPS = ["p225_001", "p226_002", "p227_003"]
CODECFAKE_PARTITION = {"p225": "train", "p226": "dev", "p227": "eval"}


def make_codecfake(base: Path) -> tuple[Path, Path, Path, pd.DataFrame]:
    """``<codec>/<clip>.wav`` for two codecs plus ``genuine/``; the archives; a VCTK-like folder; rows."""
    ext, arch, vctk = base / "codecfake", base / "archives", base / "vctk"
    arch.mkdir(parents=True)
    rows, seed = [], 900
    for codec in [*CODECS, "genuine"]:
        for clip in CODECFAKE_CLIPS:
            seed += 1
            _clip(ext / codec / f"{clip}.wav", seed)
            spoof = codec != "genuine"
            spk = clip.split("_")[0]
            rows.append(
                (
                    f"{codec}/{clip}",
                    "spoof" if spoof else "bonafide",
                    f"vctk:{spk}",
                    codec if spoof else "-",
                    CODECFAKE_PARTITION[spk],
                    codec if spoof else "",
                )
            )
        if codec != "genuine":
            _zip_tree(ext / codec, arch / f"{codec}.zip")
    for clip in CODECFAKE_CLIPS:  # VCTK 0.92 naming: <speaker>/<clip>_mic1.flac
        seed += 1
        _clip(vctk / "wav48_silence_trimmed" / clip[:4] / f"{clip}_mic1.flac", seed)
    return ext, arch, vctk, pd.DataFrame(rows, columns=[*ROW_COLUMNS, "codec"])


# ---------------------------------------------------------------- all of them, once


class Mini:
    """One miniature corpus: what ``path:``, ``archive:`` and ``url:`` point at, extra options, rows."""

    def __init__(
        self,
        kind: str,
        extracted: Path,
        archive: Path,
        served: dict[str, bytes],
        rows: pd.DataFrame,
        *,
        url_name: str = "",
        extra: dict | None = None,
        url_extra: dict | None = None,
    ) -> None:
        self.kind, self.extracted, self.archive, self.served, self.rows = kind, extracted, archive, served, rows
        self.url_name = url_name  # the archive's name on the mirror; "" where url is a folder
        self.extra = extra or {}  # options every build of it needs
        self.url_extra = url_extra or {}  # options a download needs besides (checksums of the test files)
        self.columns = list(rows.columns)
        self.fetched_rows = rows  # what an archive or a download gives (CodecFake's have no genuine/)


@pytest.fixture(scope="module")
def minis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Mini]:
    """Every miniature corpus, built once. Read-only: tests copy before they change anything."""
    base = tmp_path_factory.mktemp("modern")
    out: dict[str, Mini] = {}
    for kind, track, lines, rows, seed in (
        ("asvspoof2021_la", "LA", LA21_KEYS, LA21_ROWS, 100),
        ("asvspoof2021_df", "DF", DF21_KEYS, DF21_ROWS, 200),
    ):
        ext, arch = make_asvspoof2021(base / kind, track, lines, seed=seed)
        served = {p.name: p.read_bytes() for p in arch.iterdir()}
        keys = f"{track}-keys-full.tar.gz"
        sha = "sha256:" + hashlib.sha256(served[keys]).hexdigest()
        out[kind] = Mini(kind, ext, arch, served, rows, url_extra={"checksums": {keys: sha}})

    root, mailabs = make_mlaad(base / "mlaad")
    mlaad_zip = _zip_tree(root, base / "MLAAD.zip")
    out["mlaad"] = Mini(
        "mlaad",
        root,
        mlaad_zip,
        {"MLAAD.zip": mlaad_zip.read_bytes()},
        pd.concat([MLAAD_SPOOF_ROWS, MLAAD_BONA_ROWS], ignore_index=True),
        url_name="MLAAD.zip",
        extra={"bonafide": str(mailabs)},
    )

    ext, arch, rows = make_fake_or_real(base / "for")
    out["fake_or_real"] = Mini("fake_or_real", ext, arch, {p.name: p.read_bytes() for p in arch.iterdir()}, rows)

    ext, arch, vctk, rows = make_codecfake(base / "codecfake")
    out["codecfake"] = Mini(
        "codecfake", ext, arch, {p.name: p.read_bytes() for p in arch.iterdir()}, rows, extra={"codecs": CODECS}
    )
    out["codecfake"].vctk = vctk
    out["codecfake"].fetched_rows = rows[rows["label"] == "spoof"]
    return out


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from tmp_path: the loaders write paths relative to the working directory."""
    monkeypatch.chdir(tmp_path)


def _build(spec: dict, tmp_path: Path) -> pd.DataFrame:
    return build_source(spec, key="data.sources[0]", out_dir=tmp_path / "out", n_jobs=1)


def _url_for(mini: Mini, srv: FileServer) -> str:
    return srv.url(f"mirror/{mini.url_name}") if mini.url_name else srv.url("mirror")


def _assert_paths_under(rows: pd.DataFrame, *folders: Path) -> None:
    assert len(rows) > 0
    roots = [f.resolve() for f in folders]
    for p in rows["path"]:
        path = Path(p).resolve()
        assert path.is_file(), f"{p} does not exist (relative to {Path.cwd()})"
        assert any(r in path.parents for r in roots), f"{p} is not under {folders}"


KINDS = ["asvspoof2021_la", "asvspoof2021_df", "mlaad", "fake_or_real", "codecfake"]


# ---------------------------------------------------------------- each loader, each way of getting it


@pytest.mark.parametrize("kind", KINDS)
def test_loader_from_extracted_path(kind: str, minis: dict[str, Mini], file_server: FileServer, tmp_path: Path) -> None:
    mini = minis[kind]
    downloads = tmp_path / "dl"
    spec = {"kind": kind, "path": str(mini.extracted), "url": _url_for(mini, file_server), **mini.extra}
    rows = _build({**spec, "download_dir": str(downloads)}, tmp_path)
    pd.testing.assert_frame_equal(_sorted(rows, mini.columns), _sorted(mini.rows, mini.columns))
    assert rows["utt_id"].is_unique
    _assert_paths_under(rows, mini.extracted, *[Path(v) for k, v in mini.extra.items() if k == "bonafide"])
    assert file_server.requests == [], "path: must not download"
    assert not downloads.exists(), "path: must not extract anything"


@pytest.mark.parametrize("kind", KINDS)
def test_loader_from_downloaded_archive(kind: str, minis: dict[str, Mini], tmp_path: Path) -> None:
    mini = minis[kind]
    downloads = tmp_path / "dl"
    rows = _build({"kind": kind, "archive": str(mini.archive), "download_dir": str(downloads), **mini.extra}, tmp_path)
    pd.testing.assert_frame_equal(_sorted(rows, mini.columns), _sorted(mini.fetched_rows, mini.columns))
    spoofs = rows[rows["label"] == "spoof"]
    _assert_paths_under(spoofs, downloads / kind / "extracted")


@pytest.mark.parametrize("kind", KINDS)
def test_loader_downloads_from_url(kind: str, minis: dict[str, Mini], file_server: FileServer, tmp_path: Path) -> None:
    mini = minis[kind]
    file_server.files = dict(mini.served)
    downloads = tmp_path / "dl"
    spec = {"kind": kind, "url": _url_for(mini, file_server), "download_dir": str(downloads), **mini.extra}
    rows = _build({**spec, **mini.url_extra}, tmp_path)
    pd.testing.assert_frame_equal(_sorted(rows, mini.columns), _sorted(mini.fetched_rows, mini.columns))
    assert sorted(name for name, _ in file_server.requests) == sorted(mini.served), "each archive fetched once"
    for name, data in mini.served.items():
        assert (downloads / kind / name).read_bytes() == data
    _assert_paths_under(rows[rows["label"] == "spoof"], downloads / kind / "extracted")


# ---------------------------------------------------------------- ASVspoof 2021 specifics


def test_asvspoof2021_keys_checksum_is_the_published_one(
    minis: dict[str, Mini], file_server: FileServer, tmp_path: Path
) -> None:
    """Our fixture keys are not the organisers' file, so the published MD5 must reject them."""
    mini = minis["asvspoof2021_la"]
    file_server.files = dict(mini.served)
    with pytest.raises(ChecksumError, match=r"LA-keys-full\.tar\.gz: md5 .*expected 037592a0515971bbd0fa3bff2bad4abc"):
        _build({"kind": "asvspoof2021_la", "url": _url_for(mini, file_server), "download_dir": "dl"}, tmp_path)


@pytest.mark.parametrize("subsets", [["eval"], ["progress", "hidden_track"], ["hidden_track"]])
def test_asvspoof2021_subsets(subsets: list[str], minis: dict[str, Mini], tmp_path: Path) -> None:
    for kind in ("asvspoof2021_la", "asvspoof2021_df"):
        mini = minis[kind]
        rows = _build({"kind": kind, "path": str(mini.extracted), "subsets": subsets}, tmp_path)
        expected = mini.rows[mini.rows["subset"].isin(subsets)]
        assert sorted(rows["utt_id"]) == sorted(expected["utt_id"]), (kind, subsets)
        assert set(rows["subset"]) == set(expected["subset"])


def test_asvspoof2021_keys_option_folder_and_tarball(minis: dict[str, Mini], tmp_path: Path) -> None:
    """Audio and keys kept apart: keys: takes the extracted folder or the tar.gz, and a download
    then fetches only the audio."""
    mini = minis["asvspoof2021_la"]
    audio_only = tmp_path / "audio"
    shutil.copytree(mini.extracted / "ASVspoof2021_LA_eval", audio_only / "ASVspoof2021_LA_eval")
    with pytest.raises(FileNotFoundError, match=r"keys/LA/CM/trial_metadata\.txt.*LA-keys-full\.tar\.gz.*keys:"):
        _build({"kind": "asvspoof2021_la", "path": str(audio_only)}, tmp_path)
    for keys in (mini.extracted / "keys", mini.extracted / "keys" / "LA", mini.archive / "LA-keys-full.tar.gz"):
        rows = _build(
            {"kind": "asvspoof2021_la", "path": str(audio_only), "keys": str(keys), "download_dir": "dl"}, tmp_path
        )
        pd.testing.assert_frame_equal(_sorted(rows, mini.columns), _sorted(mini.rows, mini.columns))
    # the keys tarball was extracted under download_dir, not next to the audio
    assert (tmp_path / "dl" / "asvspoof2021_la" / "keys" / "keys" / "LA" / "CM" / "trial_metadata.txt").is_file()
    assert not (audio_only / "keys").exists()


def test_asvspoof2021_keys_option_skips_the_keys_download(
    minis: dict[str, Mini], file_server: FileServer, tmp_path: Path
) -> None:
    mini = minis["asvspoof2021_df"]
    file_server.files = {k: v for k, v in mini.served.items() if "keys" not in k}
    rows = _build(
        {
            "kind": "asvspoof2021_df",
            "url": _url_for(mini, file_server),
            "keys": str(mini.archive / "DF-keys-full.tar.gz"),
            "download_dir": "dl",
        },
        tmp_path,
    )
    assert len(rows) == len(DF21_KEYS)
    assert sorted(n for n, _ in file_server.requests) == [f"ASVspoof2021_DF_eval_part0{i}.tar.gz" for i in range(4)]


def test_asvspoof2021_bad_keys_rows_name_the_file(minis: dict[str, Mini], tmp_path: Path) -> None:
    base = tmp_path / "copy"
    shutil.copytree(minis["asvspoof2021_la"].extracted, base)
    keys = base / "keys" / "LA" / "CM" / "trial_metadata.txt"
    lines = list(LA21_KEYS)
    lines[2] = "LA_0012 LA_E_1000001 opus A13 spoof notrim eval"  # the channel column is gone
    keys.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"trial_metadata\.txt line 3: expected 8 whitespace-separated columns, found 7"
    ):
        _build({"kind": "asvspoof2021_la", "path": str(base)}, tmp_path)
    lines[2] = "LA_0012 LA_E_1000001 opus loc_tx A13 spoof notrim phase2"
    keys.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"trial_metadata\.txt line 3: unknown subset 'phase2'"):
        _build({"kind": "asvspoof2021_la", "path": str(base)}, tmp_path)
    lines[2] = "LA_0012 LA_E_1000001 opus loc_tx A13 maybe notrim eval"
    keys.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"trial_metadata\.txt line 3: unknown label 'maybe'"):
        _build({"kind": "asvspoof2021_la", "path": str(base)}, tmp_path)
    # The DF keys are 13 columns wide: an LA keys file given as DF keys is refused.
    with pytest.raises(ValueError, match=r"DF/CM/trial_metadata\.txt line 1: expected 13"):
        df_keys = tmp_path / "dfkeys" / "DF" / "CM"
        df_keys.mkdir(parents=True)
        (df_keys / "trial_metadata.txt").write_text("\n".join(LA21_KEYS) + "\n")
        _build(
            {"kind": "asvspoof2021_df", "path": str(minis["asvspoof2021_df"].extracted), "keys": str(df_keys.parent)},
            tmp_path,
        )


def test_asvspoof2021_missing_audio_is_named(minis: dict[str, Mini], tmp_path: Path) -> None:
    base = tmp_path / "copy"
    shutil.copytree(minis["asvspoof2021_la"].extracted, base)
    (base / "ASVspoof2021_LA_eval" / "flac" / "LA_E_1000002.flac").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 5 files.*LA_E_1000002\.flac"):
        _build({"kind": "asvspoof2021_la", "path": str(base)}, tmp_path)
    rows = _build({"kind": "asvspoof2021_la", "path": str(base), "missing": "skip"}, tmp_path)
    assert "LA_E_1000002" not in set(rows["utt_id"]) and len(rows) == 4


# ---------------------------------------------------------------- option errors


@pytest.mark.parametrize(
    ("kind", "extra", "key"),
    [
        ("asvspoof2021_la", {"subsets": ["eval", "hidden"]}, "subsets"),
        ("asvspoof2021_la", {"subsets": []}, "subsets"),
        ("asvspoof2021_df", {"partitions": ["train"]}, "partitions"),
        ("asvspoof2021_df", {"keys": "/nonexistent/keys"}, "keys"),
        ("asvspoof2021_la", {"subsets": "eval"}, "subsets"),
        ("mlaad", {"bonafide": "/nonexistent/m-ailabs"}, "bonafide"),
        ("mlaad", {"partitions": ["eval"]}, "partitions"),
        ("fake_or_real", {"versions": ["for-2seconds"]}, "versions"),
        ("fake_or_real", {"versions": []}, "versions"),
        ("fake_or_real", {"partitions": ["test"]}, "partitions"),
        ("codecfake", {"codecs": ["mp3"]}, "codecs"),
        ("codecfake", {"bonafide": "/nonexistent/vctk"}, "bonafide"),
        ("codecfake", {"checksums": {"encodec.zip": "md5:00"}}, "checksums"),
    ],
)
def test_bad_options_are_param_errors_naming_the_key(
    kind: str, extra: dict, key: str, minis: dict[str, Mini], tmp_path: Path
) -> None:
    with pytest.raises(ParamError) as info:
        _build({"kind": kind, "path": str(minis[kind].extracted), **extra}, tmp_path)
    assert info.value.key in (f"data.sources[0].{key}", key), info.value.key


# ---------------------------------------------------------------- MLAAD specifics


def test_mailabs_source_parses_the_published_layout() -> None:
    assert mailabs_source("en_US/by_book/female/judy_bieber/ozma_of_oz/wavs/x.wav") == ("en_US/judy_bieber", "en")
    assert mailabs_source("uk_UK/by_book/mix/book/wavs/x.wav") == ("uk_UK/mix/book", "uk")
    assert mailabs_source("./fr_FR/by_book/male/bernard/book/wavs/x.wav") == ("fr_FR/bernard", "fr")
    assert mailabs_source("en_US/x.wav") is None
    assert mailabs_source("") is None


def test_mlaad_without_bonafide_is_spoof_only(minis: dict[str, Mini], tmp_path: Path) -> None:
    rows = _build({"kind": "mlaad", "path": str(minis["mlaad"].extracted)}, tmp_path)
    pd.testing.assert_frame_equal(
        _sorted(rows, minis["mlaad"].columns), _sorted(MLAAD_SPOOF_ROWS, minis["mlaad"].columns)
    )
    assert (rows["partition"] == "").all()


def test_mlaad_spoof_and_source_share_a_speaker(minis: dict[str, Mini], tmp_path: Path) -> None:
    rows = _build({"kind": "mlaad", **minis["mlaad"].extra, "path": str(minis["mlaad"].extracted)}, tmp_path)
    by_speaker = rows.groupby("speaker")["label"].agg(set).to_dict()
    for speaker in ("mailabs:en_US/judy_bieber", "mailabs:de_DE/karlsson", "mailabs:en_US/mix/a_book"):
        assert by_speaker[speaker] == {"bonafide", "spoof"}, speaker
    assert set(rows.loc[rows["label"] == "bonafide", "architecture"]) == {""}


def test_mlaad_bad_meta_csv_names_the_file(minis: dict[str, Mini], tmp_path: Path) -> None:
    base = tmp_path / "copy"
    shutil.copytree(minis["mlaad"].extracted, base)
    meta = base / "fake" / "de" / "facebook_mms-tts-deu" / "meta.csv"
    meta.write_text(meta.read_text().replace("|", ","))
    with pytest.raises(
        ValueError, match=r"facebook_mms-tts-deu/meta\.csv: missing columns \['path', 'model_name', 'language'\]"
    ):
        _build({"kind": "mlaad", "path": str(base)}, tmp_path)
    meta.write_text(MLAAD_HEADER + "\n|x|de|True|1|m|model|arch|text\n")
    with pytest.raises(ValueError, match=r"meta\.csv row 2: empty path"):
        _build({"kind": "mlaad", "path": str(base)}, tmp_path)


def test_mlaad_missing_clip_error_and_skip(minis: dict[str, Mini], tmp_path: Path) -> None:
    base = tmp_path / "copy"
    shutil.copytree(minis["mlaad"].extracted, base)
    (base / "fake" / "en" / "tts_models_en_ljspeech_vits" / "clip_1.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 4 files.*clip_1\.wav"):
        _build({"kind": "mlaad", "path": str(base)}, tmp_path)
    rows = _build({"kind": "mlaad", "path": str(base), "missing": "skip"}, tmp_path)
    assert len(rows) == 3


def test_mailabs_folder_with_stray_audio_is_refused(minis: dict[str, Mini], tmp_path: Path) -> None:
    mailabs = tmp_path / "mailabs"
    shutil.copytree(minis["mlaad"].extra["bonafide"], mailabs)
    _clip(mailabs / "en_US" / "stray.wav", 1)
    with pytest.raises(ValueError, match=r"stray\.wav is not under <lang_code>/by_book/"):
        _build({"kind": "mlaad", "path": str(minis["mlaad"].extracted), "bonafide": str(mailabs)}, tmp_path)


# ---------------------------------------------------------------- Fake-or-Real specifics


def test_fake_or_real_versions_and_partitions(minis: dict[str, Mini], file_server: FileServer, tmp_path: Path) -> None:
    mini = minis["fake_or_real"]
    rows = _build(
        {"kind": "fake_or_real", "path": str(mini.extracted), "versions": ["for-2sec", "for-rerec"]}, tmp_path
    )
    assert set(rows["version"]) == {"for-2sec", "for-rerec"}
    assert rows["utt_id"].str.startswith(("for-2sec/", "for-rerec/")).all()
    assert rows.groupby(["version", "partition", "label"]).size().eq(1).all() and len(rows) == 12
    # only the archives of the chosen versions are fetched
    file_server.files = dict(mini.served)
    rows = _build(
        {"kind": "fake_or_real", "url": _url_for(mini, file_server), "versions": ["for-norm"], "partitions": ["eval"]},
        tmp_path,
    )
    assert [n for n, _ in file_server.requests] == ["for-norm.tar.gz"]
    assert set(rows["partition"]) == {"eval"} and set(rows["version"]) == {"for-norm"}
    assert dict(zip(rows["label"], rows["attack"])) == {"bonafide": "-", "spoof": "for-tts"}


def test_fake_or_real_missing_version_names_its_archive(minis: dict[str, Mini], tmp_path: Path) -> None:
    base = tmp_path / "for"
    shutil.copytree(minis["fake_or_real"].extracted / "for-2seconds", base / "for-2seconds")
    rows = _build({"kind": "fake_or_real", "path": str(base), "versions": ["for-2sec"]}, tmp_path)
    assert len(rows) == 6
    with pytest.raises(FileNotFoundError, match=r"no for-rerecorded or for-rerec folder.*for-rerec\.tar\.gz"):
        _build({"kind": "fake_or_real", "path": str(base), "versions": ["for-2sec", "for-rerec"]}, tmp_path)
    shutil.rmtree(base / "for-2seconds" / "validation" / "fake")
    with pytest.raises(FileNotFoundError, match=r"no fake/ folder in .*validation"):
        _build({"kind": "fake_or_real", "path": str(base), "versions": ["for-2sec"]}, tmp_path)


# ---------------------------------------------------------------- CodecFake specifics


def test_codecfake_codecs_partitions_and_vctk_bonafide(minis: dict[str, Mini], tmp_path: Path) -> None:
    mini = minis["codecfake"]
    rows = _build(
        {"kind": "codecfake", "path": str(mini.extracted), "codecs": ["SpeechTokenizer"], "bonafide": str(mini.vctk)},
        tmp_path,
    )
    spoofs = rows[rows["label"] == "spoof"]
    assert set(spoofs["codec"]) == {"SpeechTokenizer"} and set(spoofs["attack"]) == {"SpeechTokenizer"}
    bona = rows[rows["label"] == "bonafide"]
    assert sorted(bona["utt_id"]) == sorted(
        [f"genuine/{c}" for c in CODECFAKE_CLIPS]
        + [f"vctk/wav48_silence_trimmed/{c[:4]}/{c}_mic1" for c in CODECFAKE_CLIPS]
    )
    assert set(bona["codec"]) == {""}
    assert dict(zip(rows["speaker"], rows["partition"])) == {
        "vctk:p225": "train",
        "vctk:p226": "dev",
        "vctk:p227": "eval",
    }
    only_eval = _build(
        {"kind": "codecfake", "path": str(mini.extracted), "codecs": CODECS, "partitions": ["eval"]}, tmp_path
    )
    assert set(only_eval["speaker"]) == {"vctk:p227"} and len(only_eval) == 3


def test_codecfake_missing_codec_and_bad_name(minis: dict[str, Mini], tmp_path: Path) -> None:
    mini = minis["codecfake"]
    with pytest.raises(FileNotFoundError, match=r"no audiodec_24k_320d/ folder.*audiodec_24k_320d\.zip"):
        _build({"kind": "codecfake", "path": str(mini.extracted), "codecs": ["audiodec_24k_320d"]}, tmp_path)
    base = tmp_path / "copy"
    shutil.copytree(mini.extracted, base)
    _clip(base / "encodec_24khz" / "speaker9_001.wav", 3)
    with pytest.raises(ValueError, match=r"speaker9_001\.wav is not named after a VCTK speaker"):
        _build({"kind": "codecfake", "path": str(base), "codecs": ["encodec_24khz"]}, tmp_path)


def test_only_the_chosen_codec_archives_are_fetched(
    minis: dict[str, Mini], file_server: FileServer, tmp_path: Path
) -> None:
    mini = minis["codecfake"]
    file_server.files = dict(mini.served)
    rows = _build({"kind": "codecfake", "url": _url_for(mini, file_server), "codecs": ["encodec_24khz"]}, tmp_path)
    assert [n for n, _ in file_server.requests] == ["encodec_24khz.zip"]
    assert set(rows["codec"]) == {"encodec_24khz"} and len(rows) == 3


# ---------------------------------------------------------------- through materialize


def test_materialize_with_modern_corpora(minis: dict[str, Mini], tmp_path: Path) -> None:
    data = from_dict(
        DataParams,
        {
            "sources": [
                {"kind": "fake_or_real", "path": str(minis["fake_or_real"].extracted), "versions": ["for-norm"]}
            ],
            "eval_sets": {
                "la21": {
                    "kind": "asvspoof2021_la",
                    "path": str(minis["asvspoof2021_la"].extracted),
                    "subsets": ["eval"],
                },
                "mlaad": {"kind": "mlaad", "path": str(minis["mlaad"].extracted), **minis["mlaad"].extra},
            },
        },
        prefix="data",
    )
    train = materialize(data, out_dir=tmp_path / "raw", n_jobs=1)
    assert len(train) == 6 and (train["eval_set"] == "").all() and set(train["version"]) == {"for-norm"}
    assert sorted(train["partition"].unique()) == ["dev", "eval", "train"]

    la = materialize_eval_set(data, "la21", out_dir=tmp_path / "raw", n_jobs=1)
    assert sorted(la["utt_id"]) == ["la21/LA_E_1000002", "la21/LA_E_9332881"]
    assert (la["eval_set"] == "la21").all() and (la["partition"] == "eval").all() and (la["subset"] == "eval").all()
    assert dict(zip(la["utt_id"], la["codec"])) == {"la21/LA_E_1000002": "ulaw", "la21/LA_E_9332881": "alaw"}
    assert dict(zip(la["utt_id"], la["channel"])) == {"la21/LA_E_1000002": "sin_tx", "la21/LA_E_9332881": "ita_tx"}

    ml = materialize_eval_set(data, "mlaad", out_dir=tmp_path / "raw", n_jobs=1)
    assert len(ml) == 7 and (ml["label"] == "bonafide").sum() == 3
    assert set(ml["language"]) == {"en", "de"}
    assert ml.loc[ml["utt_id"] == "mlaad/fake/de/facebook_mms-tts-deu/clip_1", "speaker"].item() == (
        "file:mlaad/fake/de/facebook_mms-tts-deu/clip_1.wav"
    )
    for manifest in (train, la, ml):
        assert np.allclose(manifest["duration_s"], CLIP_S) and (manifest["sample_rate"] == SR).all()
        assert (manifest["content_hash"].str.len() > 0).all()
        assert all(Path(p).is_file() for p in manifest["path"])
