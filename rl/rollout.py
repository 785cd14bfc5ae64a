"""RolloutWorker: plays whole episodes in several environments with one policy call per step.

The worker does not know whether it is remote; ``cluster/`` makes it a Ray actor. Call sequence::

    worker = RolloutWorker(env_cfg, policy_cfg, rollout_cfg, seed=run_seed, worker_index=i)
    while training:
        batch = worker.sample(weights)   # set the learner's latest weights, then play
        ...                              # the learner updates and broadcasts new weights

Each ``sample`` plays ``envs_per_worker x episodes_per_env`` whole episodes in ``envs_per_worker``
environments stepped together: every step evaluates the policy once, on the observations of all
environments still playing. Observations keep the environment's dtype when it is an integer one
(Pong's int8 frame differences: one byte a pixel), else become float32.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rl.atari import BatchFrameDifference
from rl.config import EnvConfig, PolicyConfig, RolloutConfig
from rl.envs import derive_seeds, make_env
from rl.policy import NumpyPolicy
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
        # Atari frames are preprocessed here for all the envs at once, not by each env's wrapper.
        self.envs = [make_env(env_cfg, preprocess=False) for _ in range(rollout_cfg.envs_per_worker)]
        self.frames = (None if env_cfg.preprocess == "none"
                       else BatchFrameDifference(env_cfg.preprocess, len(self.envs)))
        self._next_seed: list[int | None] = list(env_seeds[:-1])  # used on each env's first reset
        self.policy = NumpyPolicy(policy_cfg)

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self.policy.set_weights(weights)

    def _reset(self, i: int) -> np.ndarray:
        obs, _ = self.envs[i].reset(seed=self._next_seed[i])
        self._next_seed[i] = None
        return obs

    def sample(self, weights: Sequence[np.ndarray] | None = None) -> Trajectories:
        """``envs_per_worker x episodes_per_env`` whole episodes, in (environment, episode) order.

        An environment that finishes an episode starts another while the worker still needs
        some, so envs that drew short episodes take more of them and few wait at the end.
        """
        if weights is not None:
            self.set_weights(weights)
        n = len(self.envs)
        to_start = n * self.cfg.episodes_per_env - n           # episodes not yet begun
        last_obs = [self._reset(i) for i in range(n)]          # each env's current observation
        active = list(range(n))
        if self.frames is not None:
            last_obs = list(self.frames(np.stack(last_obs), np.arange(n), np.ones(n, bool)))
        # Per environment: the current episode's steps, and its finished episodes.
        cur_obs: list[list[np.ndarray]] = [[] for _ in range(n)]
        cur_act: list[list[int]] = [[] for _ in range(n)]
        cur_rew: list[list[float]] = [[] for _ in range(n)]
        cur_logp: list[list[float]] = [[] for _ in range(n)]
        done_eps: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(n)]
        obs_dtype = np.float32 if np.issubdtype(np.asarray(last_obs[0]).dtype, np.floating) else None
        while active:
            batch_obs = np.asarray([last_obs[i] for i in active])                # [B, *obs_shape]
            actions, logp = self.policy.act_logp(batch_obs, self.rng)       # one call, all envs
            still, first = [], []
            for i, a, lp in zip(active, actions.tolist(), logp.tolist()):
                cur_obs[i].append(last_obs[i])
                o, r, terminated, truncated, _ = self.envs[i].step(a)
                cur_act[i].append(a)
                cur_rew[i].append(r)
                cur_logp[i].append(lp)
                reset = terminated or truncated
                if reset:
                    done_eps[i].append((np.asarray(cur_obs[i], obs_dtype),
                                        np.asarray(cur_act[i], np.int32),
                                        np.asarray(cur_rew[i], np.float32),
                                        np.asarray(cur_logp[i], np.float32)))
                    cur_obs[i], cur_act[i], cur_rew[i], cur_logp[i] = [], [], [], []
                    if to_start == 0:
                        continue
                    to_start -= 1
                    o = self._reset(i)
                last_obs[i] = o
                still.append(i)
                first.append(reset)
            if self.frames is not None and still:  # all the envs' frames preprocessed together
                diffs = self.frames(np.stack([last_obs[i] for i in still]), np.asarray(still),
                                    np.asarray(first))
                for i, diff in zip(still, diffs):
                    last_obs[i] = diff
            active = still
        episodes = [ep for per_env in done_eps for ep in per_env]
        return Trajectories(
            obs=np.concatenate([e[0] for e in episodes]),
            actions=np.concatenate([e[1] for e in episodes]),
            rewards=np.concatenate([e[2] for e in episodes]),
            episode_lengths=np.asarray([len(e[1]) for e in episodes], np.int64),
            behaviour_logp=np.concatenate([e[3] for e in episodes]),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()
