"""What rollout workers send to the learner: whole episodes, back to back, as NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Trajectories:
    """Complete episodes stored back to back.

    obs: [T, *obs_shape]; actions: [T] int32; rewards: [T] float32;
    episode_lengths: [E] int64, summing to T; behaviour_logp: [T] float32, the log-probability
    each action had under the policy that chose it (None when not recorded): what the learner
    needs to correct for acting with weights one update old (``rollout.pipeline``).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode_lengths: np.ndarray
    behaviour_logp: np.ndarray | None = None

    @property
    def num_steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_lengths.shape[0])

    @property
    def episode_returns(self) -> np.ndarray:
        """[E] undiscounted return of each episode."""
        starts = np.cumsum(self.episode_lengths) - self.episode_lengths
        if not len(starts):
            return np.zeros(0, np.float32)
        return np.add.reduceat(self.rewards, starts).astype(np.float32)

    def episode_points(self) -> tuple[np.ndarray, np.ndarray]:
        """([E] rewards > 0, [E] rewards < 0) counted per episode: Pong's points won and lost."""
        starts = np.cumsum(self.episode_lengths) - self.episode_lengths
        if not len(starts):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return (np.add.reduceat((self.rewards > 0).astype(np.int64), starts),
                np.add.reduceat((self.rewards < 0).astype(np.int64), starts))

    @staticmethod
    def concat(parts: Sequence["Trajectories"]) -> "Trajectories":
        return Trajectories(
            obs=np.concatenate([p.obs for p in parts]),
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            episode_lengths=np.concatenate([p.episode_lengths for p in parts]),
            behaviour_logp=(None if any(p.behaviour_logp is None for p in parts)
                            else np.concatenate([p.behaviour_logp for p in parts])),
        )
