"""Tune trials into the trackers of ``output.loggers`` (``cluster/trackers.py``), from the driver.

``TrackTrials`` is a Tune callback: each trial is one tracked run, with the trial's resolved
config as params, every labrun metric it reports at its step (environment steps for REINFORCE
trials, epochs for the supervised labs); then, once Tune is done (``finish_study``: a trial's
files reach its folder after its end, copied from Ray's staging folders), the files of its
folder (plots, tunes, reports, videos; not checkpoints) and how it ended. A restarted trial,
or a resumed sweep, continues the same tracked run (its ids are in the trial folder's
``trackers.json``). For a sweep, MLflow gets a run for the study whose children the trials
are, and W&B groups the trials by the study's name; ``finish_study`` gives the study the
results table, best config and comparison plot.

Its own module because it subclasses Tune's ``Callback``: importing it imports Ray, which must
wait until ``cluster.infra.session`` has set Ray's environment up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from ray.tune import Callback

from cluster import storage
from cluster.config import schema
from cluster.config.sweep import nested
from cluster.trackers import TRACKERS, Tracking, artifact_files, flatten, read_state
from cluster.tuning.study import BEST_FILE, PLOT_FILE, RESULTS_FILE, Study

# A trial's status in the results (cluster/tuning/results.py) -> how its tracked run ended.
ENDED = {"ok": "finished", "stopped early": "finished", "error": "failed", "unfinished": "stopped"}
_LIVE: list["TrackTrials"] = []   # this process's callbacks (Tune's copy after a restore too)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def loggers_of(study: Study, lab: Any) -> tuple[str, ...]:
    """The study's ``output.loggers`` (its experiment's, the sweep's ``loggers`` merged in)."""
    return schema.from_dict(lab.experiment, study.experiment).output.loggers


def _study_tags(study: Study) -> dict[str, str]:
    return {"labrun.lab": study.lab, "labrun.study": study.name, "labrun.folder": study.location}


def _open_study_run(study: Study, loggers: Sequence[str]) -> Tracking:
    """The sweep's own MLflow run (continued when the study folder has one)."""
    tracking = Tracking([n for n in loggers if n == "mlflow"], runs_dir=study.runs_dir,
                        folder=study.folder, experiment=study.name.split("__")[0],
                        run_name=study.name, tags=_study_tags(study), resume=True, warn=_warn)
    tracking.params({"search_space." + key: f"{dist} {args}" for key, (dist, args) in study.space.items()}
                    | {"metric": study.metric, "mode": study.mode})
    return tracking


class TrackTrials(Callback):
    """One tracked run per trial (see the module's docstring). Picklable: Tune keeps its
    callbacks in tuner.pkl, and a resumed sweep tracks the same way."""

    def __init__(self, study: Study, loggers: Sequence[str]):
        self.study, self.loggers = study, tuple(loggers)
        self._open: dict[str, Tracking] = {}   # by the trial folder's name, as results rows
        self._parent: dict[str, str] = {}
        _LIVE.append(self)

    def __getstate__(self) -> dict[str, Any]:
        return {"study": self.study, "loggers": self.loggers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    @property
    def sweep(self) -> bool:
        return bool(self.study.space)

    def setup(self, **info) -> None:
        if not self.sweep:
            return
        if "mlflow" in self.loggers:
            study_run = _open_study_run(self.study, self.loggers)   # left running: finish_study ends it
            run_id = read_state(self.study.folder).get("mlflow", {}).get("run_id")
            if study_run.trackers and run_id:
                self._parent["mlflow"] = run_id
        self._parent["wandb"] = self.study.name

    def _folder(self, trial) -> Path:
        """The trial's folder where the driver can read it; else one of its own in the study's."""
        path = str(trial.path)
        if not storage.is_uri(path) and Path(path).is_dir():
            return Path(path)
        folder = self.study.folder / trial.trial_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if Path(trial.path).name in self._open:
            return
        folder = self._folder(trial)
        config = trial.config or {}
        data = schema.merge(config.get("experiment") or {}, nested(config.get("overrides") or {}))
        tracking = Tracking(
            self.loggers, runs_dir=self.study.runs_dir, folder=folder,
            experiment=self.study.name.split("__")[0] if self.sweep else data.get("name", self.study.lab),
            run_name=f"{self.study.name}/{trial.trial_id}" if self.sweep else self.study.name,
            tags={**_study_tags(self.study), "labrun.trial": trial.trial_id, "labrun.folder": str(trial.path)},
            resume=True, parent=self._parent, warn=_warn)
        tracking.params(flatten(data))
        self._open[Path(trial.path).name] = tracking

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        tracking = self._open.get(Path(trial.path).name)
        if tracking is not None:
            step = result.get("counters/env_steps", result.get("training_iteration", 0))
            tracking.metrics(result, int(step))

    def finish(self, rows: list[dict[str, Any]]) -> None:
        """Each tracked trial gets its folder's files and its end (``rows``: the study's results,
        read after Tune finished); one without a row was stopped before it reported."""
        for row in rows:
            tracking = self._open.pop(row["trial"], None)
            if tracking is None:
                continue
            folder = Path(str(row["path"]))
            if not storage.is_uri(str(row["path"])) and folder.is_dir():
                tracking.artifacts(folder, artifact_files(folder))
            tracking.close(ENDED.get(row["status"], "failed"))
        for tracking in self._open.values():
            tracking.close("stopped")
        self._open.clear()


def finish_study(study: Study, loggers: Sequence[str], rows: list[dict[str, Any]], stopped: bool) -> None:
    """After Tune: the trials' tracked runs get their files and ends; a sweep's study gets its
    results table, best config and comparison plot, and the best trial's id (MLflow's study run
    ends; W&B gets one run in the study's group holding them)."""
    for callback in [c for c in _LIVE if c.study.folder == study.folder]:
        callback.finish(rows)
        _LIVE.remove(callback)
    if not study.space or not any(name in TRACKERS for name in loggers):
        return
    files = [study.folder / name for name in (RESULTS_FILE, BEST_FILE, PLOT_FILE)
             if (study.folder / name).is_file()]
    best = rows[0] if rows else {}
    status = "stopped" if stopped else "finished"
    if "mlflow" in loggers:
        tracking = _open_study_run(study, loggers)
        tracking.artifacts(study.folder, files)
        if best:
            tracking.tag("labrun.best_trial", str(best.get("trial")))
        tracking.close(status)
    if "wandb" in loggers:
        tracking = Tracking(["wandb"], runs_dir=study.runs_dir, folder=study.folder,
                            experiment=study.name.split("__")[0], run_name=f"{study.name} (study)",
                            tags=_study_tags(study), parent={"wandb": study.name}, resume=True,
                            warn=_warn)
        tracking.params({k: v for k, v in best.items() if not k.startswith("_")})
        tracking.artifacts(study.folder, files)
        tracking.close(status)
