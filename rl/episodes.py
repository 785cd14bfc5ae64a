"""Episode statistics over a moving window: returns, lengths and, for Atari games, points.

Call sequence::

    stats = EpisodeStats(window=100, atari=False)     # or with a checkpoint's window on resume
    stats.add(batches)                                # the games one iteration finished
    metrics = stats.metrics()                         # rollout/* keys, over the last `window`
    counters = stats.state()                          # for a checkpoint

Pong's return is points won minus points lost; ``rollout/win_rate`` is the share of the window's
games with a positive return.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from rl.trajectory import Trajectories

METRICS = ("rollout/episode_return_mean", "rollout/episode_return_min",
           "rollout/episode_return_max", "rollout/episode_length_mean")
ATARI_METRICS = ("rollout/points_won_mean", "rollout/points_lost_mean", "rollout/win_rate")


class EpisodeStats:
    """The last ``window`` episodes' returns, lengths and (``atari``) points won and lost."""

    def __init__(self, window: int, atari: bool, returns: Sequence[float] = (),
                 lengths: Sequence[int] = (), won: Sequence[int] = (), lost: Sequence[int] = ()):
        self.atari = atari
        self.returns = deque(returns, maxlen=window)
        self.lengths = deque(lengths, maxlen=window)
        self.won = deque(won, maxlen=window)
        self.lost = deque(lost, maxlen=window)

    def add(self, batches: Sequence[Trajectories]) -> int:
        """Adds the games that ended in ``batches``; returns how many there were."""
        episodes = 0
        for b in batches:
            games = b.games()
            self.returns.extend(games.returns.tolist())
            self.lengths.extend(games.lengths.tolist())
            episodes += len(games.returns)
            if self.atari:
                self.won.extend(games.won.tolist())
                self.lost.extend(games.lost.tolist())
        return episodes

    def __len__(self) -> int:
        return len(self.returns)

    def return_mean(self) -> float | None:
        return float(np.mean(self.returns)) if self.returns else None

    def metrics(self) -> dict[str, float]:
        """``rollout/*`` over the window (empty before the first episode)."""
        if not self.returns:
            return {}
        returns = np.asarray(self.returns)
        out = {
            "rollout/episode_return_mean": float(returns.mean()),
            "rollout/episode_return_min": float(returns.min()),
            "rollout/episode_return_max": float(returns.max()),
            "rollout/episode_length_mean": float(np.mean(self.lengths)),
        }
        if self.atari:
            out |= {
                "rollout/points_won_mean": float(np.mean(self.won)),
                "rollout/points_lost_mean": float(np.mean(self.lost)),
                "rollout/win_rate": float(np.mean(returns > 0)),
            }
        return out

    def state(self) -> dict[str, list]:
        """The window as plain lists (checkpoint counters: recent_returns, ...)."""
        return {"recent_returns": list(self.returns), "recent_lengths": list(self.lengths),
                "recent_won": list(self.won), "recent_lost": list(self.lost)}
