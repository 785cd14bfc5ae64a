"""Discounted returns and their normalisation: pure NumPy, tested against values worked by hand.

Trajectories of several episodes are stored back to back; ``dones[t]`` is True at the last step of
each episode, so discounting never crosses from one episode into the next.
"""

from __future__ import annotations

import numpy as np

__all__ = ["discounted_returns", "normalise", "time_mean_baseline", "episode_returns", "baseline_values",
           "advantages", "step_index"]


def discounted_returns(rewards: np.ndarray, gamma: float, dones: np.ndarray | None = None,
                       reset_on_reward: bool = False) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1}, restarting at every episode end.

    rewards: [T]; dones: [T] bool, True at the last step of an episode (None: one episode).
    reset_on_reward: also restart wherever r_t != 0 (Pong: each point ends a "game" for credit).
    Returns [T] float32.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    ends = np.zeros(rewards.shape, bool) if dones is None else np.asarray(dones, bool)
    if reset_on_reward:
        ends = ends | (rewards != 0)
    out = np.empty_like(rewards)
    running = 0.0
    r_list, end_list = rewards.tolist(), ends.tolist()
    for t in range(len(r_list) - 1, -1, -1):
        if end_list[t]:
            running = 0.0
        running = r_list[t] + gamma * running
        out[t] = running
    return out.astype(np.float32)


def normalise(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """(x - mean) / std over the whole batch; a constant batch becomes zeros."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std()
    return ((x - x.mean()) / (std + eps)).astype(np.float32) if x.size else x.astype(np.float32)


def step_index(episode_lengths: np.ndarray) -> np.ndarray:
    """For back-to-back episodes of the given lengths, each step's index within its episode."""
    lengths = np.asarray(episode_lengths, dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(int(lengths.sum())) - starts


def time_mean_baseline(returns: np.ndarray, episode_lengths: np.ndarray) -> np.ndarray:
    """b_t = mean of G_t over the batch's episodes that lasted past step t; shape [T]."""
    t = step_index(episode_lengths)
    sums = np.bincount(t, weights=returns)
    counts = np.bincount(t)
    return (sums / counts)[t].astype(np.float32)


def episode_returns(rewards: np.ndarray, episode_lengths: np.ndarray, gamma: float,
                    reset_on_reward: bool = False) -> np.ndarray:
    """G_t of back-to-back episodes of the given lengths, each discounted on its own: [T]."""
    lengths = np.asarray(episode_lengths, dtype=np.int64)
    dones = np.zeros(int(lengths.sum()), bool)
    dones[np.cumsum(lengths) - 1] = True
    return discounted_returns(rewards, gamma, dones, reset_on_reward)


def baseline_values(returns: np.ndarray, episode_lengths: np.ndarray, baseline: str,
                    values: np.ndarray | None = None) -> np.ndarray:
    """b_t subtracted from G_t: 'none' 0, 'mean' the batch mean, 'time_mean' the mean at the same
    step index, 'value' the learned state values ``values`` [T]; shape [T] float32."""
    g = np.asarray(returns, dtype=np.float32)
    if baseline == "none":
        return np.zeros_like(g)
    if baseline == "mean":
        return np.full_like(g, g.mean())
    if baseline == "time_mean":
        return time_mean_baseline(g, episode_lengths)
    if baseline == "value":
        if values is None or np.shape(values) != g.shape:
            raise ValueError(f"baseline 'value' needs one state value per step ({g.shape[0]})")
        return np.asarray(values, dtype=np.float32)
    raise ValueError(f"unknown baseline {baseline!r}")


def advantages(rewards: np.ndarray, episode_lengths: np.ndarray, gamma: float, *,
               baseline: str = "none", normalize: bool = True,
               reset_on_reward: bool = False, values: np.ndarray | None = None) -> np.ndarray:
    """The weight of each step's log-probability in the REINFORCE loss; shape [T].

    Discounted returns per episode, minus the baseline ('none', 'mean', 'time_mean' or 'value'
    with the learned ``values``), then standardised over the batch if ``normalize`` (the
    course's recipe).
    """
    g = episode_returns(rewards, episode_lengths, gamma, reset_on_reward)
    adv = g - baseline_values(g, episode_lengths, baseline, values)
    return normalise(adv) if normalize else adv.astype(np.float32)
