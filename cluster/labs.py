"""Experiment files of the supervised labs, and which lab class runs each.

A file's top-level ``lab`` key picks its kind: ``rl`` (the default: REINFORCE, see
``cluster/experiment.py``), ``mnist``, ``intro``, ``music`` or ``dbvae``. A lab's own settings
sit under a key named after it; ``trial`` says what each Tune trial gets. The lab classes live in
``supervised/`` and do not know about Tune: ``cluster/tune_runner.py`` runs them as trials.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from cluster import schema
from cluster.schema import ConfigError
from supervised.config import DbvaeConfig, IntroConfig, MnistConfig, MusicConfig


@dataclass(frozen=True)
class TrialResources:
    cpus: float = field(default=1.0, metadata={"gt": 0})
    """CPUs Ray reserves for each trial."""
    gpus: float | Literal["auto"] = field(default="auto", metadata={"ge": 0})
    """GPUs for each trial: 'auto' gives a trial one GPU when the cluster has GPUs, else none;
    fractions (e.g. 0.5) let trials share a GPU (TensorFlow's memory growth is on)."""
    max_failures: int = field(default=2, metadata={"ge": 0})
    """How many times a crashed trial is restarted from its last checkpoint."""
    fail_once_after_epoch: int | None = field(default=None, metadata={"ge": 1})
    """Fault injection for testing recovery: the trial raises once after this epoch."""


@dataclass(frozen=True)
class LabOutput:
    runs_dir: str = "runs"
    """Folder under which each run or sweep gets its own folder (Tune's storage path)."""
    keep_checkpoints: int = field(default=2, metadata={"ge": 1})
    """Checkpoints kept per trial (the latest ones)."""


@dataclass(frozen=True)
class MnistExperiment:
    name: str = field(default="mnist", metadata={"min_len": 1})
    """Name of the experiment; the start of its run folder's name."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the weights' initialisation and of the data order."""
    lab: Literal["mnist"] = "mnist"
    """Which lab this file runs."""
    mnist: MnistConfig = field(default_factory=MnistConfig)
    trial: TrialResources = field(default_factory=TrialResources)
    output: LabOutput = field(default_factory=LabOutput)


@dataclass(frozen=True)
class IntroExperiment:
    name: str = field(default="intro", metadata={"min_len": 1})
    """Name of the experiment; the start of its run folder's name."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the synthetic data and the weights."""
    lab: Literal["intro"] = "intro"
    """Which lab this file runs."""
    intro: IntroConfig = field(default_factory=IntroConfig)
    trial: TrialResources = field(default_factory=TrialResources)
    output: LabOutput = field(default_factory=LabOutput)


@dataclass(frozen=True)
class MusicExperiment:
    name: str = field(default="music", metadata={"min_len": 1})
    """Name of the experiment; the start of its run folder's name."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the weights, of the training windows and of the sampled tunes."""
    lab: Literal["music"] = "music"
    """Which lab this file runs."""
    music: MusicConfig = field(default_factory=MusicConfig)
    trial: TrialResources = field(default_factory=TrialResources)
    output: LabOutput = field(default_factory=LabOutput)


@dataclass(frozen=True)
class DbvaeExperiment:
    name: str = field(default="dbvae", metadata={"min_len": 1})
    """Name of the experiment; the start of its run folder's name."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the weights, of the batches and the VAE's noise, and of the bias benchmark's data."""
    lab: Literal["dbvae"] = "dbvae"
    """Which lab this file runs."""
    dbvae: DbvaeConfig = field(default_factory=DbvaeConfig)
    trial: TrialResources = field(default_factory=TrialResources)
    output: LabOutput = field(default_factory=LabOutput)


@dataclass(frozen=True)
class Lab:
    """A supervised lab: its experiment file's class, the class that runs it, its main metric."""

    experiment: type
    runner: str                     # "module:Class", imported in the trial's process
    metric: str                     # what `labrun train` reports as the result
    mode: Literal["min", "max"]

    def runner_class(self) -> type:
        module, _, name = self.runner.partition(":")
        return getattr(importlib.import_module(module), name)

    def metrics(self) -> tuple[str, ...]:
        """The metric names a trial of this lab reports (for checking a sweep's metric)."""
        return tuple(self.runner_class().METRICS)


LABS: dict[str, Lab] = {
    "mnist": Lab(MnistExperiment, "supervised.mnist:MnistLab", "test/accuracy", "max"),
    "intro": Lab(IntroExperiment, "supervised.intro:IntroLab", "fit/loss", "min"),
    "music": Lab(MusicExperiment, "supervised.music:MusicLab", "train/loss", "min"),
    "dbvae": Lab(DbvaeExperiment, "supervised.dbvae:DbvaeLab", "eval/E_A", "max"),
}
KINDS = ("rl", *LABS)


def lab_of(data: dict[str, Any], source: str, lines: dict[str, int]) -> str:
    """The ``lab`` key of an experiment file's data ('rl' when absent)."""
    kind = data.get("lab", "rl")
    if kind not in KINDS:
        raise ConfigError(f"expected one of {', '.join(map(repr, KINDS))}, got {kind!r}",
                          source=source, key="lab", line=lines.get("lab"))
    return kind


def load_any(path: str | Path, overrides: Sequence[str] = ()) -> tuple[str, Any]:
    """(lab kind, validated config) of any experiment file: REINFORCE or a supervised lab."""
    from cluster.experiment import ExperimentConfig

    data, lines = schema.load_yaml(path)
    extra = schema.parse_overrides(overrides)
    merged = schema.merge(data, extra)
    kind = lab_of(merged, str(path), lines)
    cls = ExperimentConfig if kind == "rl" else LABS[kind].experiment
    return kind, schema.from_dict(cls, merged, source=str(path), lines=lines,
                                  override_keys=schema.flat_keys(extra))
