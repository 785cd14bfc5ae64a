"""The lab registry: every lab labrun runs, REINFORCE included, and what it takes to run one.

An experiment file's top-level ``lab`` key names its entry (``rl`` when absent). An entry knows
its experiment file's config class, the metric a run of it is judged by, what it reports, how
``labrun train`` runs it, and how one Tune trial of it runs (its trainable and resources), so
nothing outside this file branches on a lab's name:

- ``ReinforceLab`` (``rl``): rollout workers and a learner (``cluster/reinforce/``); ``labrun
  train`` runs them directly, a sweep runs each trial in its own placement group.
- ``SupervisedLab`` (``intro``, ``mnist``, ``music``, ``dbvae``): a class of ``supervised/``
  per framework (TensorFlow, PyTorch) that follows ``supervised.lab.Lab``, run as Tune trials
  (``cluster/tuning/``).

To add a lab: its config class under ``supervised/config.py``, an experiment class in
``cluster/config/lab_experiments.py``, the lab class in ``supervised/`` (one per framework), and
one entry in ``LABS``.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, NamedTuple, Sequence

from cluster.config import schema
from cluster.config.lab_experiments import (
    FRAMEWORK_EXTRAS,
    FRAMEWORK_INSTALL,
    FRAMEWORK_MODULES,
    FRAMEWORK_NAMES,
    DbvaeExperiment,
    IntroExperiment,
    MnistExperiment,
    MusicExperiment,
)
from cluster.config.rl_experiment import ExperimentConfig, check_env, check_sweep_trial
from cluster.config.schema import ConfigError
from cluster.config.sweep import Sweep, SweepConfig, candidate_values, check_space, nested
from cluster.devices import gpus_for
from cluster.quiet import import_quietly
from cluster.reinforce import commands as reinforce_commands
from cluster.reinforce import trial as reinforce_trial
from cluster.reinforce.trainer import METRICS as REINFORCE_METRICS
from cluster.tuning import commands as tuning_commands
from cluster.tuning.trainable import lab_trainable


class TuneTrial(NamedTuple):
    """How Tune runs one trial of a lab."""

    trainable: Any              # the trainable, with its resources
    max_failures: int           # restarts of a crashed trial, from its last checkpoint
    keep_checkpoints: int


@dataclass(frozen=True)
class ReinforceLab:
    """REINFORCE on Gymnasium environments: rollout workers, a learner, weights broadcast."""

    name: str = "rl"
    experiment: type = ExperimentConfig
    metric: str = "rollout/episode_return_mean"
    mode: Literal["min", "max"] = "max"
    step: str = "iteration"     # what one reported result is

    def metrics(self) -> tuple[str, ...]:
        """Every metric a run reports (what a sweep may rank by)."""
        return REINFORCE_METRICS

    def check(self, cfg: ExperimentConfig, source: str) -> None:
        """Checks beyond the config's own (the environment exists and fits the policy)."""
        check_env(cfg, source)

    def check_sweep_trial(self, cfg: ExperimentConfig) -> None:
        check_sweep_trial(cfg)

    def train(self, cfg: ExperimentConfig, *, source: str, runs_dir: str | None,
              address: str | None) -> int:
        return reinforce_commands.train(self, cfg, runs_dir, address, source)

    def prepare(self, experiment: dict[str, Any], cluster: Mapping[str, float]) -> dict[str, Any]:
        """The experiment as trials get it: the learner's ``gpus: auto`` decided for the cluster."""
        return reinforce_trial.resolve_gpus(experiment, cluster.get("GPU", 0.0))

    def tune_trial(self, experiment: dict[str, Any], cluster: Mapping[str, float]) -> TuneTrial:
        """Each trial in a placement group for itself and its rollout workers."""
        from ray import tune

        cfg = reinforce_trial.trial_config(experiment, {})
        return TuneTrial(tune.with_resources(reinforce_trial.rl_trainable,
                                             reinforce_trial.resources(cfg)),
                         cfg.resources.max_trial_failures, cfg.output.keep_checkpoints)




def frameworks_of(loaded: Sweep | tuple[Lab, Any]) -> set[str]:
    """The frameworks the trials of ``labrun train``'s (lab, config) or of a sweep use (a swept
    ``framework``: each of its values)."""
    if isinstance(loaded, Sweep):
        used = {loaded.experiment_data.get("framework", "tensorflow")}
        if "framework" in loaded.space:
            used |= set(candidate_values(*loaded.space["framework"]))
        return used
    return {getattr(loaded[1], "framework", "tensorflow")}


def job_extras(loaded: Sweep | tuple[Lab, Any]) -> list[str]:
    """The optional dependencies (pyproject.toml) a job of ``labrun train``'s (lab, config) or
    of a sweep needs beyond the trackers: ``torch`` where a trial uses PyTorch, ``cuda``
    (TensorFlow's CUDA libraries) where TensorFlow is asked for a number of GPUs. ``auto`` asks
    for none: it resolves against the GPUs alive when the run starts (docs/clusters.md), so a
    cluster meant for GPUs says so in its image."""
    used = frameworks_of(loaded)
    if isinstance(loaded, Sweep):
        data = loaded.experiment_data
        gpus = [data.get("trial", {}).get("gpus"), data.get("resources", {}).get("learner_gpus")]
        gpus += [v for key in ("trial.gpus", "resources.learner_gpus") if key in loaded.space
                 for v in candidate_values(*loaded.space[key])]
    else:
        cfg = loaded[1]
        gpus = [getattr(getattr(cfg, "trial", None), "gpus", None),
                getattr(getattr(cfg, "resources", None), "learner_gpus", None)]
    extras = {FRAMEWORK_EXTRAS[f] for f in used if f in FRAMEWORK_EXTRAS}
    if "tensorflow" in used and any(isinstance(g, (int, float)) and g > 0 for g in gpus):
        extras.add("cuda")
    return sorted(extras)


def check_framework(lab: SupervisedLab, framework: str, source: str | None = None) -> None:
    """ConfigError (exit 2, before anything starts) when ``lab`` has no version in ``framework``."""
    if framework not in lab.runners:
        raise ConfigError(f"the {lab.name} lab has no {FRAMEWORK_NAMES[framework]} version yet; "
                          f"expected one of {', '.join(map(repr, lab.runners))}",
                          source=source, key="framework")


def require_installed(loaded: Sweep | tuple[Lab, Any], source: str | None = None) -> None:
    """ConfigError (exit 2, before anything starts) when a framework the trials use is not
    installed in this Python, saying how to install it: for runs whose trials run here
    (``labrun train``, ``tune``); ``submit`` leaves it to the job's environment (``job_extras``)."""
    for framework in sorted(frameworks_of(loaded)):
        if importlib.util.find_spec(FRAMEWORK_MODULES[framework]) is None:
            raise ConfigError(f"{FRAMEWORK_NAMES[framework]} is not installed in this Python "
                              f"({sys.executable}); install it with: {FRAMEWORK_INSTALL[framework]}",
                              source=source, key="framework")


@dataclass(frozen=True)
class SupervisedLab:
    """A lab of ``supervised/`` (contract: ``supervised.lab.Lab``), run as Ray Tune trials, in
    the framework its experiment file names (``framework``, a key a sweep may search over)."""

    name: str
    experiment: type
    runners: Mapping[str, str]  # framework -> "module:Class" of supervised/, imported where a trial runs
    metric: str                 # what `labrun train` reports as the result
    mode: Literal["min", "max"]
    step: str = "epoch"

    def runner_class(self, framework: str = "tensorflow") -> type:
        module, _, name = self.runners[framework].partition(":")
        return getattr(import_quietly(module), name)   # (TensorFlow's start-up chatter off)

    def metrics(self) -> tuple[str, ...]:
        """Every metric a trial reports: the same in every framework (tests hold them to it)."""
        return tuple(self.runner_class().METRICS)

    def check(self, cfg: Any, source: str) -> None:
        check_framework(self, cfg.framework, source)

    def check_sweep_trial(self, cfg: Any) -> None:
        check_framework(self, cfg.framework)

    def train(self, cfg: Any, *, source: str, runs_dir: str | None, address: str | None) -> int:
        return tuning_commands.train(self, cfg, runs_dir, address, source)

    def prepare(self, experiment: dict[str, Any], cluster: Mapping[str, float]) -> dict[str, Any]:
        return experiment

    def tune_trial(self, experiment: dict[str, Any], cluster: Mapping[str, float]) -> TuneTrial:
        """Each trial with the experiment's ``trial.cpus`` and ``trial.gpus`` ('auto': one GPU
        when the cluster has one, else none)."""
        from ray import tune

        cfg = schema.from_dict(self.experiment, experiment)
        gpus = gpus_for(cfg.trial.gpus, cluster.get("GPU", 0.0))
        trainable = tune.with_parameters(lab_trainable, lab=self)
        return TuneTrial(tune.with_resources(trainable, {"cpu": cfg.trial.cpus, "gpu": gpus}),
                         cfg.trial.max_failures, cfg.output.keep_checkpoints)


Lab = ReinforceLab | SupervisedLab

LABS: dict[str, Lab] = {lab.name: lab for lab in (
    ReinforceLab(),
    SupervisedLab("mnist", MnistExperiment, {"tensorflow": "supervised.mnist:MnistLab",
                                             "torch": "supervised.mnist_torch:TorchMnistLab"},
                  "test/accuracy", "max"),
    SupervisedLab("intro", IntroExperiment, {"tensorflow": "supervised.intro:IntroLab",
                                             "torch": "supervised.intro_torch:TorchIntroLab"},
                  "fit/loss", "min"),
    SupervisedLab("music", MusicExperiment, {"tensorflow": "supervised.music:MusicLab",
                                             "torch": "supervised.music_torch:TorchMusicLab"},
                  "train/loss", "min"),
    SupervisedLab("dbvae", DbvaeExperiment, {"tensorflow": "supervised.dbvae:DbvaeLab",
                                             "torch": "supervised.dbvae_torch:TorchDbvaeLab"},
                  "eval/E_A", "max"),
)}


# ------------------------------------------------------------------------------ experiment files


def lab_of(data: Mapping[str, Any], source: str, lines: Mapping[str, int]) -> Lab:
    """The entry named by an experiment file's ``lab`` key ('rl' when absent)."""
    name = data.get("lab", "rl")
    if name not in LABS:
        raise ConfigError(f"expected one of {', '.join(map(repr, LABS))}, got {name!r}",
                          source=source, key="lab", line=lines.get("lab"))
    return LABS[name]


def load(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Lab, Any]:
    """(lab, validated config) of any experiment file."""
    cfg, _ = schema.load_config(path, overrides,
                                lambda data, lines: lab_of(data, str(path), lines).experiment)
    return LABS[cfg.lab], cfg


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> Sweep:
    """A sweep file, checked against the experiment it runs before any trial starts: every value
    the search space can give must make a valid experiment, and the lab must report the metric."""
    path = Path(path)
    cfg, lines = schema.load_config(path, overrides, SweepConfig)
    if not cfg.search_space:
        raise ConfigError("expected at least one key to search over", source=str(path),
                          key="search_space", line=lines.get("search_space"))
    space = check_space(cfg.search_space, str(path), lines)
    exp_path = (path.parent / cfg.experiment).resolve()
    exp_data, exp_lines = schema.load_yaml(exp_path)
    lab = lab_of(exp_data, str(exp_path), exp_lines)
    schema.from_dict(lab.experiment, exp_data, source=str(exp_path), lines=exp_lines)
    try:
        exp_data = schema.merge(exp_data, nested(cfg.fixed))
        if cfg.loggers is not None:   # the sweep's trackers for its trials
            exp_data = schema.merge(exp_data, {"output": {"loggers": list(cfg.loggers)}})
        base = schema.from_dict(lab.experiment, exp_data, source=str(exp_path))
    except ConfigError as err:
        raise ConfigError(f"does not fit the experiment: {err.key + ': ' if err.key else ''}"
                          f"{err.message}", source=str(path), key="fixed",
                          line=lines.get("fixed")) from None
    for key, (dist, args) in space.items():  # every value the space can give must be valid
        for value in candidate_values(dist, args):
            try:
                lab.check_sweep_trial(schema.from_dict(
                    lab.experiment, schema.merge(exp_data, nested({key: value})), source=str(exp_path)))
            except ConfigError as err:
                raise ConfigError(f"{dist} value {value!r} does not fit the experiment: "
                                  f"{err.key + ': ' if err.key else ''}{err.message}",
                                  source=str(path), key=f"search_space.{key}",
                                  line=lines.get(f"search_space.{key}")) from None
    lab.check(base, str(exp_path))  # e.g. an unknown environment stops the sweep here
    metrics = lab.metrics()
    if cfg.metric not in metrics:
        raise ConfigError(f"{cfg.metric!r} is not reported by the {lab.name} lab; it reports "
                          f"{', '.join(metrics)}", source=str(path), key="metric",
                          line=lines.get("metric"))
    return Sweep(cfg, lab, exp_path, exp_data, space)
