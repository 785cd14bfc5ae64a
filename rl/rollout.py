"""RolloutWorker: plays whole episodes in several environments with one policy call per step.

The worker does not know whether it is remote; ``cluster/`` makes it a Ray actor. Call sequence::

    worker = RolloutWorker(env_cfg, policy_cfg, rollout_cfg, seed=run_seed, worker_index=i)
    while training:
        batch = worker.sample(weights)   # set the learner's latest weights, then play
        ...                              # the learner updates and broadcasts new weights

Each ``sample`` plays ``episodes_per_env`` whole episodes in each of ``envs_per_worker``
environments, stepped together: every step evaluates the policy once, on the observations of all
environments still playing, and environments that finished wait for the others.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rl.config import EnvConfig, PolicyConfig, RolloutConfig
from rl.envs import derive_seeds, make_env
from rl.policy import MLPPolicy
from rl.trajectory import Trajectories


class RolloutWorker:
    """Holds ``envs_per_worker`` environments and a copy of the policy weights."""

    def __init__(self, env_cfg: EnvConfig, policy_cfg: PolicyConfig, rollout_cfg: RolloutConfig,
                 seed: int, worker_index: int = 0, generation: int = 0):
        self.cfg = rollout_cfg
        self.worker_index = worker_index
        # Seeds derive from the run seed, the worker's index and how many times this index was
        # restarted (or resumed), so a run is reproducible and a replacement never replays.
        env_seeds = derive_seeds(seed, worker_index, generation, n=rollout_cfg.envs_per_worker + 1)
        self.rng = np.random.default_rng(env_seeds[-1])
        self.envs = [make_env(env_cfg) for _ in range(rollout_cfg.envs_per_worker)]
        self._next_seed: list[int | None] = list(env_seeds[:-1])  # used on each env's first reset
        self.policy = MLPPolicy(policy_cfg.activation)

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self.policy.set_weights(weights)

    def _reset(self, i: int) -> np.ndarray:
        obs, _ = self.envs[i].reset(seed=self._next_seed[i])
        self._next_seed[i] = None
        return obs

    def sample(self, weights: Sequence[np.ndarray] | None = None) -> Trajectories:
        """Whole episodes from every environment, in (environment, episode) order."""
        if weights is not None:
            self.set_weights(weights)
        n = len(self.envs)
        last_obs = [self._reset(i) for i in range(n)]            # each env's current observation
        remaining = [self.cfg.episodes_per_env] * n
        active = list(range(n))
        # Per environment: the current episode's steps, and its finished episodes.
        cur_obs: list[list[np.ndarray]] = [[] for _ in range(n)]
        cur_act: list[list[int]] = [[] for _ in range(n)]
        cur_rew: list[list[float]] = [[] for _ in range(n)]
        done_eps: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(n)]
        while active:
            batch_obs = np.asarray([last_obs[i] for i in active], np.float32)  # [B, *obs_shape]
            actions = self.policy.act(batch_obs, self.rng).tolist()          # one call, all envs
            still = []
            for i, a in zip(active, actions):
                cur_obs[i].append(last_obs[i])
                o, r, terminated, truncated, _ = self.envs[i].step(a)
                cur_act[i].append(a)
                cur_rew[i].append(r)
                if terminated or truncated:
                    done_eps[i].append((np.asarray(cur_obs[i], np.float32),
                                        np.asarray(cur_act[i], np.int32),
                                        np.asarray(cur_rew[i], np.float32)))
                    cur_obs[i], cur_act[i], cur_rew[i] = [], [], []
                    remaining[i] -= 1
                    if remaining[i] == 0:
                        continue
                    o = self._reset(i)
                last_obs[i] = o
                still.append(i)
            active = still
        episodes = [ep for per_env in done_eps for ep in per_env]
        return Trajectories(
            obs=np.concatenate([e[0] for e in episodes]),
            actions=np.concatenate([e[1] for e in episodes]),
            rewards=np.concatenate([e[2] for e in episodes]),
            episode_lengths=np.asarray([len(e[1]) for e in episodes], np.int64),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()
