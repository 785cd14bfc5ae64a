"""cluster/reinforce/workers.py on the session's Ray head: actors, replacement of dead workers, remote learner."""

import numpy as np
import pytest

from helpers import wait_for
from rl.config import EnvConfig, LearnerConfig, PolicyConfig, RolloutConfig

pytestmark = pytest.mark.slow

WEIGHTS = [np.full((4, 32), 0.1, np.float32), np.zeros(32, np.float32),
           np.full((32, 2), 0.1, np.float32), np.zeros(2, np.float32)]


def is_dead(ray, actor) -> bool:
    from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

    try:
        ray.get(actor.__ray_ready__.remote(), timeout=5)
    except (RayActorError, ActorUnavailableError):
        return True
    except GetTimeoutError:
        pass
    return False


def group(run_id, max_restarts, events):
    from cluster.reinforce.workers import WorkerGroup

    rollout = RolloutConfig(num_workers=2, envs_per_worker=2, episodes_per_env=1)
    return WorkerGroup(run_id, 2, (EnvConfig(), PolicyConfig(), rollout), seed=3,
                       cpus_per_worker=0.5, max_restarts=max_restarts, on_event=events.append)


def test_a_dead_worker_is_replaced_with_fresh_seeds(ray_client):
    events = []
    g = group("t-replace", 2, events)
    try:
        weights = ray_client.put(WEIGHTS)
        first = g.sample(weights)
        ray_client.kill(g.actors[0], no_restart=True)
        wait_for(lambda: is_dead(ray_client, g.actors[0]), 60, what="the killed actor to die")
        again = g.sample(weights)  # (ray.kill is asynchronous: a call made at once may still run)
        assert len(again) == 2 and g.restarts == 1 and g.generations == [1, 0]
        assert events and "rollout worker 0 was lost" in events[0]
        # the replacement plays new episodes (generation 1 seeds); worker 1 carries on its own
        assert not np.array_equal(first[0].obs[:5], again[0].obs[:5])
    finally:
        g.shutdown()


def test_too_many_deaths_stop_the_run(ray_client):
    g = group("t-give-up", 0, [])
    try:
        ray_client.kill(g.actors[1], no_restart=True)
        with pytest.raises(RuntimeError, match="used all 0 worker restarts"):
            g.sample(ray_client.put(WEIGHTS))
    finally:
        g.shutdown()


def test_remote_learner_matches_the_local_one(ray_client):
    from cluster.reinforce.workers import RemoteLearner
    from rl.learner import ReinforceLearner
    from rl.rollout import RolloutWorker

    batch = RolloutWorker(EnvConfig(), PolicyConfig(), RolloutConfig(envs_per_worker=3), seed=0).sample(WEIGHTS)
    args = ((4,), 2, PolicyConfig(), LearnerConfig())
    local = ReinforceLearner(*args, seed=1)
    remote = RemoteLearner(ReinforceLearner, *args, seed=1, num_gpus=0)
    try:
        local.update([batch])
        metrics = remote.update([batch])
        assert metrics["learner/batch_steps"] == batch.num_steps
        for a, b in zip(local.get_weights(), remote.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert remote.get_state()["num_updates"] == 1
    finally:
        remote.shutdown()
