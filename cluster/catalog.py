"""``labrun runs``: the runs and studies under a folder, newest first, each with its status, its
main metric and how far it got, read from the files a run leaves (nothing is started).

Status, one of ``STATUSES``:

- ``running``: a process holds the folder's lock (``.lock``; the kernel's flock table says so,
  ``/proc/locks``, without taking it).
- ``finished``: it met its stop criterion (a REINFORCE run's ``stopped: solved...`` or ``...
  budget reached``); a study whose trials all ended on their own or were stopped early by its
  scheduler.
- ``stopped``: asked to stop (Ctrl-C, SIGTERM, ``labrun stop``) and ended cleanly, after a final
  checkpoint; ``labrun resume`` continues it.
- ``failed``: ended on an error (a REINFORCE run's non-finite loss, its workers lost; a study with
  a failed trial).
- ``interrupted``: ended without a word (SIGKILL, a machine gone): its last checkpoint is what
  is left; ``labrun resume`` continues from it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster.folders import LOCK_FILE
from cluster.reinforce.outputs import CONFIG_FILE, LOG_FILE, METRICS_FILE, read_metrics
from cluster.tuning.study import RESULTS_FILE, STUDY_FILE

STATUSES = ("running", "finished", "stopped", "failed", "interrupted")
REINFORCE_METRIC = "rollout/episode_return_mean"
_SESSION = re.compile(r"^\S+ \S+ starting \d+ rollout worker")      # run.log: a session began
_STOPPED = re.compile(r"^\S+ \S+ stopped: (.*)$")                     # ... and how it ended
_STARTED = re.compile(r"__(\d{8}-\d{6})(?:-\d+)?$")   # <name>__[<seed>__]<YYYYmmdd-HHMMSS>[-N]


@dataclass(frozen=True)
class Entry:
    name: str            # the folder's name
    kind: str            # "run" (REINFORCE) or "study" (Tune: a lab's run or a sweep)
    lab: str
    status: str          # one of STATUSES
    metric: str          # the metric a run of its lab is judged by
    last: float | None   # its latest value (a study: the best trial's latest)
    best: float | None   # its best value over the run (a study: over the trials)
    steps: int | None    # a REINFORCE run's env steps
    trials: int | None   # a study's trials
    epochs: int | None   # a study's longest trial's epochs (training iterations)
    train_s: float | None  # seconds of training (a study: its longest trial's)
    started: float       # when the run started (seconds since the epoch)
    folder: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: a value that is not finite (a diverged loss) becomes None."""
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in asdict(self).items()}

    @property
    def progress(self) -> str:
        """How far it got, short: '1.2M steps', '550k steps', '4 trials x 5 ep'."""
        if self.steps is not None:
            return (f"{self.steps / 1e6:.1f}M steps" if self.steps >= 1e6
                    else f"{self.steps / 1e3:.0f}k steps" if self.steps >= 1e4 else f"{self.steps} steps")
        return f"{self.trials} trial{'s' * (self.trials != 1)} x {self.epochs} ep"

    @property
    def short_name(self) -> str:
        """The folder's name without its time stamp (``started`` says when)."""
        return _STARTED.sub("", self.name) or self.name


def scan(root: str | Path, skipped: list[str] | None = None) -> list[Entry]:
    """Every run and study directly under ``root``, newest first. A folder that cannot be read
    (another user's, a malformed file in it) is left out, and named with why in ``skipped``:
    on a shared runs folder, one bad folder must not hide the others."""
    root = Path(root)
    entries = []
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        try:
            if not folder.is_dir():
                continue
            entry = (study_entry(folder) if (folder / STUDY_FILE).is_file()
                     else run_entry(folder) if (folder / CONFIG_FILE).is_file() else None)
        except (OSError, ValueError, TypeError, AttributeError, KeyError, yaml.YAMLError) as err:
            if skipped is not None:
                skipped.append(f"{folder.name}: {type(err).__name__}: {err}")
            continue
        if entry is not None:
            entries.append(entry)
    return sorted(entries, key=lambda e: (e.started, e.name), reverse=True)


def lock_held(folder: Path) -> bool:
    """Whether a process holds the flock on ``folder/.lock``: its inode in /proc/locks (Linux;
    elsewhere the PID the lock file holds is alive)."""
    path = folder / LOCK_FILE
    try:
        inode = path.stat().st_ino
    except OSError:
        return False
    device = os.stat(path).st_dev
    held = f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"   # as /proc/locks writes it
    try:
        with open("/proc/locks") as f:
            return any(len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == held
                       for fields in map(str.split, f))
    except OSError:
        pass
    try:
        pid = int(path.read_text().strip() or 0)
        return pid > 0 and (os.kill(pid, 0) is None)
    except (OSError, ValueError):
        return False


def run_status(log_text: str) -> str:
    """A REINFORCE run's status from its run.log (when no process holds its lock): how its last
    session (``train``, each ``resume``: each logs ``starting N rollout worker(s)`` first) ended,
    by the ``stopped:`` line the trainer writes last; none: it was killed."""
    reason = None
    for line in log_text.splitlines():
        if _SESSION.match(line):
            reason = None
        elif _STOPPED.match(line):
            reason = _STOPPED.match(line).group(1)
    if reason is None:
        return "interrupted"
    if reason.startswith("solved") or "budget reached" in reason:
        return "finished"
    if reason.startswith(("interrupted", "stopped by request")):
        return "stopped"
    return "failed"


def run_entry(folder: Path) -> Entry | None:
    """A REINFORCE run folder's entry (None if its config is not one)."""
    try:
        config = yaml.safe_load((folder / CONFIG_FILE).read_text()) or {}
        rows = read_metrics(folder) if (folder / METRICS_FILE).is_file() else []
        log = (folder / LOG_FILE).read_text() if (folder / LOG_FILE).is_file() else ""
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(config, dict) or config.get("lab", "rl") != "rl":
        return None
    values = [r[REINFORCE_METRIC] for r in rows if r.get(REINFORCE_METRIC) is not None]
    steps = int(rows[-1].get("counters/env_steps", 0)) if rows else 0
    return Entry(folder.name, "run", "rl", "running" if lock_held(folder) else run_status(log),
                 REINFORCE_METRIC, values[-1] if values else None, max(values) if values else None,
                 steps, None, None, rows[-1].get("time/train_s") if rows else None,
                 _started(folder), str(folder))


def study_entry(folder: Path) -> Entry | None:
    """A Tune study folder's entry: a supervised lab's run or a sweep."""
    try:
        study = yaml.safe_load((folder / STUDY_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    metric = study.get("metric", "")
    pick = max if study.get("mode", "max") == "max" else min
    trials = [_trial(p, metric, pick) for p in sorted(folder.iterdir())
              if p.is_dir() and (p / "result.json").is_file()]
    rows = _results(folder)
    if lock_held(folder):
        status = "running"
    elif rows is None:
        status = "interrupted"
    else:
        statuses = {r.get("status") for r in rows}
        status = ("failed" if "error" in statuses else "stopped" if "unfinished" in statuses
                  else "finished")
    lasts = [t["last"] for t in trials if t["last"] is not None]
    bests = [t["best"] for t in trials if t["best"] is not None]
    epochs = max((t["epochs"] for t in trials), default=0)
    times = [t["time"] for t in trials if t["time"] is not None]
    return Entry(folder.name, "study", str(study.get("lab", "")), status, metric,
                 pick(lasts) if lasts else None, pick(bests) if bests else None,
                 None, len(trials), epochs,
                 max(times) if times else None, _started(folder), str(folder))


def _trial(folder: Path, metric: str, pick) -> dict[str, Any]:
    """A trial's latest and best (``pick``: max or min) ``metric``, epochs and seconds."""
    values, epochs, seconds = [], 0, None
    for line in (folder / "result.json").read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue          # a line being written
        if isinstance(row.get(metric), (int, float)):
            values.append(float(row[metric]))
        epochs = max(epochs, int(row.get("training_iteration") or 0))
        seconds = row.get("time_total_s", seconds)
    return {"last": values[-1] if values else None,
            "best": pick(values) if values else None, "epochs": epochs, "time": seconds}


def _results(folder: Path) -> list[dict[str, str]] | None:
    """results.csv's rows (labrun writes it when a study ends, cleanly or not), or None."""
    try:
        with open(folder / RESULTS_FILE, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return None


def _started(folder: Path) -> float:
    """When the run started: the time stamped into its folder's name, else the folder's mtime."""
    match = _STARTED.search(folder.name)
    try:
        return time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S")) if match else folder.stat().st_mtime
    except ValueError:                                   # a name that only looks stamped
        return folder.stat().st_mtime
