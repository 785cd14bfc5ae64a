"""Environment factory: Gymnasium environments, seeded."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rl.config import EnvConfig


def make_env(cfg: EnvConfig) -> gym.Env:
    """A Gymnasium environment for ``cfg.id``; seed it with the first ``reset(seed=...)``."""
    if cfg.id.startswith("ALE/"):
        import ale_py  # the Atari ROMs ship with ale-py; registering makes the ALE/ ids known

        gym.register_envs(ale_py)
    return gym.make(cfg.id, disable_env_checker=True, **cfg.kwargs)


def env_spaces(cfg: EnvConfig) -> tuple[tuple[int, ...], int]:
    """(observation shape, number of discrete actions) of the configured environment."""
    env = make_env(cfg)
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"env.id: {cfg.id} has a {type(env.action_space).__name__} action "
                             "space; REINFORCE here needs a discrete one")
        return tuple(env.observation_space.shape), int(env.action_space.n)
    finally:
        env.close()


def derive_seeds(seed: int, *keys: int, n: int = 1) -> list[int]:
    """``n`` independent 32-bit seeds derived from the run seed and e.g. (worker index, generation)."""
    return [int(s) for s in np.random.SeedSequence([seed, *keys]).generate_state(n)]
