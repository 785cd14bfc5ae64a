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

pytestmark = pytest.mark.slow


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
