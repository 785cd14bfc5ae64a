"""Runs kept in cloud storage: ``--runs-dir`` / ``--storage`` given as a URI that pyarrow's file
systems reach (``s3://bucket/runs``, ``gs://…``, ``abfs://…``, ``hdfs://…``; ``file:///shared/runs``
names a local or mounted folder the same way).

A REINFORCE run writes its folder on the machine running it, as always, in a staging folder
(``$LABRUN_HOME/staging``), and ``Mirror`` copies what changed to ``URI/<run>`` after every
checkpoint and at the end, deleting there what the run deleted here (old checkpoints), so the
URI holds the run as the folder does; it deletes only files it copied there or fetched from
there itself, never ones another writer put there. ``labrun resume URI/<run>`` fetches it back
first. Anyone with the URI (another node, after this one is gone) can resume it. While a run is
written, a ``Lease`` at ``URI/<run>/.writer`` says by whom, and a second writer is refused.

A Tune run (a supervised lab, a sweep) gives the URI to Tune itself (``storage_path``): each
trial writes its results, checkpoints and TensorBoard files there from whichever node runs it.
labrun's own files of the study (``study.yaml``, ``results.csv``, ``best_config.yaml``,
``comparison.png``) are written in the staging folder and copied next to Tune's (``upload``).

Credentials are pyarrow's: the usual environment variables or files of each cloud
(``AWS_ACCESS_KEY_ID``…, ``GOOGLE_APPLICATION_CREDENTIALS``…).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from cluster.errors import UsageError
from cluster.infra.session import ClusterError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class StorageError(ClusterError):
    """A storage URI that cannot be used; the message says which and why."""


def is_uri(path: str | Path | None) -> bool:
    """Whether ``path`` is a URI (``scheme://…``) rather than a folder."""
    return isinstance(path, str) and bool(_SCHEME.match(path))


def open_uri(uri: str):
    """(pyarrow file system, path on it) for ``uri``; StorageError if pyarrow cannot open it."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as err:  # pyarrow: ArrowInvalid (unknown scheme), OSError (credentials)...
        raise StorageError(f"storage {uri}: pyarrow cannot open it: {err}") from None


def join(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


def split(uri: str) -> tuple[str, str]:
    """(parent URI, last name) of ``uri``: ``s3://b/runs/x`` -> (``s3://b/runs``, ``x``)."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    return parent, name


def _upload(fs, path: Path, target: str) -> None:
    import pyarrow.fs

    fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    pyarrow.fs.copy_files(str(path), target, source_filesystem=pyarrow.fs.LocalFileSystem(),
                          destination_filesystem=fs)


def _download(fs, source: str, path: Path) -> None:
    import pyarrow.fs

    path.parent.mkdir(parents=True, exist_ok=True)
    pyarrow.fs.copy_files(source, str(path), source_filesystem=fs,
                          destination_filesystem=pyarrow.fs.LocalFileSystem())


def upload(local: Path, uri: str, names: list[str]) -> None:
    """Copies the files ``local/NAME`` that exist to ``uri/NAME``, leaving everything else there."""
    fs, root = open_uri(uri)
    try:
        for name in names:
            if (local / name).is_file():
                _upload(fs, local / name, f"{root}/{name}")
    except OSError as err:
        raise StorageError(f"storage {uri}: {err}") from None


def download(uri: str, local: Path, names: list[str]) -> list[str]:
    """Copies the files ``uri/NAME`` that exist to ``local/NAME``; the names it found."""
    import pyarrow.fs

    fs, root = open_uri(uri)
    found = []
    try:
        for name in names:
            if fs.get_file_info(f"{root}/{name}").type == pyarrow.fs.FileType.File:
                _download(fs, f"{root}/{name}", local / name)
                found.append(name)
    except OSError as err:
        raise StorageError(f"storage {uri}: {err}") from None
    return found


def is_file(uri: str) -> bool:
    import pyarrow.fs

    fs, path = open_uri(uri)
    try:
        return fs.get_file_info(path).type == pyarrow.fs.FileType.File
    except OSError as err:
        raise StorageError(f"storage {uri}: {err}") from None


def folders(uri: str, prefix: str = "") -> list[str]:
    """The names of the folders directly in ``uri`` that start with ``prefix``, oldest first
    (by modification time where the store keeps one, else by name)."""
    import pyarrow.fs

    fs, root = open_uri(uri)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except OSError as err:
        raise StorageError(f"storage {uri}: {err}") from None
    infos = [i for i in infos if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith(prefix)]
    infos.sort(key=lambda i: (i.mtime_ns or 0, i.base_name))
    return [i.base_name for i in infos]


def staging_dir(uri: str) -> Path:
    """The local folder where runs bound for ``uri`` are written: one per URI."""
    home = Path(os.environ.get("LABRUN_HOME") or Path.home() / ".labrun")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", uri)[-60:].strip("_")
    return home / "staging" / f"{slug}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}"


def _under(folder: str, paths: set[str]) -> bool:
    return any(p.startswith(folder + "/") for p in paths)


@dataclass
class Mirror:
    """Keeps ``uri`` a copy of the local folder ``local``: ``push()`` uploads files that are new
    or changed since the last push and deletes there the files deleted here, if this mirror
    uploaded or fetched them, and the folders that leaves empty (a file another writer put at
    ``uri`` stays, and so does its folder). ``ignore``: paths under ``local`` never copied (the
    run folder's lock)."""

    local: Path
    uri: str
    ignore: tuple[str, ...] = ()
    _sent: dict[str, tuple[int, int]] = field(default_factory=dict)  # relative path -> (size, mtime)

    def push(self) -> int:
        """Uploads what changed; returns how many files it uploaded."""
        import pyarrow.fs

        fs, root = open_uri(self.uri)
        entries = {p.relative_to(self.local).as_posix(): p for p in self.local.rglob("*")}
        entries = {rel: p for rel, p in entries.items() if rel not in self.ignore}
        here = {rel: p for rel, p in entries.items() if p.is_file()}
        folders = set(entries) - set(here)
        uploaded = 0
        try:
            fs.create_dir(root, recursive=True)
            for rel, path in sorted(here.items()):
                stat = path.stat()
                stamp = (stat.st_size, stat.st_mtime_ns)
                if self._sent.get(rel) == stamp:
                    continue
                _upload(fs, path, f"{root}/{rel}")
                self._sent[rel] = stamp
                uploaded += 1
            there = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True))
            deleted, kept = set(), set()
            for info in sorted(there, key=lambda i: i.path, reverse=True):   # a folder's files first
                rel = info.path[len(root):].lstrip("/")
                if info.type == pyarrow.fs.FileType.File and rel not in here and rel in self._sent:
                    fs.delete_file(info.path)
                    self._sent.pop(rel)
                    deleted.add(rel)
                elif (info.type == pyarrow.fs.FileType.Directory and rel not in folders
                      and _under(rel, deleted) and not _under(rel, kept)):   # a folder it emptied
                    fs.delete_dir(info.path)
                    deleted.add(rel)
                else:
                    kept.add(rel)
        except OSError as err:
            raise StorageError(f"storage {self.uri}: {err}") from None
        return uploaded

    def pull(self) -> int:
        """Downloads the whole of ``uri`` into ``local``; StorageError if there is nothing there.
        Returns how many files it downloaded."""
        import pyarrow.fs

        fs, root = open_uri(self.uri)
        try:
            if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
                raise StorageError(f"storage {self.uri}: no such run folder")
            files = [i for i in fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True))
                     if i.type == pyarrow.fs.FileType.File]
            files = [i for i in files if i.path[len(root):].lstrip("/") not in self.ignore]
            for info in files:
                rel = info.path[len(root):].lstrip("/")
                path = self.local / rel
                _download(fs, info.path, path)
                stat = path.stat()
                self._sent[rel] = (stat.st_size, stat.st_mtime_ns)
        except OSError as err:
            raise StorageError(f"storage {self.uri}: {err}") from None
        return len(files)


LEASE_FILE = ".writer"


READ_ATTEMPTS = 5   # reads of a lease file that does not parse, over a second


class Lease:
    """The one writer of the run at ``uri``: ``URI/.writer`` holds who writes it (host, PID, a
    random id) and when the lease was last renewed; a thread renews it every ``renew_s`` while
    the run is written, and it is removed at the end. A second writer finds it and is refused
    (UsageError, as for a run folder's lock), unless the lease is stale: not renewed for ``expire_s`` seconds (its holder
    died with its machine) or held by a process of this host that is no longer running.

    Object stores give pyarrow no atomic "create if absent", so this is a lease, not a lock: two
    writers starting within the same second are told apart by writing, waiting ``settle_s`` and
    reading back (the later write wins, the other is refused)."""

    def __init__(self, uri: str, renew_s: float = 30.0, expire_s: float = 180.0, settle_s: float = 1.0):
        self.uri, self.renew_s, self.expire_s, self.settle_s = uri, renew_s, expire_s, settle_s
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "id": secrets.token_hex(8)}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _path(self) -> tuple[object, str]:
        fs, root = open_uri(self.uri)
        return fs, f"{root}/{LEASE_FILE}"

    def holder(self) -> dict | None:
        """The lease at the URI (None: there is none, or it cannot be read as one). A file that
        does not parse (a store that shows a write before it is whole) is read again, for up to
        a second, before it counts as unreadable."""
        import pyarrow.fs

        fs, path = self._path()
        for _ in range(READ_ATTEMPTS):
            try:
                if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
                    return None
                with fs.open_input_stream(path) as f:
                    held = json.loads(f.read(4096).decode())
                return held if isinstance(held, dict) else None
            except OSError as err:
                raise StorageError(f"storage {self.uri}: {err}") from None
            except ValueError:
                time.sleep(1.0 / READ_ATTEMPTS)
        return None

    def _write(self) -> None:
        fs, path = self._path()
        try:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            # Written beside, then moved over the lease: a reader sees the old lease or the new
            # one, never half of one (a rename on a file system; object stores write whole).
            partial = f"{path}.{self.me['id']}.partial"
            with fs.open_output_stream(partial) as out:
                out.write(json.dumps({**self.me, "renewed": time.time()}).encode())
            fs.move(partial, path)
        except OSError as err:
            raise StorageError(f"storage {self.uri}: {err}") from None

    def stale(self, held: dict) -> str | None:
        """Why the lease ``held`` no longer counts, or None while its holder may be writing."""
        age = time.time() - float(held.get("renewed") or 0)
        if age > self.expire_s:
            return f"not renewed for {age:.0f} s"
        if held.get("host") == self.me["host"] and not _running(held.get("pid")):
            return f"its process (PID {held.get('pid')}) is no longer running"
        return None

    def acquire(self, existing: bool = False) -> None:
        """Takes the lease; UsageError if another writer holds it, StorageError if the URI
        cannot be used (or, ``existing``, holds no run folder to lease)."""
        import pyarrow.fs

        if existing:
            fs, root = open_uri(self.uri)
            try:
                there = fs.get_file_info(root).type == pyarrow.fs.FileType.Directory
            except OSError as err:
                raise StorageError(f"storage {self.uri}: {err}") from None
            if not there:
                raise StorageError(f"storage {self.uri}: no such run folder")
        held = self.holder()
        if held is not None and held.get("id") != self.me["id"]:
            why = self.stale(held)
            if why is None:
                raise UsageError(
                    f"{self.uri}: another labrun is writing this run (PID "
                    f"{held.get('pid')} on {held.get('host')}, lease renewed "
                    f"{time.time() - float(held.get('renewed') or 0):.0f} s ago); wait for it to "
                    f"end, or for {self.expire_s:g} s after it died")
            print(f"warning: {self.uri}: took over the lease of PID {held.get('pid')} on "
                  f"{held.get('host')}: {why}", file=sys.stderr)
        self._write()
        time.sleep(self.settle_s)
        held = self.holder()
        if held is None or held.get("id") != self.me["id"]:
            raise UsageError(f"{self.uri}: another labrun started writing this run at "
                               f"the same moment (PID {(held or {}).get('pid')} on "
                               f"{(held or {}).get('host')})")
        self._thread = threading.Thread(target=self._renew, daemon=True, name="labrun-lease")
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                self._write()
            except StorageError as err:   # the next renewal may get through
                print(f"warning: could not renew the lease: {err}", file=sys.stderr)

    def release(self) -> None:
        """Stops renewing and removes the lease, if it is still this process's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            held = self.holder()
            if held is not None and held.get("id") == self.me["id"]:
                fs, path = self._path()
                fs.delete_file(path)
        except (OSError, StorageError) as err:
            print(f"warning: could not remove the lease at {self.uri}: {err}", file=sys.stderr)


@contextmanager
def leased(uri: str | None, existing: bool = False) -> Iterator[None]:
    """Holds the lease of the run at ``uri`` while the block runs (nothing for None);
    ``existing``: the run folder must be there already."""
    if uri is None:
        yield
        return
    lease = Lease(uri)
    lease.acquire(existing)
    try:
        yield
    finally:
        lease.release()


def _running(pid: object) -> bool:
    import psutil

    return isinstance(pid, int) and psutil.pid_exists(pid)
