"""Where a run's start-up time goes: the phases from the process's start to the first iteration.

``labrun train`` overlaps its slow parts (see docs/architecture.md, "Start-up"): Ray starts, and
its rollout workers with it, while a thread imports TensorFlow for the learner. The clock records
when each phase began and ended, in seconds from the run's origin (the process's start for
``labrun train`` and ``resume``; the trial's start in a sweep), so that the run log says where the
time went::

    start-up (s since the process started): cli=0.61 tensorflow=0.62..5.48 ray=0.62..5.71
    workers_ready=6.02 learner_built=6.10 first_iteration=6.43

and every metrics row carries ``time/startup_s`` (the origin to the end of the first iteration).
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, Iterable

from cluster.config.rl_experiment import ExperimentConfig
from cluster.quiet import import_quietly

LINE_PREFIX = "start-up"


def process_age_s() -> float:
    """Seconds since this process started (Linux: from /proc, to 10 ms), or 0.0 where unknown."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")   # field 22: starttime, since boot
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


class StartupClock:
    """Phases of one run's start-up: ``mark(name)`` when one ends, ``begin(name)`` and
    ``end(name)`` around one that overlaps others. Thread-safe enough for its use: each phase is
    written by one thread, once."""

    def __init__(self, origin: float | None = None, origin_name: str = "the process started"):
        """``origin``: a ``time.time()`` (default: when this process started)."""
        self.origin = time.time() - process_age_s() if origin is None else origin
        self.origin_name = origin_name
        self.phases: dict[str, tuple[float | None, float | None]] = {}

    def now(self) -> float:
        return round(time.time() - self.origin, 2)

    def mark(self, name: str) -> None:
        self.phases[name] = (None, self.now())

    def begin(self, name: str) -> None:
        self.phases[name] = (self.now(), None)

    def end(self, name: str) -> None:
        self.phases[name] = (self.phases.get(name, (None, None))[0], self.now())

    def duration(self, name: str) -> float | None:
        start, end = self.phases.get(name, (None, None))
        return None if start is None or end is None else round(end - start, 2)

    def line(self) -> str:
        """The run log's line: the finished phases in the order they ended."""
        done = sorted(((n, s, e) for n, (s, e) in self.phases.items() if e is not None),
                      key=lambda phase: phase[2])
        return f"{LINE_PREFIX} (s since {self.origin_name}): " + " ".join(
            f"{name}={end:.2f}" if start is None else f"{name}={start:.2f}..{end:.2f}"
            for name, start, end in done)


def parse_line(text: str) -> dict[str, tuple[float | None, float]]:
    """The phases of the last start-up line in a run log (``text``): name -> (start or None,
    end). Empty if there is none."""
    lines = [line for line in text.splitlines() if f"{LINE_PREFIX} (s since " in line]
    if not lines:
        return {}
    out: dict[str, tuple[float | None, float]] = {}
    for name, first, second in re.findall(r"(\w+)=(\d+\.\d+)(?:\.\.(\d+\.\d+))?", lines[-1]):
        out[name] = (float(first), float(second)) if second else (None, float(first))
    return out



def prefetch_tensorflow(cfg: ExperimentConfig,
                        startup: StartupClock | None = None) -> threading.Thread | None:
    """Imports TensorFlow (~5 s) in a thread while Ray starts, when the learner runs here; the
    import is the ``tensorflow`` phase of ``startup``.

    Nothing needs to wait for the thread: a later ``import rl.learner`` blocks on the import lock
    until this one finishes."""
    if cfg.resources.learner_gpus != 0:
        return None

    def load() -> None:
        if startup is not None:
            startup.begin("tensorflow")
        import_quietly("rl.learner")   # TensorFlow, its start-up chatter off the console
        if startup is not None:
            startup.end("tensorflow")
    thread = threading.Thread(target=load, name="prefetch-tensorflow", daemon=True)
    thread.start()
    return thread


def mark_when_ready(startup: StartupClock, name: str, actors: Iterable[Any]) -> None:
    """Marks phase ``name`` once every one of the Ray ``actors`` has been built, without
    waiting for them (Ray calls back on a thread of its own)."""
    actors = list(actors)
    left, lock = [len(actors)], threading.Lock()

    def one_ready(_) -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                startup.mark(name)
    for actor in actors:
        actor.__ray_ready__.remote().future().add_done_callback(one_ready)
