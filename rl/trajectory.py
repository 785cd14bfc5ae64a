"""What rollout workers send to the learner: segments of play back to back, as NumPy arrays,
and the games that ended while they were played."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Games:
    """Games (whole episodes) that ended during a batch, [G] each: undiscounted return, steps,
    and points won and lost (rewards > 0 and < 0: Pong's return is won - lost)."""

    returns: np.ndarray
    lengths: np.ndarray
    won: np.ndarray
    lost: np.ndarray

    @staticmethod
    def concat(parts: Sequence["Games"]) -> "Games":
        return Games(*(np.concatenate([getattr(p, name) for p in parts])
                       for name in ("returns", "lengths", "won", "lost")))


@dataclass(frozen=True)
class Trajectories:
    """Segments of play stored back to back; the learner's returns restart at each segment's end.

    obs: [T, *obs_shape]; actions: [T] int32; rewards: [T] float32;
    episode_lengths: [E] int64, summing to T: each segment's steps. A segment is a whole episode,
    or, with ``rollout.steps_per_env``, a piece of one that ends at a point (a nonzero reward), the
    game going on in the next batch; with ``learner.reset_on_reward`` its returns are exact.
    behaviour_logp: [T] float32, the log-probability each action had under the policy that chose
    it (None when not recorded): what the learner needs to correct for acting with weights one
    update old (``rollout.pipeline``).
    finished: the games that ended in this batch (None: the segments are the games).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode_lengths: np.ndarray
    behaviour_logp: np.ndarray | None = None
    finished: Games | None = None

    @property
    def num_steps(self) -> int:
        return int(self.actions.shape[0])

    def games(self) -> Games:
        """The games that ended in this batch: ``finished``, or else the segments themselves."""
        if self.finished is not None:
            return self.finished
        starts = np.cumsum(self.episode_lengths) - self.episode_lengths
        if not len(starts):
            empty = np.zeros(0, np.int64)
            return Games(np.zeros(0, np.float32), empty, empty, empty)
        return Games(np.add.reduceat(self.rewards, starts).astype(np.float32),
                     np.asarray(self.episode_lengths, np.int64),
                     np.add.reduceat((self.rewards > 0).astype(np.int64), starts),
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
            finished=(None if all(p.finished is None for p in parts)
                      else Games.concat([p.games() for p in parts])),
        )
