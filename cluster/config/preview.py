"""What a command would run, without running it: ``--dry-run``'s resolved config (the file with
its ``--set`` overrides and every default filled in) and a sweep's trials.

Pure functions of validated configs: nothing here starts Ray, imports TensorFlow or writes a file.
"""

from __future__ import annotations

import itertools
from typing import Any

import yaml

from cluster.config import schema
from cluster.config.sweep import Sweep


def resolved_yaml(cfg: Any) -> str:
    """A validated config as the YAML a run folder's config.yaml would hold."""
    return yaml.safe_dump(schema.to_dict(cfg), sort_keys=False)


def trial_grid(sweep: Sweep) -> list[dict[str, Any]]:
    """The sweep's trials in Tune's order, one mapping of key path -> value each: every
    combination of the grids, ``num_samples`` times over (Tune repeats the grid that often);
    a random kind's value is drawn when the trial starts, so it reads as its distribution,
    e.g. ``loguniform(0.0001, 0.01)``."""
    grids = [(key, args) for key, (dist, args) in sweep.space.items() if dist == "grid"]
    drawn = {key: f"{dist}({', '.join(map(repr, args))})"
             for key, (dist, args) in sweep.space.items() if dist != "grid"}
    trials = []
    for _ in range(sweep.cfg.num_samples):
        for combination in itertools.product(*(args for _, args in grids)):
            values = dict(zip((key for key, _ in grids), combination))
            trials.append({key: values[key] if key in values else drawn[key] for key in sweep.space})
    return trials
