"""Experiment trackers beside TensorBoard (``output.loggers``): MLflow and Weights & Biases.

A tracker (``MlflowTracker``, ``WandbTracker``) is one tracked run: the resolved config as
flattened params, each metric at its step, files as artifacts, and how the run ended;
``Tracking`` holds a run's trackers and keeps a failing one from stopping the run. REINFORCE
runs open theirs in
``cluster/reinforce/outputs.py``; Tune trials (supervised labs, sweeps) get theirs from
``cluster/tuning/tracking.py``, a callback in the driver. Neither package is imported until a
run asks for it: both are optional extras.

- MLflow writes to ``MLFLOW_TRACKING_URI`` when it is set (a team's server), else to a SQLite
  store in the runs folder (``mlflow.db``, artifacts under ``mlartifacts/``), which
  ``labrun mlflow RUNS_DIR`` shows on 127.0.0.1. The experiment is the config's (or sweep's)
  name; runs are tagged with their lab and folder.
- W&B runs online for a logged-in user (``WANDB_API_KEY``, or ``wandb login``'s netrc entry
  for its server, ``WANDB_BASE_URL``) and offline otherwise (``WANDB_MODE`` decides when set): an offline run stays in the run folder's
  ``wandb/`` until ``wandb sync``. The project is ``WANDB_PROJECT`` or ``labrun``.

A run's tracker ids go to ``trackers.json`` in its folder, so a resumed run continues the same
tracked run.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from supervised.files import atomic_write

Logger = Literal["tensorboard", "mlflow", "wandb"]
TRACKERS = ("mlflow", "wandb")          # the loggers that are trackers (TensorBoard is always on)
INSTALL = {"mlflow": "pip install -e '.[mlflow]'", "wandb": "pip install -e '.[wandb]'"}
STATE_FILE = "trackers.json"
MLFLOW_DB, MLFLOW_ARTIFACTS = "mlflow.db", "mlartifacts"
STATUS = {"finished": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}   # ours -> MLflow's
# Files worth keeping beside a run's metrics; checkpoints and TensorBoard's event files are not.
ARTIFACT_SUFFIXES = {".png", ".gif", ".mp4", ".abc", ".mid", ".wav", ".json", ".yaml", ".csv",
                     ".txt", ".md", ".log"}
MAX_ARTIFACT_BYTES = 64 * 2**20


@dataclass(frozen=True)
class TrackedOutput:
    """The ``output`` section's trackers, which every experiment file's ``output`` extends."""

    loggers: tuple[Logger, ...] = field(default=("tensorboard",), metadata={"min_len": 1})
    """Where metrics go beside the metrics file: 'tensorboard' (always written: labrun's own
    views read it), 'mlflow' (MLFLOW_TRACKING_URI, else a SQLite store in the runs folder:
    `labrun mlflow`), 'wandb' (online when logged in, else offline in the run folder). Each
    tracker gets the resolved config, every metric at its step, and the run's files."""

    def __post_init__(self):
        check_loggers(self.loggers)


def check_loggers(loggers: Iterable[str]) -> None:
    """A config's list of loggers: each named once (ValueError, as a config's own checks)."""
    seen = [name for name in loggers]
    if len(set(seen)) != len(seen):
        raise ValueError(f"loggers: expected each logger once, got {seen}")


def tracked(loggers: Iterable[str]) -> bool:
    """Whether ``loggers`` names a tracker (TensorBoard alone needs none of this module)."""
    return any(name in TRACKERS for name in loggers)


def missing(loggers: Iterable[str]) -> str | None:
    """A one-line error for the first requested tracker whose package is not installed, or None."""
    for name in loggers:
        if name in TRACKERS and importlib.util.find_spec(name) is None:
            return (f"output.loggers: '{name}' needs the {name} package, which is not installed: "
                    f"{INSTALL[name]}")
    return None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config data as ``{"learner.lr": 0.001, ...}`` (the key paths of ``--set``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among ``metrics`` whose keys are labrun's (``area/name``): Tune's own
    bookkeeping (``time_this_iter_s``, ``pid``...) has no area."""
    return {k: float(v) for k, v in metrics.items()
            if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


def artifact_files(folder: Path) -> list[Path]:
    """The files of ``folder`` worth tracking: plots, videos, tunes, reports, configs, logs;
    not checkpoints, TensorBoard events, trackers' own folders or anything over 64 MiB."""
    skip = ("checkpoint", "checkpoints", "wandb", MLFLOW_ARTIFACTS)
    out = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(p.startswith(skip) for p in parts[:-1]) or not path.is_file():
            continue
        if path.suffix in ARTIFACT_SUFFIXES and path.stat().st_size <= MAX_ARTIFACT_BYTES \
                and path.name != STATE_FILE:
            out.append(path)
    return out


def shown_uri(text: str) -> str:
    """``text`` with the credentials of any URL in it (``https://user:token@host``) hidden."""
    return re.sub(r"//[^/@\s]+@", "//***@", text)


def mlflow_uri(runs_dir: Path) -> str:
    """Where MLflow writes: ``MLFLOW_TRACKING_URI``, else the runs folder's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(runs_dir).resolve() / MLFLOW_DB}"


def where(loggers: Iterable[str], runs_dir: Path, *folders: str | Path) -> list[tuple[str, str]]:
    """(tracker, where to look) rows for a command's summary; ``folders``: where the offline
    W&B runs are (patterns allowed)."""
    rows = []
    if "mlflow" in loggers:
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        rows.append(("mlflow", shown_uri(uri) if uri else f"labrun mlflow {runs_dir}"))
    if "wandb" in loggers:
        project = os.environ.get("WANDB_PROJECT", "labrun")
        runs = " ".join(f"{folder}/wandb/offline-run-*" for folder in folders)
        rows.append(("wandb", f"project {project}" if wandb_mode() == "online" else
                     f"offline; to upload: wandb sync {runs}"))
    return rows


class MlflowTracker:
    """One MLflow run through ``MlflowClient`` (no global state: trials in one driver each have
    their own)."""

    name = "mlflow"

    def __init__(self, runs_dir: Path, experiment: str, run_name: str, tags: Mapping[str, str],
                 run_id: str | None = None, parent: str | None = None):
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        if not os.environ.get("LABRUN_DEBUG"):   # its database set-up lines, at every start,
            for name in ("mlflow", "alembic"):   # and a "View run" line per run (a sweep's
                logging.getLogger(name).setLevel(logging.WARNING)   # summary says where)
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        # A server that does not answer costs a run 2 tries of 20 s, not MLflow's 7 retries
        # with backoff at each call, before the tracker is dropped.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        self.client = MlflowClient(mlflow_uri(runs_dir))
        if run_id is not None:          # a resumed run continues its tracked run
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            return
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            local = None if os.environ.get("MLFLOW_TRACKING_URI") else \
                (Path(runs_dir).resolve() / MLFLOW_ARTIFACTS / experiment).as_uri()
            try:
                experiment_id = self.client.create_experiment(experiment, artifact_location=local)
            except MlflowException:     # another process created it a moment ago
                experiment_id = self.client.get_experiment_by_name(experiment).experiment_id
        else:
            experiment_id = found.experiment_id
            if found.lifecycle_stage == "deleted":   # deleted in the UI: runs of its name go on
                self.client.restore_experiment(experiment_id)
        tags = {**tags, **({"mlflow.parentRunId": parent} if parent else {})}
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id

    @property
    def state(self) -> dict[str, str]:
        return {"run_id": self.run_id}

    def params(self, flat: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], str(v)[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):   # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for k, v in numeric(metrics).items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def artifacts(self, folder: Path, files: Iterable[Path]) -> None:
        for path in files:
            where = path.relative_to(folder).parent.as_posix()
            self.client.log_artifact(self.run_id, str(path), None if where == "." else where)

    def tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, STATUS[status])


def _wandb_logged_in() -> bool:
    """Whether W&B has an API key here: ``WANDB_API_KEY``, or the entry ``wandb login`` keeps
    in ~/.netrc (``$NETRC``) for its server (``WANDB_BASE_URL``: a self-hosted one)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or ""
    netrc = Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()
    try:
        return f"machine {host}" in " ".join(netrc.read_text().split())
    except OSError:
        return False


def wandb_mode() -> str:
    return os.environ.get("WANDB_MODE") or ("online" if _wandb_logged_in() else "offline")


class WandbTracker:
    """One W&B run, its files under ``folder/wandb``."""

    name = "wandb"

    def __init__(self, folder: Path, experiment: str, run_name: str, tags: Mapping[str, str],
                 run_id: str | None = None, group: str | None = None):
        import wandb

        self.folder = folder
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "labrun"), name=run_name, group=group,
            dir=str(folder), id=run_id, resume="allow" if run_id else None, mode=wandb_mode(),
            tags=[f"{k}:{v}"[:64] for k, v in {"experiment": experiment, **tags}.items()
                  if k != "labrun.folder"],   # a local path: neither useful in 64 characters nor W&B's
            reinit="create_new", settings=wandb.Settings(console="off", silent=True))

    @property
    def state(self) -> dict[str, str]:
        return {"run_id": self.run.id}

    def params(self, flat: Mapping[str, Any]) -> None:
        self.run.config.update(dict(flat), allow_val_change=True)

    def metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(numeric(metrics), step=int(step))

    def artifacts(self, folder: Path, files: Iterable[Path]) -> None:
        """Copied into the run's files folder (``labrun/`` within it, clear of W&B's own
        config.yaml), which W&B uploads when the run ends or is synced."""
        for path in files:
            target = Path(self.run.dir) / "labrun" / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    def tag(self, key: str, value: str) -> None:
        self.run.summary[key] = value

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)


class Tracking:
    """The trackers of one run, opened together, fed together, closed together. A tracker that
    fails (a server gone away) is reported once on ``warn`` and dropped: tracking never stops a
    run that TensorBoard and the metrics file still record."""

    def __init__(self, loggers: Iterable[str], *, runs_dir: Path, folder: Path, experiment: str,
                 run_name: str, tags: Mapping[str, str], resume: bool = False,
                 parent: Mapping[str, str] | None = None, warn=print):
        self.folder, self.warn = folder, warn
        state = read_state(folder) if resume else {}
        self.reopened = {name for name in TRACKERS if state.get(name, {}).get("run_id")}
        self.trackers: list[Any] = []
        parent = parent or {}
        for name in (n for n in loggers if n in TRACKERS):
            run_id = state.get(name, {}).get("run_id")

            def start(name=name, run_id=run_id) -> None:
                self.trackers.append(
                    MlflowTracker(runs_dir, experiment, run_name, tags, run_id, parent.get(name))
                    if name == "mlflow" else
                    WandbTracker(folder, experiment, run_name, tags, run_id, parent.get(name)))
            self._guard(name, start)
        if self.trackers:
            try:
                write_state(folder, {**read_state(folder), **{t.name: t.state for t in self.trackers}})
            except OSError as err:
                self.warn(f"warning: could not write {folder / STATE_FILE} ({err}): a resumed run "
                          f"will start new tracked runs")

    def _guard(self, name: str, call) -> None:
        try:
            call()
        except Exception as err:   # noqa: BLE001 - a tracker is never worth the run
            self.warn(shown_uri(f"warning: {name} tracking stopped: {type(err).__name__}: {str(err)[:300]}"))
            self.trackers = [t for t in self.trackers if t.name != name]

    def _each(self, method: str, *args) -> None:
        for tracker in list(self.trackers):
            self._guard(tracker.name, lambda t=tracker: getattr(t, method)(*args))

    def params(self, flat: Mapping[str, Any]) -> None:
        """Logged once, when the tracked run starts (MLflow refuses a param logged again with
        another value)."""
        for tracker in [t for t in self.trackers if t.name not in self.reopened]:
            self._guard(tracker.name, lambda t=tracker: t.params(flat))

    def metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._each("metrics", metrics, step)

    def artifacts(self, folder: Path, files: Iterable[Path] | None = None) -> None:
        """``files`` of ``folder`` (default: ``artifact_files(folder)``) to every tracker."""
        if not self.trackers:
            return
        try:
            found = list(files) if files is not None else artifact_files(folder)
        except OSError as err:
            self.warn(f"warning: could not list {folder} for the trackers: {err}")
            return
        self._each("artifacts", folder, found)

    def tag(self, key: str, value: str) -> None:
        self._each("tag", key, value)

    def close(self, status: str) -> None:
        self._each("close", status)
        self.trackers = []


def read_state(folder: Path) -> dict[str, dict[str, str]]:
    try:
        return json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_state(folder: Path, state: Mapping[str, Any]) -> None:
    atomic_write(folder / STATE_FILE, json.dumps(state, indent=1) + "\n")
