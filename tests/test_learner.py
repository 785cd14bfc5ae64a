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


def test_chunked_update_is_the_same_single_step_as_the_whole_batch():
    rng = np.random.default_rng(1)
    batch = Trajectories(rng.integers(-1, 2, size=(50, 4)).astype(np.int8),   # int8, as Pong's
                         rng.integers(0, 2, 50).astype(np.int32),
                         rng.choice([0.0, 1.0, -1.0], 50).astype(np.float32), np.array([20, 30]))
    whole, chunked = make_learner(reset_on_reward=True), make_learner(reset_on_reward=True, chunk_steps=7)
    m_whole, m_chunked = whole.update([batch]), chunked.update([batch])
    for key in ("learner/loss", "learner/entropy", "learner/grad_norm"):
        assert m_chunked[key] == pytest.approx(m_whole[key], rel=1e-5)
    for a, b in zip(whole.get_weights(), chunked.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


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
