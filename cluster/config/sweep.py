"""Sweep files: a search space over an experiment file's keys, for ``labrun tune``.

```yaml
name: mnist_sweep
experiment: mnist.yaml            # relative to this file
fixed: {mnist.epochs: 3}          # optional: experiment keys set the same for every trial
search_space:                     # experiment key path -> one kind of distribution
  mnist.lr: {loguniform: [1.0e-4, 1.0e-2]}
  mnist.model: {grid: [dense, cnn]}
num_samples: 2                    # samples of the random kinds, for each grid combination
metric: test/accuracy
mode: max
scheduler: {kind: asha, grace_period: 1}
max_concurrent_trials: 2
```

The experiment may be of any lab, REINFORCE included (each trial then starts its own rollout
workers; see ``cluster/reinforce/trial.py``). Everything is checked before any trial starts
(``cluster.labs.load_sweep``): the kinds of distribution and their arguments, that every key path
exists in the experiment and takes the values the space can give, and that the lab reports the
metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from cluster.config import schema
from cluster.config.schema import ConfigError
from cluster.trackers import Logger, check_loggers

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")


@dataclass(frozen=True)
class SchedulerConfig:
    kind: Literal["none", "asha"] = "none"
    """'asha' stops trials that fall behind early (Tune's ASHA); 'none' runs every trial to the end."""
    grace_period: int = field(default=1, metadata={"ge": 1})
    """ASHA: epochs every trial runs before it may be stopped."""
    reduction_factor: float = field(default=2.0, metadata={"gt": 1})
    """ASHA: the share of trials kept at each rung is 1 / reduction_factor."""


@dataclass(frozen=True)
class SweepConfig:
    name: str = field(default="sweep", metadata={"min_len": 1, "folder_name": True})
    """Name of the sweep; its folder is <runs_dir>/<name>__<time>, so one folder's name: no
    slashes, no leading '.' or '~', printable, at most 200 bytes."""
    experiment: str = field(default="", metadata={"min_len": 1})
    """The experiment file the trials run, relative to the sweep file."""
    fixed: dict[str, Any] = field(default_factory=dict)
    """Experiment keys set the same for every trial (key path -> value), e.g. a shorter budget."""
    search_space: dict[str, Any] = field(default_factory=dict)
    """Experiment key path -> {grid: [..]} | {choice: [..]} | {uniform: [low, high]} |
    {loguniform: [low, high]} | {randint: [low, high]} (high excluded)."""
    num_samples: int = field(default=1, metadata={"ge": 1})
    """Samples of the random kinds, for each combination of the grids."""
    metric: str = field(default="", metadata={"min_len": 1})
    """The reported metric that ranks trials, e.g. test/accuracy."""
    mode: Literal["min", "max"] = "max"
    """Whether a lower or a higher metric is better."""
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    max_concurrent_trials: int | None = field(default=None, metadata={"ge": 1})
    """At most this many trials at once (null: as many as the cluster's resources allow)."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the random search (the trials' own seeds come from the experiment file)."""
    loggers: tuple[Logger, ...] | None = field(default=None, metadata={"min_len": 1})
    """The trials' trackers, as the experiment's output.loggers (null: the experiment's own);
    with 'mlflow' each trial is a child run of the sweep's run, with 'wandb' the sweep is a group."""

    def __post_init__(self):
        if self.loggers is not None:
            check_loggers(self.loggers)


def check_space(space: Mapping[str, Any], source: str,
                lines: Mapping[str, int]) -> dict[str, tuple[str, list]]:
    """key path -> (distribution, arguments), or a ConfigError naming the bad entry."""
    out = {}
    for key, spec in space.items():
        where = dict(source=source, key=f"search_space.{key}", line=lines.get(f"search_space.{key}"))
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise ConfigError(f"expected one of {{{', '.join(DISTRIBUTIONS)}: ...}}, got {spec!r}", **where)
        (dist, args), = spec.items()
        if dist not in DISTRIBUTIONS:
            raise ConfigError(f"unknown search-space kind {dist!r}; expected one of "
                              f"{', '.join(DISTRIBUTIONS)}", **where)
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{dist}: expected a non-empty list, got {args!r}", **where)
        if dist in ("uniform", "loguniform", "randint"):
            numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
            if len(args) != 2 or not numeric or not args[0] < args[1]:
                raise ConfigError(f"{dist}: expected [low, high] numbers with low < high, got {args!r}",
                                  **where)
            if dist == "loguniform" and args[0] <= 0:
                raise ConfigError(f"loguniform: expected low > 0, got {args[0]!r}", **where)
            if dist == "randint" and not all(isinstance(a, int) for a in args):
                raise ConfigError(f"randint: expected integers, got {args!r}", **where)
        out[key] = (dist, list(args))
    return out


def candidate_values(dist: str, args: list) -> list:
    """Values that stand for everything a distribution can give, to validate against the experiment."""
    if dist in ("grid", "choice"):
        return args
    if dist == "randint":
        return [args[0], args[1] - 1]
    low, high = args
    return [low, high, math.sqrt(low * high) if dist == "loguniform" else (low + high) / 2]


def nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}; nested mappings in ``flat`` are merged in as they are."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, Mapping) and isinstance(node.get(parts[-1]), Mapping):
            node[parts[-1]] = schema.merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return out


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its config, the experiment it runs and the parsed search space."""

    cfg: SweepConfig
    lab: Any                                    # the experiment's lab (cluster.labs.Lab)
    experiment_path: Path
    experiment_data: dict[str, Any]             # the experiment file, as plain data
    space: dict[str, tuple[str, list]]
