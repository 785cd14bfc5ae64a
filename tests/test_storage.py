"""Runs kept at a storage URI (cluster/storage.py): the mirror's uploads, deletions and
downloads through pyarrow's file systems, and REINFORCE runs and Tune sweeps written to and
resumed from a URI through the CLI. ``file://`` URIs stand in for s3:// and gs://: the same pyarrow code path,
no network."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from cluster.reinforce.outputs import read_metrics
from cluster.storage import (
    Mirror,
    StorageError,
    download,
    folders,
    is_file,
    is_uri,
    join,
    open_uri,
    split,
    staging_dir,
    upload,
)
from cluster.tuning.results import read_results
from helpers import run_cli, start_cli, wait_for


def test_uris_are_told_from_folders():
    assert is_uri("s3://bucket/runs") and is_uri("gs://b/r") and is_uri("file:///tmp/x")
    assert not is_uri("runs") and not is_uri("/shared/runs") and not is_uri(None)
    assert join("s3://bucket/runs/", "cartpole__0") == "s3://bucket/runs/cartpole__0"


def test_an_unknown_scheme_is_a_clear_error():
    with pytest.raises(StorageError, match="storage nosuch://x/y: pyarrow cannot open it"):
        open_uri("nosuch://x/y")


def test_staging_folders_are_per_uri_under_labrun_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LABRUN_HOME", str(tmp_path))
    a, b = staging_dir("s3://bucket/runs"), staging_dir("s3://bucket/other")
    assert a != b and a.parent == b.parent == tmp_path / "staging"
    assert a == staging_dir("s3://bucket/runs")


def test_the_mirror_uploads_changes_deletes_what_went_and_fetches_it_back(tmp_path):
    local = tmp_path / "run"
    (local / "checkpoints" / "iter_1").mkdir(parents=True)
    (local / "metrics.jsonl").write_text('{"a": 1}\n')
    (local / "checkpoints" / "iter_1" / "learner.npz").write_bytes(os.urandom(3 << 20))  # > a chunk
    remote = tmp_path / "bucket" / "runs" / "run"
    mirror = Mirror(local, f"file://{remote}")
    assert mirror.push() == 2
    assert (remote / "metrics.jsonl").read_text() == '{"a": 1}\n'
    assert (remote / "checkpoints/iter_1/learner.npz").read_bytes() == \
        (local / "checkpoints/iter_1/learner.npz").read_bytes()
    assert mirror.push() == 0                                         # nothing changed
    with open(local / "metrics.jsonl", "a") as f:
        f.write('{"a": 2}\n')
    (local / "checkpoints" / "iter_2").mkdir()
    (local / "checkpoints" / "iter_2" / "learner.npz").write_bytes(b"new")
    shutil.rmtree(local / "checkpoints" / "iter_1")                  # keep_checkpoints at work
    assert mirror.push() == 2
    assert not (remote / "checkpoints/iter_1").exists()
    assert (remote / "metrics.jsonl").read_text().count("\n") == 2

    fresh = Mirror(tmp_path / "elsewhere", f"file://{remote}")
    assert fresh.pull() == 2
    assert (fresh.local / "checkpoints/iter_2/learner.npz").read_bytes() == b"new"
    assert fresh.push() == 0                                          # what it fetched is there
    with pytest.raises(StorageError, match="no such run folder"):
        Mirror(tmp_path / "x", f"file://{tmp_path}/bucket/runs/nothing").pull()


def test_single_files_go_up_and_come_back_and_folders_are_listed_oldest_first(tmp_path):
    local, remote = tmp_path / "study", tmp_path / "bucket" / "runs"
    local.mkdir()
    (local / "study.yaml").write_text("kind: intro\n")
    uri = f"file://{remote}/s__1"
    upload(local, uri, ["study.yaml", "results.csv"])                 # the absent one is skipped
    assert sorted(p.name for p in (remote / "s__1").iterdir()) == ["study.yaml"]
    assert is_file(join(uri, "study.yaml")) and not is_file(join(uri, "results.csv"))
    assert download(uri, tmp_path / "back", ["study.yaml", "results.csv"]) == ["study.yaml"]
    assert (tmp_path / "back" / "study.yaml").read_text() == "kind: intro\n"
    (remote / "s__2").mkdir()
    (remote / "other__1").mkdir()
    os.utime(remote / "s__1", (1, 1))                                  # older than s__2
    assert folders(f"file://{remote}", "s__") == ["s__1", "s__2"]
    assert folders(f"file://{tmp_path}/nothing") == []
    assert split(uri) == (f"file://{remote}", "s__1")


def test_a_reinforce_run_is_written_to_a_uri_and_resumed_from_it(ray_address, tmp_path):
    store = tmp_path / "bucket"
    env = {**os.environ, "LABRUN_HOME": str(tmp_path / "home"), "COLUMNS": "400"}  # no wrapping
    fast = ["--set", "rollout.num_workers=1", "--set", "rollout.envs_per_worker=2",
            "--set", "output.checkpoint_every=1", "--set", "output.keep_checkpoints=2"]
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir",
                  f"file://{store}", "--set", "stop.iterations=3", *fast, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    (run,) = store.iterdir()
    assert "stored at" in out.stdout and run.name in out.stdout
    assert [r["counters/iteration"] for r in read_metrics(run)] == [1, 2, 3]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_000002", "iter_000003"]
    assert (run / "config.yaml").is_file() and (run / "run.log").is_file()

    again = run_cli("resume", f"file://{run}", "--address", ray_address,
                    "--set", "stop.iterations=5", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"fetching file://{run}" in again.stdout
    assert [r["counters/iteration"] for r in read_metrics(run)] == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_000004", "iter_000005"]


def test_a_sweep_is_stored_at_a_uri_crashed_trials_restore_from_it_and_it_resumes(ray_address,
                                                                                    tmp_path):
    from helpers import write_sweep

    store = tmp_path / "bucket"
    env = {**os.environ, "LABRUN_HOME": str(tmp_path / "home"), "COLUMNS": "400"}
    exp = {"name": "intro_t", "lab": "intro", "intro": {"epochs": 3, "steps_per_epoch": 20},
           "trial": {"cpus": 1, "gpus": 0, "fail_once_after_epoch": 1}}   # each trial crashes once
    sweep = write_sweep(tmp_path, {"intro.lr": {"grid": [0.002, 0.02]}}, experiment=exp,
                        max_concurrent_trials=2)
    out = run_cli("tune", str(sweep), "--address", ray_address, "--runs-dir", f"file://{store}", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    (folder,) = store.iterdir()
    for name in ("study.yaml", "experiment.yaml", "results.csv", "best_config.yaml",
                 "comparison.png", "tuner.pkl"):                        # ours and Tune's, together
        assert (folder / name).is_file(), name
    trials = sorted(p for p in folder.iterdir() if (p / "result.json").is_file())
    assert len(trials) == 2
    for trial in trials:
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        # Epoch 1's row, logged just before the injected crash, can be lost: Tune restarts a
        # restored trial's result.json from the storage copy, which it syncs only from time to
        # time (ray/tune/logger/logger.py _restore_from_remote; see test_cluster_mode's node loss).
        assert [r["counters/epoch"] for r in rows] in ([1, 2, 3], [2, 3]), rows
        (after,) = [r for r in rows if r["counters/epoch"] == 2]
        assert after["iterations_since_restore"] == 1                  # restored, not restarted
        assert (trial / "injected_failure").is_file() and (trial / "finished").is_file()
        assert list((trial / "images").glob("events.out.tfevents.*"))  # the trial's own files
        assert list(trial.glob("checkpoint_*"))
    assert [r["status"] for r in read_results(folder)] == ["ok", "ok"]
    assert f"file://{folder}" in out.stdout

    for argv in (["resume", f"file://{folder}"],                          # by its URI
                 ["tune", str(sweep), "--runs-dir", f"file://{store}", "--resume"]):   # the latest
        again = run_cli(*argv, "--address", ray_address, env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"resuming intro trial(s): file://{folder}" in again.stdout
        assert [r["status"] for r in read_results(folder)] == ["ok", "ok"]


def test_an_unusable_uri_is_refused_before_anything_runs(tmp_path):
    for argv in (["train", "configs/intro.yaml"], ["tune", "configs/mnist_sweep.yaml"],
                 ["train", "configs/cartpole.yaml"]):
        out = run_cli(*argv, "--runs-dir", "nosuch://bucket/runs",
                      env={**os.environ, "LABRUN_HOME": str(tmp_path)})
        assert out.returncode == 1, out.stdout + out.stderr
        assert "storage nosuch://bucket/runs: pyarrow cannot open it" in out.stderr
        assert "running" not in out.stdout and "Traceback" not in out.stderr


def test_a_lease_keeps_a_second_writer_off_a_run_at_a_uri(tmp_path, capsys):
    """Another writer's fresh lease is refused, naming its PID and host; a lease that stopped
    being renewed, or whose process on this host is gone, is taken over (and said); a lease is
    renewed while held and removed at the end only by its holder."""
    import json
    import socket
    import time

    from cluster.errors import UsageError
    from cluster.storage import LEASE_FILE, Lease

    uri = f"file://{tmp_path}/runs/r__1"
    with pytest.raises(StorageError, match="no such run folder"):
        Lease(uri).acquire(existing=True)
    assert not (tmp_path / "runs").exists()                  # a missing run is not created

    first = Lease(uri, renew_s=0.2, settle_s=0)
    first.acquire()
    held = Lease(uri).holder()        # (the file is rewritten every 0.2 s meanwhile)
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    with pytest.raises(UsageError, match=f"another labrun is writing this run \\(PID {os.getpid()} on "):
        Lease(uri, settle_s=0).acquire(existing=True)
    renewed = held["renewed"]
    wait_for(lambda: Lease(uri).holder()["renewed"] > renewed, 10, what="a renewal")
    seen, deadline = set(), time.monotonic() + 1.0       # ~5 renewals, each read whole or not at all
    while time.monotonic() < deadline:
        seen.add(json.loads((tmp_path / "runs" / "r__1" / LEASE_FILE).read_text())["renewed"])
    assert len(seen) >= 2
    first.release()
    assert not (tmp_path / "runs" / "r__1" / LEASE_FILE).exists()
    assert not list((tmp_path / "runs" / "r__1").iterdir())   # no half-written lease left beside

    path = tmp_path / "runs" / "r__1" / LEASE_FILE
    for holder, taken in [({"host": "elsewhere", "pid": 1, "renewed": time.time()}, False),
                          ({"host": "elsewhere", "pid": 1, "renewed": time.time() - 600}, True),
                          ({"host": socket.gethostname(), "pid": 2 ** 22 + 7,
                            "renewed": time.time()}, True)]:
        path.write_text(json.dumps({**holder, "id": "theirs"}))
        lease = Lease(uri, settle_s=0)
        if not taken:
            with pytest.raises(UsageError, match="PID 1 on elsewhere"):
                lease.acquire()
            continue
        lease.acquire()
        assert "took over the lease" in capsys.readouterr().err
        path.write_text(json.dumps({**holder, "id": "a later one", "renewed": time.time()}))
        lease.release()                                      # not its own any more: it stays
        assert json.loads(path.read_text())["id"] == "a later one"


def test_a_second_machine_cannot_resume_a_run_another_writes_at_the_uri(ray_address, tmp_path):
    """Two staging folders (two LABRUN_HOMEs: two machines) and one URI: while one writes the
    run, the other's resume is refused (exit 2, the writer's PID named) and its staging copy
    removed; once the writer is SIGKILLed, its lease is stale and the resume goes ahead."""
    import signal

    store = tmp_path / "bucket"
    writer = start_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir",
                       f"file://{store}", "--set", "stop.mean_return=null",
                       "--set", "stop.env_steps=100000000", "--set", "rollout.num_workers=1",
                       "--set", "rollout.envs_per_worker=2", "--set", "output.checkpoint_every=1",
                       env={**os.environ, "LABRUN_HOME": str(tmp_path / "a")})
    other = {**os.environ, "LABRUN_HOME": str(tmp_path / "b")}
    try:
        run = wait_for(lambda: next((p.parent.parent for p in store.glob("*/checkpoints/iter_*")),
                                    None) if store.exists() else None, 240, 0.5, "a checkpoint")
        out = run_cli("resume", f"file://{run}", "--address", ray_address,
                      "--set", "stop.iterations=1000000", env=other, timeout=120)
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"another labrun is writing this run (PID {writer.pid} on" in out.stderr, out.stderr
        assert not any((tmp_path / "b" / "staging").glob(f"*/{run.name}"))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=60)
    out = run_cli("resume", f"file://{run}", "--address", ray_address,
                  "--set", "stop.iterations=1000000", "--set", "stop.wall_time_s=0.1",
                  env=other, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"took over the lease of PID {writer.pid}" in out.stderr
    assert "no longer running" in out.stderr
    assert not (run / ".writer").exists()
