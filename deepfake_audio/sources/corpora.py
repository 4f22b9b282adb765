"""The published corpora: ASVspoof 2019 LA, ASVspoof 5, In-the-Wild and SceneFake.

Each kind reads its corpus's own protocol or meta files for label, speaker and attack, and records
the corpus's official partition (``train``/``dev``/``eval``) in the ``partition`` column, which
``split.strategy: official`` keeps. Files are referenced in place, never copied.

Where the clips come from, in order of precedence:

- ``path:`` an already-extracted copy on disk. Nothing is downloaded or extracted.
- ``archive:`` an already-downloaded archive (for ``asvspoof5``, the folder holding its archives).
  It is extracted once into ``download_dir``.
- otherwise the official archives are downloaded into ``download_dir`` (resumable, verified where
  a size or checksum is known; see :mod:`deepfake_audio.fetch`), then extracted once.

``download_dir`` (default ``data/downloads``) is deliberately outside the DVC outputs: DVC tracks
the manifest, not a second copy of a 100 GB corpus in its cache.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_audio.errors import ParamError
from deepfake_audio.fetch import download, extract
from deepfake_audio.manifest import CONDITION_COLUMNS
from deepfake_audio.sources import register_source
from deepfake_audio.sources.local import AUDIO_SUFFIXES, display_path, normalise_label

log = logging.getLogger(__name__)

PARTITIONS = ("train", "dev", "eval")


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One archive of a corpus, as published.

    Attributes:
        name: file name, also the name it is saved under in ``download_dir``.
        url: official download URL, or "" where the publisher gives no stable direct link.
        partitions: the partitions whose audio or labels it holds; () for every partition.
        size: published size in bytes, where one is published.
        checksum: published digest (``md5:<hex>``, ...), where one is published.
    """

    name: str
    url: str
    partitions: tuple[str, ...] = ()
    size: int | None = None
    checksum: str | None = None


@dataclasses.dataclass(frozen=True)
class Corpus:
    """What the loader needs to know about one published corpus."""

    kind: str
    title: str
    homepage: str
    files: tuple[RemoteFile, ...]
    partitions: tuple[str, ...]  # official partitions; () where the corpus has none
    # the name (or any of the names) of a file or folder that identifies the corpus root inside an
    # extracted tree: the root is the folder holding the shallowest match
    marker: str | tuple[str, ...]
    # (root, partitions) -> ASV scores (partition, key, score) where the corpus ships them, for t-DCF
    asv_scores: Callable[[Path, tuple[str, ...]], pd.DataFrame] | None = None


@dataclasses.dataclass(frozen=True)
class CorpusOptions:
    """Options shared by every published corpus kind.

    Attributes:
        path: an extracted copy (the folder holding the corpus, or any folder above it).
        archive: an already-downloaded archive; for ``asvspoof5`` a folder with its archives.
        url: a mirror: the archive's URL (for ``asvspoof5``, the folder URL its files sit under).
        download_dir: where archives are downloaded and extracted.
        partitions: official partitions to read (default: all the corpus has).
        checksums: ``{file name: "sha256:<hex>"}`` to verify downloads beyond what is published.
        missing: ``error`` when a file listed in the protocol is absent; ``skip`` drops such rows
            with a warning (e.g. when only some of ASVspoof 5's archives were fetched).
        max_clips: keep a seeded sample of at most this many clips per partition (0 = all).
        seed: seed of that sample.
    """

    path: str | None = None
    archive: str | None = None
    url: str | None = None
    download_dir: str = "data/downloads"
    partitions: tuple[str, ...] = ()
    checksums: dict = dataclasses.field(default_factory=dict)
    missing: str = "error"
    max_clips: int = 0
    seed: int = 0

    def validate(self, prefix: str) -> None:
        if self.path is not None and self.archive is not None:
            raise ParamError(f"{prefix}.archive", self.archive, "give either path: or archive:, not both")
        if self.path is not None and not Path(self.path).is_dir():
            raise ParamError(f"{prefix}.path", self.path, "an existing folder (the extracted corpus)")
        if self.archive is not None and not Path(self.archive).exists():
            raise ParamError(f"{prefix}.archive", self.archive, "an existing archive file (or folder of archives)")
        bad = sorted(set(self.partitions) - set(PARTITIONS))
        if bad:
            raise ParamError(f"{prefix}.partitions", list(self.partitions), f"a subset of {list(PARTITIONS)}")
        if self.missing not in ("error", "skip"):
            raise ParamError(f"{prefix}.missing", self.missing, "error or skip")
        if self.max_clips < 0:
            raise ParamError(f"{prefix}.max_clips", self.max_clips, "0 (all) or a positive count")

    def needs(self, remote: RemoteFile) -> bool:
        """Whether ``remote`` is fetched and extracted; a kind's options narrow this (chosen versions, ...)."""
        return True


@dataclasses.dataclass(frozen=True)
class SceneFakeOptions(CorpusOptions):
    """SceneFake options: those of every corpus, plus ``speakers``.

    Attributes:
        speakers: optional CSV ``path,speaker`` (paths relative to the corpus root). Without it,
            a clip whose name holds an ASVspoof 2019 LA utterance id (``LA_T_1234567``) is grouped
            by that id, so a scene-manipulated clip never lands in another split than its source;
            any other clip is its own group.
    """

    speakers: str | None = None

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.speakers is not None and not Path(self.speakers).is_file():
            raise ParamError(f"{prefix}.speakers", self.speakers, "an existing CSV file (path,speaker)")


# --------------------------------------------------------------------------- locating a corpus


def _find(base: Path, name: str | tuple[str, ...], *, max_depth: int = 4) -> Path | None:
    """The shallowest path named ``name`` (or any of the names) under ``base`` (``base`` itself
    included); sorted, so stable."""
    names = (name,) if isinstance(name, str) else name
    if base.name in names:
        return base
    level = [base]
    for _ in range(max_depth):
        nxt = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
            except (NotADirectoryError, PermissionError):
                continue
            for child in children:
                if child.name in names:
                    return child
                if child.is_dir():
                    nxt.append(child)
        level = nxt
    return None


def _wanted_files(corpus: Corpus, partitions: tuple[str, ...]) -> list[RemoteFile]:
    return [f for f in corpus.files if not f.partitions or set(f.partitions) & set(partitions)]


def _archives_in(folder: Path, corpus: Corpus, files: list[RemoteFile]) -> list[Path]:
    found = [folder / f.name for f in files if (folder / f.name).is_file()]
    if not found:
        raise FileNotFoundError(
            f"{folder}: none of {corpus.title}'s archives ({', '.join(f.name for f in files)}) is in this folder"
        )
    return found


def locate(corpus: Corpus, options: CorpusOptions, *, partitions: tuple[str, ...]) -> Path:
    """The folder the corpus's files are read from, downloading and extracting only if needed."""
    if options.path is not None:
        base = Path(options.path)
    else:
        work = Path(options.download_dir) / corpus.kind
        wanted = [f for f in _wanted_files(corpus, partitions) if options.needs(f)]
        if options.archive is not None:
            archive = Path(options.archive)
            archives = _archives_in(archive, corpus, wanted) if archive.is_dir() else [archive]
        else:
            archives = [_fetch(f, corpus, options, work) for f in wanted]
        base = work / "extracted"
        for archive in archives:
            extract(archive, base)
    marker = _find(base, corpus.marker)
    if marker is None:
        raise FileNotFoundError(
            f"{base}: no {corpus.marker!r} found, so this is not an extracted {corpus.title} (see {corpus.homepage})"
        )
    return marker.parent


def _fetch(remote: RemoteFile, corpus: Corpus, options: CorpusOptions, work: Path) -> Path:
    if options.url:
        single = len(corpus.files) == 1
        url = options.url if single else f"{options.url.rstrip('/')}/{remote.name}"
    elif remote.url:
        url = remote.url
    else:
        raise ValueError(
            f"{corpus.title} has no direct download link we can rely on: download "
            f"{remote.name} from {corpus.homepage}, then set archive: (the downloaded "
            f"file) or path: (its extracted folder), or url: (a direct link)"
        )
    checksum = options.checksums.get(remote.name) or remote.checksum
    log.info("%s: fetching %s", corpus.kind, url)
    return download(url, work / remote.name, checksum=checksum, size=remote.size)


# --------------------------------------------------------------------------- rows


def _rows_from_table(table: pd.DataFrame, *, root: Path, corpus: Corpus, options: CorpusOptions) -> pd.DataFrame:
    """Turn a table with ``file`` (relative to root), label, speaker, attack, partition into rows.

    Any of :data:`~deepfake_audio.manifest.CONDITION_COLUMNS` the table has are kept.

    Checks every file exists (``missing: error``) or drops absent ones (``missing: skip``), and
    applies ``max_clips``. Duration and sample rate are filled later by the download step's
    single decoding pass.
    """
    table = table.reset_index(drop=True)
    paths = [root / f for f in table["file"]]
    exists = np.fromiter((p.is_file() for p in paths), dtype=bool, count=len(paths))
    if not exists.all():
        absent = [str(p) for p, ok in zip(paths, exists) if not ok]
        if options.missing == "error":
            raise FileNotFoundError(
                f"{corpus.title}: {len(absent)} of {len(paths)} files listed in its protocol are missing "
                f"(first: {absent[0]}); fetch the rest, or set missing: skip to use only the files present"
            )
        log.warning(
            "%s: %d of %d listed files are missing and skipped (first: %s)",
            corpus.kind,
            len(absent),
            len(paths),
            absent[0],
        )
        table = table[exists].reset_index(drop=True)
        paths = [p for p, ok in zip(paths, exists) if ok]
    out = pd.DataFrame(
        {
            "utt_id": table["utt_id"].astype(str),
            "path": [display_path(p) for p in paths],
            "label": table["label"],
            "speaker": table["speaker"].astype(str),
            "attack": np.where(table["label"] == "spoof", table["attack"].astype(str), "-"),
            "duration_s": np.nan,
            "sample_rate": 0,
            "partition": table["partition"],
            # the conditions the corpus records (codec, channel, language, ...), "" where unknown
            **{col: table[col].fillna("").astype(str).to_numpy() for col in CONDITION_COLUMNS if col in table.columns},
        }
    )
    if options.max_clips:
        out = _sample(out, options.max_clips, options.seed)
    if out.empty:
        raise ValueError(f"{corpus.title}: no clips left to use under {root}")
    return out


def _sample(df: pd.DataFrame, max_clips: int, seed: int) -> pd.DataFrame:
    """At most ``max_clips`` rows per partition, a seeded uniform sample (class ratios kept in expectation)."""
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in sorted(df.groupby("partition").groups.items()):
        idx = np.sort(np.asarray(idx))
        keep.append(idx if len(idx) <= max_clips else np.sort(rng.choice(idx, size=max_clips, replace=False)))
    return df.loc[np.concatenate(keep)].reset_index(drop=True)


def _check_partitions(corpus: Corpus, options: CorpusOptions) -> tuple[str, ...]:
    if not corpus.partitions:
        if options.partitions:
            raise ParamError(
                "partitions", list(options.partitions), f"nothing: {corpus.title} has no official partitions"
            )
        return ()
    return tuple(options.partitions) or corpus.partitions


def _register(corpus: Corpus, options_type: type, reader: Callable[..., pd.DataFrame]) -> None:
    @register_source(corpus.kind, options_type)
    def build(options: CorpusOptions, *, out_dir: Path, n_jobs: int) -> pd.DataFrame:
        unknown = sorted(set(options.checksums) - {f.name for f in corpus.files})
        if unknown:  # a typo would otherwise silently skip the check
            raise ParamError(
                "checksums", unknown[0], f"a file name of {corpus.title}: {', '.join(f.name for f in corpus.files)}"
            )
        partitions = _check_partitions(corpus, options)
        root = locate(corpus, options, partitions=partitions)
        table = reader(root, partitions=partitions, options=options)
        rows = _rows_from_table(table, root=root, corpus=corpus, options=options)
        log.info("%s: %d clips from %s", corpus.kind, len(rows), root)
        asv = corpus.asv_scores(root, partitions) if corpus.asv_scores else None
        if asv is not None and not asv.empty:
            out_dir.mkdir(parents=True, exist_ok=True)
            asv.to_parquet(out_dir / ASV_SCORES, index=False)
            log.info(
                "%s: %d ASV trial scores (%s) for t-DCF",
                corpus.kind,
                len(asv),
                ", ".join(sorted(asv["partition"].unique())),
            )
        return rows

    build.__doc__ = f"{corpus.title}: read from its protocol files ({corpus.homepage})."


def _read_protocol(path: Path, *, n_columns: int) -> pd.DataFrame:
    """A whitespace-separated protocol file with no header, every line ``n_columns`` wide."""
    if not path.is_file():
        raise FileNotFoundError(f"protocol file {path} is missing")
    table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False, engine="python")
    if table.shape[1] != n_columns:
        raise ValueError(f"{path}: expected {n_columns} whitespace-separated columns, found {table.shape[1]}")
    return table


# --------------------------------------------------------------------------- ASVspoof 2019 LA


_LA_PROTOCOLS = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}


def read_asvspoof2019_la(root: Path, *, partitions: tuple[str, ...], options: CorpusOptions) -> pd.DataFrame:
    """Rows from the CM protocols: ``SPEAKER UTT - ATTACK|- bonafide|spoof`` per line.

    Audio: ``<root>/ASVspoof2019_LA_<partition>/flac/<UTT>.flac``; ``root`` is the ``LA`` folder.
    """
    parts = []
    for partition in partitions:
        proto = _read_protocol(root / "ASVspoof2019_LA_cm_protocols" / _LA_PROTOCOLS[partition], n_columns=5)
        where = f"{_LA_PROTOCOLS[partition]}"
        parts.append(
            pd.DataFrame(
                {
                    "utt_id": proto[1],
                    "file": f"ASVspoof2019_LA_{partition}/flac/" + proto[1] + ".flac",
                    "label": [normalise_label(v, where=where) for v in proto[4]],
                    "speaker": proto[0],
                    "attack": proto[3],
                    "partition": partition,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


ASV_SCORES = "asv_scores.parquet"
"""Written beside a source's clips (``data/raw/<source>/``) when its corpus ships ASV scores."""

ASV_KEYS = ("target", "nontarget", "spoof")


def read_asvspoof2019_la_asv(root: Path, partitions: tuple[str, ...]) -> pd.DataFrame:
    """The organisers' ASV scores: ``ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.<dev|eval>.gi.trl.scores.txt``.

    Each line ends with ``<key> <score>``, key ``target``, ``nontarget`` or ``spoof`` (the
    columns before it name the speaker or attack and are not needed). Returns columns
    ``partition, key, score``; empty when the files are absent (t-DCF is then left out).
    """
    parts = []
    for partition in (p for p in partitions if p in ("dev", "eval")):
        path = root / "ASVspoof2019_LA_asv_scores" / f"ASVspoof2019.LA.asv.{partition}.gi.trl.scores.txt"
        if not path.is_file():
            log.info("no ASV scores at %s: min t-DCF is left out for %s", path, partition)
            continue
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False, engine="python")
        if table.shape[1] < 2:
            raise ValueError(f"{path}: expected lines ending in '<key> <score>', found {table.shape[1]} column(s)")
        keys = table.iloc[:, -2]
        bad = sorted(set(keys) - set(ASV_KEYS))
        if bad:
            raise ValueError(f"{path}: unknown trial keys {bad[:5]}; expected {list(ASV_KEYS)}")
        try:
            scores = table.iloc[:, -1].astype(np.float64)
        except ValueError as exc:
            raise ValueError(f"{path}: the last column must be a numeric ASV score ({exc})") from None
        parts.append(pd.DataFrame({"partition": partition, "key": keys.to_numpy(), "score": scores.to_numpy()}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["partition", "key", "score"])


ASVSPOOF2019_LA = Corpus(
    kind="asvspoof2019_la",
    title="ASVspoof 2019 LA",
    homepage="https://datashare.ed.ac.uk/handle/10283/3336",
    files=(RemoteFile("LA.zip", "https://datashare.ed.ac.uk/bitstream/handle/10283/3336/LA.zip"),),
    partitions=PARTITIONS,
    marker="ASVspoof2019_LA_cm_protocols",
    asv_scores=read_asvspoof2019_la_asv,
)
_register(ASVSPOOF2019_LA, CorpusOptions, read_asvspoof2019_la)


# --------------------------------------------------------------------------- ASVspoof 5

_ZENODO_ASVSPOOF5 = "https://zenodo.org/records/14498691/files"


def _asvspoof5_files() -> tuple[RemoteFile, ...]:
    files = [RemoteFile("ASVspoof5_protocols.tar.gz", f"{_ZENODO_ASVSPOOF5}/ASVspoof5_protocols.tar.gz?download=1")]
    for letter, partition, n in (("T", "train", 5), ("D", "dev", 3), ("E", "eval", 10)):
        for i in range(n):
            name = f"flac_{letter}_a{chr(ord('a') + i)}.tar"
            files.append(RemoteFile(name, f"{_ZENODO_ASVSPOOF5}/{name}?download=1", partitions=(partition,)))
    return tuple(files)


ASVSPOOF5 = Corpus(
    kind="asvspoof5",
    title="ASVspoof 5",
    homepage="https://zenodo.org/records/14498691",
    files=_asvspoof5_files(),
    partitions=PARTITIONS,
    marker="ASVspoof5.train.tsv",
)

_ASVSPOOF5_PROTOCOLS = {
    "train": "ASVspoof5.train.tsv",
    "dev": "ASVspoof5.dev.track_1.tsv",
    "eval": "ASVspoof5.eval.track_1.tsv",
}
_ASVSPOOF5_AUDIO = {"train": "flac_T", "dev": "flac_D", "eval": "flac_E_eval"}


def read_asvspoof5(root: Path, *, partitions: tuple[str, ...], options: CorpusOptions) -> pd.DataFrame:
    """Rows from the track-1 protocols (10 whitespace-separated columns per line)::

        SPEAKER FILE GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP

    ``ATTACK_LABEL`` (A01..A32, or ``bonafide``) is the attack; ``KEY`` the label. Audio:
    ``flac_T/``, ``flac_D/`` and ``flac_E_eval/`` (``<FILE>.flac``), found next to the protocols
    or anywhere up to three folders above them.
    """
    parts = []
    for partition in partitions:
        proto = _read_protocol(root / _ASVSPOOF5_PROTOCOLS[partition], n_columns=10)
        audio = None
        # Parents of the absolute path: a relative root's parents stop at ".", and a folder found
        # there is relative to the working directory, not to root.
        for base in (root, *list(root.absolute().parents)[:3]):
            audio = _find(base, _ASVSPOOF5_AUDIO[partition], max_depth=2)
            if audio is not None:
                break
        if audio is None:
            raise FileNotFoundError(
                f"ASVspoof 5: no {_ASVSPOOF5_AUDIO[partition]}/ folder near {root}; "
                f"extract the flac_{_ASVSPOOF5_AUDIO[partition][5]}_*.tar archives"
            )
        rel = audio.relative_to(root) if audio.is_relative_to(root) else audio
        parts.append(
            pd.DataFrame(
                {
                    "utt_id": proto[1],
                    "file": [str(rel / f"{name}.flac") for name in proto[1]],
                    "label": [normalise_label(v, where=_ASVSPOOF5_PROTOCOLS[partition]) for v in proto[8]],
                    "speaker": proto[0],
                    "attack": proto[7],
                    "partition": partition,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


_register(ASVSPOOF5, CorpusOptions, read_asvspoof5)


# --------------------------------------------------------------------------- In-the-Wild

IN_THE_WILD = Corpus(
    kind="in_the_wild",
    title="In-the-Wild (Müller et al., 2022)",
    homepage="https://deepfake-total.com/in_the_wild",
    files=(
        RemoteFile("release_in_the_wild.zip", "https://owncloud.fraunhofer.de/index.php/s/JZgXh0JEAF0elxa/download"),
    ),
    partitions=(),
    marker="meta.csv",
)


def read_in_the_wild(root: Path, *, partitions: tuple[str, ...], options: CorpusOptions) -> pd.DataFrame:
    """Rows from ``meta.csv`` (``file,speaker,label``; label ``bona-fide``/``spoof``).

    The corpus names no generator, so every spoof's attack is ``unknown``; it has no official
    partitions (``partition`` is empty), so it is split by speaker or used as an eval set.
    """
    meta = root / "meta.csv"
    table = pd.read_csv(meta, dtype=str, keep_default_na=False)
    missing = [c for c in ("file", "speaker", "label") if c not in table.columns]
    if missing:
        raise ValueError(f"{meta}: missing columns {missing}; columns are {list(table.columns)}")
    return pd.DataFrame(
        {
            "utt_id": [Path(f).with_suffix("").as_posix() for f in table["file"]],
            "file": table["file"],
            "label": [normalise_label(v, where=f"{meta} row {i + 2}") for i, v in enumerate(table["label"])],
            "speaker": table["speaker"],
            "attack": "unknown",
            "partition": "",
        }
    )


_register(IN_THE_WILD, CorpusOptions, read_in_the_wild)


# --------------------------------------------------------------------------- SceneFake

SCENEFAKE = Corpus(
    kind="scenefake",
    title="SceneFake (Yi et al., 2022)",
    homepage="https://zenodo.org/records/7663324",
    files=(RemoteFile("SceneFake.zip", ""),),
    partitions=PARTITIONS,
    marker="train",
)

_LA_UTT = re.compile(r"LA_[TDE]_\d{7}")
_CLASS_DIRS = {"real": "bonafide", "bonafide": "bonafide", "fake": "spoof", "spoof": "spoof"}


def read_scenefake(root: Path, *, partitions: tuple[str, ...], options: SceneFakeOptions) -> pd.DataFrame:
    """Rows from the SceneFake layout: ``<partition>/[<subset>/]{real,fake}/*.wav``.

    ``<partition>`` is ``train``, ``dev`` or ``eval``; a subset folder in between (the seen and
    unseen test sets) becomes the spoof's attack, ``scene-<subset>``, else the attack is ``scene``.
    """
    speakers: dict[str, str] = {}
    if options.speakers:
        table = pd.read_csv(options.speakers, dtype=str, keep_default_na=False)
        speakers = dict(zip(table["path"], table["speaker"]))
    rows = []
    for partition in partitions:
        base = root / partition
        if not base.is_dir():
            raise FileNotFoundError(f"SceneFake: no {partition}/ folder in {root}")
        for path in sorted(p for p in base.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
            rel = path.relative_to(root)
            inner = rel.parts[1:-1]  # between the partition and the file name
            class_at = [i for i, part in enumerate(inner) if part.lower() in _CLASS_DIRS]
            if not class_at:
                raise ValueError(f"SceneFake: {rel} is not under a real/ or fake/ folder")
            label = _CLASS_DIRS[inner[class_at[-1]].lower()]
            subset = "-".join(inner[: class_at[-1]])
            la = _LA_UTT.search(path.name)
            speaker = speakers.get(rel.as_posix()) or (f"la:{la.group(0)}" if la else f"file:{rel.as_posix()}")
            rows.append(
                {
                    "utt_id": rel.with_suffix("").as_posix(),
                    "file": rel.as_posix(),
                    "label": label,
                    "speaker": speaker,
                    "attack": f"scene-{subset}" if subset else "scene",
                    "partition": partition,
                }
            )
    if not rows:
        raise ValueError(f"SceneFake: no audio under {root}/{{{','.join(partitions)}}}")
    return pd.DataFrame(rows)


_register(SCENEFAKE, SceneFakeOptions, read_scenefake)
