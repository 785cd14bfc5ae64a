"""Processes known by identity: PID, creation time and owner, so that a PID the system has
reused since is never taken for the one recorded.

``record`` notes processes as ``(pid, create_time, uid)``; ``live`` finds those still running (all
three match, and the owner is this user); ``with_descendants`` adds their children of this user
(Ray workers and job drivers start later, under the raylets); ``stop`` signals them, skipping
what it may not touch rather than stopping half-way.
"""

from __future__ import annotations

import os
import signal

import psutil

Record = tuple[int, float, int]   # pid, creation time (psutil, seconds since the epoch), real uid


def record(procs: list) -> tuple[Record, ...]:
    """``procs`` (psutil) as records, those of this user only, each once, by PID."""
    out = {}
    for proc in procs:
        try:
            if proc.uids().real == os.getuid():
                out[proc.pid] = (proc.pid, proc.create_time(), proc.uids().real)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return tuple(out[pid] for pid in sorted(out))


def live(records: tuple[Record, ...] | list) -> list:
    """The recorded processes still running: same PID, same creation time, same owner, and that
    owner this user."""
    found = []
    for pid, created, uid in records:
        if uid != os.getuid():
            continue
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.05 and proc.uids().real == uid:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def with_descendants(procs: list) -> list:
    """``procs`` and all their descendants of this user; never this process."""
    found = {p.pid: p for p in procs}
    for proc in procs:
        try:
            children = proc.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for child in children:
            try:
                if child.uids().real == os.getuid():
                    found[child.pid] = child
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    found.pop(os.getpid(), None)
    return list(found.values())


def stop(procs: list, timeout: float = 15) -> tuple[int, list[int]]:
    """SIGTERM, then SIGKILL after ``timeout``: (how many were signalled, PIDs skipped because the
    system refused: another user's)."""
    signalled, skipped = [], []
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
            signalled.append(proc)
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied:
            skipped.append(proc.pid)
    _, alive = psutil.wait_procs(signalled, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied:
            skipped.append(proc.pid)
    psutil.wait_procs(alive, timeout=5)
    return len(signalled), skipped
