import numpy as np

from rl.config import PolicyConfig
from rl.policy import NumpyPolicy, mlp_logits, sample_actions


def test_numpy_forward_matches_the_keras_model():
    from rl.networks import build_policy

    cfg = PolicyConfig(hidden_sizes=(16, 8), activation="tanh")
    model = build_policy((4,), 3, cfg, seed=3)
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    expected = model(obs).numpy()
    np.testing.assert_allclose(mlp_logits(model.get_weights(), obs.copy(), "tanh"), expected,
                               rtol=1e-5, atol=1e-5)


def test_seeded_models_have_identical_initial_weights():
    from rl.networks import build_policy

    a = build_policy((4,), 2, PolicyConfig(), seed=5).get_weights()
    b = build_policy((4,), 2, PolicyConfig(), seed=5).get_weights()
    c = build_policy((4,), 2, PolicyConfig(), seed=6).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_sampled_actions_follow_the_softmax():
    logits = np.log(np.tile([[0.2, 0.5, 0.3]], (60_000, 1)))
    actions = sample_actions(logits, np.random.default_rng(0))
    freq = np.bincount(actions, minlength=3) / len(actions)
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.01)


def test_greedy_takes_the_most_likely_action():
    policy = NumpyPolicy()
    policy.set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])  # logits = obs
    obs = np.array([[0.0, 1.0], [3.0, -1.0]], np.float32)
    np.testing.assert_array_equal(policy.act(obs, np.random.default_rng(0), greedy=True), [1, 0])


def test_numpy_cnn_matches_the_keras_model_on_odd_sizes():
    """'same' padding with strides: 40 -> 20 -> 10 -> 5 -> 3, and an odd 7x9 input with kernel 4."""
    from rl.config import ConvLayer
    from rl.networks import build_policy

    course = PolicyConfig(conv=(ConvLayer(32, 5, 2), ConvLayer(48, 5, 2), ConvLayer(64, 3, 2),
                                ConvLayer(64, 3, 2)), hidden_sizes=(128,))
    odd = PolicyConfig(conv=(ConvLayer(5, 4, 2), ConvLayer(3, 3, 1)), hidden_sizes=(8,), activation="tanh")
    rng = np.random.default_rng(1)
    for cfg, shape in ((course, (40, 40, 1)), (odd, (7, 9, 2))):
        model = build_policy(shape, 3, cfg, seed=0)
        obs = rng.integers(-1, 2, size=(6, *shape)).astype(np.int8)   # Pong's frame differences
        expected = model(obs.astype(np.float32)).numpy()
        policy = NumpyPolicy(cfg)
        policy.set_weights(model.get_weights())
        np.testing.assert_allclose(policy.logits(obs), expected, rtol=1e-4, atol=1e-4)


def test_sparse_first_layer_matches_the_dense_product_including_all_zero_rows():
    from rl.policy import sparse_dense

    rng = np.random.default_rng(2)
    x = (rng.random((6, 1600)) < 0.02).astype(np.int8) * rng.choice([-1, 1], (6, 1600)).astype(np.int8)
    x[0] = 0                       # the first frame difference of an episode
    x[4] = 0
    kernel = rng.normal(size=(1600, 20)).astype(np.float32)
    bias = rng.normal(size=20).astype(np.float32)
    expected = x.astype(np.float32) @ kernel + bias
    np.testing.assert_allclose(sparse_dense(x, kernel, bias), expected, rtol=1e-5, atol=1e-5)
    weights = [kernel, bias, rng.normal(size=(20, 3)).astype(np.float32), np.zeros(3, np.float32)]
    np.testing.assert_allclose(mlp_logits(weights, x), mlp_logits(weights, x.astype(np.float32)),
                               rtol=1e-5, atol=1e-5)


def test_log_probs_by_hand():
    from rl.policy import log_probs

    logits = np.log(np.array([[0.25, 0.75], [0.5, 0.5], [0.1, 0.9]])) + np.array([[3.0], [-2.0], [0.0]])
    np.testing.assert_allclose(log_probs(logits, np.array([1, 0, 0])),
                               np.log([0.75, 0.5, 0.1]), rtol=1e-6)


def test_a_rollout_records_the_log_probability_of_each_action_it_chose():
    from rl.config import EnvConfig, RolloutConfig
    from rl.policy import log_probs, mlp_logits
    from rl.rollout import RolloutWorker

    w = RolloutWorker(EnvConfig(), PolicyConfig(), RolloutConfig(envs_per_worker=3), seed=0)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype(np.float32) for s in [(4, 32), (32,), (32, 2), (2,)]]
    batch = w.sample(weights)
    expected = log_probs(mlp_logits(weights, batch.obs), batch.actions)
    np.testing.assert_allclose(batch.behaviour_logp, expected, rtol=1e-5, atol=1e-6)
    assert batch.behaviour_logp.shape == (batch.num_steps,) and (batch.behaviour_logp < 0).all()
