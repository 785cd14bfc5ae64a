"""Acting beside learning (``rollout.pipeline``): the truncated importance weights by hand, the
learner's corrected update, and the loop's one-update lag (fake workers and learner, no Ray)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from rl.config import LearnerConfig, PolicyConfig
from rl.trajectory import Games, Trajectories

tf = pytest.importorskip("tensorflow")


def test_truncated_importance_weights_by_hand():
    from rl.losses import truncated_importance_weights

    logits = tf.math.log(tf.constant([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]))   # pi: these probs
    actions = tf.constant([0, 1, 0])
    mu = tf.math.log(tf.constant([0.8, 0.4, 0.9]))     # the acting policy's prob of each action
    rho = truncated_importance_weights(logits, actions, mu).numpy()
    # pi/mu: 0.5/0.8 = 0.625; 0.8/0.4 = 2 -> clipped at 1; 0.9/0.9 = 1
    np.testing.assert_allclose(rho, [0.625, 1.0, 1.0], rtol=1e-6)


def test_the_corrected_loss_scales_each_steps_gradient_by_its_weight():
    """d loss / d logits of step t is rho_t * w_t * (softmax - onehot) / T: by hand on 2 steps."""
    from rl.losses import reinforce_loss, truncated_importance_weights

    logits = tf.Variable(tf.zeros([2, 2]))                 # pi = 0.5 everywhere
    actions, weights = tf.constant([0, 1]), tf.constant([1.0, -2.0])
    mu = tf.math.log(tf.constant([0.8, 0.25]))             # rho = [0.625, min(1, 2) = 1]
    with tf.GradientTape() as tape:
        rho = truncated_importance_weights(logits, actions, mu)
        loss, _ = reinforce_loss(logits, actions, weights * rho)
    grad = tape.gradient(loss, logits).numpy()
    expected = np.array([[0.625 * 1.0 * (0.5 - 1), 0.625 * 1.0 * 0.5],
                         [1.0 * -2.0 * 0.5, 1.0 * -2.0 * (0.5 - 1)]]) / 2
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


def learner():
    from rl.learner import ReinforceLearner

    return ReinforceLearner((4,), 2, PolicyConfig(), LearnerConfig(lr=0.05, normalize_returns=False),
                            seed=0)


def batch(behaviour_logp):
    rng = np.random.default_rng(1)
    return Trajectories(rng.normal(size=(6, 4)).astype(np.float32), np.array([0, 1, 1, 0, 1, 0], np.int32),
                        np.array([1.0, 0.0, -1.0, 0.0, 2.0, 1.0], np.float32), np.array([3, 3]),
                        behaviour_logp)


def own_logp(model, b: Trajectories) -> np.ndarray:
    from rl.policy import log_probs, mlp_logits

    return log_probs(mlp_logits(model.get_weights(), b.obs), b.actions)


def test_equal_probabilities_give_the_plain_reinforce_update():
    plain, corrected = learner(), learner()
    b = batch(None)
    b = batch(own_logp(corrected, b))                      # the acting policy is the learner's
    m_plain = plain.update([b])
    m_corr = corrected.update([b], off_policy=True)
    for x, y in zip(plain.get_weights(), corrected.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    assert m_corr["learner/loss"] == pytest.approx(m_plain["learner/loss"], rel=1e-5)
    assert m_corr["learner/importance_weight_mean"] == pytest.approx(1.0, abs=1e-5)
    assert m_plain["learner/importance_weight_mean"] == 1.0
    assert m_plain["learner/importance_weight_below_1"] == 0.0


def test_actions_the_actor_favoured_more_than_the_learner_are_down_weighted():
    """An acting policy surer of each action than the learner: each step's weight is multiplied
    by pi/mu < 1, and the loss is mean(-log pi(a|s) * return * rho), worked out by hand."""
    corrected = learner()
    b = batch(None)
    logp = own_logp(corrected, b)
    surer = np.minimum(logp + np.log(2.0), 0.0).astype(np.float32)     # mu = min(1, 2 pi)
    rho = np.exp(logp - surer)                                          # all < 1 here
    # gamma 0.99, rewards [1, 0, -1 | 0, 2, 1]
    returns = np.array([1 - 0.99 ** 2, -0.99, -1.0, 0.99 * 2 + 0.99 ** 2, 2 + 0.99, 1.0])
    metrics = corrected.update([batch(surer)], off_policy=True)
    assert metrics["learner/loss"] == pytest.approx(np.mean(-logp * returns * rho), rel=1e-4)
    assert metrics["learner/importance_weight_mean"] == pytest.approx(rho.mean(), rel=1e-4)
    assert metrics["learner/importance_weight_below_1"] == 1.0


def test_an_off_policy_update_without_behaviour_probabilities_is_refused():
    with pytest.raises(ValueError, match="behaviour_logp"):
        learner().update([batch(None)], off_policy=True)


# ---------------------------------------------------------------------------- the loop's lag

class FakeWorkers:
    """Plays a batch whose observations say which weights version played it."""

    restarts = dropped = 0

    def __init__(self, log: list):
        self.log, self.asked = log, None

    def submit(self, weights_ref):
        assert self.asked is None, "submitted twice without a collect"
        self.asked = int(weights_ref[0][0])
        self.log.append(("submit", self.asked))

    def collect(self, deadline=None):
        version, self.asked = self.asked, None
        self.log.append(("collect", version))
        return [Trajectories(np.full((2, 4), version, np.float32), np.zeros(2, np.int32),
                             np.ones(2, np.float32), np.array([2]), np.zeros(2, np.float32))]


LEARN_S = 0.05   # each fake update's seconds: what the pipeline hides behind sampling


class FakeLearner:
    def __init__(self, log: list):
        self.log, self.version = log, 0

    def get_weights(self):
        return [np.full(1, self.version, np.float32)]

    def update(self, batches, off_policy=False, lr=None):
        self.log.append(("update", self.version, int(batches[0].obs[0, 0]), off_policy))
        time.sleep(LEARN_S)
        self.version += 1
        return {"learner/loss": 0.0, "learner/lr": lr, "time/learn_s": 0.0}

    def get_state(self):
        return {"weights": self.get_weights(), "optimizer": [], "num_updates": self.version}


def run_loop(tmp_path: Path, monkeypatch, pipeline: bool, workers: type = FakeWorkers,
             overrides: tuple[str, ...] = ()) -> tuple[list, list[dict]]:
    import ray

    from cluster.config.rl_experiment import check_env, load_experiment
    from cluster.reinforce.console import ConsoleProgress
    from cluster.reinforce.outputs import read_metrics
    from cluster.reinforce.trainer import Trainer
    from helpers import REPO

    monkeypatch.setattr(ray, "put", lambda value: value)     # no Ray: the "ref" is the value
    cfg = load_experiment(REPO / "configs" / "cartpole.yaml", [
        f"rollout.pipeline={str(pipeline).lower()}", "stop.iterations=4", "stop.mean_return=null",
        "output.checkpoint_every=1000", "output.video_every=null", *overrides])
    obs_shape, num_actions = check_env(cfg, "test")
    trainer = Trainer(cfg, tmp_path, obs_shape, num_actions,
                      progress=ConsoleProgress(1, Console(quiet=True)))
    log: list = []
    assert trainer._loop(workers(log), FakeLearner(log)).startswith("iteration budget")
    trainer.outputs.close()
    return log, read_metrics(tmp_path)


def test_the_pipeline_learns_from_batches_played_one_update_ago(tmp_path, monkeypatch):
    log, metrics = run_loop(tmp_path, monkeypatch, pipeline=True)
    updates = [(learner_v, played_v, off) for kind, learner_v, played_v, off in
               (e for e in log if e[0] == "update")]
    assert updates == [(0, 0, True), (1, 0, True), (2, 1, True), (3, 2, True)]
    # the next batch is asked for before the update on the last one: acting overlaps learning
    assert [e[0] for e in log[:7]] == ["submit", "collect", "submit", "update",
                                      "collect", "submit", "update"]
    assert [m["learner/policy_lag"] for m in metrics] == [0.0, 1.0, 1.0, 1.0]
    # a batch's sampling time runs from asking for it to its arrival, through the update it hid
    # behind; the learner waited only for the part after it
    for m in metrics[1:]:
        assert m["time/sample_s"] >= LEARN_S + m["time/wait_s"], m


def test_without_the_pipeline_every_batch_is_played_with_the_newest_weights(tmp_path, monkeypatch):
    log, metrics = run_loop(tmp_path, monkeypatch, pipeline=False)
    updates = [e[1:] for e in log if e[0] == "update"]
    assert updates == [(0, 0, False), (1, 1, False), (2, 2, False), (3, 3, False)]
    assert [e[0] for e in log[:6]] == ["submit", "collect", "update"] * 2
    assert [m["learner/policy_lag"] for m in metrics] == [0.0] * 4
    assert all(m["time/sample_s"] == m["time/wait_s"] for m in metrics)   # all of it waited


class PiecesOfGames(FakeWorkers):
    """Batches of pieces of games (``rollout.steps_per_env``): a game of return 3 and 7 steps
    ends in every second batch only."""

    def collect(self, deadline=None):
        [b] = super().collect(deadline)
        ends = sum(e[0] == "collect" for e in self.log) % 2 == 0
        games = Games(*(np.asarray(v, dtype) for v, dtype in
                        (([3.0], np.float32), ([7], np.int64), ([3], np.int64), ([0], np.int64))))
        empty = Games(np.zeros(0, np.float32), *(np.zeros(0, np.int64),) * 3)
        return [dataclasses.replace(b, finished=games if ends else empty)]


def test_iterations_that_end_no_game_report_no_return_and_count_only_ended_games(tmp_path, monkeypatch):
    _, metrics = run_loop(tmp_path, monkeypatch, pipeline=False, workers=PiecesOfGames)
    assert [m["counters/env_steps"] for m in metrics] == [2, 4, 6, 8]
    assert [m["counters/episodes"] for m in metrics] == [0, 1, 1, 2]
    assert "rollout/episode_return_mean" not in metrics[0]
    assert [m["rollout/episode_return_mean"] for m in metrics[1:]] == [3, 3, 3]
    assert metrics[-1]["rollout/episode_length_mean"] == 7


def test_each_update_gets_the_learning_rate_of_the_steps_trained_before_it(tmp_path, monkeypatch):
    _, metrics = run_loop(tmp_path, monkeypatch, pipeline=False, overrides=(
        "learner.lr=0.01", "learner.lr_final=0.002", "learner.lr_decay_steps=4"))
    # 2 steps a batch: 0, 2, 4, 6 steps trained before each update
    assert [m["learner/lr"] for m in metrics] == pytest.approx([0.01, 0.006, 0.002, 0.002])
