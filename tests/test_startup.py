"""Start-up: the phases a run logs (cluster/reinforce/startup.py), and a real ``labrun train``
whose Ray and TensorFlow start side by side, after the input was checked."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from cluster.reinforce.outputs import read_metrics
from cluster.reinforce.startup import StartupClock, parse_line, process_age_s
from helpers import only_run_dir, run_cli


def test_the_log_line_lists_finished_phases_in_the_order_they_ended_and_reads_back():
    clock = StartupClock(origin=100.0)
    clock.phases = {"ray": (0.62, 5.71), "cli": (None, 0.61), "tensorflow": (0.62, 5.48),
                    "first_iteration": (None, 6.43), "unfinished": (1.0, None)}
    line = clock.line()
    assert line == ("start-up (s since the process started): cli=0.61 tensorflow=0.62..5.48 "
                    "ray=0.62..5.71 first_iteration=6.43")
    log = f"2026-01-01 00:00:00 starting 2 rollout worker(s)\n2026-01-01 00:00:06 {line}\n"
    assert parse_line(log) == {"cli": (None, 0.61), "tensorflow": (0.62, 5.48),
                               "ray": (0.62, 5.71), "first_iteration": (None, 6.43)}
    assert parse_line("2026-01-01 00:00:00 stopped: solved\n") == {}


def test_phases_are_timed_from_the_origin():
    clock = StartupClock(origin=time.time() - 10.0, origin_name="the trial started")
    clock.mark("checked")
    clock.begin("tensorflow")
    clock.end("tensorflow")
    (_, checked), (start, end) = clock.phases["checked"], clock.phases["tensorflow"]
    assert 10.0 <= checked <= start <= end < 60.0
    assert clock.duration("tensorflow") == pytest.approx(end - start, abs=0.011)
    assert clock.duration("checked") is None
    assert clock.line().startswith("start-up (s since the trial started): checked=")


def test_the_default_origin_is_when_this_process_started():
    created = psutil.Process().create_time()   # whole seconds of boot time: within ~1 s
    assert process_age_s() > 0
    assert StartupClock().origin == pytest.approx(created, abs=1.5)


@pytest.mark.slow
def test_a_run_starts_ray_beside_tensorflow_and_logs_where_its_start_up_went(tmp_path):
    """On the embedded Ray (no --address): Ray and the TensorFlow import overlap, both after the
    checks; the workers are ready after Ray, the first iteration after the learner and the
    workers; every metrics row carries time/startup_s. Ray's session lands in RAY_TMPDIR,
    which tests/test_input.py relies on to see that refused input starts no Ray."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="lr-", dir="/tmp"))   # short: Ray's socket paths
    try:
        out = run_cli("train", "configs/cartpole.yaml", "--runs-dir", str(tmp_path),
                      "--set", "stop.iterations=2", "--set", "rollout.num_workers=1",
                      "--set", "rollout.envs_per_worker=2", env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
        assert out.returncode == 0, out.stdout + out.stderr
        assert list((ray_tmp / "ray").glob("session_*")), "Ray's session is under RAY_TMPDIR"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    run_dir = only_run_dir(tmp_path)
    phases = parse_line((run_dir / "run.log").read_text())
    assert set(phases) == {"cli", "tensorflow", "ray", "workers_ready", "learner_built",
                           "first_iteration"}
    (_, cli), (tf_start, tf_end), (ray_start, ray_end) = (phases[p] for p in ("cli", "tensorflow", "ray"))
    assert cli <= tf_start < ray_end and cli <= ray_start < tf_end   # side by side
    assert phases["workers_ready"][1] >= ray_end
    first = phases["first_iteration"][1]
    assert first >= max(phases["learner_built"][1], phases["workers_ready"][1], tf_end)
    rows = read_metrics(run_dir)
    assert [r["time/startup_s"] for r in rows] == [first, first]
    assert "start-up (s since the process started): cli=" in out.stdout
