"""Atari Pong as the course plays it: preprocessing as pure functions, and the wrappers that apply them.

The course's recipe (after Karpathy's "Pong from Pixels"): crop the playing field (rows 35-195),
keep every second pixel of the red channel, erase the two background colours, binarise; the policy
sees the difference of the current and the previous processed frame, so it can tell where the ball
is going (``observation: frame_and_difference`` adds the current frame as a second channel, so a
paddle that stands still stays visible). Two forms:

- ``pong80`` (course 2020): an 80x80 frame.
- ``pong40`` (course 2021): the 80x80 frame dilated by a 3x3 square (so that the thin ball and
  paddles survive), then every second pixel again: 40x40.

Frames are uint8 0/1, observations int8 (-1/0/1 differences, 0/1 frames): one byte a pixel a
channel in the trajectories.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import gymnasium as gym
import numpy as np

BACKGROUND_RED = (144, 109)  # red channel of Pong's two background colours

Preprocess = Literal["none", "pong80", "pong40"]
Observation = Literal["difference", "frame_and_difference"]


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


def observe(current: np.ndarray, previous: np.ndarray,
            observation: Observation = "difference") -> np.ndarray:
    """What the policy sees of two processed frames [..., H, W, 1]: their difference, or for
    'frame_and_difference' the difference and the current frame as two channels [..., H, W, 2]."""
    diff = frame_difference(current, previous)
    if observation == "difference":
        return diff
    return np.concatenate([diff, current.view(np.int8)], axis=-1)


def observation_shape(kind: str, observation: Observation = "difference") -> tuple[int, ...]:
    """Shape of one observation with preprocessing ``kind``."""
    frame = PREPROCESSORS[kind](np.zeros((210, 160, 3), np.uint8))
    return observe(frame, frame, observation).shape


class FrameDifference(gym.Wrapper):
    """Observations become ``process(frame) - process(previous frame)`` (int8; with the current
    frame beside it for 'frame_and_difference'); the first difference of an episode is all
    zeros, as in the course (previous = current at reset)."""

    def __init__(self, env: gym.Env, kind: str, observation: Observation = "difference"):
        super().__init__(env)
        self.process = PREPROCESSORS[kind]
        self.observation = observation
        self.observation_space = gym.spaces.Box(-1, 1, observation_shape(kind, observation), np.int8)
        self._previous: np.ndarray | None = None

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._previous = self.process(obs)
        return observe(self._previous, self._previous, self.observation), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        current = self.process(obs)
        seen = observe(current, self._previous, self.observation)
        self._previous = current
        return seen, reward, terminated, truncated, info


class BatchFrameDifference:
    """What ``FrameDifference`` does, for the environments of a rollout worker together: one
    preprocessing call for all their frames each step instead of one per environment (NumPy's
    per-call overhead is most of the cost of a 40x40 frame)."""

    def __init__(self, kind: str, num_envs: int, observation: Observation = "difference"):
        self.process = PREPROCESSORS[kind]
        self.observation = observation
        self.shape = observation_shape(kind, observation)
        self.previous = np.zeros((num_envs, *self.shape[:-1], 1), np.uint8)   # processed frames

    def __call__(self, frames: np.ndarray, env_ids: np.ndarray, first: np.ndarray) -> np.ndarray:
        """frames [B, 210, 160, 3] of environments ``env_ids`` [B]; ``first`` [B] marks frames
        that start an episode (their difference is zero). Returns [B, *shape] int8."""
        current = self.process(frames)
        previous = self.previous[env_ids]          # a copy: the episodes' starts set below
        previous[first] = current[first]
        self.previous[env_ids] = current
        return observe(current, previous, self.observation)


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

