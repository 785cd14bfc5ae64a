"""Runs kept at a storage URI (cluster/storage.py): the mirror's uploads, deletions and
downloads through pyarrow's file systems, and REINFORCE runs written to and resumed from a URI
through the CLI. ``file://`` URIs stand in for s3:// and gs://: the same pyarrow code path,
no network."""

from __future__ import annotations

import os
import shutil

import pytest

from cluster.outputs import read_metrics
from cluster.storage import Mirror, StorageError, is_uri, join, open_uri, staging_dir
from conftest import run_cli


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


def test_tune_runs_refuse_a_uri_before_starting_anything(tmp_path):
    for argv in (["train", "configs/intro.yaml"], ["tune", "configs/mnist_sweep.yaml"]):
        out = run_cli(*argv, "--runs-dir", "s3://bucket/runs",
                      env={**os.environ, "LABRUN_HOME": str(tmp_path)})
        assert out.returncode == 2, out.stdout + out.stderr
        assert "cloud storage is for REINFORCE runs so far" in out.stderr
