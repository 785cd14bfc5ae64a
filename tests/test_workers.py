"""cluster/reinforce/workers.py on the session's Ray head (2 CPUs): actors, replacement of dead
and hung workers, workers that cannot be placed again, the caller's deadline, remote learner."""

import os
import signal
import time

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


def group(run_id, max_restarts, events, cpus=0.5, **timeouts):
    from cluster.reinforce.workers import WorkerGroup

    rollout = RolloutConfig(num_workers=2, envs_per_worker=2, episodes_per_env=1)
    return WorkerGroup(run_id, 2, (EnvConfig(), PolicyConfig(), rollout), seed=3,
                       cpus_per_worker=cpus, max_restarts=max_restarts, on_event=events.append,
                       **timeouts)


def kill_and_wait(ray, actor) -> None:
    ray.kill(actor, no_restart=True)
    wait_for(lambda: is_dead(ray, actor), 60, what="the killed actor to die")


def hold_cpu(ray):
    """A placement group of the test's own holding one CPU, once Ray has reserved it."""
    group = ray.util.placement_group([{"CPU": 1}])
    ray.get(group.ready(), timeout=60)
    return group


def test_a_dead_worker_is_replaced_with_fresh_seeds(ray_client):
    events = []
    g = group("t-replace", 2, events)
    try:
        weights = ray_client.put(WEIGHTS)
        first = g.sample(weights)
        ray_client.kill(g.actors[0], no_restart=True)
        wait_for(lambda: is_dead(ray_client, g.actors[0]), 60, what="the killed actor to die")
        again = g.sample(weights)  # (ray.kill is asynchronous: a call made at once may still run)
        assert len(again) == 2 and g.restarts == 1 and g.generations == {0: 1, 1: 0}
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


def test_a_worker_that_cannot_be_placed_again_is_dropped_and_with_none_left_the_group_gives_up(ray_client):
    """Both CPUs held by the group's workers; a worker dies and the test takes its CPU before the
    group notices (as a node loss leaves no room): the replacement waits for a CPU that never
    frees, is dropped after placement_timeout_s, and the group goes on with one worker. The same
    again with the last worker: WorkersLost."""
    from cluster.reinforce.workers import WorkersLost

    events, blockers = [], []
    g = group("t-drop", 5, events, cpus=1, placement_timeout_s=3)
    try:
        weights = ray_client.put(WEIGHTS)
        assert len(g.sample(weights)) == 2
        kill_and_wait(ray_client, g.actors[0])
        blockers.append(hold_cpu(ray_client))
        start = time.monotonic()
        batches = g.sample(weights)
        assert len(batches) == 1 and sorted(g.actors) == [1] and g.dropped == 1
        assert 3 <= time.monotonic() - start < 60
        assert any("rollout worker 0 was lost" in e for e in events), events
        assert any("rollout worker 0 could not be placed within 3 s" in e
                   and "going on with 1 worker(s)" in e for e in events), events
        assert len(g.sample(weights)) == 1                    # and so on, one worker smaller
        kill_and_wait(ray_client, g.actors[1])
        blockers.append(hold_cpu(ray_client))
        with pytest.raises(WorkersLost, match="no rollout worker is left"):
            g.sample(weights)
    finally:
        g.shutdown()
        for b in blockers:
            ray_client.util.remove_placement_group(b)


def test_a_hung_worker_is_killed_and_replaced(ray_client):
    """SIGSTOP of a worker's process: alive to Ray, but it never answers; after sample_timeout_s
    the group kills it and asks a replacement."""
    events = []
    g = group("t-hung", 2, events, sample_timeout_s=3)
    try:
        weights = ray_client.put(WEIGHTS)
        g.sample(weights)
        pid = ray_client.get(g.actors[0].__ray_call__.remote(lambda self: os.getpid()))
        os.kill(pid, signal.SIGSTOP)
        try:
            assert len(g.sample(weights)) == 2
        finally:
            os.kill(pid, signal.SIGKILL)   # the test's own stopped process, by PID
        assert g.restarts == 1 and g.generations[0] == 1
        assert any("rollout worker 0 gave no sample within 3 s" in e
                   and "started a replacement" in e for e in events), events
    finally:
        g.shutdown()


def test_a_deadline_ends_a_wait_for_a_worker_that_cannot_be_placed(ray_client):
    """A worker that needs more CPUs than there are: the caller's deadline (a wall-time budget)
    ends the wait before the placement timeout does."""
    from cluster.reinforce.workers import DeadlinePassed

    g = group("t-deadline", 0, [], cpus=8, placement_timeout_s=600)
    try:
        start = time.monotonic()
        with pytest.raises(DeadlinePassed):
            g.sample(ray_client.put(WEIGHTS), deadline=start + 2)
        assert time.monotonic() - start < 30
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
