import numpy as np
import pytest

from rl.config import EnvConfig, PolicyConfig, RolloutConfig
from rl.rollout import RolloutWorker


def random_weights(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(4, 32)).astype(np.float32) * 0.3, np.zeros(32, np.float32),
            rng.normal(size=(32, 2)).astype(np.float32) * 0.3, np.zeros(2, np.float32)]


def worker(index=0, seed=7, envs=4, episodes=2, generation=0):
    return RolloutWorker(EnvConfig(), PolicyConfig(),
                         RolloutConfig(num_workers=1, envs_per_worker=envs, episodes_per_env=episodes),
                         seed=seed, worker_index=index, generation=generation)


def assert_same(a, b):
    for name in ("obs", "actions", "rewards", "episode_lengths"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_two_workers_with_the_same_seed_give_the_same_trajectories():
    w = random_weights()
    a1, b1 = worker().sample(w), worker().sample(w)
    assert_same(a1, b1)


def test_worker_index_and_generation_change_the_trajectories():
    w = random_weights()
    base = worker().sample(w)
    for other in (worker(index=1).sample(w), worker(generation=1).sample(w)):
        assert not (np.array_equal(base.episode_lengths, other.episode_lengths)
                    and np.array_equal(base.actions[:50], other.actions[:50]))


def test_sample_returns_whole_episodes_back_to_back():
    batch = worker(envs=3, episodes=2).sample(random_weights())
    assert batch.num_episodes == 6
    assert batch.episode_lengths.sum() == batch.num_steps == len(batch.obs) == len(batch.rewards)
    assert batch.obs.shape[1:] == (4,) and batch.obs.dtype == np.float32
    assert batch.actions.dtype == np.int32 and set(np.unique(batch.actions)) <= {0, 1}
    # CartPole pays 1 per step: each episode's return is its length
    np.testing.assert_array_equal(batch.episode_returns, batch.episode_lengths)
    # every episode starts from a reset state (CartPole starts within +-0.05)
    starts = np.cumsum(batch.episode_lengths) - batch.episode_lengths
    assert np.all(np.abs(batch.obs[starts]) <= 0.05)


def test_one_batched_policy_call_per_step_for_all_environments(monkeypatch):
    w = worker(envs=5, episodes=1)
    calls = []
    original = w.policy.act

    def counting_act(obs, rng, greedy=False):
        calls.append(len(obs))
        return original(obs, rng, greedy)

    monkeypatch.setattr(w.policy, "act", counting_act)
    batch = w.sample(random_weights())
    # one call per lockstep step: as many calls as the longest episode has steps,
    # each on the environments still playing
    assert len(calls) == batch.episode_lengths.max()
    assert calls[0] == 5
    assert sum(calls) == batch.num_steps


def test_sample_without_weights_is_an_error():
    with pytest.raises(RuntimeError, match="set_weights"):
        worker().sample()
