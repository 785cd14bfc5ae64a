"""What the two intro labs share, framework-free: the noisy line to fit, the epoch, the metrics.

``IntroBase`` is a ``Lab`` with the model left out: it makes the data (NumPy, from the seed) and
turns a subclass's gradient steps into the metrics. A subclass, ``IntroLab`` (TensorFlow,
``supervised/intro.py``) or ``TorchIntroLab`` (PyTorch, ``supervised/intro_torch.py``), brings
the model, one gradient step and the checkpoints::

    gradient_step() -> loss          # one step of gradient descent on all the points
    line()          -> (slope, intercept)
    save(folder); restore(folder)
"""

from __future__ import annotations

import time

import numpy as np

from supervised.config import IntroConfig
from supervised.lab import Lab

TRUE_SLOPE, TRUE_INTERCEPT = 3.0, -1.0


def make_line(num_points: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x [N, 1] uniform in [-3, 3] and y = 3x - 1 + noise * N(0, 1) [N, 1], float32; a function
    of the seed alone (its own generator, no global random state)."""
    rng = np.random.default_rng([seed, 0])
    x = rng.uniform(-3.0, 3.0, size=(num_points, 1)).astype(np.float32)
    eps = rng.standard_normal((num_points, 1)).astype(np.float32)
    return x, (TRUE_SLOPE * x + TRUE_INTERCEPT + noise * eps).astype(np.float32)


class IntroBase(Lab):
    """Built, it has made the data; an epoch is steps_per_epoch gradient steps; it has no pictures."""

    METRICS = ("fit/loss", "fit/slope", "fit/intercept", "counters/epoch", "time/epoch_s")

    def __init__(self, cfg: IntroConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed
        self.x, self.y = make_line(cfg.num_points, cfg.noise, seed)          # [N, 1] each
        self.epoch = 0  # finished epochs

    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs

    def gradient_step(self) -> float:
        """One step of gradient descent on the mean squared error over all the points; its loss."""
        raise NotImplementedError

    def line(self) -> tuple[float, float]:
        """(slope, intercept) of the model now."""
        raise NotImplementedError

    def train_epoch(self) -> dict[str, float]:
        """steps_per_epoch steps of gradient descent on all the points; METRICS, the loss being
        the mean over the epoch's steps."""
        start = time.perf_counter()
        losses = [self.gradient_step() for _ in range(self.cfg.steps_per_epoch)]
        slope, intercept = self.line()
        self.epoch += 1
        return {
            "fit/loss": float(np.mean(losses)),
            "fit/slope": slope,
            "fit/intercept": intercept,
            "counters/epoch": float(self.epoch),
            "time/epoch_s": time.perf_counter() - start,
        }

    def images(self) -> dict[str, np.ndarray]:
        return {}
