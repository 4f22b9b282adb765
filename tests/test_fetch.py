"""Downloads (resume, checksum, Range-less servers) and safe extraction, on a local HTTP server."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from deepfake_audio.fetch import ChecksumError, FetchError, UnsafeArchiveError, download, extract
from tests.conftest import FileServer

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, not all the same byte


@pytest.fixture
def server(file_server: FileServer) -> FileServer:
    file_server.files = {"data.bin": PAYLOAD}
    return file_server


def _url(srv: FileServer, path: str = "/data.bin") -> str:
    return srv.url(path)


def _ranges(srv: FileServer) -> list[str | None]:
    return [rng for _, rng in srv.requests]


SHA = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()


def test_download_verifies_and_skips_a_second_time(server: FileServer, tmp_path: Path) -> None:
    dest = download(_url(server), tmp_path / "data.bin", checksum=SHA, size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    download(_url(server), dest, checksum=SHA)
    assert len(server.requests) == 1, "a verified file is not downloaded again"


def test_cut_connection_resumes_with_a_range_request(server: FileServer, tmp_path: Path) -> None:
    server.cut_after = 300_000
    dest = download(_url(server), tmp_path / "data.bin", checksum=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert _ranges(server) == [None, "bytes=300000-"]


def test_server_without_range_support_restarts_cleanly(server: FileServer, tmp_path: Path) -> None:
    server.cut_after, server.honour_range = 100_000, False
    dest = download(_url(server), tmp_path / "data.bin", checksum=SHA)
    assert dest.read_bytes() == PAYLOAD


def test_interrupted_run_resumes_from_the_part_file(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:500_000])
    download(_url(server), tmp_path / "data.bin", checksum=SHA)
    assert _ranges(server) == ["bytes=500000-"]
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_no_file_behind(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ChecksumError, match="expected"):
        download(_url(server), tmp_path / "data.bin", checksum="sha256:" + "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_bad_checksum_spec_are_clear(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="404"):
        download(_url(server, "/missing.zip"), tmp_path / "x.zip")
    with pytest.raises(ValueError, match="sha256"):
        download(_url(server), tmp_path / "y.bin", checksum="deadbeef")


def _zip(path: Path, members: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _tar(path: Path, members: dict[str, bytes], *, link: tuple[str, str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = link[2], link[1]
            tf.addfile(info)
    return path


@pytest.mark.parametrize("make", [_zip, _tar])
def test_extract_writes_members_once(make, tmp_path: Path) -> None:
    archive = make(tmp_path / ("a.zip" if make is _zip else "a.tar.gz"), {"LA/x.flac": b"1", "LA/sub/y.txt": b"2"})
    out = extract(archive, tmp_path / "out")
    assert (out / "LA" / "x.flac").read_bytes() == b"1" and (out / "LA" / "sub" / "y.txt").read_bytes() == b"2"
    (out / "LA" / "x.flac").write_bytes(b"edited")
    extract(archive, tmp_path / "out")
    assert (out / "LA" / "x.flac").read_bytes() == b"edited", "a second call must not extract again"


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "ok/../../evil.txt"])
@pytest.mark.parametrize("make", [_zip, _tar])
def test_extract_refuses_escaping_members_before_writing(make, name: str, tmp_path: Path) -> None:
    archive = make(tmp_path / ("a.zip" if make is _zip else "a.tar"), {"good.txt": b"g", name: b"x"})
    with pytest.raises(UnsafeArchiveError):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "good.txt").exists(), "nothing is written when any member is unsafe"
    assert not (tmp_path / "evil.txt").exists()


def test_extract_refuses_links(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(_zip(tmp_path / "l.zip", {"a.txt": b"a"}, symlink="passwd"), tmp_path / "o1")
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(
            _tar(tmp_path / "s.tar", {"a.txt": b"a"}, link=("passwd", "/etc/passwd", tarfile.SYMTYPE)), tmp_path / "o2"
        )
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(_tar(tmp_path / "h.tar", {"a.txt": b"a"}, link=("h", "a.txt", tarfile.LNKTYPE)), tmp_path / "o3")


def test_extract_rejects_non_archives(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="neither"):
        extract(tmp_path / "x.zip", tmp_path / "out")
