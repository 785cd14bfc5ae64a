"""Plays a policy for a number of episodes and summarises its returns (one process, no Ray)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rl.config import EnvConfig, PolicyConfig
from rl.envs import derive_seeds, make_env
from rl.policy import NumpyPolicy


def evaluate(env_cfg: EnvConfig, policy_cfg: PolicyConfig, weights: Sequence[np.ndarray],
             episodes: int, seed: int, greedy: bool = True) -> dict[str, float]:
    """``eval/*`` metrics over ``episodes`` episodes: the mean return, its spread (standard
    deviation, standard error of the mean, min, max); greedy takes the most likely action."""
    policy = NumpyPolicy(policy_cfg)
    policy.set_weights(weights)
    env = make_env(env_cfg)
    env_seed, policy_seed = derive_seeds(seed, 10_000, n=2)
    rng = np.random.default_rng(policy_seed)
    returns, lengths = [], []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=env_seed if episode == 0 else None)
            total, steps, done = 0.0, 0, False
            while not done:
                action = int(policy.act(np.asarray(obs)[None], rng, greedy=greedy)[0])
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                steps += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(steps)
    finally:
        env.close()
    r = np.asarray(returns)
    return {
        "eval/episodes": float(episodes),
        "eval/episode_return_mean": float(r.mean()),
        "eval/episode_return_std": float(r.std()),
        "eval/episode_return_stderr": float(r.std(ddof=1) / np.sqrt(episodes)) if episodes > 1 else 0.0,
        "eval/episode_return_min": float(r.min()),
        "eval/episode_return_max": float(r.max()),
        "eval/episode_length_mean": float(np.mean(lengths)),
    }
