"""Environment factory: Gymnasium environments, seeded."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rl.atari import ActionSubset, FrameDifference
from rl.config import EnvConfig


def _register_ale() -> None:
    import ale_py  # the Atari ROMs ship with ale-py; registering makes the ALE/ ids known

    gym.register_envs(ale_py)


def make_env(cfg: EnvConfig, render_mode: str | None = None, preprocess: bool = True) -> gym.Env:
    """A Gymnasium environment for ``cfg.id`` with the configured Atari settings, action subset
    and preprocessing; seed it with the first ``reset(seed=...)``. ``render_mode='rgb_array'``
    makes ``env.render()`` return the screen (for videos). ``preprocess=False`` leaves the raw
    frames to a caller that preprocesses several environments' frames together."""
    kwargs = dict(cfg.kwargs)
    if cfg.is_atari:
        _register_ale()
        if cfg.frameskip is not None:
            kwargs["frameskip"] = cfg.frameskip
        if cfg.repeat_action_probability is not None:
            kwargs["repeat_action_probability"] = cfg.repeat_action_probability
        if cfg.full_action_space:
            kwargs["full_action_space"] = True
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env = gym.make(cfg.id, disable_env_checker=True, **kwargs)
    if cfg.action_subset is not None:
        env = ActionSubset(env, cfg.action_subset)
    if preprocess and cfg.preprocess != "none":
        env = FrameDifference(env, cfg.preprocess, cfg.observation)
    return env


def frameskip(cfg: EnvConfig) -> int:
    """Emulator frames per agent step (1 for non-Atari environments)."""
    if not cfg.is_atari:
        return 1
    if cfg.frameskip is not None:
        return cfg.frameskip
    _register_ale()
    skip = gym.spec(cfg.id).kwargs.get("frameskip", 1)
    return skip if isinstance(skip, int) else round(sum(skip) / 2)  # v0-style random skips


def env_spaces(cfg: EnvConfig) -> tuple[tuple[int, ...], int]:
    """(observation shape, number of discrete actions) of the configured environment."""
    env = make_env(cfg)
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"id: {cfg.id} has a {type(env.action_space).__name__} action "
                             "space; REINFORCE here needs a discrete one")
        return tuple(env.observation_space.shape), int(env.action_space.n)
    finally:
        env.close()


def derive_seeds(seed: int, *keys: int, n: int = 1) -> list[int]:
    """``n`` independent 32-bit seeds derived from the run seed and e.g. (worker index, generation)."""
    return [int(s) for s in np.random.SeedSequence([seed, *keys]).generate_state(n)]
