"""The project's file helpers: one atomic write, one downloader. ``cluster/`` uses them too.

``atomic_write`` puts a file in place whole or not at all: written to a temporary file beside it,
flushed to disk, then renamed over it. ``download_resumable`` streams a URL to a partial file
beside its destination, resuming a broken transfer, and renames it into place only once its
SHA-256 and layout check pass, so a file at ``dest`` is always a complete, checked one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import secrets
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

CHUNK = 1 << 20  # bytes read and written at a time


class FolderNotWritable(OSError):
    """``download`` could not make its temporary file in dest's folder; nothing was fetched."""


class ChecksumMismatch(ValueError):
    """A download whose SHA-256 is not the one expected; nothing was kept."""


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Writes ``data`` (str: as UTF-8) to ``path`` through a temporary file in the same folder,
    flushed to disk and renamed into place: the file is the old one or the new one, never a part.
    Makes the folder if needed; on any failure the temporary file is removed. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _temp_beside(path: Path) -> tuple[int, Path]:
    """A new, open temporary file in ``path``'s folder, with the mode a new ``path`` would get
    (0666 less the umask: the kernel applies it), not mkstemp's 0600."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_resumable(url: str, dest: str | Path, *, sha256: str | None, timeout: float,
                       what: str = "", check: Callable[[Path], object] | None = None) -> Path:
    """Streams ``url`` (urllib: http(s), file) to ``dest``, with progress on stderr (``what``,
    default dest's name, labels it), checked: its SHA-256 against ``sha256`` (None: not checked;
    ChecksumMismatch naming both) and ``check(path)`` if given (it raises to refuse the file);
    ``dest`` appears only when both pass. ``timeout``: seconds per blocking read;
    FolderNotWritable if dest's folder cannot be written; URLError, HTTPError or a timeout (all
    OSErrors) from the transfer.

    Resumable: the bytes go to ``dest.partial``, which a broken transfer leaves
    for the next call to continue with an HTTP Range request (a server that ignores it, or
    answers for another offset, sends the whole file, and the partial file starts over; one
    that says the range is past the end, 416, had sent it all: the partial file is checked as
    it is). The SHA-256 covers every byte, the partial ones included; a mismatch or a failed
    ``check`` removes the partial file, an interruption keeps it. One download per folder at a
    time: an flock on the folder (not on the file, which HDF5 locks itself when ``check`` opens
    it), so a second process waits, then finds ``dest`` done. Returns ``dest``."""
    import fcntl

    dest = Path(dest)
    part = dest.with_name(dest.name + ".partial")
    validator = dest.with_name(dest.name + ".partial.validator")   # the partial bytes' version
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(dest.parent, os.O_RDONLY)
    except OSError as err:
        raise FolderNotWritable(f"cannot write to the folder {dest.parent}: {err}") from err
    try:
        before = _stamp(dest)
        fcntl.flock(folder, fcntl.LOCK_EX)                # released when it is closed
        if _stamp(dest) not in (None, before):            # another process put it in place meanwhile
            return dest
        try:
            f = open(part, "a+b")
        except OSError as err:
            raise FolderNotWritable(f"cannot write to the folder {dest.parent}: {err}") from err
        with f:
            f.seek(0)
            digest, have = hashlib.sha256(), 0
            while chunk := f.read(CHUNK):                 # what an earlier transfer left
                digest.update(chunk)
                have += len(chunk)
            try:
                since = validator.read_text().strip() if have and validator.is_file() else None
                digest = _fetch(url, f, digest, have, timeout, what or dest.name, since,
                                lambda version: atomic_write(validator, version or ""))
            except OSError:
                if f.tell() == 0:                         # nothing came: nothing to resume
                    part.unlink(missing_ok=True)
                    validator.unlink(missing_ok=True)
                raise
            f.flush()
            os.fsync(f.fileno())
        try:
            if sha256 is not None and (got := digest.hexdigest()) != sha256:
                raise ChecksumMismatch(f"SHA-256 {got} is not the expected {sha256}")
            if check is not None:
                check(part)
        except ValueError:                                # not the file: nothing kept
            part.unlink(missing_ok=True)
            validator.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        validator.unlink(missing_ok=True)
        return dest
    finally:
        os.close(folder)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a file, None if there is none: whether it was replaced."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _fetch(url: str, f, digest, have: int, timeout: float, what: str, since: str | None = None,
           version: Callable[[str | None], object] = lambda v: None):
    """Appends ``url``'s bytes from offset ``have`` to the open file ``f`` and ``digest``, or
    all of them from 0 (to a new digest) when the server does not continue at ``have``; the
    digest of the whole file. ``since``: the version (strong ETag or Last-Modified) the bytes
    at hand came from, sent as If-Range, so a server whose file changed meanwhile sends it all
    (200) rather than the rest of another file; ``version(v)`` records the version of what is
    coming, before its first byte is written."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    if have and since:
        headers["If-Range"] = since
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:                      # nothing left to send: it is all here
            return digest
        raise
    with response:
        continues = re.match(rf"bytes {have}-", response.headers.get("Content-Range") or "")
        if have and not (getattr(response, "status", 200) == 206 and continues):
            f.seek(0)
            f.truncate()
            digest, have = hashlib.sha256(), 0
        etag = response.headers.get("ETag")
        version(etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified"))
        size = response.headers.get("Content-Length")
        total = have + int(size) if size and size.isdigit() else None
        with _progress(what, total, have) as advance:
            try:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
            except http.client.HTTPException as err:     # a connection cut mid-file
                raise OSError(f"the transfer broke after {f.tell() / 2**20:.1f} MiB "
                              f"({type(err).__name__})") from err
        if total is not None and f.tell() < total:        # (urllib may just stop short)
            raise OSError(f"the transfer broke after {f.tell() / 2**20:.1f} MiB of "
                          f"{total / 2**20:.1f}")
    return digest


@contextmanager
def _progress(what: str, total: int | None, done: int = 0) -> Iterator[Callable[[int], None]]:
    """``advance(bytes)`` of a download's progress on stderr (``done`` bytes there already): a
    rich bar on a terminal, else a plain line at every further tenth of ``total`` (with no total
    known: every 10 MiB)."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=Console(stderr=True)) as bar:
            task = bar.add_task(f"downloading {what}", total=total, completed=done)
            yield lambda n: bar.advance(task, n)
        return
    step = max(1, total // 10) if total else 10 << 20
    reported = done // step

    def advance(n: int) -> None:
        nonlocal done, reported
        done += n
        if done // step > reported:
            reported = done // step
            of = f" of {total / 2**20:.1f} MiB ({100 * done / total:.0f}%)" if total else " MiB"
            print(f"downloading {what}: {done / 2**20:.1f}{of}", file=sys.stderr, flush=True)

    yield advance
