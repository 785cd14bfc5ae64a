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
from cluster.trackers import Tracking, flatten, read_state, shown_uri, tracked
from cluster.tuning.study import BEST_FILE, PLOT_FILE, RESULTS_FILE, Study

# A trial's status in the results (cluster/tuning/results.py) -> how its tracked run ended.
ENDED = {"ok": "finished", "stopped early": "finished", "error": "failed", "unfinished": "stopped"}
_LIVE: list["TrackTrials"] = []   # this process's callbacks (Tune's copy after a restore too)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


_STUDY: list[Study] = []   # the study this process runs now (``track``): a restored callback's


def track(study: Study, loggers: Sequence[str]) -> list[Callback]:
    """The callbacks that track ``study``'s trials (none unless ``loggers`` names a tracker).
    Also the study a callback restored from Tune's tuner.pkl tracks: the folder of this session,
    wherever the study was when it started."""
    _STUDY[:] = [study]
    return [TrackTrials(loggers)] if tracked(loggers) else []


class TrackTrials(Callback):
    """One tracked run per trial (see the module's docstring). Picklable: Tune keeps its
    callbacks in tuner.pkl, and a resumed sweep tracks the same way (only the loggers are
    kept; the study is this session's, ``track``). A hook that fails warns; it never stops the
    sweep."""

    def __init__(self, loggers: Sequence[str]):
        self.study, self.loggers = _STUDY[0], tuple(loggers)
        self._open: dict[str, Tracking] = {}   # by the trial folder's name, as results rows
        self._parent: dict[str, str] = {}
        _LIVE.append(self)

    def __getstate__(self) -> dict[str, Any]:
        return {"loggers": self.loggers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    @property
    def sweep(self) -> bool:
        return bool(self.study.space)

    def _guarded(self, what: str, call) -> None:
        try:
            call()
        except Exception as err:   # noqa: BLE001 - tracking is never worth the sweep
            _warn(shown_uri(f"warning: tracking ({what}) failed: {type(err).__name__}: {str(err)[:300]}"))

    def setup(self, **info) -> None:
        self._guarded("the study's run", self._setup)

    def _setup(self) -> None:
        if not self.sweep:
            return
        if "mlflow" in self.loggers:
            study_run = _open_study_run(self.study, self.loggers)   # left running: finish_study ends it
            run_id = read_state(self.study.folder).get("mlflow", {}).get("run_id")
            if study_run.trackers and run_id:
                self._parent["mlflow"] = run_id
        self._parent["wandb"] = self.study.name

    def _folder(self, trial) -> Path:
        """Where the trial's tracker ids (and W&B's offline run) go, the same in every session:
        its folder when the study is local (made now, before Tune makes it), else a folder of
        its name in the study's staging folder."""
        path = str(trial.path)
        folder = self.study.folder / Path(path).name if storage.is_uri(self.study.location) else Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._guarded(f"trial {trial.trial_id}", lambda: self._start(trial))

    def _start(self, trial) -> None:
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
        if tracking is not None:   # (Tracking guards its own calls)
            step = result.get("counters/env_steps", result.get("training_iteration", 0))
            tracking.metrics(result, int(step))

    def finish(self, rows: list[dict[str, Any]]) -> None:
        """Each tracked trial gets its folder's files and its end (``rows``: the study's results,
        read after Tune finished); one without a row was stopped before it reported."""
        for row in rows:
            tracking = self._open.pop(row["trial"], None)
            if tracking is None:
                continue
            if not storage.is_uri(str(row["path"])) and Path(str(row["path"])).is_dir():
                tracking.artifacts(Path(str(row["path"])))
            tracking.close(ENDED.get(row["status"], "failed"))
        for tracking in self._open.values():
            tracking.close("stopped")
        self._open.clear()


def finish_study(study: Study, loggers: Sequence[str], rows: list[dict[str, Any]], stopped: bool) -> None:
    """After Tune (also when it failed: ``rows`` may be empty): the trials' tracked runs get
    their files and ends; a sweep's study gets its results table, best config and comparison
    plot, and its best trial's id (MLflow's study run ends; W&B gets one run in the study's
    group holding them)."""
    for callback in [c for c in _LIVE if c.study.folder == study.folder]:
        callback.finish(rows)
        _LIVE.remove(callback)
    if not study.space or not rows or not tracked(loggers):
        return   # (no rows: Tune did not get to run; the trials' runs, if any, ended above)
    files = [study.folder / name for name in (RESULTS_FILE, BEST_FILE, PLOT_FILE)
             if (study.folder / name).is_file()]
    best = next((r for r in rows if r.get(study.metric) is not None), None)
    status = "stopped" if stopped else "finished"
    if "mlflow" in loggers:
        tracking = _open_study_run(study, loggers)
        tracking.artifacts(study.folder, files)
        if best is not None:
            tracking.tag("labrun.best_trial", str(best["trial"]))
            tracking.tag("labrun.best_" + study.metric, str(best[study.metric]))
        tracking.close(status)
    if "wandb" in loggers:
        tracking = Tracking(["wandb"], runs_dir=study.runs_dir, folder=study.folder,
                            experiment=study.name.split("__")[0], run_name=f"{study.name} (study)",
                            tags=_study_tags(study), parent={"wandb": study.name}, warn=_warn)
        tracking.params({k: v for k, v in (best or {}).items() if not k.startswith("_")})
        tracking.artifacts(study.folder, files)
        tracking.close(status)
