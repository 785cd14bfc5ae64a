"""Atari Pong as the course plays it: preprocessing as pure functions, and the wrappers that apply them.

The course's recipe (after Karpathy's "Pong from Pixels"): crop the playing field (rows 35-195),
keep every second pixel of the red channel, erase the two background colours, binarise; the policy
sees the difference of the current and the previous processed frame, so it can tell where the ball
is going. Two forms:

- ``pong80`` (course 2020): an 80x80 frame.
- ``pong40`` (course 2021): the 80x80 frame dilated by a 3x3 square (so that the thin ball and
  paddles survive), then every second pixel again: 40x40.

Frames are uint8 0/1, differences int8 -1/0/1: one byte a pixel in the trajectories.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import gymnasium as gym
import numpy as np

BACKGROUND_RED = (144, 109)  # red channel of Pong's two background colours

Preprocess = Literal["none", "pong80", "pong40"]


def preprocess_80(frame: np.ndarray) -> np.ndarray:
    """[..., 210, 160, 3] uint8 RGB frames -> [..., 80, 80, 1] uint8, 1 where a paddle or the ball is."""
    red = frame[..., 35:195:2, ::2, 0]
    keep = (red != BACKGROUND_RED[0]) & (red != BACKGROUND_RED[1]) & (red != 0)
    return keep.view(np.uint8)[..., None]


def dilate3x3(binary: np.ndarray, stride: int = 1) -> np.ndarray:
    """Morphological dilation of [..., H, W] 0/1 arrays by a 3x3 square (borders padded with 0),
    as ``cv2.dilate(x, np.ones((3, 3)))`` in the course, keeping every ``stride``-th pixel: with
    stride 2 this is ``dilate(x)[..., ::2, ::2]`` without computing the pixels it drops."""
    h, w = binary.shape[-2:]
    padded = np.zeros((*binary.shape[:-2], h + 2, w + 2), binary.dtype)
    padded[..., 1:-1, 1:-1] = binary
    out = padded[..., 0:h:stride, 0:w:stride].copy()
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                np.maximum(out, padded[..., dy:dy + h:stride, dx:dx + w:stride], out=out)
    return out


def preprocess_40(frame: np.ndarray) -> np.ndarray:
    """[..., 210, 160, 3] uint8 RGB frames -> [..., 40, 40, 1] uint8: the 80x80 form, dilated,
    halved again."""
    return dilate3x3(preprocess_80(frame)[..., 0], stride=2)[..., None]


PREPROCESSORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "pong80": preprocess_80,
    "pong40": preprocess_40,
}


def frame_difference(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """current - previous of two 0/1 uint8 frames, as int8 in {-1, 0, 1}."""
    return current.astype(np.int8) - previous.astype(np.int8)


class FrameDifference(gym.Wrapper):
    """Observations become ``process(frame) - process(previous frame)`` (int8); the first
    observation of an episode is all zeros, as in the course (previous = current at reset)."""

    def __init__(self, env: gym.Env, kind: str):
        super().__init__(env)
        self.process = PREPROCESSORS[kind]
        shape = self.process(np.zeros(env.observation_space.shape, np.uint8)).shape
        self.observation_space = gym.spaces.Box(-1, 1, shape, np.int8)
        self._previous: np.ndarray | None = None

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._previous = self.process(obs)
        return frame_difference(self._previous, self._previous), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        current = self.process(obs)
        diff = frame_difference(current, self._previous)
        self._previous = current
        return diff, reward, terminated, truncated, info


class BatchFrameDifference:
    """What ``FrameDifference`` does, for the environments of a rollout worker together: one
    preprocessing call for all their frames each step instead of one per environment (NumPy's
    per-call overhead is most of the cost of a 40x40 frame)."""

    def __init__(self, kind: str, num_envs: int):
        self.process = PREPROCESSORS[kind]
        self.shape = self.process(np.zeros((210, 160, 3), np.uint8)).shape
        self.previous = np.zeros((num_envs, *self.shape), np.uint8)

    def __call__(self, frames: np.ndarray, env_ids: np.ndarray, first: np.ndarray) -> np.ndarray:
        """frames [B, 210, 160, 3] of environments ``env_ids`` [B]; ``first`` [B] marks frames
        that start an episode (their difference is zero). Returns [B, *shape] int8."""
        current = self.process(frames)
        diff = frame_difference(current, self.previous[env_ids])
        diff[first] = 0
        self.previous[env_ids] = current
        return diff


class ActionSubset(gym.ActionWrapper):
    """The policy chooses among ``actions`` (indices into the wrapped environment's actions),
    e.g. Pong's NOOP, UP, DOWN = [0, 2, 3]."""

    def __init__(self, env: gym.Env, actions: Sequence[int]):
        super().__init__(env)
        n = env.action_space.n
        bad = [a for a in actions if not 0 <= a < n]
        if bad:
            raise ValueError(f"action_subset: {bad} are not actions of an environment with {n}")
        self.actions = np.asarray(actions, np.int64)
        self.action_space = gym.spaces.Discrete(len(actions))

    def action(self, action):
        return int(self.actions[action])

