"""Pong's preprocessing on real frames from ale-py's ROM, frame differences and the action subset."""

import numpy as np
import pytest

from rl.atari import (
    BACKGROUND_RED,
    BatchFrameDifference,
    dilate3x3,
    frame_difference,
    preprocess_40,
    preprocess_80,
)
from rl.config import EnvConfig
from rl.envs import make_env

OUR_PADDLE, THEIR_PADDLE, BALL = 92, 213, 236   # red channel of the objects' colours
PONG = EnvConfig(id="ALE/Pong-v5", frameskip=4, repeat_action_probability=0.0)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """80 consecutive real RGB frames of a Pong game: the ball is in play in frames 14-63."""
    env = make_env(PONG)
    obs, _ = env.reset(seed=0)
    out = [obs]
    for _ in range(79):
        obs, *_ = env.step(0)
        out.append(obs)
    env.close()
    return np.stack(out)


def test_80x80_form_keeps_paddles_and_ball_and_erases_the_background(frames):
    frame = frames[50]
    red = frame[35:195:2, ::2, 0]
    assert BACKGROUND_RED[0] in red                                # this frame has background...
    assert {OUR_PADDLE, THEIR_PADDLE, BALL} <= set(np.unique(red).tolist())   # ...and all objects
    out = preprocess_80(frame)
    assert out.shape == (80, 80, 1) and out.dtype == np.uint8
    assert set(np.unique(out).tolist()) == {0, 1}
    objects = np.isin(red, [OUR_PADDLE, THEIR_PADDLE, BALL])
    np.testing.assert_array_equal(out[:, :, 0], objects)          # ones exactly on the objects
    assert out.mean() < 0.05                                       # the rest is erased
    # the second background colour is erased too
    other = frame.copy()
    other[35:195, :, 0] = np.where(other[35:195, :, 0] == BACKGROUND_RED[0], BACKGROUND_RED[1],
                                   other[35:195, :, 0])
    np.testing.assert_array_equal(preprocess_80(other), out)


def test_40x40_form_is_the_dilated_80x80_form_halved(frames):
    frame = frames[50]
    small = preprocess_40(frame)
    assert small.shape == (40, 40, 1) and small.dtype == np.uint8
    big = preprocess_80(frame)[:, :, 0]
    padded = np.pad(big, 1)
    naive = np.array([[padded[y:y + 3, x:x + 3].max() for x in range(80)] for y in range(80)])
    np.testing.assert_array_equal(dilate3x3(big), naive)
    np.testing.assert_array_equal(small[:, :, 0], naive[::2, ::2])
    # the ball survives the second downsampling: some pixel of it is kept
    red = frame[35:195:2, ::2, 0]
    ys, xs = np.nonzero(red == BALL)
    assert small[ys // 2, xs // 2, 0].max() == 1


def test_frame_differences(frames):
    a, b = preprocess_40(frames[49]), preprocess_40(frames[50])
    assert not frame_difference(a, a).any()                       # identical frames: zero
    diff = frame_difference(b, a)
    assert diff.dtype == np.int8 and set(np.unique(diff).tolist()) <= {-1, 0, 1}
    assert (diff == 1).any() and (diff == -1).any()               # the ball moved
    np.testing.assert_array_equal(a.astype(np.int16) + diff, b)


@pytest.mark.parametrize("observation, channels", [("difference", 1), ("frame_and_difference", 2)])
def test_wrapper_and_batched_preprocessing_give_the_same_observations(frames, observation, channels):
    cfg = EnvConfig(id="ALE/Pong-v5", frameskip=4, repeat_action_probability=0.0,
                    preprocess="pong40", observation=observation)
    env = make_env(cfg)
    assert env.observation_space.shape == (40, 40, channels)
    assert env.observation_space.dtype == np.int8
    obs, _ = env.reset(seed=0)
    assert not obs[..., 0].any()                                  # the first difference is zero
    wrapped = [obs] + [env.step(0)[0] for _ in range(79)]
    batch = BatchFrameDifference("pong40", num_envs=3, observation=observation)
    assert batch.shape == (40, 40, channels)
    first = batch(frames[:1], np.array([2]), np.array([True]))
    batched = [first[0]] + [batch(frames[t:t + 1], np.array([2]), np.array([False]))[0]
                            for t in range(1, 80)]
    for w, b in zip(wrapped, batched):
        np.testing.assert_array_equal(w, b)
    assert any(w.any() for w in wrapped)


def test_frame_and_difference_puts_the_current_frame_beside_the_difference(frames):
    batch = BatchFrameDifference("pong40", num_envs=1, observation="frame_and_difference")
    start = batch(frames[49:50], np.array([0]), np.array([True]))[0]
    a, b = preprocess_40(frames[49]), preprocess_40(frames[50])
    assert start.dtype == np.int8
    assert not start[..., 0].any()                                 # a start: no difference...
    np.testing.assert_array_equal(start[..., 1:], a)               # ...but the frame is there
    seen = batch(frames[50:51], np.array([0]), np.array([False]))[0]
    np.testing.assert_array_equal(seen[..., :1], frame_difference(b, a))
    np.testing.assert_array_equal(seen[..., 1:], b)
    assert seen[..., 1].any() and set(np.unique(seen[..., 1]).tolist()) <= {0, 1}


def test_action_subset_maps_to_the_game_actions():
    env = make_env(EnvConfig(id="ALE/Pong-v5", action_subset=(0, 2, 3)))
    assert env.action_space.n == 3
    assert [env.unwrapped.get_action_meanings()[env.action(a)] for a in range(3)] == \
        ["NOOP", "RIGHT", "LEFT"]
    with pytest.raises(ValueError, match="not actions"):
        make_env(EnvConfig(id="ALE/Pong-v5", action_subset=(0, 7)))


def test_atari_settings_reach_the_emulator():
    from rl.envs import frameskip

    for cfg, skip, sticky, n_actions in (
            (EnvConfig(id="ALE/Pong-v5"), 4, 0.25, 6),                          # the v5 defaults
            (EnvConfig(id="ALE/Pong-v5", frameskip=2, repeat_action_probability=0.0,
                       full_action_space=True), 2, 0.0, 18)):
        env = make_env(cfg)
        try:
            env.reset(seed=0)
            env.step(0)
            ale = env.unwrapped.ale
            assert ale.getEpisodeFrameNumber() == skip                      # frames in one step
            assert ale.getFloat("repeat_action_probability") == pytest.approx(sticky)
            assert env.action_space.n == n_actions
        finally:
            env.close()
        assert frameskip(cfg) == skip
    assert frameskip(EnvConfig()) == 1


def test_pong80_observations_are_80x80_differences():
    env = make_env(EnvConfig(id="ALE/Pong-v5", preprocess="pong80"))
    try:
        assert env.observation_space.shape == (80, 80, 1)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (80, 80, 1) and obs.dtype == np.int8 and not obs.any()
    finally:
        env.close()
    assert BatchFrameDifference("pong80", num_envs=2).shape == (80, 80, 1)
