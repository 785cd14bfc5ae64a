"""The learning rate as a function of training progress: pure, no TensorFlow (the trainer asks
for each update's rate from the run's counters; tests check it by hand)."""

from __future__ import annotations

from rl.config import LearnerConfig


def learning_rate(cfg: LearnerConfig, env_steps: int) -> float:
    """``cfg.lr`` after ``env_steps`` environment steps of training: constant, or annealed
    linearly to ``cfg.lr_final`` over ``cfg.lr_decay_steps`` and held there."""
    if cfg.lr_final is None or cfg.lr_decay_steps is None:
        return cfg.lr
    done = min(max(env_steps, 0) / cfg.lr_decay_steps, 1.0)
    return cfg.lr + (cfg.lr_final - cfg.lr) * done
