"""What TensorBoard shows first for each lab: a Custom Scalars layout (the return with its
min-max band, the loss, the throughput; a lab's accuracy, its valid share, its bias measures),
written once into every run's TensorBoard folder. ``labrun tensorboard`` prints an address that
opens on it (``#custom_scalars``); the Scalars tab still lists every metric.

A layout names metrics as each lab reports them (``Lab.metrics()``); a Tune trial's scalars
reach TensorBoard under ``ray/tune/`` (Tune's logger), a REINFORCE run's as they are.
"""

from __future__ import annotations

import re
from typing import Any

# lab -> category -> chart title -> (kind, metrics). "Margin": [value, lower, upper] as a band.
LAYOUTS: dict[str, dict[str, dict[str, tuple[str, list[str]]]]] = {
    "rl": {
        "return": {
            "episode return: mean, min-max band (last stop.window episodes)":
                ("Margin", ["rollout/episode_return_mean", "rollout/episode_return_min",
                            "rollout/episode_return_max"]),
            "points won and lost per game (Atari)":
                ("Multiline", ["rollout/points_won_mean", "rollout/points_lost_mean"]),
        },
        "learning": {
            "loss": ("Multiline", ["learner/loss"]),
            "policy entropy": ("Multiline", ["learner/entropy"]),
            "gradient norm": ("Multiline", ["learner/grad_norm"]),
        },
        "throughput": {
            "env steps and emulator frames per second":
                ("Multiline", ["time/env_steps_per_s", "time/frames_per_s"]),
            "seconds per iteration: sampling, learning, waiting":
                ("Multiline", ["time/sample_s", "time/learn_s", "time/wait_s"]),
        },
    },
    "mnist": {
        "mnist": {
            "accuracy: train and test": ("Multiline", ["train/accuracy", "test/accuracy"]),
            "loss: train and test": ("Multiline", ["train/loss", "test/loss"]),
        },
    },
    "intro": {
        "intro": {
            "loss": ("Multiline", ["fit/loss"]),
            "slope and intercept": ("Multiline", ["fit/slope", "fit/intercept"]),
        },
    },
    "music": {
        "music": {
            "loss": ("Multiline", ["train/loss"]),
            "valid share of sampled tunes: lenient (music21) and strict":
                ("Multiline", ["generate/valid_share", "generate/strict_valid_share"]),
        },
    },
    "dbvae": {
        "bias": {
            "E[A]: mean accuracy over the skin-tone x gender groups, DB-VAE and baseline":
                ("Multiline", ["eval/E_A", "baseline/E_A"]),
            "Var[A]: its variance across the groups (lower: less biased)":
                ("Multiline", ["eval/Var_A", "baseline/Var_A"]),
        },
        "training": {
            "loss: DB-VAE and baseline": ("Multiline", ["train/loss", "baseline/train_loss"]),
        },
    },
}
TUNE_PREFIX = "ray/tune/"   # where a Tune trial's reported metrics appear in TensorBoard


def metrics_of(lab: str) -> set[str]:
    """Every metric a lab's layout names."""
    return {m for charts in LAYOUTS[lab].values() for _, names in charts.values() for m in names}


def layout(lab: str, prefix: str = "") -> dict[str, dict[str, list[Any]]]:
    """The lab's layout in tensorboardX's ``add_custom_scalars`` form; each metric an anchored
    regular expression of its tag (``prefix`` + metric)."""
    return {category: {title: [kind, [f"^{re.escape(prefix + m)}$" for m in names]]
                       for title, (kind, names) in charts.items()}
            for category, charts in LAYOUTS[lab].items()}


def write_layout(writer: Any, lab: str, prefix: str = "") -> None:
    """Writes the lab's layout into a tensorboardX ``SummaryWriter``'s folder."""
    writer.add_custom_scalars(layout(lab, prefix))
