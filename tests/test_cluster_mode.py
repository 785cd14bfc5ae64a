"""Cluster mode with real Ray processes on 127.0.0.1: ``labrun cluster up`` (a head and a worker
node, token authentication on), ``labrun submit`` through Ray's Jobs API, refused tokens, and
``labrun cluster down`` leaving nothing behind. The cluster is this module's own, beside the
session's shared head; its state file lives in a temporary $LABRUN_HOME."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from cluster.reinforce import checkpoint
from cluster.reinforce.outputs import read_metrics
from helpers import only_run_dir, processes_of, run_cli


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, ray_address):
    """A head and a worker node, up while the session's head runs too (as in the whole suite)."""
    home = tmp_path_factory.mktemp("labrun-home")
    env = {**os.environ, "LABRUN_HOME": str(home)}  # the session's token (conftest)
    out = run_cli("cluster", "up", "--workers", "1", "--cpus-per-node", "2", env=env, timeout=300)
    state = home / "cluster.json"
    recorded = json.loads(state.read_text()) if state.exists() else None
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        yield env, recorded
    finally:
        run_cli("cluster", "down", env=env, timeout=120)
        if recorded:   # whatever a failed test left
            from helpers import stop_processes

            stop_processes(processes_of(recorded["temp_dir"], f"127.0.0.1:{recorded['port']}"))


def test_cluster_up_starts_a_head_and_a_worker_node_on_loopback(cluster):
    env, recorded = cluster
    assert recorded["host"] == "127.0.0.1" and recorded["workers"] == 1
    out = run_cli("cluster", "status", env=env, timeout=120)
    assert out.returncode == 0 and "2 of 2 nodes alive" in out.stdout, out.stdout + out.stderr
    raylets = [p for p in processes_of(recorded["temp_dir"], f"127.0.0.1:{recorded['port']}")
               if "raylet" in p.name()]
    assert len(raylets) == 2                                              # one per node
    for proc in raylets:                                                  # nothing but loopback
        listening = [c.laddr.ip.removeprefix("::ffff:") for c in proc.net_connections("inet")
                     if c.status == "LISTEN"]
        assert listening and set(listening) <= {"127.0.0.1"}, listening
    out = run_cli("cluster", "up", env=env, timeout=120)                  # one at a time
    assert out.returncode == 1 and "already up" in out.stderr


def test_submit_runs_cartpole_as_a_job_and_writes_to_the_storage_path(cluster, tmp_path):
    env, recorded = cluster
    storage = tmp_path / "shared"
    out = run_cli("submit", "configs/cartpole.yaml", "--storage", str(storage),
                  "--set", "stop.iterations=3", "--set", "rollout.num_workers=2",
                  "--set", "rollout.envs_per_worker=2", env=env, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    job = re.search(r"submitted (\S+) to http://127\.0\.0\.1:(\d+)", out.stdout)
    assert job and int(job.group(2)) == recorded["dashboard_port"], out.stdout
    assert f"job {job.group(1)}: SUCCEEDED" in out.stdout
    assert "iteration" in out.stdout                                      # the job's logs, followed
    run_dir = only_run_dir(storage)
    assert len(read_metrics(run_dir)) == 3
    assert checkpoint.latest(run_dir / "checkpoints").name == "iter_000003"
    from ray.util.state import list_actors

    workers = list_actors(address=f"http://127.0.0.1:{recorded['dashboard_port']}",
                          filters=[("class_name", "=", "RolloutWorker")], detail=True)
    assert len(workers) == 2 and len({w.node_id for w in workers}) == 2   # spread over both nodes
    listed = run_cli("jobs", env=env, timeout=120)
    assert listed.returncode == 0 and job.group(1) in listed.stdout and "SUCCEEDED" in listed.stdout
    logs = run_cli("logs", job.group(1), env=env, timeout=120)
    assert logs.returncode == 0 and "iteration" in logs.stdout


def submit_running(env: dict, storage: Path, *options: str) -> tuple[str, Path]:
    """``labrun submit --no-wait`` of CartPole with no stop but the given ones (2 envs a worker),
    returned once its run has made three iterations: (job id, run folder under ``storage``)."""
    from helpers import wait_for

    out = run_cli("submit", "configs/cartpole.yaml", "--storage", str(storage), "--no-wait",
                  "--set", "stop.mean_return=null", "--set", "stop.env_steps=null",
                  "--set", "rollout.envs_per_worker=2", *options, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    job = re.search(r"submitted (\S+)", out.stdout).group(1)

    def iterating():
        runs = list(storage.glob("*/metrics.*")) if storage.exists() else []
        return runs and len(read_metrics(runs[0].parent)) >= 3 and runs[0].parent
    return job, wait_for(iterating, 180, 0.5, "the run's third iteration")


def test_stop_gives_a_job_its_grace_period_for_the_final_checkpoint(cluster, tmp_path):
    """`labrun stop`: the job gets SIGTERM with the grace period it was submitted with, writes
    its final checkpoint (not one of checkpoint_every's) and says why it stopped; stop waits
    for the end and prints it."""

    env, _ = cluster
    job, run_dir = submit_running(env, tmp_path / "shared", "--stop-grace", "90",
                                  "--set", "stop.wall_time_s=600", "--set", "rollout.num_workers=1",
                                  "--set", "output.checkpoint_every=1000")
    out = run_cli("stop", job, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "it has 90 s to write its final checkpoint" in out.stdout, out.stdout
    assert f"job {job}: STOPPED" in out.stdout, out.stdout
    assert "stopped: stopped by request (SIGTERM)" in (run_dir / "run.log").read_text()
    rows = read_metrics(run_dir)
    assert checkpoint.latest(run_dir / "checkpoints").name == \
        f"iter_{int(rows[-1]['counters/iteration']):06d}"
    again = run_cli("stop", job, env=env, timeout=120)
    assert again.returncode == 0 and "had already ended (STOPPED)" in again.stdout, again.stdout


def kill_node(raylet) -> None:
    """SIGKILL of a node: its raylet (psutil) and every process under it, as a machine lost."""
    import psutil

    victims = [raylet, *raylet.children(recursive=True)]
    for proc in victims:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=30)


def test_a_run_survives_losing_a_worker_node(cluster, tmp_path):
    """Four workers fill both nodes (2 CPUs each); SIGKILL of the worker node's raylet (and so of
    its Ray workers) mid-run: its two rollout workers are lost, their replacements find no free
    CPU on the head, are dropped after resources.placement_timeout_s, and the run goes on with
    two; the run log says each step, and the job succeeds."""
    import psutil


    env, recorded = cluster
    job, run_dir = submit_running(env, tmp_path / "shared", "--set", "stop.wall_time_s=45",
                                  "--set", "rollout.num_workers=4",
                                  "--set", "resources.placement_timeout_s=5")
    kill_node(psutil.Process(recorded["raylet_pids"][1]))                 # the worker node
    followed = run_cli("logs", job, "--follow", env=env, timeout=400)
    assert followed.returncode == 0 and f"job {job}: SUCCEEDED" in followed.stdout, followed.stdout
    log = (run_dir / "run.log").read_text()
    assert log.count("was lost") == 2 and log.count("started a replacement") == 2, log
    assert log.count("could not be placed within 5 s") == 2, log
    assert "going on with 2 worker(s)" in log, log
    rows = read_metrics(run_dir)
    assert rows[0]["counters/workers"] == 4 and rows[-1]["counters/workers"] == 2
    assert rows[-1]["counters/workers_dropped"] == 2
    assert rows[-1]["counters/iteration"] > 3 and len(rows) == rows[-1]["counters/iteration"]


def test_a_bad_experiment_is_refused_before_anything_is_submitted(cluster):
    env, _ = cluster
    out = run_cli("submit", "configs/cartpole.yaml", "--set", "learner.gamma=2", env=env)
    assert out.returncode == 2
    assert "--set: learner.gamma: expected a number > 0 and <= 1, got 2" in out.stderr
    assert "submitted" not in out.stdout


def test_submission_without_the_right_token_is_refused_with_a_clear_message(cluster):
    env, _ = cluster
    wrong = run_cli("submit", "configs/cartpole.yaml", env={**env, "RAY_AUTH_TOKEN": "f" * 32},
                    timeout=120)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "refused the authentication token" in wrong.stderr, wrong.stderr
    missing = run_cli("jobs", env={**env, "RAY_AUTH_MODE": "disabled"}, timeout=120)
    assert missing.returncode == 1
    assert "requires its authentication token and none was sent" in missing.stderr, missing.stderr


def test_cluster_down_stops_exactly_its_processes(cluster, ray_address):
    env, recorded = cluster
    assert processes_of(recorded["temp_dir"], f"127.0.0.1:{recorded['port']}")
    out = run_cli("cluster", "down", env=env, timeout=120)
    assert out.returncode == 0 and "stopped the cluster at" in out.stdout, out.stdout + out.stderr
    assert not processes_of(recorded["temp_dir"], f"127.0.0.1:{recorded['port']}")
    assert not os.path.exists(os.path.join(env["LABRUN_HOME"], "cluster.json"))
    session_port = ray_address.rsplit(":", 1)[1]                          # the other Ray lives on
    assert processes_of(f"127.0.0.1:{session_port}")
    again = run_cli("cluster", "down", env=env, timeout=120)
    assert again.returncode == 0 and "nothing to stop" in again.stdout


def test_cluster_up_refuses_a_network_address_without_authentication(tmp_path):
    out = run_cli("cluster", "up", "--host", "192.0.2.1",
                  env={**os.environ, "LABRUN_HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"})
    assert out.returncode == 2 and not (tmp_path / "cluster.json").exists()   # bad input (#14)
    assert "authentication off is not offered by labrun" in out.stderr


def test_cluster_up_makes_a_token_where_ray_would_look_for_one(tmp_path, monkeypatch):
    from cluster.infra.auth_token import ensure_token, token_source

    path = tmp_path / "ray" / "auth_token"
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    assert token_source() == ("file", path)
    assert ensure_token() == path                       # a fresh machine: `ray start` needs one
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) and path.stat().st_mode & 0o777 == 0o600
    assert ensure_token() is None and path.read_text() == token           # kept, not replaced
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert token_source() == ("file", tmp_path / ".ray" / "auth_token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "a" * 64)
    assert token_source() == ("RAY_AUTH_TOKEN", None) and ensure_token() is None
    assert not (tmp_path / ".ray").exists()


@pytest.mark.slow   # its own 3-node cluster
def test_a_tune_trial_whose_node_dies_restarts_from_its_checkpoint_on_another(tmp_path):
    """A cluster of its own: a head without CPUs and two 1-CPU worker nodes. SIGKILL of the node
    running an intro trial (its raylet and the trial's process) after the trial's second
    checkpoint: Tune restarts the trial on the other node from its last checkpoint, and the job
    succeeds with no epoch reported twice (see the gap allowed below)."""
    import psutil

    from helpers import stop_processes, wait_for

    home = tmp_path / "home"
    env = {**os.environ, "LABRUN_HOME": str(home)}
    up = run_cli("cluster", "up", "--workers", "2", "--cpus-per-node", "1", "--head-cpus", "0",
                 env=env, timeout=300)
    state = home / "cluster.json"
    recorded = json.loads(state.read_text()) if state.exists() else None
    try:
        assert up.returncode == 0 and "(the head 0)" in up.stdout, up.stdout + up.stderr
        storage = tmp_path / "shared"
        out = run_cli("submit", "configs/intro.yaml", "--storage", str(storage), "--no-wait",
                      "--set", "intro.epochs=8", "--set", "intro.steps_per_epoch=400",
                      env=env, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        job = re.search(r"submitted (\S+)", out.stdout).group(1)

        def rows() -> list[dict]:
            files = list(storage.glob("*/*/result.json")) if storage.exists() else []
            return [json.loads(line) for line in files[0].read_text().splitlines()
                    if line.endswith("}")] if files else []
        before = wait_for(lambda: len(rows()) >= 2 and rows(), 240, 0.2, "the trial's second epoch")
        trial = psutil.Process(before[-1]["pid"])
        node = trial.parent()                                        # Ray workers: the raylet's
        assert node.pid in recorded["raylet_pids"][1:], (node.pid, recorded)   # not the head
        kill_node(node)

        followed = run_cli("logs", job, "--follow", env=env, timeout=400)
        assert followed.returncode == 0 and f"job {job}: SUCCEEDED" in followed.stdout, followed.stdout
        after = rows()
        epochs = [r["counters/epoch"] for r in after]
        # The killed process's rows come first: at least those seen before the kill, maybe more,
        # as the storage copy read above lags the trial by an epoch or two (seen in CI: two more).
        killed_at = sum(r["pid"] == trial.pid for r in after)
        assert killed_at >= len(before) and {r["pid"] for r in after[:killed_at]} == {trial.pid}
        assert len(after) > killed_at and trial.pid not in {r["pid"] for r in after[killed_at:]}
        # Restored, not restarted: each epoch at most once, up to the last. The row of the epoch
        # reported just before the node died can be missing (seen once in CI: rows 1, 2, 4-8, the
        # trial continuing from epoch 3's checkpoint): Tune writes result.json on the driver and
        # copies it to storage now and then, and a restarted trial's log starts again from the
        # storage copy (ray/tune/logger/logger.py, _restore_from_remote). Any other gap fails.
        assert epochs == sorted(set(epochs)) and epochs[-1] == 8, epochs
        assert set(range(1, 9)) - set(epochs) <= {killed_at + 1}, epochs
    finally:
        run_cli("cluster", "down", env=env, timeout=120)
        if recorded:
            stop_processes(processes_of(recorded["temp_dir"], f"127.0.0.1:{recorded['port']}"))
