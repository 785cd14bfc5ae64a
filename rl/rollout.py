"""RolloutWorker: plays its environments with one policy call per step, for whole episodes or
for pieces of games that end at a point.

The worker does not know whether it is remote; ``cluster/`` makes it a Ray actor. Call sequence::

    worker = RolloutWorker(env_cfg, policy_cfg, rollout_cfg, seed=run_seed, worker_index=i)
    while training:
        batch = worker.sample(weights)   # set the learner's latest weights, then play
        ...                              # the learner updates and broadcasts new weights

By default each ``sample`` plays ``envs_per_worker x episodes_per_env`` whole episodes, new ones
each time. With ``steps_per_env`` each environment plays at least that many steps and stops at its
next point or episode end, and its game goes on in the next ``sample``. Either way the
environments step together: every step evaluates the policy once, on the observations of all
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
from rl.trajectory import Games, Trajectories


class RolloutWorker:
    """Holds ``envs_per_worker`` environments, their games in progress and a copy of the policy
    weights."""

    def __init__(self, env_cfg: EnvConfig, policy_cfg: PolicyConfig, rollout_cfg: RolloutConfig,
                 seed: int, worker_index: int = 0, generation: int = 0):
        self.cfg = rollout_cfg
        self.worker_index = worker_index
        # Seeds derive from the run seed, the worker's index and how many times this index was
        # restarted (or resumed), so a run is reproducible and a replacement never replays.
        env_seeds = derive_seeds(seed, worker_index, generation, n=rollout_cfg.envs_per_worker + 1)
        self.rng = np.random.default_rng(env_seeds[-1])
        # Atari frames are preprocessed here for all the envs at once, not by each env's wrapper.
        n = rollout_cfg.envs_per_worker
        self.envs = [make_env(env_cfg, preprocess=False) for _ in range(n)]
        self.frames = (None if env_cfg.preprocess == "none"
                       else BatchFrameDifference(env_cfg.preprocess, n, env_cfg.observation))
        self._next_seed: list[int | None] = list(env_seeds[:-1])  # used on each env's first reset
        self.policy = NumpyPolicy(policy_cfg)
        # Each env's game in progress: its next observation (None: start a new game) and its
        # return, steps, points won and points lost so far (the columns of Games).
        self._obs: list[np.ndarray | None] = [None] * n
        self._game = np.zeros((n, 4))

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self.policy.set_weights(weights)

    def _observe(self, raw: dict[int, np.ndarray], first: set[int]) -> None:
        """Stores the envs' next observations, Atari frames preprocessed all together."""
        ids = sorted(raw)
        if self.frames is not None and ids:
            diffs = self.frames(np.stack([raw[i] for i in ids]), np.asarray(ids),
                                np.asarray([i in first for i in ids]))
            raw = dict(zip(ids, diffs))
        for i in ids:
            self._obs[i] = raw[i]

    def _reset(self, i: int) -> np.ndarray:
        obs, _ = self.envs[i].reset(seed=self._next_seed[i])
        self._next_seed[i] = None
        self._game[i] = 0
        return obs

    def sample(self, weights: Sequence[np.ndarray] | None = None) -> Trajectories:
        """Segments, and the games that ended on the way: the first environment's in the order
        played, then the second's, and so on.

        Whole episodes: an environment that finishes an episode starts another while the worker
        still needs some, so envs that drew short episodes take more of them and few wait at the
        end. ``steps_per_env``: each env plays to its first point (or episode end) at or after that
        many steps; a game that ends sooner is followed by a new one.
        """
        if weights is not None:
            self.set_weights(weights)
        n = len(self.envs)
        min_steps = self.cfg.steps_per_env
        to_start = n * self.cfg.episodes_per_env - n           # whole episodes not yet begun
        if min_steps is None:                                  # whole episodes: new games
            self._obs = [None] * n
        starting = [i for i in range(n) if self._obs[i] is None]
        self._observe({i: self._reset(i) for i in starting}, set(starting))
        active = list(range(n))
        steps = [0] * n
        # Per environment: the current segment's steps, and its finished segments.
        cur_obs: list[list[np.ndarray]] = [[] for _ in range(n)]
        cur_act: list[list[int]] = [[] for _ in range(n)]
        cur_rew: list[list[float]] = [[] for _ in range(n)]
        cur_logp: list[list[float]] = [[] for _ in range(n)]
        segments: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(n)]
        games: list[list[np.ndarray]] = [[] for _ in range(n)]   # each env's ended games
        obs_dtype = np.float32 if np.issubdtype(np.asarray(self._obs[0]).dtype, np.floating) else None
        while active:
            batch_obs = np.asarray([self._obs[i] for i in active])              # [B, *obs_shape]
            actions, logp = self.policy.act_logp(batch_obs, self.rng)       # one call, all envs
            still, raw, first = [], {}, set()
            for i, a, lp in zip(active, actions.tolist(), logp.tolist()):
                cur_obs[i].append(self._obs[i])
                o, r, terminated, truncated, _ = self.envs[i].step(a)
                cur_act[i].append(a)
                cur_rew[i].append(r)
                cur_logp[i].append(lp)
                steps[i] += 1
                self._game[i] += (r, 1, r > 0, r < 0)
                ended = terminated or truncated
                enough = (min_steps is not None and steps[i] >= min_steps and r != 0)
                if ended or enough:
                    segments[i].append((np.asarray(cur_obs[i], obs_dtype),
                                        np.asarray(cur_act[i], np.int32),
                                        np.asarray(cur_rew[i], np.float32),
                                        np.asarray(cur_logp[i], np.float32)))
                    cur_obs[i], cur_act[i], cur_rew[i], cur_logp[i] = [], [], [], []
                if ended:
                    games[i].append(self._game[i].copy())
                    if min_steps is None:
                        if to_start == 0:
                            continue
                        to_start -= 1
                    elif steps[i] >= min_steps:
                        self._obs[i] = None                     # the next sample starts a game
                        continue
                    o = self._reset(i)
                    first.add(i)
                raw[i] = o
                if not (enough and not ended):
                    still.append(i)
            self._observe(raw, first)      # a game cut at a point keeps its next frame for later
            active = still
        pieces = [seg for per_env in segments for seg in per_env]
        done = np.asarray([g for per_env in games for g in per_env]).reshape(-1, 4)
        return Trajectories(
            obs=np.concatenate([e[0] for e in pieces]),
            actions=np.concatenate([e[1] for e in pieces]),
            rewards=np.concatenate([e[2] for e in pieces]),
            episode_lengths=np.asarray([len(e[1]) for e in pieces], np.int64),
            behaviour_logp=np.concatenate([e[3] for e in pieces]),
            finished=Games(done[:, 0].astype(np.float32), *(done[:, k].astype(np.int64)
                                                            for k in (1, 2, 3))),
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()
