"""Run and sweep folders: each run gets one of its own, even when two runs of one name start
in the same second (``<stem>``, else ``<stem>-2``, ``<stem>-3``, ...), and one process writes it
at a time (``locked``). Used for REINFORCE run folders (``cluster/reinforce/outputs.py``) and
Tune runs and sweeps (``cluster/tuning/study.py``, ``commands.py``); ``labrun runs`` reads the
lock to tell a running run (``cluster/catalog.py``)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cluster.errors import UsageError

LOCK_FILE = ".lock"   # held (flock) by the process writing the folder; holds its PID


def new_folder(parent: str | Path, stem: str) -> Path:
    """Creates ``parent/stem`` (and ``parent``), or ``parent/stem-N`` with the first N from 2 not
    taken, and returns it. The creation is exclusive: of two processes asking at once, each gets
    a folder the other does not."""
    base = Path(parent) / stem
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Holds the folder's lock while the block runs: one writer at a time. Another process
    holding it: UsageError at once, naming the folder and that process's PID. The lock is an
    flock on ``RUN_DIR/.lock``, so the kernel releases it when its process ends, however it ends
    (a SIGKILLed run leaves no stale lock); the file stays, and is not a sign of a writer."""
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UsageError(f"{run_dir}: another process (PID {holder}) is writing this run "
                             f"folder; wait for it to end or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # releases the lock
