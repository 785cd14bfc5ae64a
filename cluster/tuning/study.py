"""What a Tune run is: a lab's experiment, a search space over it (empty for one trial), the
metric that ranks its trials, and where it lives. One trial (``labrun train`` of a supervised lab)
or a sweep (``labrun tune``, REINFORCE experiments included).

Call sequence (``cluster/tuning/commands.py``)::

    study = Study.single(lab, cfg, runs_dir)         # or Study.from_sweep(sweep, runs_dir)
    study = study.claim_folder()                     # its own folder, `-2` if the name is taken
    study.save()                                     # study.yaml: what `labrun resume` needs
    results = run_trials(study, lab)                 # or run_trials(Study.load(folder), lab, resume=True)
    rows = summarise(study, lab, results)            # one row per trial, best first

Storage: a runs folder every node reaches, or a URI (``s3://…``, see ``cluster/storage.py``)
that Tune writes to directly, trials' own files included; labrun's files are then written in a
local staging folder (``Study.folder``) and copied beside Tune's (``Study.location``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster import storage
from cluster.config import schema
from cluster.config.sweep import Sweep
from cluster.folders import new_folder
from supervised.files import atomic_write

RESULTS_FILE, BEST_FILE, PLOT_FILE = "results.csv", "best_config.yaml", "comparison.png"
STUDY_FILE = "study.yaml"   # ours: what resume needs beside Tune's own state
EXPERIMENT_FILE = "experiment.yaml"
OUR_FILES = [STUDY_FILE, EXPERIMENT_FILE, RESULTS_FILE, BEST_FILE, PLOT_FILE]  # copied to a storage URI


@dataclass(frozen=True)
class Study:
    """What to run: a lab's experiment, a search space over it (empty for one trial), the ranking."""

    lab: str                        # the lab's name in cluster.labs.LABS
    name: str                       # folder under runs_dir
    runs_dir: Path
    experiment: dict[str, Any]
    space: dict[str, tuple[str, list]]
    metric: str
    mode: str
    num_samples: int = 1
    scheduler: Any = None           # cluster.config.sweep.SchedulerConfig or None
    max_concurrent_trials: int | None = None
    search_seed: int = 0
    storage: str | None = None      # a URI (s3://...): Tune writes there, runs_dir is our staging

    @staticmethod
    def single(lab: Any, cfg: Any, runs_dir: str | None) -> "Study":
        """One trial of ``lab`` (a ``cluster.labs`` entry) with the experiment ``cfg``."""
        data = _absolute_paths(schema.to_dict(cfg), lab.name)
        root, uri = _where(runs_dir or cfg.output.runs_dir)
        name = f"{cfg.name}__{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
        return Study(lab.name, name, root, data, {}, lab.metric, lab.mode, storage=uri)

    @staticmethod
    def from_sweep(sweep: Sweep, runs_dir: str | None, name: str | None = None) -> "Study":
        cfg = sweep.cfg
        data = _absolute_paths(sweep.experiment_data, sweep.lab.name, base=sweep.experiment_path.parent)
        root, uri = _where(runs_dir or data.get("output", {}).get("runs_dir", "runs"))
        return Study(sweep.lab.name, name or f"{cfg.name}__{time.strftime('%Y%m%d-%H%M%S')}", root,
                     data, sweep.space, cfg.metric, cfg.mode, cfg.num_samples, cfg.scheduler,
                     cfg.max_concurrent_trials, cfg.seed, storage=uri)

    def loggers(self, lab: Any) -> tuple[str, ...]:
        """The study's ``output.loggers`` (its experiment's, a sweep's ``loggers`` merged in);
        ``lab``: its ``cluster.labs`` entry."""
        return schema.from_dict(lab.experiment, self.experiment).output.loggers

    def claim_folder(self) -> "Study":
        """This new study with its folder created: ``name-2``, ``name-3``... when another run or
        sweep of the same name, started in the same second, has ``name``. With a storage URI the
        local staging folder is the one claimed, and the study keeps that name there too."""
        return dataclasses.replace(self, name=new_folder(self.runs_dir, self.name).name)

    @property
    def folder(self) -> Path:
        """Where labrun writes the study's files (with a storage URI: the local staging copy)."""
        return self.runs_dir / self.name

    @property
    def location(self) -> str:
        """Where Tune keeps the study: the storage URI's folder, else the local one."""
        return storage.join(self.storage, self.name) if self.storage else str(self.folder)

    def publish(self) -> None:
        """With a storage URI: copies labrun's files of the study there, beside Tune's."""
        if self.storage:
            storage.upload(self.folder, self.location, OUR_FILES)

    def save(self) -> None:
        """What ``load`` needs to continue the study, in ``folder/study.yaml``, and the experiment
        the trials start from in ``experiment.yaml``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"lab": self.lab, "metric": self.metric, "mode": self.mode,
                "space": {k: [dist, args] for k, (dist, args) in self.space.items()},
                "experiment": self.experiment}
        atomic_write(self.folder / STUDY_FILE, yaml.safe_dump(data, sort_keys=False))
        atomic_write(self.folder / EXPERIMENT_FILE, yaml.safe_dump(self.experiment, sort_keys=False))
        self.publish()

    @staticmethod
    def load(where: str | Path) -> "Study":
        """The study of a run or sweep folder, or of its storage URI, that Tune can restore;
        ValueError if it is not one. From a URI, labrun's files are fetched to the staging folder."""
        uri = parent = None
        if storage.is_uri(str(where)):
            uri = str(where).rstrip("/")
            parent, name = storage.split(uri)
            folder = storage.staging_dir(parent) / name
            storage.download(uri, folder, OUR_FILES)
        else:
            folder = Path(where).resolve()
        if not (folder / STUDY_FILE).is_file() or not _tune_can_restore(uri or str(folder)):
            raise ValueError(f"{uri or folder}: not a labrun Tune folder (no {STUDY_FILE}, or "
                             f"nothing Tune can restore)")
        data = yaml.safe_load((folder / STUDY_FILE).read_text())
        space = {k: (dist, args) for k, (dist, args) in (data.get("space") or {}).items()}
        lab = data.get("lab", data.get("kind"))   # "kind": study files written before 2026-11-29
        return Study(lab, folder.name, folder.parent, data["experiment"], space,
                     data["metric"], data["mode"], storage=parent)


def _where(runs_dir: str) -> tuple[Path, str | None]:
    """(local folder for labrun's files, storage URI or None) of a runs_dir or URI."""
    if storage.is_uri(runs_dir):
        uri = runs_dir.rstrip("/")
        storage.open_uri(uri)        # a bad scheme or missing credentials: said before anything runs
        return storage.staging_dir(uri), uri
    return Path(runs_dir).resolve(), None


def _absolute_paths(data: dict[str, Any], lab: str, base: Path | None = None) -> dict[str, Any]:
    """Trials run in their own folders: a lab's relative data path becomes absolute here."""
    settings = data.get(lab)
    if not isinstance(settings, dict) or not settings.get("data_path"):
        return data
    path = str(((base or Path.cwd()) / settings["data_path"]).resolve())
    return {**data, lab: {**settings, "data_path": path}}


def _tune_can_restore(location: str) -> bool:
    """Whether Tune finds a run it can restore at ``location`` (a folder or a storage URI):
    Ray's own check, not its file names."""
    from ray import tune

    if storage.is_uri(location):
        fs, path = storage.open_uri(location)
        return tune.Tuner.can_restore(path, storage_filesystem=fs)
    return tune.Tuner.can_restore(location)
