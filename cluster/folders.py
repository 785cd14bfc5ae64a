"""New run and sweep folders: each run gets one of its own, even when two runs of one name start
in the same second (``<stem>``, else ``<stem>-2``, ``<stem>-3``, ...). Used for REINFORCE run
folders (``cluster/reinforce/outputs.py``) and Tune runs and sweeps (``cluster/tuning/study.py``)."""

from __future__ import annotations

from pathlib import Path


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
