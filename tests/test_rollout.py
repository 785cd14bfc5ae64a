import gymnasium
import numpy as np
import pytest

from rl.config import EnvConfig, PolicyConfig, RolloutConfig
from rl.rollout import RolloutWorker
from rl.trajectory import Trajectories


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
    assert len(batch.episode_lengths) == 6
    assert batch.episode_lengths.sum() == batch.num_steps == len(batch.obs) == len(batch.rewards)
    assert batch.obs.shape[1:] == (4,) and batch.obs.dtype == np.float32
    assert batch.actions.dtype == np.int32 and set(np.unique(batch.actions)) <= {0, 1}
    # CartPole pays 1 per step: each episode's return is its length
    games = batch.games()
    np.testing.assert_array_equal(games.returns, batch.episode_lengths)
    np.testing.assert_array_equal(games.lengths, batch.episode_lengths)
    # every episode starts from a reset state (CartPole starts within +-0.05)
    starts = np.cumsum(batch.episode_lengths) - batch.episode_lengths
    assert np.all(np.abs(batch.obs[starts]) <= 0.05)


def test_one_batched_policy_call_per_step_for_all_environments(monkeypatch):
    w = worker(envs=5, episodes=1)
    calls = []
    original = w.policy.act_logp

    def counting_act(obs, rng):
        calls.append(len(obs))
        return original(obs, rng)

    monkeypatch.setattr(w.policy, "act_logp", counting_act)
    batch = w.sample(random_weights())
    # one call per lockstep step: as many calls as the longest episode has steps,
    # each on the environments still playing
    assert len(calls) == batch.episode_lengths.max()
    assert calls[0] == 5
    assert sum(calls) == batch.num_steps


def test_sample_without_weights_is_an_error():
    with pytest.raises(RuntimeError, match="set_weights"):
        worker().sample()


def episode_starts(batch):
    return batch.obs[np.cumsum(batch.episode_lengths) - batch.episode_lengths]


def test_every_episode_starts_from_a_new_state():
    """Only an environment's first reset is seeded: the later ones, in this sample and the next,
    continue its random stream instead of replaying the first start."""
    w = worker(envs=3, episodes=3)
    first, second = w.sample(random_weights()), w.sample(random_weights())
    starts = np.concatenate([episode_starts(first), episode_starts(second)])     # [18, 4]
    assert len(starts) == 18
    assert len(np.unique(starts, axis=0)) == 18


def test_env_kwargs_reach_gymnasium():
    w = RolloutWorker(EnvConfig(kwargs={"max_episode_steps": 3}), PolicyConfig(),
                      RolloutConfig(envs_per_worker=2, episodes_per_env=2), seed=0)
    batch = w.sample(random_weights())
    np.testing.assert_array_equal(batch.episode_lengths, [3, 3, 3, 3])          # truncated at 3


def test_pong_frame_differences_restart_at_zero_in_every_episode():
    """Pong through the worker's batched preprocessing: int8 40x40 differences, the first of each
    episode all zeros (including after the resets within a sample), the later ones not."""
    env_cfg = EnvConfig(id="ALE/Pong-v5", kwargs={"max_episode_steps": 6}, preprocess="pong40",
                        action_subset=(0, 2, 3))
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(1600, 8)).astype(np.float32), np.zeros(8, np.float32),
               rng.normal(size=(8, 3)).astype(np.float32), np.zeros(3, np.float32)]
    w = RolloutWorker(env_cfg, PolicyConfig(hidden_sizes=(8,)),
                      RolloutConfig(envs_per_worker=2, episodes_per_env=2), seed=0)
    try:
        batch = w.sample(weights)
    finally:
        w.close()
    np.testing.assert_array_equal(batch.episode_lengths, [6, 6, 6, 6])
    assert batch.obs.dtype == np.int8 and batch.obs.shape == (24, 40, 40, 1)
    first = np.zeros(24, bool)
    first[[0, 6, 12, 18]] = True
    assert not batch.obs[first].any()
    assert batch.obs[~first].any(axis=(1, 2, 3)).mean() > 0.5         # the paddles and ball move


def test_trajectories_returns_points_and_concatenation_by_hand():
    from rl.trajectory import Trajectories

    def part(rewards, lengths):
        n = len(rewards)
        return Trajectories(np.arange(n, dtype=np.float32)[:, None], np.zeros(n, np.int32),
                            np.asarray(rewards, np.float32), np.asarray(lengths, np.int64))

    batch = Trajectories.concat([part([0, 1, -1, 0, -1, -1], [4, 2]), part([1], [1])])
    assert batch.num_steps == 7 and batch.finished is None
    np.testing.assert_array_equal(batch.episode_lengths, [4, 2, 1])
    games = batch.games()
    np.testing.assert_array_equal(games.returns, [0, -2, 1])
    np.testing.assert_array_equal(games.lengths, [4, 2, 1])
    np.testing.assert_array_equal(games.won, [1, 0, 1])
    np.testing.assert_array_equal(games.lost, [1, 2, 0])


class Points(gymnasium.Env):
    """A 10-step game scoring a point every 3 steps, lost, won, lost (rewards at t = 2, 5, 8);
    the observation is the step t."""

    observation_space = gymnasium.spaces.Box(0, 10, (1,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.float32([0]), {}

    def step(self, action):
        t, self.t = self.t, self.t + 1
        reward = 0.0 if t % 3 != 2 else (1.0 if t == 5 else -1.0)
        return np.float32([self.t]), reward, self.t == 10, False, {}


gymnasium.register("LabrunPoints-v0", entry_point=Points)


def points_worker(steps_per_env, envs=1):
    weights = [np.zeros((1, 32), np.float32), np.zeros(32, np.float32),
               np.zeros((32, 2), np.float32), np.zeros(2, np.float32)]
    w = RolloutWorker(EnvConfig(id="LabrunPoints-v0"), PolicyConfig(),
                      RolloutConfig(envs_per_worker=envs, steps_per_env=steps_per_env), seed=0)
    w.set_weights(weights)
    return w


def test_steps_per_env_cuts_games_at_the_first_point_after_enough_steps_and_goes_on_next_time():
    w = points_worker(steps_per_env=4)
    first, second, third = w.sample(), w.sample(), w.sample()
    # 4 steps played by t = 3; the next point is at t = 5, and the game goes on from t = 6
    np.testing.assert_array_equal(first.obs[:, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(first.episode_lengths, [6])
    assert len(first.games().returns) == 0                          # no game ended yet
    # the point at t = 8 comes before 4 steps: the piece runs on to the game's end at t = 9
    np.testing.assert_array_equal(second.obs[:, 0], [6, 7, 8, 9])
    games = second.games()
    np.testing.assert_array_equal(games.returns, [-1])               # the whole game's return,
    np.testing.assert_array_equal(games.lengths, [10])               # its steps and points,
    np.testing.assert_array_equal(games.won, [1])                    # across both samples
    np.testing.assert_array_equal(games.lost, [2])
    np.testing.assert_array_equal(third.obs[:, 0], [0, 1, 2, 3, 4, 5])   # a new game


def test_a_game_that_ends_before_steps_per_env_is_followed_by_a_new_one():
    batch = points_worker(steps_per_env=12).sample()
    np.testing.assert_array_equal(batch.obs[:, 0], [*range(10), 0, 1, 2])
    np.testing.assert_array_equal(batch.episode_lengths, [10, 3])    # cut at the point at t = 2
    np.testing.assert_array_equal(batch.games().lengths, [10])
    np.testing.assert_array_equal(batch.behaviour_logp, np.full(13, np.log(0.5), np.float32))


def test_pieces_cut_at_points_have_the_returns_of_the_whole_game():
    """With returns restarting at each point, a game's pieces get exactly the returns the whole
    game would: what makes the pieces plain REINFORCE."""
    from rl.returns import episode_returns

    w = points_worker(steps_per_env=2)
    pieces = Trajectories.concat([w.sample() for _ in range(7)])      # two games and a bit
    assert pieces.num_steps == 23 and len(pieces.episode_lengths) == 9
    np.testing.assert_array_equal(pieces.games().lengths, [10, 10])
    whole = episode_returns(pieces.rewards[:20], np.asarray([10, 10]), 0.9, reset_on_reward=True)
    cut = episode_returns(pieces.rewards, pieces.episode_lengths, 0.9, reset_on_reward=True)
    np.testing.assert_allclose(cut[:20], whole)
    # without restarting at points, a piece's returns would miss the rest of its game
    assert not np.allclose(episode_returns(pieces.rewards, pieces.episode_lengths, 0.9)[:20],
                           episode_returns(pieces.rewards[:20], np.asarray([10, 10]), 0.9))


class Frames(Points):
    """``Points`` seen as Atari frames: a block in the ball's colour moving down 4 rows a step."""

    observation_space = gymnasium.spaces.Box(0, 255, (210, 160, 3), np.uint8)

    def frame(self):
        screen = np.zeros((210, 160, 3), np.uint8)
        screen[40 + 4 * self.t:44 + 4 * self.t, 10:14] = 236
        return screen

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.frame(), {}

    def step(self, action):
        _, reward, terminated, truncated, info = super().step(action)
        return self.frame(), reward, terminated, truncated, info


gymnasium.register("LabrunFrames-v0", entry_point=Frames)


def test_frame_differences_go_on_across_a_cut_in_every_environment():
    """Pieces of Pong-like games through the workers' batched preprocessing, 2 environments:
    each environment's pieces, put together, are the frame differences the course's wrapper
    gives the whole game (a continued piece starts from the difference to the frame before)."""
    from rl.atari import BatchFrameDifference, FrameDifference

    env = FrameDifference(Frames(), "pong80")
    game = [env.reset()[0]] + [env.step(0)[0] for _ in range(9)]     # what the policy sees
    w = RolloutWorker(EnvConfig(id="LabrunFrames-v0"), PolicyConfig(hidden_sizes=(8,)),
                      RolloutConfig(envs_per_worker=2, steps_per_env=4), seed=0)
    w.frames = BatchFrameDifference("pong80", 2)                     # as for an ALE/ id
    w.set_weights([np.zeros((6400, 8), np.float32), np.zeros(8, np.float32),
                   np.zeros((8, 2), np.float32), np.zeros(2, np.float32)])
    played = []
    for _ in range(3):                        # pieces of 6 and 4 steps, then a new game's 6
        batch = w.sample()
        first, second = np.split(batch.obs, 2)                   # the envs' identical games
        np.testing.assert_array_equal(first, second)
        played.extend(first)
    assert np.asarray(game[6]).any()                             # the continued piece's first
    np.testing.assert_array_equal(np.asarray(played), np.asarray(game + game[:6]))
