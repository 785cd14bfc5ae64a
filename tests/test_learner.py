import numpy as np
import pytest

from rl.config import LearnerConfig, PolicyConfig
from rl.trajectory import Trajectories

tf = pytest.importorskip("tensorflow")


def make_learner(**kw):
    from rl.learner import ReinforceLearner

    return ReinforceLearner((4,), 2, PolicyConfig(), LearnerConfig(**kw), seed=0)


def test_loss_gradient_raises_log_prob_of_actions_with_positive_return():
    from rl.losses import reinforce_loss

    logits = tf.Variable(tf.zeros([2, 2]))
    actions = tf.constant([0, 1])
    weights = tf.constant([1.0, -1.0])       # action 0 was good in row 0, action 1 bad in row 1
    with tf.GradientTape() as tape:
        loss, entropy = reinforce_loss(logits, actions, weights)
    logits.assign_sub(0.5 * tape.gradient(loss, logits))  # one step of gradient descent
    p = tf.nn.softmax(logits).numpy()
    assert p[0, 0] > 0.5      # raised: positive return
    assert p[1, 1] < 0.5      # lowered: negative return
    assert entropy.numpy() == pytest.approx(np.log(2), rel=1e-6)


def test_an_update_makes_rewarded_actions_more_likely():
    learner = make_learner(lr=0.05, normalize_returns=True)
    obs = np.tile(np.array([[0.1, -0.2, 0.3, 0.0]], np.float32), (20, 1))
    actions = np.array([0, 1] * 10, np.int32)
    # ten episodes of two steps (action 0, then action 1); only action 0 is rewarded, so its
    # normalised return is positive and action 1's negative
    rewards = np.where(actions == 0, 1.0, 0.0).astype(np.float32)
    batch = Trajectories(obs, actions, rewards, np.full(10, 2))
    from rl.policy import mlp_logits

    def p0():
        logits = mlp_logits(learner.get_weights(), obs[:1].copy())
        e = np.exp(logits - logits.max())
        return (e / e.sum())[0, 0]

    before = p0()
    metrics = learner.update([batch])
    assert p0() > before
    assert set(metrics) >= {"learner/loss", "learner/entropy", "learner/grad_norm", "time/learn_s"}
    assert metrics["learner/grad_norm"] > 0


def test_gradient_clipping_and_state_round_trip():
    learner = make_learner(max_grad_norm=0.01)
    rng = np.random.default_rng(0)
    batch = Trajectories(rng.normal(size=(30, 4)).astype(np.float32),
                         rng.integers(0, 2, 30).astype(np.int32),
                         np.ones(30, np.float32), np.array([10, 20]))
    learner.update([batch])
    state = learner.get_state()
    assert state["num_updates"] == 1
    other = make_learner(max_grad_norm=0.01)
    other.set_state(state)
    for a, b in zip(other.get_weights(), learner.get_weights()):
        np.testing.assert_array_equal(a, b)
    # identical optimizer state: the next identical update gives identical weights
    learner.update([batch])
    other.update([batch])
    for a, b in zip(other.get_weights(), learner.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"baseline": "value", "value_steps": 3}])
def test_chunked_update_is_the_same_single_step_as_the_whole_batch(kw):
    rng = np.random.default_rng(1)
    batch = Trajectories(rng.integers(-1, 2, size=(50, 4)).astype(np.int8),   # int8, as Pong's
                         rng.integers(0, 2, 50).astype(np.int32),
                         rng.choice([0.0, 1.0, -1.0], 50).astype(np.float32), np.array([20, 30]))
    whole = make_learner(reset_on_reward=True, **kw)
    chunked = make_learner(reset_on_reward=True, chunk_steps=7, **kw)
    m_whole, m_chunked = whole.update([batch]), chunked.update([batch])
    for key in ("learner/loss", "learner/entropy", "learner/grad_norm"):
        assert m_chunked[key] == pytest.approx(m_whole[key], rel=1e-5)
    state_whole, state_chunked = whole.get_state(), chunked.get_state()
    for a, b in zip(state_whole["weights"] + state_whole["value_weights"],
                    state_chunked["weights"] + state_chunked["value_weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_padding_by_hand_and_a_padded_chunk_gives_the_unpadded_step():
    from rl.learner import PAD_ROWS, padded

    rows = np.arange(6, dtype=np.int8).reshape(3, 2)
    out = padded(rows, chunk=8192)
    assert out.shape == (PAD_ROWS, 2) and out.dtype == np.int8
    np.testing.assert_array_equal(out[:3], rows)
    assert not out[3:].any()
    assert padded(rows, chunk=3) is rows and padded(rows, chunk=2).shape == (3, 2)
    assert len(padded(np.zeros(300), chunk=400)) == 400 and len(padded(np.zeros(300), chunk=8192)) == 512
    # 300 steps: one chunk of exactly 300 rows, or padded to 512 with the padding masked out;
    # with the value baseline and entropy, whose means the padding must not enter
    rng = np.random.default_rng(2)
    batch = Trajectories(rng.normal(size=(300, 4)).astype(np.float32), rng.integers(0, 2, 300).astype(np.int32),
                         rng.choice([0.0, 1.0, -1.0], 300).astype(np.float32), np.array([120, 180]))
    kw = dict(baseline="value", entropy_coef=0.01, reset_on_reward=True)
    exact, padded_one = make_learner(chunk_steps=300, **kw), make_learner(chunk_steps=8192, **kw)
    m_exact, m_padded = exact.update([batch]), padded_one.update([batch])
    for key in ("learner/loss", "learner/entropy", "learner/grad_norm", "learner/baseline_mse"):
        assert m_padded[key] == pytest.approx(m_exact[key], rel=1e-5), key
    for a, b in zip(exact.get_state()["weights"] + exact.get_state()["value_weights"],
                    padded_one.get_state()["weights"] + padded_one.get_state()["value_weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_int8_observations_reach_the_learner_as_they_are_and_train_as_floats():
    """Pong's int8 frame differences go to the compiled step as int8 (a quarter of the bytes a
    GPU learner receives) and are cast inside: the same step as float32 observations."""
    rng = np.random.default_rng(3)
    obs = rng.integers(-1, 2, size=(40, 4)).astype(np.int8)
    actions, rewards = rng.integers(0, 2, 40).astype(np.int32), rng.choice([0.0, 1.0], 40).astype(np.float32)
    as_int8, as_float = make_learner(baseline="value"), make_learner(baseline="value")
    as_int8.update([Trajectories(obs, actions, rewards, np.array([40]))])
    as_float.update([Trajectories(obs.astype(np.float32), actions, rewards, np.array([40]))])
    assert set(as_int8._compiled) == {"int8"} and set(as_float._compiled) == {"float32"}
    for a, b in zip(as_int8.get_weights(), as_float.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


def test_restored_state_keeps_the_configured_learning_rate():
    """`labrun resume --set learner.lr=...` must take effect: the checkpoint's lr is not restored."""
    learner = make_learner(lr=1e-2)
    rng = np.random.default_rng(0)
    learner.update([Trajectories(rng.normal(size=(30, 4)).astype(np.float32),
                                 rng.integers(0, 2, 30).astype(np.int32),
                                 np.ones(30, np.float32), np.array([10, 20]))])
    other = make_learner(lr=1e-4)
    other.set_state(learner.get_state())
    assert float(other.optimizer.learning_rate) == pytest.approx(1e-4)
    assert int(other.optimizer.iterations) == 1                   # the rest of the state is restored


def test_loss_with_entropy_bonus_by_hand():
    from rl.losses import reinforce_loss

    logits = tf.math.log(tf.constant([[0.25, 0.75], [0.5, 0.5]]))
    loss, entropy = reinforce_loss(logits, tf.constant([0, 1]), tf.constant([2.0, -1.0]),
                                   entropy_coef=0.1)
    # -log p: [log 4, log 2]; mean(-log p * w) = (2 log 4 - log 2) / 2 = 1.5 log 2
    h = np.mean([0.25 * np.log(4) + 0.75 * np.log(4 / 3), np.log(2)])     # mean entropy
    assert float(entropy) == pytest.approx(h, rel=1e-6)
    assert float(loss) == pytest.approx(1.5 * np.log(2) - 0.1 * h, rel=1e-6)   # a bonus: subtracted


def numpy_probs(learner, obs):
    from rl.policy import mlp_logits

    logits = mlp_logits(learner.get_weights(), obs.astype(np.float32))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)                               # [T, A]


def mean_entropy(p):
    return float(np.mean(-(p * np.log(p)).sum(axis=1)))


def hand_batch():
    """Two episodes of 3 and 2 steps, rewards [0, -1, 1 | 0, 2]: (obs, actions, rewards)."""
    obs = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    return obs, np.array([0, 1, 1, 0, 1], np.int32), np.array([0.0, -1.0, 1.0, 0.0, 2.0], np.float32)


def hand_loss(p, actions, adv, entropy_coef=0.0):
    """mean(-log p(a|s) * advantage) - entropy_coef * entropy, from [T, A] probabilities."""
    neg_log_p = -np.log(p[np.arange(len(actions)), actions])                # [T]
    return np.mean(neg_log_p * np.asarray(adv)) - entropy_coef * mean_entropy(p)


# The advantages of hand_batch, gamma 0.5 unless said:
#   returns without reset: [-0.25, -0.5, 1 | 1, 2] (mean 0.65, variance 0.84)
#   returns with reset at each non-zero reward: [-0.5, -1, 1 | 1, 2]
HAND_ADVANTAGES = [
    pytest.param({"reset_on_reward": True}, [-0.5, -1.0, 1.0, 1.0, 2.0], id="reset_on_reward"),
    pytest.param({}, [-0.25, -0.5, 1.0, 1.0, 2.0], id="gamma_0.5"),
    pytest.param({"gamma": 1.0}, [0.0, 0.0, 1.0, 2.0, 2.0], id="gamma_1"),
    pytest.param({"baseline": "mean"}, [-0.9, -1.15, 0.35, 0.35, 1.35], id="baseline_mean"),
    # per step index: b0 = mean(-0.25, 1) = 0.375, b1 = mean(-0.5, 2) = 0.75, b2 = 1
    pytest.param({"baseline": "time_mean"}, [-0.625, -1.25, 0.0, 0.625, 1.25], id="baseline_time_mean"),
    pytest.param({"normalize_returns": True},
                 np.array([-0.9, -1.15, 0.35, 0.35, 1.35]) / np.sqrt(0.84), id="normalize_returns"),
    pytest.param({"entropy_coef": 0.1}, [-0.25, -0.5, 1.0, 1.0, 2.0], id="entropy_coef"),
]


@pytest.mark.parametrize("options, adv", HAND_ADVANTAGES)
def test_update_loss_weights_log_probs_by_the_configured_advantages(options, adv):
    """The loss the learner reports is mean(-log p(a|s) * advantage) - entropy_coef * entropy, with
    the advantages worked out by hand for the configured gamma, reset, baseline and normalisation
    and the probabilities from the NumPy forward pass of the weights before the update."""
    cfg = {"gamma": 0.5, "normalize_returns": False, **options}
    learner = make_learner(**cfg)
    obs, actions, rewards = hand_batch()
    p = numpy_probs(learner, obs)
    metrics = learner.update([Trajectories(obs, actions, rewards, np.array([3, 2]))])
    expected = hand_loss(p, actions, adv, cfg.get("entropy_coef", 0.0))
    assert metrics["learner/loss"] == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert metrics["learner/entropy"] == pytest.approx(mean_entropy(p), rel=1e-5)


def test_update_takes_every_worker_batch():
    """The workers' batches make one batch: hand_batch given as two parts has the same loss."""
    learner = make_learner(gamma=0.5, normalize_returns=False)
    obs, actions, rewards = hand_batch()
    p = numpy_probs(learner, obs)
    metrics = learner.update([Trajectories(obs[:3], actions[:3], rewards[:3], np.array([3])),
                              Trajectories(obs[3:], actions[3:], rewards[3:], np.array([2]))])
    assert metrics["learner/batch_steps"] == 5
    assert metrics["learner/loss"] == pytest.approx(hand_loss(p, actions, [-0.25, -0.5, 1.0, 1.0, 2.0]),
                                                    rel=1e-5)


def test_entropy_bonus_alone_makes_the_policy_less_certain():
    learner = make_learner(lr=0.05, entropy_coef=0.1)
    rng = np.random.default_rng(4)
    obs = rng.normal(size=(20, 4)).astype(np.float32)
    # every reward 0: the normalised advantages are all 0 and only the entropy bonus has a gradient
    batch = Trajectories(obs, rng.integers(0, 2, 20).astype(np.int32), np.zeros(20, np.float32),
                         np.array([10, 10]))
    before = mean_entropy(numpy_probs(learner, obs))
    assert before < np.log(2) - 1e-3                        # room to grow
    learner.update([batch])
    assert mean_entropy(numpy_probs(learner, obs)) > before


def clipping_batch():
    rng = np.random.default_rng(5)
    return Trajectories(rng.normal(size=(30, 4)).astype(np.float32), rng.integers(0, 2, 30).astype(np.int32),
                        rng.normal(size=30).astype(np.float32), np.array([10, 20]))


def first_moments(learner):
    """Adam's m of each weight, (1 - beta_1) * gradient after one step."""
    variables = learner.optimizer.variables + (
        learner.value_optimizer.variables if learner.value_optimizer is not None else [])
    return [v.numpy() for v in variables if v.name.endswith("_momentum")]


def global_norm(arrays):
    return float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))


def test_clipped_gradient_is_the_one_applied():
    batch = clipping_batch()
    free, clipped = make_learner(), make_learner(max_grad_norm=0.01)
    norm = free.update([batch])["learner/grad_norm"]
    assert clipped.update([batch])["learner/grad_norm"] == pytest.approx(norm, rel=1e-5)  # before clipping
    assert norm > 0.1                                        # so that 0.01 clips it
    m_free, m_clipped = first_moments(free), first_moments(clipped)
    assert len(m_free) == 4
    assert global_norm(m_free) == pytest.approx(0.1 * norm, rel=1e-4)
    # the same direction, scaled down to the clip norm
    assert global_norm(m_clipped) == pytest.approx(0.1 * 0.01, rel=1e-4)
    for a, b in zip(m_clipped, m_free):
        np.testing.assert_allclose(a, b * (0.01 / norm), rtol=1e-4, atol=1e-12)


def test_the_policy_and_value_gradients_are_clipped_each_to_its_own_norm():
    """With a learned baseline, each part's gradient (both above 0.01 here) is clipped to 0.01 on
    its own: clipped together, each would end below 0.01, the value network's gradient
    shrinking the policy's."""
    batch = clipping_batch()
    learner = make_learner(max_grad_norm=0.01, baseline="value")
    learner.update([batch])
    m = first_moments(learner)
    assert len(m) == 8                                       # the policy's 4, then the value's 4
    assert global_norm(m[:4]) == pytest.approx(0.1 * 0.01, rel=1e-4)
    assert global_norm(m[4:]) == pytest.approx(0.1 * 0.01, rel=1e-4)


def test_a_gradient_clipped_far_below_adams_epsilon_barely_moves_the_weights():
    """Adam divides by sqrt(v) + 1e-7: a gradient of norm 1e-12 takes a step ~1e-6 of the usual."""
    batch = clipping_batch()
    lr = 0.01
    free, clipped = make_learner(lr=lr), make_learner(lr=lr, max_grad_norm=1e-12)
    before = free.get_weights()
    free.update([batch])
    clipped.update([batch])
    step_free = max(np.abs(a - b).max() for a, b in zip(free.get_weights(), before))
    step_clipped = max(np.abs(a - b).max() for a, b in zip(clipped.get_weights(), before))
    assert step_free > 0.5 * lr
    assert step_clipped < 1e-4 * lr


def test_a_clip_norm_above_the_gradient_norm_changes_nothing():
    batch = clipping_batch()
    free, loose = make_learner(), make_learner(max_grad_norm=1e3)
    assert free.update([batch])["learner/grad_norm"] < 1e3
    loose.update([batch])
    for a, b in zip(free.get_weights(), loose.get_weights()):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ a learned value baseline

def numpy_values(learner, obs):
    from rl.policy import mlp_logits

    return mlp_logits([np.asarray(w) for w in learner.value_model.get_weights()],
                      obs.astype(np.float32))[:, 0]                        # [T]


def test_value_baseline_weights_log_probs_by_return_minus_the_state_value():
    """adv = G - V(s) with V from the value network before the step (gamma 0.5 returns of
    hand_batch: [-0.25, -0.5, 1 | 1, 2]); learner/baseline_mse = mean((G - V)^2)."""
    learner = make_learner(gamma=0.5, normalize_returns=False, baseline="value")
    obs, actions, rewards = hand_batch()
    p, v = numpy_probs(learner, obs), numpy_values(learner, obs)
    g = np.array([-0.25, -0.5, 1.0, 1.0, 2.0])
    metrics = learner.update([Trajectories(obs, actions, rewards, np.array([3, 2]))])
    assert metrics["learner/loss"] == pytest.approx(hand_loss(p, actions, g - v), rel=1e-5, abs=1e-6)
    assert metrics["learner/baseline_mse"] == pytest.approx(np.mean((g - v) ** 2), rel=1e-5)


def test_the_value_network_learns_the_returns_and_leaves_the_workers_weights_alone():
    learner = make_learner(gamma=0.5, normalize_returns=False, baseline="value", lr=0.01)
    obs, actions, rewards = hand_batch()
    batch = Trajectories(obs, actions, rewards, np.array([3, 2]))
    first = learner.update([batch])["learner/baseline_mse"]
    for _ in range(150):
        last = learner.update([batch])["learner/baseline_mse"]
    assert last < 0.1 * first
    assert [w.shape for w in learner.get_weights()] == [(4, 32), (32,), (32, 2), (2,)]  # policy only


def test_value_baseline_state_round_trips_and_a_learner_without_one_refuses_it():
    learner = make_learner(baseline="value")
    obs, actions, rewards = hand_batch()
    learner.update([Trajectories(obs, actions, rewards, np.array([3, 2]))])
    state = learner.get_state()
    assert [w.shape for w in state["value_weights"]] == [(4, 32), (32,), (32, 1), (1,)]
    restored = make_learner(baseline="value")
    restored.set_state(state)
    np.testing.assert_array_equal(numpy_values(restored, obs), numpy_values(learner, obs))
    with pytest.raises(ValueError, match="value baseline"):
        make_learner().set_state(state)


def test_further_value_steps_fit_the_returns_closer_and_leave_the_policy_step_as_it_was():
    """value_steps=5: the policy's steps, its Adam state and the advantages (V before each
    batch) are those of value_steps=1, update after update (the value network's Adam counts
    its own steps, so the policy's bias correction is untouched); the value network takes 4
    more Adam steps on each batch alone, so it ends nearer the returns (gamma 0.5 returns of
    hand_batch)."""
    obs, actions, rewards = hand_batch()
    batch = Trajectories(obs, actions, rewards, np.array([3, 2]))
    g = np.array([-0.25, -0.5, 1.0, 1.0, 2.0])
    one, five = (make_learner(gamma=0.5, normalize_returns=False, baseline="value", lr=0.01,
                              value_steps=k) for k in (1, 5))
    before = numpy_values(one, obs)
    np.testing.assert_array_equal(numpy_values(five, obs), before)     # the same seed
    m1, m5 = one.update([batch]), five.update([batch])
    assert m5["learner/loss"] == m1["learner/loss"]
    assert m5["learner/baseline_mse"] == m1["learner/baseline_mse"] == pytest.approx(np.mean((g - before) ** 2))
    error = lambda learner: float(np.mean((numpy_values(learner, obs) - g) ** 2))
    assert error(five) < error(one) < np.mean((g - before) ** 2)
    # the value networks now differ, so later advantages would too: give five one's values
    # before each further update, and its policy still steps exactly as one's
    policy_state = lambda learner: [v.numpy() for v in learner.optimizer.variables]
    for _ in range(3):
        five.value_model.set_weights(one.value_model.get_weights())
        one.update([batch]), five.update([batch])
        for a, b in zip(one.get_weights() + policy_state(one), five.get_weights() + policy_state(five)):
            np.testing.assert_array_equal(a, b)
    assert int(five.optimizer.iterations.numpy()) == 4
    assert int(five.value_optimizer.iterations.numpy()) == 20
    # the state's layout is the one-step learner's (checkpoints restore across); restored, the
    # value network's Adam counts num_updates x value_steps steps
    restored = make_learner(baseline="value", value_steps=5)
    restored.set_state(five.get_state())
    np.testing.assert_array_equal(numpy_values(restored, obs), numpy_values(five, obs))
    assert int(restored.value_optimizer.iterations.numpy()) == 20
    for a, b in zip(restored.value_optimizer.variables[2:], five.value_optimizer.variables[2:]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    one.set_state(five.get_state())
    assert int(one.value_optimizer.iterations.numpy()) == 4


def test_value_steps_need_a_value_baseline():
    with pytest.raises(ValueError, match="value_steps: 3 steps of a value baseline need baseline: value"):
        LearnerConfig(value_steps=3, baseline="mean")


def test_the_learning_rate_anneals_linearly_then_holds_by_hand():
    from rl.schedules import learning_rate

    annealed = LearnerConfig(lr=1e-3, lr_final=1e-4, lr_decay_steps=100)
    assert [learning_rate(annealed, s) for s in (0, 50, 100, 250)] == pytest.approx(
        [1e-3, 5.5e-4, 1e-4, 1e-4])
    assert learning_rate(LearnerConfig(lr=1e-3), 10**9) == 1e-3          # constant by default


def test_an_update_steps_with_the_learning_rate_it_is_given():
    """Adam's first step moves every weight with a gradient by the learning rate (m / sqrt(v)
    is the gradient's sign): the step given to the update is the one taken, and kept."""
    rng = np.random.default_rng(0)
    batch = Trajectories(rng.normal(size=(30, 4)).astype(np.float32),
                         rng.integers(0, 2, 30).astype(np.int32),
                         rng.normal(size=30).astype(np.float32), np.array([10, 20]))
    for lr in (1e-3, 2e-5):
        learner = make_learner(lr=0.05)
        before = learner.get_weights()
        metrics = learner.update([batch], lr=lr)
        moved = np.concatenate([np.abs(a - b).ravel() for a, b in zip(learner.get_weights(), before)])
        assert moved.max() == pytest.approx(lr, rel=1e-2)
        assert metrics["learner/lr"] == pytest.approx(lr)
        assert learner.update([batch])["learner/lr"] == pytest.approx(lr)   # kept for the next
