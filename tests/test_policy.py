import numpy as np

from rl.config import PolicyConfig
from rl.policy import MLPPolicy, mlp_logits, sample_actions


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
    policy = MLPPolicy()
    policy.set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])  # logits = obs
    obs = np.array([[0.0, 1.0], [3.0, -1.0]], np.float32)
    np.testing.assert_array_equal(policy.act(obs, np.random.default_rng(0), greedy=True), [1, 0])
