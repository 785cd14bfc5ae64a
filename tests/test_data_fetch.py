"""``labrun data fetch`` and the resumable download behind it: a transfer cut mid-file leaves
its bytes, the next call continues with an HTTP Range request from a server on 127.0.0.1 (a
server that ignores Range sends it all again), the SHA-256 covers every byte, and a file that
is already where the labs look is not fetched. Nothing here leaves this machine."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading

import pytest

from helpers import REPO, run_cli
from supervised.files import ChecksumMismatch, download_resumable

PAYLOAD = os.urandom(3 << 20)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves ``payload`` (PAYLOAD); ``cut_after`` bytes then hangs up (once), ``ranges`` honours
    Range; with an ``etag`` it sends it and honours If-Range (a Range only for that version)."""

    def __init__(self, cut_after: int | None = None, ranges: bool = True, etag: str | None = None):
        self.cut_after, self.ranges, self.seen, self.etag = cut_after, ranges, [], etag
        self.payload, self.if_range = PAYLOAD, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                asked = self.headers.get("Range")
                server.seen.append(asked)
                server.if_range.append(self.headers.get("If-Range"))
                if self.headers.get("If-Range") not in (None, server.etag):
                    asked = None                             # another version: all of it
                PAYLOAD = server.payload
                start = int(asked.split("=")[1].rstrip("-")) if asked and server.ranges else 0
                if start >= len(PAYLOAD):
                    self.send_response(416)                  # nothing past the end
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                self.send_header("Content-Length", str(len(body)))
                if server.etag:
                    self.send_header("ETag", server.etag)
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[:server.cut_after])
                    server.cut_after = None
                    return                                   # the connection closes short
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/train_face.h5"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("ranges", [True, False])
def test_a_broken_download_continues_where_it_stopped(tmp_path, ranges):
    server = Server(cut_after=1 << 20, ranges=ranges)
    dest = tmp_path / "cache" / "train_face.h5"
    try:
        with pytest.raises(OSError, match="the transfer broke after 1.0 MiB"):
            download_resumable(server.url, dest, sha256=SHA, timeout=10)
        assert not dest.exists() and dest.with_name("train_face.h5.partial").stat().st_size == 1 << 20
        assert download_resumable(server.url, dest, sha256=SHA, timeout=10) == dest
    finally:
        server.close()
    assert dest.read_bytes() == PAYLOAD and sorted(p.name for p in dest.parent.iterdir()) == ["train_face.h5"]
    assert server.seen == [None, f"bytes={1 << 20}-"]       # the second asked for the rest only


def test_a_file_that_changed_between_tries_is_fetched_whole_again(tmp_path):
    """If-Range with the version the partial bytes came from: the rest of another file is
    never appended to them (the faces have no published SHA-256 to catch it)."""
    server = Server(cut_after=1 << 20, etag='"v1"')
    dest = tmp_path / "cache" / "train_face.h5"
    changed = os.urandom(2 << 20)
    try:
        with pytest.raises(OSError, match="the transfer broke after 1.0 MiB"):
            download_resumable(server.url, dest, sha256=None, timeout=10)
        server.payload, server.etag = changed, '"v2"'
        assert download_resumable(server.url, dest, sha256=None, timeout=10) == dest
    finally:
        server.close()
    assert dest.read_bytes() == changed
    assert server.seen == [None, f"bytes={1 << 20}-"] and server.if_range == [None, '"v1"']
    assert sorted(p.name for p in dest.parent.iterdir()) == ["train_face.h5"]


def test_a_download_that_is_not_the_file_is_not_kept(tmp_path):
    server = Server()
    dest = tmp_path / "train_face.h5"
    try:
        with pytest.raises(ChecksumMismatch):
            download_resumable(server.url, dest, sha256="00" * 32, timeout=10)
        with pytest.raises(ValueError, match="not it"):
            download_resumable(server.url, dest, sha256=None, timeout=10,
                               check=lambda path: (_ for _ in ()).throw(ValueError("not it")))
    finally:
        server.close()
    assert list(tmp_path.iterdir()) == []                   # neither the file nor a partial one


def test_data_fetch_finds_what_is_at_hand_and_says_where(tmp_path):
    """No download: MNIST and irish.abc from $LABRUN_DATA_DIR, then irish.abc from the cache."""
    shared = REPO.parent / "shared" / "data"
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "LABRUN_DATA_DIR": str(shared)}
    out = run_cli("data", "fetch", "mnist", "music", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"mnist: {shared / 'mnist.npz'} (found in $LABRUN_DATA_DIR; its layout checked, as the labs "
        f"read it; read by mnist)",
        f"music: {shared / 'irish.abc'} (found in $LABRUN_DATA_DIR; its layout checked, as the labs "
        f"read it; read by music (corpus irish or auto))"]
    cache = home / ".cache" / "labrun"
    cache.mkdir(parents=True)
    shutil.copy(shared / "irish.abc", cache / "irish.abc")          # the published file
    env.pop("LABRUN_DATA_DIR")
    out = run_cli("data", "fetch", "music", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"music: {cache / 'irish.abc'} (already in the cache; SHA-256 verified")
    assert run_cli("data", "fetch", "cifar", env=env).returncode == 2


def test_a_cached_file_that_is_not_the_published_one_is_fetched_again(tmp_path):
    from supervised.datasets import Dataset, fetch

    server = Server()
    dataset = Dataset("x", "train_face.h5", server.url, SHA, "tests", check=lambda path: None)
    (tmp_path / "train_face.h5").write_bytes(b"not the published file")
    try:
        assert fetch(dataset, cache_dir=tmp_path) == (tmp_path / "train_face.h5", "downloaded")
        assert fetch(dataset, cache_dir=tmp_path) == (tmp_path / "train_face.h5", "already in the cache")
    finally:
        server.close()
    assert (tmp_path / "train_face.h5").read_bytes() == PAYLOAD and server.seen == [None]


def test_a_partial_file_that_is_already_whole_is_checked_and_kept(tmp_path):
    """Killed after the last byte, before the rename: the server answers the next Range request
    with 416, and the partial file is checked and put in place as it is."""
    server = Server()
    dest = tmp_path / "train_face.h5"
    dest.with_name("train_face.h5.partial").write_bytes(PAYLOAD)
    try:
        assert download_resumable(server.url, dest, sha256=SHA, timeout=10) == dest
    finally:
        server.close()
    assert dest.read_bytes() == PAYLOAD and server.seen == [f"bytes={len(PAYLOAD)}-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_face.h5"]


def test_an_interrupted_check_keeps_the_partial_file(tmp_path):
    server = Server()
    dest = tmp_path / "train_face.h5"

    def interrupted(path):
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            download_resumable(server.url, dest, sha256=None, timeout=10, check=interrupted)
    finally:
        server.close()
    assert dest.with_name("train_face.h5.partial").read_bytes() == PAYLOAD and not dest.exists()
