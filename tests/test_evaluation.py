"""Evaluation and videos: seeded once, reproducible, every episode its own start."""

import json

import gymnasium as gym
import numpy as np
import pytest

import rl.evaluation
from rl.config import EnvConfig, PolicyConfig
from rl.evaluation import evaluate
from rl.video import record_episode


def random_weights(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(4, 32)).astype(np.float32) * 0.3, np.zeros(32, np.float32),
            rng.normal(size=(32, 2)).astype(np.float32) * 0.3, np.zeros(2, np.float32)]


class Recorder(gym.Wrapper):
    """Keeps each episode's first observation, actions and return, as the environment saw them."""

    def __init__(self, env):
        super().__init__(env)
        self.starts, self.actions, self.returns = [], [], []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.starts.append(obs)
        self.returns.append(0.0)
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self.actions.append(int(action))
        self.returns[-1] += float(out[1])
        return out


@pytest.fixture
def recorders(monkeypatch):
    made = []
    make_env = rl.evaluation.make_env

    def recording_make_env(*args, **kwargs):
        made.append(Recorder(make_env(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(rl.evaluation, "make_env", recording_make_env)
    return made


def test_every_evaluation_episode_starts_from_a_new_state(recorders):
    metrics = evaluate(EnvConfig(), PolicyConfig(), random_weights(), episodes=6, seed=3)
    (env,) = recorders
    assert len(env.starts) == 6
    assert len(np.unique(np.stack(env.starts), axis=0)) == 6
    returns = np.asarray(env.returns)
    assert metrics["eval/episodes"] == 6
    assert metrics["eval/episode_return_mean"] == pytest.approx(returns.mean())
    assert metrics["eval/episode_return_std"] == pytest.approx(returns.std())
    assert metrics["eval/episode_return_min"] == returns.min()
    assert metrics["eval/episode_return_max"] == returns.max()
    assert metrics["eval/episode_length_mean"] == pytest.approx(returns.mean())   # CartPole: 1 a step


def test_evaluation_is_reproducible_from_its_seed(recorders):
    a, b, _ = (evaluate(EnvConfig(), PolicyConfig(), random_weights(), episodes=3, seed=s, greedy=False)
               for s in (3, 3, 4))
    assert a == b
    np.testing.assert_array_equal(recorders[0].starts, recorders[1].starts)
    assert recorders[0].actions == recorders[1].actions
    assert not np.array_equal(recorders[0].starts[0], recorders[2].starts[0])


def test_greedy_evaluation_takes_the_most_likely_action(recorders):
    # logits = bias only: action 0 has probability e / (e + 1) = 0.73 everywhere
    weights = [np.zeros((4, 2), np.float32), np.array([1.0, 0.0], np.float32)]
    cfg = PolicyConfig(hidden_sizes=())
    evaluate(EnvConfig(), cfg, weights, episodes=2, seed=0, greedy=True)
    evaluate(EnvConfig(), cfg, weights, episodes=2, seed=0, greedy=False)
    greedy, sampled = recorders
    assert set(greedy.actions) == {0}
    assert set(sampled.actions) == {0, 1}


def test_pong_video_has_every_step_and_replays_from_its_seed():
    """A uniform random policy and Pong's sticky actions: both random streams come from the seed."""
    cfg = EnvConfig(id="ALE/Pong-v5", action_subset=(0, 2, 3))
    weights = [np.zeros((210 * 160 * 3, 3), np.float32), np.zeros(3, np.float32)]   # logits 0
    policy = PolicyConfig(hidden_sizes=())
    a, b, c = (record_episode(cfg, policy, weights, seed=s, max_steps=30) for s in (1, 1, 2))
    assert a.steps == 30 and a.frames.shape == (31, 210, 160, 3) and a.frames.dtype == np.uint8
    assert a.fps == 15                                               # 60 frames/s, 4 a step
    assert (a.frames[1:] != a.frames[:-1]).any()                     # not a still picture
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)


# ------------------------------------------------------------------ labrun eval --set (the CLI)

def test_eval_plays_under_overridden_env_settings_and_says_which(tmp_path):
    """``--set env.*`` changes how the games are played, not the run's config; the settings and
    the spread of the returns are written beside the mean."""
    from test_run_data import make_run

    from helpers import run_cli

    run = make_run(tmp_path)
    out_file = tmp_path / "short.json"
    out = run_cli("eval", str(run), "--episodes", "3", "--seed", "7",
                  "--set", "env.kwargs={max_episode_steps: 5}", "--out", str(out_file))
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(out_file.read_text())
    assert record["eval/episodes"] == 3 and record["eval/episode_length_mean"] <= 5
    assert record["eval/episode_return_max"] <= 5               # CartPole: 1 a step, cut at 5
    assert {"eval/episode_return_std", "eval/episode_return_stderr",
            "eval/episode_return_min"} <= set(record)
    assert record["settings"] == {"actions": "greedy", "seed": 7,
                                  "overrides": ["env.kwargs={max_episode_steps: 5}"],
                                  "env": {**record["settings"]["env"], "kwargs": {"max_episode_steps": 5}}}
    assert "max_episode_steps" not in (run / "config.yaml").read_text()   # the run is unchanged
    assert not (run / "eval.json").exists()


@pytest.mark.parametrize("setting, message", [
    ("learner.lr=0.1", "learner.lr: eval plays the trained policy: only env.* keys"),
    ("env.repeat_action_probability=0.25", "only Atari environments (ALE/ ids) have it"),
    ("policy.hidden_sizes=[8]", "only env.* keys"),
])
def test_eval_refuses_settings_it_cannot_play_under_with_exit_2(tmp_path, setting, message):
    from test_run_data import make_run

    from helpers import run_cli

    run = make_run(tmp_path)
    out = run_cli("eval", str(run), "--episodes", "1", "--set", setting)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
