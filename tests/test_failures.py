"""How runs end when something outside them stops them or they cannot go on (issue #14): SIGTERM
is handled like Ctrl-C (a REINFORCE run's final checkpoint, copied to its storage URI, exit 143;
a sweep left resumable), and a trial that fails for a reason a retry cannot change fails at once,
its reason on the console."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from cluster.reinforce import checkpoint
from cluster.reinforce.outputs import read_metrics
from cluster.reinforce.workers import NAMESPACE
from cluster.tuning.results import read_results
from helpers import run_cli, start_cli, wait_for, write_sweep


def trial_rows(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def stop_with_sigterm(proc, ready, timeout: float, what: str) -> str:
    """SIGTERM to ``proc`` (a labrun started by this test) once ``ready()``; its output."""
    try:
        wait_for(ready, timeout, 0.2, what)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return output


def test_sigterm_ends_a_reinforce_run_like_ctrl_c(ray_client, ray_address, tmp_path):
    """Final checkpoint, the copy at the storage URI, the reason in run.log, actors gone, 143."""
    store = tmp_path / "store"
    env = {**os.environ, "LABRUN_HOME": str(tmp_path / "home")}   # the staging folder
    proc = start_cli("train", "configs/cartpole.yaml", "--address", ray_address,
                     "--runs-dir", store.as_uri(), "--set", "stop.mean_return=null",
                     "--set", "stop.env_steps=100000000", "--set", "rollout.num_workers=1",
                     "--set", "output.checkpoint_every=1000", env=env)
    staging = tmp_path / "home" / "staging"

    def run_dir():
        return next(staging.glob("*/cartpole*"), None) if staging.exists() else None

    output = stop_with_sigterm(proc, lambda: run_dir() and len(read_metrics(run_dir())) >= 3, 240,
                               "three iterations")
    assert proc.returncode == 143, output
    stored = store / run_dir().name
    rows = read_metrics(stored)
    latest = checkpoint.latest(stored / "checkpoints")    # not one of checkpoint_every's: the final
    assert latest is not None and latest.name == f"iter_{int(rows[-1]['counters/iteration']):06d}"
    assert "stopped: stopped by request (SIGTERM)" in (stored / "run.log").read_text()
    assert "stopped by request (SIGTERM)" in output
    left = [a for a in ray_client.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == NAMESPACE and a["name"].startswith(run_dir().name + "/")]
    assert not left, left


def test_sigterm_leaves_a_sweep_resumable(ray_address, tmp_path):
    experiment = {"name": "intro_t", "lab": "intro", "intro": {"epochs": 4, "steps_per_epoch": 1500},
                  "trial": {"cpus": 1, "gpus": 0}}
    path = write_sweep(tmp_path, {"intro.lr": {"grid": [0.002]}}, experiment=experiment)
    runs = tmp_path / "runs"
    proc = start_cli("tune", str(path), "--address", ray_address, "--runs-dir", str(runs))

    def trial():
        folders = list(runs.glob("*/*/result.json")) if runs.exists() else []
        return folders[0].parent if folders and trial_rows(folders[0].parent) else None

    output = stop_with_sigterm(proc, trial, 180, "a trial's first epoch")
    assert proc.returncode == 143, output
    folder = trial().parent
    assert f"continue with: labrun resume {folder}" in output
    assert len(trial_rows(trial())) < 4
    out = run_cli("resume", str(folder), "--address", ray_address, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    assert [row["status"] for row in read_results(folder)] == ["ok"]


@pytest.mark.slow    # an embedded Ray (conftest marks the tests on the session's Ray)
def test_a_trial_without_its_data_fails_at_once_and_says_why(tmp_path):
    """MNIST nowhere (an empty data folder, an empty cache, no network): the trial fails without
    using its restarts, and the console prints the loader's reason. On an embedded Ray: the
    trial's process must inherit this test's HOME (the cache) and proxy (no download)."""
    from ray.tune import ExperimentAnalysis

    empty = tmp_path / "empty"
    empty.mkdir()
    closed = "http://127.0.0.1:9"    # the discard port: nothing listens, the download is refused
    env = {**os.environ, "LABRUN_DATA_DIR": str(empty), "HOME": str(tmp_path / "home"),
           "https_proxy": closed, "HTTPS_PROXY": closed, "http_proxy": closed, "HTTP_PROXY": closed,
           "no_proxy": "", "NO_PROXY": ""}
    out = run_cli("train", "configs/mnist.yaml", "--runs-dir", str(tmp_path / "runs"),
                  "--set", "mnist.epochs=1", "--set", "mnist.train_limit=500",
                  "--set", "trial.max_failures=2", env=env, timeout=400)
    assert out.returncode == 1, out.stdout + out.stderr
    folder = next((tmp_path / "runs").iterdir())
    [trial] = ExperimentAnalysis(str(folder)).trials
    assert trial.run_metadata.num_failures == 0             # not restarted: 2 were allowed
    assert not (Path(trial.path) / "error.txt").exists()
    assert f"trial {Path(trial.path).name} failed: DataUnavailable: MNIST is not available" in out.stdout, out.stderr
    assert [row["status"] for row in read_results(folder)] == ["error"]


def test_a_failed_trials_reason_is_the_last_line_of_its_error():
    from cluster.tuning.results import error_reason

    traceback = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
                 "RuntimeError: injected failure after epoch 1 [not markup]\n\n")
    assert error_reason(RuntimeError(traceback)) == "RuntimeError: injected failure after epoch 1 [not markup]"
    assert error_reason(None) is None


def test_stop_signals_restores_the_handler_it_replaced():
    from cluster.signals import StopSignals, Terminated

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(Terminated) as caught, StopSignals() as stop:
        signal.raise_signal(signal.SIGTERM)
    assert stop.received and caught.value.exit_code == 143
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # started in the background: SIGINT ignored
    try:
        with pytest.raises(Terminated), StopSignals():
            signal.raise_signal(signal.SIGTERM)      # still stops it
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before[1])

    passed_on = []   # a SIGINT handler of its own (Tune's): SIGTERM goes to it, nothing raised
    with StopSignals() as stop:
        signal.signal(signal.SIGINT, lambda *_: passed_on.append(True))
        signal.raise_signal(signal.SIGTERM)
    assert passed_on == [True] and stop.received
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def run_losing_its_worker(ray, tmp_path, *sets: str):
    """A one-worker CartPole run on the session's head (2 CPUs, the other held by the test)
    whose worker the test kills after iteration 2, then takes its CPU too: as a node loss leaves
    a run with nowhere to place a replacement. The run's result."""
    from rich.console import Console

    from cluster.config.rl_experiment import check_env, load_experiment
    from cluster.reinforce.console import ConsoleProgress
    from cluster.reinforce.trainer import Trainer

    cfg = load_experiment("configs/cartpole.yaml", [
        "stop.mean_return=null", "stop.env_steps=null", "rollout.num_workers=1",
        "rollout.envs_per_worker=2", "output.checkpoint_every=1000", *sets])
    held = [ray.util.placement_group([{"CPU": 1}])]
    ray.get(held[0].ready(), timeout=60)
    run_id = f"lose-{tmp_path.name}"[-40:]

    def hook(metrics, ckpt):
        if metrics["counters/iteration"] == 2:
            actor = ray.get_actor(f"{run_id}/rollout-0.0", namespace=NAMESPACE)
            ray.kill(actor, no_restart=True)
            held.append(ray.util.placement_group([{"CPU": 1}]))
            ray.get(held[-1].ready(), timeout=60)       # the freed CPU: the test's now
    try:
        obs_shape, num_actions = check_env(cfg, "test")
        (tmp_path / "run").mkdir()
        return Trainer(cfg, tmp_path / "run", obs_shape, num_actions, run_id=run_id,
                       on_iteration=hook, progress=ConsoleProgress(1, Console(quiet=True))).run()
    finally:
        for group in held:
            ray.util.remove_placement_group(group)


def test_a_run_with_no_worker_left_ends_failed_with_its_checkpoint(ray_client, tmp_path):
    result = run_losing_its_worker(ray_client, tmp_path, "resources.placement_timeout_s=3",
                                   "stop.wall_time_s=600")
    assert result.failed and "no rollout worker is left" in result.stop_reason
    assert checkpoint.latest(tmp_path / "run" / "checkpoints").name == "iter_000002"
    log = (tmp_path / "run" / "run.log").read_text()
    assert "rollout worker 0 was lost" in log and "could not be placed within 3 s" in log, log
    assert "stopped: no rollout worker is left" in log


def test_the_wall_time_budget_holds_while_waiting_for_workers(ray_client, tmp_path):
    import time

    start = time.monotonic()
    result = run_losing_its_worker(ray_client, tmp_path, "resources.placement_timeout_s=600",
                                   "stop.wall_time_s=15")
    assert time.monotonic() - start < 120                  # not the 600 s placement timeout
    assert not result.failed and "while waiting for rollout workers" in result.stop_reason
    assert result.state.iteration == 2 and result.state.train_time_s >= 15
    assert checkpoint.latest(tmp_path / "run" / "checkpoints").name == "iter_000002"


def test_a_run_joining_a_busy_cluster_sizes_against_its_free_cpus(ray_client, ray_address, tmp_path):
    """One of the head's 2 CPUs held by another's work: 2 workers are refused (exit 2, saying
    how many are free), ``auto`` starts 1."""
    held = ray_client.util.placement_group([{"CPU": 1}])
    ray_client.get(held.ready(), timeout=60)
    try:
        args = ("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir",
                str(tmp_path), "--set", "stop.iterations=2", "--set", "rollout.envs_per_worker=2")
        out = run_cli(*args, "--set", "rollout.num_workers=2", timeout=300)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "rollout.num_workers" in out.stderr and "has 1 free of 2" in out.stderr, out.stderr
        out = run_cli(*args, timeout=300)                  # num_workers: auto
        assert out.returncode == 0, out.stdout + out.stderr
        assert "starting 1 rollout worker(s)" in out.stdout, out.stdout
    finally:
        ray_client.util.remove_placement_group(held)
