"""Newer published corpora: ASVspoof 2021 LA and DF, MLAAD, Fake-or-Real and CodecFake.

They are read through the machinery of :mod:`deepfake_audio.sources.corpora` (``path:``,
``archive:``, ``url:`` or the official download; ``partitions``, ``missing``, ``max_clips``), and
each fills the :data:`~deepfake_audio.manifest.CONDITION_COLUMNS` its corpus publishes per clip
(codec, channel, language, ...; "" where unknown), so every metrics block can break the EER down by
them. Files are referenced in place, never copied.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pandas as pd

from deepfake_audio.errors import ParamError
from deepfake_audio.fetch import extract
from deepfake_audio.sources.corpora import PARTITIONS, Corpus, CorpusOptions, RemoteFile, _find, _register
from deepfake_audio.sources.local import AUDIO_SUFFIXES, normalise_label

log = logging.getLogger(__name__)


def _audio_under(folder: Path) -> list[Path]:
    """Every audio file under ``folder``, sorted (stable ids and order)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _child(folder: Path, name: str) -> Path | None:
    """The sub-folder of ``folder`` called ``name``, ignoring case (``Training`` or ``training``)."""
    if not folder.is_dir():
        return None
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.lower() == name.lower():
            return child
    return None


def _check_choice(key: str, chosen: tuple[str, ...], known: tuple[str, ...]) -> None:
    if not chosen or set(chosen) - set(known):
        raise ParamError(key, list(chosen), f"a non-empty list of {list(known)}")


# --------------------------------------------------------------------------- ASVspoof 2021 LA / DF

ASV21_SUBSETS = ("eval", "progress", "hidden_track")
# The keys write the hidden subset "hidden_track" (the organisers' stage-1 scripts); the later
# evaluation package's config calls it "hidden", so both spellings are read.
_ASV21_SUBSET_SPELLINGS = {
    "eval": "eval",
    "progress": "progress",
    "hidden_track": "hidden_track",
    "hidden": "hidden_track",
}
_KEYS_FILE = "trial_metadata.txt"


@dataclasses.dataclass(frozen=True)
class Asvspoof2021Options(CorpusOptions):
    """ASVspoof 2021 options: those of every corpus, plus ``keys`` and ``subsets``.

    Attributes:
        keys: the keys and meta labels, published apart from the audio (``LA-keys-full`` /
            ``DF-keys-full``): their extracted folder (any folder above ``<LA|DF>/CM/``) or the
            ``.tar.gz`` itself. Without it they are looked for under the corpus root, where a
            download extracts them.
        subsets: the official trial subsets to keep: ``eval``, ``progress``, ``hidden_track``.
    """

    keys: str | None = None
    subsets: tuple[str, ...] = ASV21_SUBSETS

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if set(self.partitions) - {"eval"}:
            raise ParamError(
                f"{prefix}.partitions", list(self.partitions), "[eval]: ASVspoof 2021 has only an eval partition"
            )
        _check_choice(f"{prefix}.subsets", self.subsets, ASV21_SUBSETS)
        if self.keys is not None and not Path(self.keys).exists():
            raise ParamError(f"{prefix}.keys", self.keys, "an existing keys folder or keys .tar.gz")

    def needs(self, remote: RemoteFile) -> bool:
        return self.keys is None or not remote.name.endswith("-keys-full.tar.gz")


@dataclasses.dataclass(frozen=True)
class _Track:
    """The layout of one track's ``trial_metadata.txt`` (no header, whitespace-separated)."""

    name: str
    columns: tuple[str, ...]  # names, in file order; those in CONDITION_COLUMNS are kept as such


_LA_TRACK = _Track("LA", ("speaker", "trial", "codec", "channel", "attack", "key", "trim", "subset"))
_DF_TRACK = _Track(
    "DF",
    (
        "speaker",
        "trial",
        "codec",
        "source_corpus",
        "attack",
        "key",
        "trim",
        "subset",
        "vocoder",
        "task",
        "team",
        "gender_pair",
        "language",
    ),
)


def _find_keys(base: Path, track: str, *, max_depth: int = 4) -> Path | None:
    """``<track>/CM/trial_metadata.txt`` in ``base`` or the shallowest folder below it.

    Not simply the shallowest ``trial_metadata.txt``: the ASV protocol beside ``CM/`` has the same name.
    """
    level = [base]
    for _ in range(max_depth + 1):
        nxt = []
        for folder in level:
            candidates = [folder / track / "CM" / _KEYS_FILE]
            if folder.name == track:
                candidates.append(folder / "CM" / _KEYS_FILE)
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
            try:
                nxt.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
            except (NotADirectoryError, PermissionError):
                continue
        level = nxt
    return None


def read_trial_metadata(path: Path, n_columns: int) -> pd.DataFrame:
    """The whitespace-separated lines of a ``trial_metadata.txt``, every one ``n_columns`` wide.

    Returns a frame with integer columns ``0..n_columns-1`` (all strings). A line of another width
    is an error naming the file and line, not a row silently padded or cut.
    """
    if not path.is_file():
        raise FileNotFoundError(f"keys file {path} is missing")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_columns:
                raise ValueError(
                    f"{path} line {number}: expected {n_columns} whitespace-separated columns, found {len(fields)}"
                )
            rows.append(fields)
    if not rows:
        raise ValueError(f"{path}: no trials")
    return pd.DataFrame(rows, dtype=str)


def _asvspoof2021_reader(kind: str, track: _Track) -> Callable[..., pd.DataFrame]:
    homepage = "https://www.asvspoof.org/index2021.html"

    def read(root: Path, *, partitions: tuple[str, ...], options: Asvspoof2021Options) -> pd.DataFrame:
        if options.keys is not None:
            keys = Path(options.keys)
            if keys.is_file():
                keys = extract(keys, Path(options.download_dir) / kind / "keys")
            path = _find_keys(keys, track.name)
            if path is None:
                raise FileNotFoundError(f"keys: {options.keys} holds no {track.name}/CM/{_KEYS_FILE}")
        else:
            path = _find_keys(root, track.name)
            if path is None:
                raise FileNotFoundError(
                    f"ASVspoof 2021 {track.name}: no keys/{track.name}/CM/{_KEYS_FILE} under {root}; download "
                    f"{track.name}-keys-full.tar.gz ({homepage}) and set keys: (the file or its extracted folder)"
                )
        table = read_trial_metadata(path, len(track.columns))
        table.columns = list(track.columns)
        subsets = []
        for number, value in enumerate(table["subset"], start=1):
            if value not in _ASV21_SUBSET_SPELLINGS:
                raise ValueError(
                    f"{path} line {number}: unknown subset {value!r}; expected one of {list(ASV21_SUBSETS)}"
                )
            subsets.append(_ASV21_SUBSET_SPELLINGS[value])
        table["subset"] = subsets
        table["label"] = [normalise_label(v, where=f"{path} line {i}") for i, v in enumerate(table["key"], start=1)]
        out = pd.DataFrame(
            {
                "utt_id": table["trial"],
                "file": f"ASVspoof2021_{track.name}_eval/flac/" + table["trial"] + ".flac",
                "label": table["label"],
                "speaker": table["speaker"],
                "attack": table["attack"],
                "partition": "eval",
                "subset": table["subset"],
                "codec": table["codec"],
            }
        )
        if "channel" in table:
            out["channel"] = table["channel"]
        if "source_corpus" in table:
            out["source_corpus"] = table["source_corpus"]
        if "vocoder" in table:  # a property of the spoof: bona fide rows say "bonafide" there
            out["vocoder"] = table["vocoder"].where(table["label"] == "spoof", "")
        if "language" in table:
            out["language"] = table["language"].replace("-", "")
        keep = out["subset"].isin(options.subsets).to_numpy()
        log.info("%s: %d of %d trials in subsets %s (%s)", kind, keep.sum(), len(out), list(options.subsets), path)
        return out[keep]

    return read


_ZENODO_LA21 = "https://zenodo.org/records/4837263/files"
_ZENODO_DF21 = "https://zenodo.org/records/4835108/files"
_ASV21_KEYS = "https://www.asvspoof.org/asvspoof2021"

ASVSPOOF2021_LA = Corpus(
    kind="asvspoof2021_la",
    title="ASVspoof 2021 LA (eval)",
    homepage="https://zenodo.org/records/4837263",
    files=(
        RemoteFile("ASVspoof2021_LA_eval.tar.gz", f"{_ZENODO_LA21}/ASVspoof2021_LA_eval.tar.gz?download=1"),
        # MD5 as published in the organisers' evaluation package (github.com/asvspoof-challenge/2021)
        RemoteFile(
            "LA-keys-full.tar.gz",
            f"{_ASV21_KEYS}/LA-keys-full.tar.gz",
            checksum="md5:037592a0515971bbd0fa3bff2bad4abc",
        ),
    ),
    partitions=("eval",),
    marker="ASVspoof2021_LA_eval",
)
ASVSPOOF2021_DF = Corpus(
    kind="asvspoof2021_df",
    title="ASVspoof 2021 DF (eval)",
    homepage="https://zenodo.org/records/4835108",
    files=(
        *(
            RemoteFile(
                f"ASVspoof2021_DF_eval_part0{i}.tar.gz",
                f"{_ZENODO_DF21}/ASVspoof2021_DF_eval_part0{i}.tar.gz?download=1",
            )
            for i in range(4)
        ),
        RemoteFile(
            "DF-keys-full.tar.gz",
            f"{_ASV21_KEYS}/DF-keys-full.tar.gz",
            checksum="md5:dabbc5628de4fcef53036c99ac7ab93a",
        ),
    ),
    partitions=("eval",),
    marker="ASVspoof2021_DF_eval",
)


def _describe_asvspoof2021(track: _Track, audio: str) -> str:
    return f"""ASVspoof 2021 {track.name} evaluation data with the full keys.

    Audio: ``{audio}/flac/{track.name}_E_*.flac`` (16 kHz FLAC). Labels and conditions come from the
    separately published keys, ``keys/{track.name}/CM/trial_metadata.txt`` (no header, one trial per
    line): ``{" ".join(c.upper() for c in track.columns)}``. Mapped to ``codec``, ``channel`` (LA
    transmission), ``source_corpus`` and ``vocoder`` (DF; "" for bona fide), ``language`` (DF, "" for
    "-") and ``subset`` (``eval``/``progress``/``hidden_track``). ``partition`` is ``eval``:
    the corpus has no train or dev data. Homepage https://www.asvspoof.org/index2021.html.
    """


read_asvspoof2021_la = _asvspoof2021_reader(ASVSPOOF2021_LA.kind, _LA_TRACK)
read_asvspoof2021_la.__doc__ = _describe_asvspoof2021(_LA_TRACK, "ASVspoof2021_LA_eval")
read_asvspoof2021_df = _asvspoof2021_reader(ASVSPOOF2021_DF.kind, _DF_TRACK)
read_asvspoof2021_df.__doc__ = _describe_asvspoof2021(_DF_TRACK, "ASVspoof2021_DF_eval")
_register(ASVSPOOF2021_LA, Asvspoof2021Options, read_asvspoof2021_la)
_register(ASVSPOOF2021_DF, Asvspoof2021Options, read_asvspoof2021_df)


# --------------------------------------------------------------------------- MLAAD

_MAILABS_LANGUAGE = re.compile(r"[a-z]{2}_[A-Z]{2}")  # en_US, de_DE, uk_UK, ...
_MLAAD_REQUIRED = ("path", "model_name", "language")


@dataclasses.dataclass(frozen=True)
class MlaadOptions(CorpusOptions):
    """MLAAD options: those of every corpus, plus ``bonafide``.

    Attributes:
        bonafide: the extracted M-AILABS corpus (``<lang_code>/by_book/<gender>/<speaker>/<book>/wavs/``),
            MLAAD's bona fide counterpart. Without it MLAAD is spoof-only.
    """

    bonafide: str | None = None

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.bonafide is not None and not Path(self.bonafide).is_dir():
            raise ParamError(f"{prefix}.bonafide", self.bonafide, "an existing folder (the extracted M-AILABS corpus)")


def mailabs_source(rel: str) -> tuple[str, str] | None:
    """``(speaker, language)`` of an M-AILABS clip from its path, or None if it is not one.

    ``<lang>/by_book/<gender>/<speaker>/<book>/wavs/<clip>.wav`` gives ``<lang>/<speaker>``;
    multi-speaker books (``<lang>/by_book/mix/<book>/wavs/``) are grouped per book,
    ``<lang>/mix/<book>``. The language is the code's first part (``en_US`` -> ``en``), as MLAAD
    writes it.
    """
    parts = [p for p in PurePosixPath(rel.replace("\\", "/")).parts if p not in ("", ".", "/")]
    if len(parts) < 4 or parts[-2] != "wavs":
        return None
    code = next((p for p in parts[:-4] if _MAILABS_LANGUAGE.fullmatch(p)), None)
    if code is None:
        return None
    who, book = parts[-4], parts[-3]
    speaker = f"{code}/mix/{book}" if who == "mix" else f"{code}/{who}"
    return speaker, code.split("_")[0]


def _read_meta_csv(meta: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(meta, sep="|", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    except pd.errors.ParserError as exc:
        raise ValueError(f"{meta}: not a '|'-separated MLAAD meta.csv ({exc})") from None
    missing = [c for c in _MLAAD_REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"{meta}: missing columns {missing}; columns are {list(table.columns)} ('|'-separated)")
    return table


def read_mlaad(root: Path, *, partitions: tuple[str, ...], options: MlaadOptions) -> pd.DataFrame:
    """MLAAD (Müller et al., 2024): TTS clips per language and model, with M-AILABS as bona fide.

    Layout: ``fake/<language>/<model>/meta.csv`` beside that model's clips. ``meta.csv`` is
    ``|``-separated with a header: ``path|original_file|language|is_original_language|duration|
    training_data|model_name|architecture|transcript`` (newer releases add ``reference_speaker``).
    ``path`` reads ``./fake/<language>/<model>/<clip>.wav``; the clip is taken from the folder of
    its ``meta.csv`` (a few releases misspell the language folder there). Each spoof's attack is
    its ``model_name``; ``language`` and ``architecture`` are conditions. ``original_file`` is the
    M-AILABS clip whose text (and, for voice-cloning models, voice) the spoof reproduces: the spoof
    gets that clip's speaker, so a spoof and its source always land in the same split; a spoof
    whose source cannot be read is its own group.

    Bona fide clips come from M-AILABS (``bonafide:``), each with the speaker and language its
    path names. Without ``bonafide:`` the corpus is spoof-only: usable only beside another source
    or eval set that brings bona fide speech. MLAAD has no official partitions. Homepage
    https://deepfake-total.com/mlaad (files: https://huggingface.co/datasets/mueller91/MLAAD).
    """
    fake = root / "fake"
    metas = sorted(fake.glob("*/*/meta.csv"))
    if not metas:
        raise FileNotFoundError(f"MLAAD: no fake/<language>/<model>/meta.csv under {root}")
    parts = []
    for meta in metas:
        table = _read_meta_csv(meta)
        folder = meta.parent.relative_to(root).as_posix()
        names = [PurePosixPath(p.replace("\\", "/")).name for p in table["path"]]
        empty = [i for i, name in enumerate(names) if not name]
        if empty:
            raise ValueError(f"{meta} row {empty[0] + 2}: empty path")
        files = [f"{folder}/{name}" for name in names]
        sources = [mailabs_source(o) for o in table.get("original_file", pd.Series([""] * len(table)))]
        parts.append(
            pd.DataFrame(
                {
                    "utt_id": [PurePosixPath(f).with_suffix("").as_posix() for f in files],
                    "file": files,
                    "label": "spoof",
                    "speaker": [f"mailabs:{s[0]}" if s else f"file:{f}" for s, f in zip(sources, files)],
                    "attack": table["model_name"].to_numpy(),
                    "partition": "",
                    "language": table["language"].to_numpy(),
                    "architecture": table["architecture"].to_numpy() if "architecture" in table else "",
                }
            )
        )
    spoofs = pd.concat(parts, ignore_index=True)
    if options.bonafide is None:
        log.warning("mlaad: no bonafide: given, so %d spoofs and no bona fide clips", len(spoofs))
        return spoofs
    bona = _read_mailabs(Path(options.bonafide))
    log.info("mlaad: %d spoofs, %d bona fide M-AILABS clips", len(spoofs), len(bona))
    return pd.concat([spoofs, bona], ignore_index=True)


def _read_mailabs(base: Path) -> pd.DataFrame:
    base = base.absolute()
    rows = []
    for path in _audio_under(base):
        rel = path.relative_to(base).as_posix()
        source = mailabs_source(rel)
        if source is None:
            raise ValueError(f"M-AILABS: {path} is not under <lang_code>/by_book/<gender>/<speaker>/<book>/wavs/")
        rows.append(
            {
                "utt_id": "m-ailabs/" + rel[: -len(path.suffix)],
                "file": str(path),  # absolute: it lies outside the MLAAD root
                "label": "bonafide",
                "speaker": f"mailabs:{source[0]}",
                "attack": "-",
                "partition": "",
                "language": source[1],
                "architecture": "",
            }
        )
    if not rows:
        raise FileNotFoundError(f"M-AILABS: no audio under {base}")
    return pd.DataFrame(rows)


MLAAD = Corpus(
    kind="mlaad",
    title="MLAAD (Müller et al., 2024)",
    homepage="https://deepfake-total.com/mlaad",
    files=(RemoteFile("MLAAD.zip", ""),),  # published as a Hugging Face repository, not one archive
    partitions=(),
    marker="fake",
)
_register(MLAAD, MlaadOptions, read_mlaad)


# --------------------------------------------------------------------------- Fake-or-Real

# version -> (its archive, the folder names it extracts to)
FOR_VERSIONS = {
    "for-original": ("for-original.tar.gz", ("for-original",)),
    "for-norm": ("for-norm.tar.gz", ("for-norm",)),
    "for-2sec": ("for-2sec.tar.gz", ("for-2seconds", "for-2sec")),
    "for-rerec": ("for-rerec.tar.gz", ("for-rerecorded", "for-rerec")),
}
_FOR_PARTITIONS = {"train": "training", "dev": "validation", "eval": "testing"}
_FOR_CLASSES = {"real": "bonafide", "fake": "spoof"}


@dataclasses.dataclass(frozen=True)
class FakeOrRealOptions(CorpusOptions):
    """Fake-or-Real options: those of every corpus, plus ``versions``.

    Attributes:
        versions: which of the four versions to read (only their archives are fetched).
    """

    versions: tuple[str, ...] = tuple(FOR_VERSIONS)

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        _check_choice(f"{prefix}.versions", self.versions, tuple(FOR_VERSIONS))

    def needs(self, remote: RemoteFile) -> bool:
        return remote.name in {FOR_VERSIONS[v][0] for v in self.versions}


def _for_split_folder(version_dir: Path) -> Path:
    """The folder holding ``training/validation/testing``: the version folder or one level below."""
    candidates = [version_dir, *sorted(p for p in version_dir.iterdir() if p.is_dir())]
    for folder in candidates:
        if any(_child(folder, name) for name in _FOR_PARTITIONS.values()):
            return folder
    raise FileNotFoundError(f"Fake-or-Real: no training/, validation/ or testing/ folder in {version_dir}")


def read_fake_or_real(root: Path, *, partitions: tuple[str, ...], options: FakeOrRealOptions) -> pd.DataFrame:
    """Fake-or-Real (Reimao & Tzerpos, 2019): ``<version>/{training,validation,testing}/{real,fake}/*``.

    Four versions of one corpus: ``for-original``, ``for-norm`` (normalised: 16 kHz mono, balanced
    classes and genders), ``for-2sec`` (cut to 2 s; folder ``for-2seconds``) and ``for-rerec``
    (``for-2sec`` played and re-recorded; folder ``for-rerecorded``). The version is the ``version``
    condition and the first part of every ``utt_id``, so ids stay unique when versions are mixed.
    Partitions: training -> train, validation -> dev, testing -> eval.

    The fakes come from several TTS systems (Deep Voice 3, Google Wavenet TTS and others), but the
    corpus does not say which made which clip, so every spoof's attack is ``for-tts``. It names no
    speakers either: a clip is grouped with the clips of the same name stem (``file123`` of
    ``file123.wav_16k.wav_norm...``) in the same class and partition folder, which keeps the
    versions of one recording together where the corpus kept its names. Homepage
    https://bil.eecs.yorku.ca/datasets/.
    """
    rows = []
    for version in options.versions:
        archive, names = FOR_VERSIONS[version]
        version_dir = _find(root, names, max_depth=2)
        if version_dir is None:
            raise FileNotFoundError(
                f"Fake-or-Real: no {' or '.join(names)} folder under {root}; extract {archive} "
                f"or leave {version} out of versions:"
            )
        splits = _for_split_folder(version_dir)
        for partition in partitions:
            split_dir = _child(splits, _FOR_PARTITIONS[partition])
            if split_dir is None:
                raise FileNotFoundError(f"Fake-or-Real {version}: no {_FOR_PARTITIONS[partition]}/ folder in {splits}")
            for cls, label in _FOR_CLASSES.items():
                class_dir = _child(split_dir, cls)
                if class_dir is None:
                    raise FileNotFoundError(f"Fake-or-Real {version}: no {cls}/ folder in {split_dir}")
                for path in _audio_under(class_dir):
                    inner = path.relative_to(version_dir).as_posix()
                    rows.append(
                        {
                            "utt_id": f"{version}/{inner[: -len(path.suffix)]}",
                            "file": path.relative_to(root).as_posix(),
                            "label": label,
                            "speaker": f"for:{split_dir.name.lower()}/{cls}/{path.name.split('.')[0]}",
                            "attack": "for-tts",
                            "partition": partition,
                            "version": version,
                        }
                    )
    if not rows:
        raise ValueError(f"Fake-or-Real: no audio under {root} for {list(options.versions)}")
    return pd.DataFrame(rows)


_FOR_SHARE = "https://bil.eecs.yorku.ca/share"
FAKE_OR_REAL = Corpus(
    kind="fake_or_real",
    title="Fake-or-Real (Reimao & Tzerpos, 2019)",
    homepage="https://bil.eecs.yorku.ca/datasets/",
    files=tuple(RemoteFile(archive, f"{_FOR_SHARE}/{archive}") for archive, _ in FOR_VERSIONS.values()),
    partitions=PARTITIONS,
    marker=tuple(name for _, names in FOR_VERSIONS.values() for name in names),
)
_register(FAKE_OR_REAL, FakeOrRealOptions, read_fake_or_real)


# --------------------------------------------------------------------------- CodecFake

CODECFAKE_CODECS = (
    "SpeechTokenizer",
    "academicodec_hifi_16k_320d",
    "academicodec_hifi_16k_320d_large_uni",
    "academicodec_hifi_24k_320d",
    "audiodec_24k_320d",
    "descript-audio-codec-16khz",
    "descript-audio-codec-24khz",
    "descript-audio-codec-44khz",
    "encodec_24khz",
    "funcodec-funcodec_en_libritts-16k-gr1nq32ds320",
    "funcodec-funcodec_en_libritts-16k-gr8nq32ds320",
    "funcodec-funcodec_en_libritts-16k-nq32ds320",
    "funcodec-funcodec_en_libritts-16k-nq32ds640",
    "funcodec-funcodec_zh_en_general_16k_nq32ds320",
    "funcodec-funcodec_zh_en_general_16k_nq32ds640",
)
_CODECFAKE_GENUINE = "genuine"  # the authors' name for the untouched VCTK clips
# The authors' speaker split (CodecDetect, data_utils.py); every other VCTK speaker is train.
_CODECFAKE_PARTITION = {"p226": "dev", "p229": "dev", "p227": "eval", "p228": "eval"}
_VCTK_SPEAKER = re.compile(r"(p\d{3}|s5)_")


@dataclasses.dataclass(frozen=True)
class CodecFakeOptions(CorpusOptions):
    """CodecFake options: those of every corpus, plus ``codecs`` and ``bonafide``.

    Attributes:
        codecs: which codecs' re-syntheses to read (only their archives are fetched).
        bonafide: a folder of the original VCTK clips (any layout; names ``p225_001[_mic1].wav``).
            A ``genuine/`` folder beside the codec folders is read as bona fide too.
    """

    codecs: tuple[str, ...] = CODECFAKE_CODECS
    bonafide: str | None = None

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        _check_choice(f"{prefix}.codecs", self.codecs, CODECFAKE_CODECS)
        if self.bonafide is not None and not Path(self.bonafide).is_dir():
            raise ParamError(f"{prefix}.bonafide", self.bonafide, "an existing folder (the VCTK clips)")

    def needs(self, remote: RemoteFile) -> bool:
        return remote.name.removesuffix(".zip") in self.codecs


def _vctk_rows(files: Iterator[tuple[Path, str, str]], *, label: str, codec: str) -> Iterator[dict]:
    """Rows for ``(path, file as the table names it, utt_id)``; the speaker is the VCTK name prefix."""
    for path, file, utt_id in files:
        match = _VCTK_SPEAKER.match(path.name)
        if match is None:
            raise ValueError(f"CodecFake: {path} is not named after a VCTK speaker (p225_001.wav, ...)")
        speaker = match.group(1)
        yield {
            "utt_id": utt_id,
            "file": file,
            "label": label,
            "speaker": f"vctk:{speaker}",
            "attack": codec or "-",
            "partition": _CODECFAKE_PARTITION.get(speaker, "train"),
            "codec": codec,
        }


def read_codecfake(root: Path, *, partitions: tuple[str, ...], options: CodecFakeOptions) -> pd.DataFrame:
    """CodecFake (Wu et al., Interspeech 2024): VCTK re-synthesised by 15 neural audio codecs.

    Layout (the ``<codec>.zip`` files of https://huggingface.co/datasets/rogertseng/CodecFake_wavs):
    ``<codec>/<speaker>_<utterance>.wav``, one folder per codec (``encodec_24khz``,
    ``descript-audio-codec-16khz``, ...). The codec is both the attack and the ``codec`` condition.
    Bona fide clips: a ``genuine/`` folder beside the codec folders and/or ``bonafide:`` (the VCTK
    originals); bona fide rows have codec "". Partitions follow the authors' speaker split
    (github.com/roger-tseng/CodecDetect): p226 and p229 dev, p227 and p228 eval, the other
    speakers train, so a clip, its re-syntheses and its speaker share one partition.

    Not to be confused with the Codecfake dataset of Xie et al. (2024, "The Codecfake Dataset and
    Countermeasures for the Universally Detection of Deepfake Audio", Zenodo 11171708 and later
    records), a different corpus with its own layout, which this kind does not read. Homepage
    https://codecfake.github.io/.
    """
    rows: list[dict] = []
    for codec in options.codecs:
        folder = _find(root, codec, max_depth=2)
        if folder is None or not folder.is_dir():
            raise FileNotFoundError(
                f"CodecFake: no {codec}/ folder under {root}; extract {codec}.zip or leave it out of codecs:"
            )
        files = ((p, p.relative_to(root).as_posix(), f"{codec}/{p.stem}") for p in _audio_under(folder))
        rows.extend(_vctk_rows(files, label="spoof", codec=codec))
    genuine = _find(root, _CODECFAKE_GENUINE, max_depth=2)
    if genuine is not None:
        files = ((p, p.relative_to(root).as_posix(), f"genuine/{p.stem}") for p in _audio_under(genuine))
        rows.extend(_vctk_rows(files, label="bonafide", codec=""))
    if options.bonafide is not None:
        base = Path(options.bonafide).absolute()
        files = ((p, str(p), f"vctk/{p.relative_to(base).with_suffix('').as_posix()}") for p in _audio_under(base))
        rows.extend(_vctk_rows(files, label="bonafide", codec=""))
    if not rows:
        raise ValueError(f"CodecFake: no audio under {root} for {list(options.codecs)}")
    if not any(row["label"] == "bonafide" for row in rows):
        log.warning("codecfake: no genuine/ folder and no bonafide: given, so no bona fide clips")
    table = pd.DataFrame(rows)
    return table[table["partition"].isin(partitions)]


_CODECFAKE_HF = "https://huggingface.co/datasets/rogertseng/CodecFake_wavs/resolve/main"
CODECFAKE = Corpus(
    kind="codecfake",
    title="CodecFake (Wu et al., 2024)",
    homepage="https://codecfake.github.io/",
    files=tuple(RemoteFile(f"{codec}.zip", f"{_CODECFAKE_HF}/{codec}.zip") for codec in CODECFAKE_CODECS),
    partitions=PARTITIONS,
    marker=(*CODECFAKE_CODECS, _CODECFAKE_GENUINE),
)
_register(CODECFAKE, CodecFakeOptions, read_codecfake)
