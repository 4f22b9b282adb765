"""Resumable, verified downloads and safe archive extraction for real corpora.

``download`` streams to ``<dest>.part`` with a progress bar, resumes an interrupted transfer with
an HTTP Range request, verifies the published size and checksum, and only then renames the file
into place: a failed or corrupt transfer never leaves a file under the final name.

``extract`` refuses archive members that would land outside the target folder (absolute paths,
``..``, symbolic and hard links) before writing anything, and records what it extracted so the
same archive is never extracted twice.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from deepfake_audio.io import atomic_path

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class FetchError(RuntimeError):
    """A download that could not be completed."""


class ChecksumError(FetchError):
    """A downloaded file whose size or digest is not the published one."""


class UnsafeArchiveError(ValueError):
    """An archive with a member that would be written outside the target folder."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (constant memory)."""
    h = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, *, size: int | None, checksum: str | None, name: str | None = None) -> None:
    name = name or path.name
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(f"{name}: size {path.stat().st_size} bytes, expected {size}")
    if checksum:
        algorithm, _, expected = checksum.partition(":")
        got = file_digest(path, algorithm)
        if got != expected.lower():
            raise ChecksumError(f"{name}: {algorithm} {got}, expected {expected}")


def _parse_checksum(checksum: str | None) -> str | None:
    if not checksum:
        return None
    algorithm, sep, value = checksum.partition(":")
    if not sep or algorithm not in ("md5", "sha1", "sha256", "sha512") or not value:
        raise ValueError(f"checksum {checksum!r}: write it as '<md5|sha1|sha256|sha512>:<hex digest>'")
    return checksum


def download(
    url: str,
    dest: Path | str,
    *,
    checksum: str | None = None,
    size: int | None = None,
    timeout_s: float = 60.0,
    max_attempts: int = 5,
) -> Path:
    """Download ``url`` to ``dest``, resuming and verifying.

    Args:
        url: http(s) or file URL.
        dest: final path. If it already exists and verifies, nothing is downloaded.
        checksum: ``"sha256:<hex>"`` (or md5/sha1/sha512), verified before the rename.
        size: published size in bytes, verified likewise.
        max_attempts: connections tried in all; each one resumes where the last stopped.

    Raises:
        ChecksumError: the complete file has the wrong size or digest (the partial file is
            deleted, so the next call starts afresh).
        FetchError: the transfer could not be completed in ``max_attempts`` connections.
    """
    dest = Path(dest)
    checksum = _parse_checksum(checksum)
    if dest.exists():
        _verify(dest, size=size, checksum=checksum)
        log.info("%s: already downloaded and verified", dest.name)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            if _transfer(url, part, timeout_s=timeout_s):
                break
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
            last_error = exc
            log.warning(
                "%s: attempt %d/%d stopped at %d bytes: %s",
                dest.name,
                attempt,
                max_attempts,
                part.stat().st_size if part.exists() else 0,
                exc,
            )
    else:
        raise FetchError(
            f"{url}: incomplete after {max_attempts} attempts ({last_error}); "
            f"{part} is kept and the next run resumes it"
        )
    try:
        _verify(part, size=size, checksum=checksum, name=dest.name)
    except ChecksumError as exc:
        part.unlink()
        raise ChecksumError(f"{exc} (download from {url} deleted; the next run starts afresh)") from None
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, *, timeout_s: float) -> bool:
    """One connection: append to ``part`` from where it ends. True when the body is complete."""
    from deepfake_audio.logs import progress

    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 - URLs come from params
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the part is already whole
            return True
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    with response:
        status = getattr(response, "status", 200)
        if offset and status != 206:  # the server ignored Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        mode = "ab" if offset else "wb"
        received = offset
        with part.open(mode) as fh:
            chunks = iter(lambda: response.read(CHUNK_BYTES), b"")
            for block in progress(chunks, desc=part.name[:-5], unit="MiB"):
                fh.write(block)
                received += len(block)
    if total is not None and received < total:
        raise OSError(f"connection closed after {received} of {total} bytes")
    return True


# --------------------------------------------------------------------------- extraction


def _check_member(name: str, *, is_link: bool, target: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if is_link:
        raise UnsafeArchiveError(f"member {name!r} is a link; links are refused")
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"member {name!r} escapes the target folder with '..'")
    resolved = (target / pure).resolve()
    if resolved != target.resolve() and target.resolve() not in resolved.parents:
        raise UnsafeArchiveError(f"member {name!r} would be written outside {target}")


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return (mode & 0o170000) == 0o120000


def extract(archive: Path | str, target: Path | str) -> Path:
    """Extract a zip or tar archive into ``target``, safely and at most once.

    Every member is checked before anything is written. A marker file in ``target`` records the
    archive's name and size; a second call with the same archive returns at once.

    Raises:
        UnsafeArchiveError: a member is absolute, contains ``..``, or is a link.
        ValueError: the file is neither a zip nor a tar archive.
    """
    archive, target = Path(archive), Path(target)
    marker = target / f".extracted-{archive.name}.json"
    stamp = {"archive": archive.name, "size": archive.stat().st_size}
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == stamp:
        log.info("%s: already extracted into %s", archive.name, target)
        return target
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member(info.filename, is_link=_zip_is_link(info), target=target)
            for info in members:
                zf.extract(info, target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(m.name, is_link=m.issym() or m.islnk(), target=target)
                if not (m.isfile() or m.isdir()):
                    raise UnsafeArchiveError(f"member {m.name!r} is not a regular file or folder")
            for m in members:
                _extract_tar_member(tf, m, target)
    else:
        raise ValueError(f"{archive}: neither a zip nor a tar archive")
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps(stamp), encoding="utf-8")
    return target


def _extract_tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    path = target / member.name
    if member.isdir():
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    source = tf.extractfile(member)
    assert source is not None  # regular files always have data
    with source, atomic_path(path) as tmp, tmp.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK_BYTES)
