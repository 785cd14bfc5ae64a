"""The file helpers: the atomic write and the streaming, checked download (supervised/files.py),
and how the data loaders use them. Nothing here touches the network: downloads come from file://
URLs or a server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
from functools import partial
from pathlib import Path

import pytest

from supervised.data import DataUnavailable, fetch_verified
from supervised.faces import load_face_data
from supervised.files import CHUNK, ChecksumMismatch, FolderNotWritable, atomic_write, sha256_file
from supervised.files import download_resumable as download


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------- atomic_write


def test_atomic_write_writes_bytes_and_text_and_makes_the_folder(tmp_path):
    target = tmp_path / "a" / "b" / "state.json"
    assert atomic_write(target, '{"epoch": 3, "name": "é"}') == target
    assert target.read_bytes() == '{"epoch": 3, "name": "é"}'.encode("utf-8")
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert listing(target.parent) == ["state.json"]


def test_atomic_write_gives_the_file_the_mode_a_plain_write_would(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "written.yaml", "a: 1\n")
        (tmp_path / "plain.yaml").write_text("a: 1\n")
    finally:
        os.umask(old)
    mode = (tmp_path / "written.yaml").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.yaml").stat().st_mode & 0o777 == 0o640


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "weights.npz"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # fails while writing
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["weights.npz"]

    def no_rename(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", no_rename)  # fails at the rename, after the data is written
    with pytest.raises(OSError, match="disk gone"):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["weights.npz"]


# -------------------------------------------------------------------------------------- download


@pytest.fixture
def published(tmp_path) -> tuple[Path, str]:
    """A 2.5-chunk file to download, and its SHA-256."""
    data = bytes(range(256)) * (CHUNK * 5 // 2 // 256)
    path = tmp_path / "published" / "data.bin"
    path.parent.mkdir()
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_download_streams_checks_and_renames(published, tmp_path, capsys):
    source, sha = published
    dest = tmp_path / "cache" / "data.bin"
    assert download(source.as_uri(), dest, sha256=sha, timeout=5, what="the data") == dest
    assert dest.read_bytes() == source.read_bytes() and listing(dest.parent) == ["data.bin"]
    assert sha256_file(dest) == sha
    progress = capsys.readouterr().err.splitlines()  # stderr is not a terminal here: plain lines
    assert len(progress) == 3 and all(line.startswith("downloading the data: ") for line in progress)
    assert progress[-1].endswith("of 2.5 MiB (100%)")  # one line per chunk read: 40%, 80%, 100%


def test_a_wrong_digest_raises_and_leaves_nothing(published, tmp_path):
    source, sha = published
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatch) as err:
        download(source.as_uri(), cache / "data.bin", sha256="0" * 64, timeout=5)
    assert str(err.value) == f"SHA-256 {sha} is not the expected {'0' * 64}"
    assert listing(cache) == []


def test_a_refused_check_or_a_missing_url_leaves_nothing(published, tmp_path):
    source, sha = published
    cache = tmp_path / "cache"

    def refuse(path: Path) -> None:
        assert path.parent == cache and path.read_bytes() == source.read_bytes()
        raise ValueError("not the layout")

    with pytest.raises(ValueError, match="not the layout"):
        download(source.as_uri(), cache / "data.bin", sha256=sha, timeout=5, check=refuse)
    with pytest.raises(OSError):
        download((tmp_path / "absent.bin").as_uri(), cache / "data.bin", sha256=None, timeout=5)
    assert listing(cache) == []


def test_download_over_http_from_a_local_server(published, tmp_path):
    source, sha = published
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(source.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{source.name}"
        dest = download(url, tmp_path / "cache" / "data.bin", sha256=sha, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert dest.read_bytes() == source.read_bytes()


def test_a_folder_that_cannot_be_written_is_said_before_anything_is_fetched(published, tmp_path):
    source, sha = published
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(FolderNotWritable, match=re.escape(f"cannot write to the folder {blocked}")):
        download(source.as_uri(), blocked / "data.bin", sha256=sha, timeout=5)


# ------------------------------------------------------------------------------ the two callers


def test_fetch_verified_with_an_unwritable_cache_still_returns_the_data(published, tmp_path):
    source, sha = published
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    tried: list[str] = []
    assert fetch_verified("data.bin", source.as_uri(), sha, tried, cache_dir=blocked) == (
        source.as_uri(), source.read_bytes())
    assert tried == [f"cache {blocked / 'data.bin'}: no such file"]


def test_face_download_into_an_unwritable_cache_is_said(published, tmp_path, monkeypatch):
    monkeypatch.delenv("LABRUN_DATA_DIR", raising=False)
    source, _ = published
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    with pytest.raises(DataUnavailable, match=re.escape(
            f"download {source.as_uri()}: cannot write to the cache folder {blocked}: ")):
        load_face_data(None, cache_dir=blocked, url=source.as_uri())
