"""A REINFORCE experiment file (lab ``rl``): the rl/ components' configs plus how to run them
(resources, stop criteria, outputs), its loading and the checks made before Ray starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import yaml

from cluster.config import schema
from cluster.config.schema import ConfigError
from cluster.trackers import TrackedOutput
from rl.config import EnvConfig, LearnerConfig, PolicyConfig, RolloutConfig
from supervised.files import atomic_write


@dataclass(frozen=True)
class ResourcesConfig:
    cpus_per_worker: float = field(default=1.0, metadata={"gt": 0})
    """CPUs Ray reserves for each rollout worker."""
    learner_gpus: float | Literal["auto"] = field(default=0.0, metadata={"ge": 0})
    """GPUs for the learner. 0 runs it in the driver process; more places it in a Ray actor
    holding that many GPUs; 'auto' takes one GPU when the cluster has one, else none."""
    worker_placement: Literal["spread", "pack"] = "spread"
    """How rollout workers lie over a cluster's nodes: 'spread' over as many nodes as possible
    (Ray's SPREAD strategy: losing a node loses few workers), 'pack' where Ray finds room first
    (its default). In a sweep trial, the trial's placement group decides."""
    max_worker_restarts: int = field(default=10, metadata={"ge": 0})
    """How many times dead rollout workers are replaced before the run gives up."""
    placement_timeout_s: float = field(default=120.0, metadata={"gt": 0})
    """A rollout worker Ray cannot place within this many seconds (no free CPUs, e.g. after its
    node was lost) is dropped: the run goes on with fewer, and with none left ends (exit 1)."""
    sample_timeout_s: float = field(default=600.0, metadata={"gt": 0})
    """A rollout worker that returns no sample within this many seconds is taken for hung:
    killed and replaced like a dead one."""
    max_trial_failures: int = field(default=2, metadata={"ge": 0})
    """In a sweep (`labrun tune`): how many times a crashed trial restarts from its last checkpoint."""


@dataclass(frozen=True)
class StopConfig:
    mean_return: float | None = 475.0
    """Stop once the mean return of the last `window` episodes reaches this (null: never)."""
    window: int = field(default=100, metadata={"ge": 1})
    """Episodes in the moving window behind the return statistics."""
    env_steps: int | None = field(default=2_000_000, metadata={"ge": 1})
    """Stop after this many environment steps (null: no limit)."""
    wall_time_s: float | None = field(default=None, metadata={"gt": 0})
    """Stop after this many seconds of training (null: no limit)."""
    iterations: int | None = field(default=None, metadata={"ge": 1})
    """Stop after this many sample -> update iterations (null: no limit)."""

    def __post_init__(self):
        if all(v is None for v in (self.mean_return, self.env_steps, self.wall_time_s, self.iterations)):
            raise ValueError("env_steps: at least one stop criterion must be set "
                             "(mean_return, env_steps, wall_time_s or iterations)")


@dataclass(frozen=True)
class OutputConfig(TrackedOutput):
    runs_dir: str = "runs"
    """Folder under which each run gets its own `<name>__<seed>__<time>` folder."""
    checkpoint_every: int = field(default=10, metadata={"ge": 1})
    """Write a checkpoint every this many iterations (and always at the end)."""
    keep_checkpoints: int = field(default=3, metadata={"ge": 1})
    """How many of the latest checkpoints to keep."""
    console_every_s: float = field(default=1.0, metadata={"ge": 0})
    """Seconds between progress lines when the output is not a terminal."""
    video_every: int | None = field(default=None, metadata={"ge": 1})
    """Every this many iterations, record the policy playing one episode: an MP4 and a GIF in
    the run's videos/ folder, and the GIF in TensorBoard (null: no videos while training)."""
    video_max_steps: int = field(default=5000, metadata={"ge": 1})
    """Longest video, in environment steps."""


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = field(default="experiment", metadata={"min_len": 1, "folder_name": True})
    """Name of the experiment; the start of its run folder's name, so one folder's name: no
    slashes, no leading '.' or '~', printable, at most 200 bytes."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Run seed; workers derive theirs from it and their index."""
    lab: Literal["rl"] = "rl"
    """Which lab this file runs: 'rl' is REINFORCE (the supervised labs have their own keys)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self):
        if ":" in self.env.id:  # gymnasium.make("module:Env") imports the module: code from a config
            raise ValueError(f"env.id: expected a registered Gymnasium id (e.g. CartPole-v1), not "
                             f"'module:Env', which would import a module; got {self.env.id!r}")
        if self.rollout.steps_per_env is not None:
            if not self.learner.reset_on_reward:
                raise ValueError("rollout.steps_per_env: needs learner.reset_on_reward: true (a "
                                 "sample stops at a point, and only then are its returns exact)")
            if self.learner.baseline == "time_mean":
                raise ValueError("learner.baseline: 'time_mean' compares returns at the same step "
                                 "of each episode, which pieces of games (rollout.steps_per_env) "
                                 "do not share; use 'value' or 'mean'")
            if self.rollout.episodes_per_env != 1:
                raise ValueError("rollout.episodes_per_env: not used with rollout.steps_per_env; "
                                 "leave it at 1")


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Reads, overrides and validates an experiment file; ConfigError says what is wrong."""
    return schema.load_config(path, overrides, ExperimentConfig)[0]


def dump_experiment(cfg: ExperimentConfig, path: str | Path) -> None:
    """The resolved config as YAML at ``path``, written atomically (whole or not at all)."""
    atomic_write(path, yaml.safe_dump(schema.to_dict(cfg), sort_keys=False))


def check_env(cfg: ExperimentConfig, source: str) -> tuple[tuple[int, ...], int]:
    """Builds the environment once, so an unknown id stops the run before Ray starts (an id
    naming a module, ``module:Env``, never gets here: ``ExperimentConfig`` refuses it)."""
    import gymnasium

    from rl.envs import env_spaces

    try:
        obs_shape, num_actions = env_spaces(cfg.env)
    except ValueError as err:
        key, _, message = str(err).partition(": ")
        raise ConfigError(message, source=source, key=f"env.{key}") from None
    except (gymnasium.error.Error, TypeError, ImportError) as err:  # ImportError: a registered
        # id whose entry point's module is not installed
        raise ConfigError(f"cannot make {cfg.env.id!r} ({err})", source=source, key="env") from None
    if cfg.policy.conv and len(obs_shape) != 3:
        raise ConfigError(f"convolutions need image observations [H, W, C]; {cfg.env.id}'s are "
                          f"{list(obs_shape)}", source=source, key="policy.conv")
    return obs_shape, num_actions


def check_sweep_trial(cfg: ExperimentConfig) -> None:
    """What a sweep's trial needs beyond a valid experiment: a fixed number of rollout workers
    (each trial reserves its workers' CPUs in its placement group)."""
    if cfg.rollout.num_workers == "auto":
        raise ConfigError("a sweep's trials need a number of workers, not 'auto' (each trial "
                          "reserves its workers' CPUs); set it under `fixed:`, e.g. "
                          "rollout.num_workers: 1", key="rollout.num_workers")

