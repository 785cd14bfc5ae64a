import numpy as np
import pytest

from rl.returns import (
    advantages,
    baseline_values,
    discounted_returns,
    normalise,
    step_index,
    time_mean_baseline,
)


def test_gamma_zero_returns_are_the_rewards():
    r = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(discounted_returns(r, 0.0), [1, 2, 3])


def test_gamma_one_returns_are_sums_to_go():
    r = np.array([1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(discounted_returns(r, 1.0), [4, 3, 2, 1])


def test_gamma_099_by_hand():
    r = np.array([1.0, 0.0, 2.0])
    # G2 = 2; G1 = 0 + 0.99 * 2 = 1.98; G0 = 1 + 0.99 * 1.98 = 2.9602
    np.testing.assert_allclose(discounted_returns(r, 0.99), [2.9602, 1.98, 2.0], rtol=1e-6)


def test_discounting_restarts_at_episode_ends():
    r = np.array([1.0, 1.0, 1.0, 5.0, 1.0])
    dones = np.array([False, True, True, False, True])      # episodes of lengths 2, 1, 2
    # ep1: [1 + 0.5, 1]; ep2: [1]; ep3: [5 + 0.5, 1]
    np.testing.assert_allclose(discounted_returns(r, 0.5, dones), [1.5, 1, 1, 5.5, 1])


def test_length_one_episodes_return_their_reward():
    r = np.array([3.0, -1.0, 2.0])
    dones = np.ones(3, bool)
    np.testing.assert_allclose(discounted_returns(r, 0.99, dones), [3, -1, 2])


def test_reset_on_reward_restarts_at_every_point():
    r = np.array([0.0, 0.0, -1.0, 0.0, 1.0])
    # Pong: each point ends the credit window. G4 = 1; G3 = 0.5; G2 = -1 (reset); G1 = -0.5; G0 = -0.25
    np.testing.assert_allclose(discounted_returns(r, 0.5, reset_on_reward=True),
                               [-0.25, -0.5, -1, 0.5, 1])


def test_pong_points_and_games_both_restart_the_discounting_with_gamma_099():
    # two games back to back: game 1 = [0, -1, 0, 0, +1], game 2 = [0, 0] (ends without a point)
    r = np.array([0.0, -1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    dones = np.array([0, 0, 0, 0, 1, 0, 1], bool)
    expected = [-0.99, -1.0, 0.99 ** 2, 0.99, 1.0, 0.0, 0.0]   # by hand
    np.testing.assert_allclose(discounted_returns(r, 0.99, dones, reset_on_reward=True), expected,
                               rtol=1e-6)
    # without the reset, the lost point's -1 would be offset by the later +1
    assert discounted_returns(r, 0.99, dones)[1] == pytest.approx(-1 + 0.99 ** 3, rel=1e-6)


def test_normalise_gives_zero_mean_unit_std_and_handles_constants():
    x = normalise(np.array([1.0, 2.0, 3.0, 4.0]))
    assert abs(x.mean()) < 1e-6 and abs(x.std() - 1) < 1e-5
    np.testing.assert_allclose(normalise(np.full(5, 7.0)), np.zeros(5))


def test_step_index_and_time_mean_baseline():
    lengths = np.array([3, 1, 2])
    np.testing.assert_array_equal(step_index(lengths), [0, 1, 2, 0, 0, 1])
    g = np.array([3.0, 2.0, 1.0, 5.0, 4.0, 2.0])
    # t=0: mean(3, 5, 4) = 4; t=1: mean(2, 2) = 2; t=2: 1
    np.testing.assert_allclose(time_mean_baseline(g, lengths), [4, 2, 1, 4, 4, 2])


def test_advantages_combine_the_pieces():
    r = np.array([1.0, 1.0, 1.0])
    lengths = np.array([2, 1])
    raw = advantages(r, lengths, 1.0, normalize=False)
    np.testing.assert_allclose(raw, [2, 1, 1])
    np.testing.assert_allclose(advantages(r, lengths, 1.0, baseline="mean", normalize=False),
                               np.array([2, 1, 1]) - 4 / 3, rtol=1e-6)
    np.testing.assert_allclose(advantages(r, lengths, 1.0), normalise(np.array([2.0, 1, 1])))
    with pytest.raises(ValueError):
        advantages(r, lengths, 1.0, baseline="median")


def test_time_mean_baseline_is_subtracted_from_the_returns():
    r = np.array([1.0, 1.0, 1.0])
    lengths = np.array([2, 1])
    # G = [2, 1 | 1]; b = [mean(2, 1), 1 | mean(2, 1)] = [1.5, 1 | 1.5]; G - b = [0.5, 0 | -0.5]
    np.testing.assert_allclose(advantages(r, lengths, 1.0, baseline="time_mean", normalize=False),
                               [0.5, 0.0, -0.5], atol=1e-7)
    # then standardised: std of [0.5, 0, -0.5] is sqrt(1/6)
    np.testing.assert_allclose(advantages(r, lengths, 1.0, baseline="time_mean"),
                               [np.sqrt(1.5), 0.0, -np.sqrt(1.5)], rtol=1e-6, atol=1e-7)


def test_advantages_restart_the_discounting_at_points_when_asked():
    r = np.array([0.0, -1.0, 0.0, 1.0])                     # one episode of Pong-like points
    lengths = np.array([4])
    # reset: G3 = 1, G2 = 0.5, G1 = -1 (a point), G0 = -0.5
    np.testing.assert_allclose(advantages(r, lengths, 0.5, normalize=False, reset_on_reward=True),
                               [-0.5, -1.0, 0.5, 1.0])
    # no reset: G1 = -1 + 0.5 * 0.5 = -0.75, G0 = -0.375
    np.testing.assert_allclose(advantages(r, lengths, 0.5, normalize=False),
                               [-0.375, -0.75, 0.5, 1.0])


def test_a_learned_value_baseline_is_subtracted_step_by_step():
    rewards, lengths = np.array([0.0, 1.0, 0.0, 2.0], np.float32), np.array([2, 2])
    values = np.array([0.5, 1.0, -1.0, 2.0], np.float32)
    # gamma 0.5: returns [0.5, 1 | 1, 2]
    np.testing.assert_allclose(advantages(rewards, lengths, 0.5, baseline="value", values=values,
                                          normalize=False), [0.0, 0.0, 2.0, 0.0])
    np.testing.assert_allclose(baseline_values(np.array([0.5, 1, 1, 2]), lengths, "mean"), [1.125] * 4)
    with pytest.raises(ValueError, match="one state value per step"):
        advantages(rewards, lengths, 0.5, baseline="value")
