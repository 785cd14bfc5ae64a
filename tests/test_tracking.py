"""Experiment trackers (``output.loggers``): MLflow through a real tracking server on 127.0.0.1
that this module starts and stops, W&B in its offline mode, read back from its run files; the
pure parts (flattening, which metrics and files) without either."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from cluster import cli, trackers
from cluster.config.schema import ConfigError
from cluster.trackers import Tracking, artifact_files, flatten, numeric
from helpers import REPO, free_port, run_cli, start_cli, wait_for, write_sweep

pytest.importorskip("mlflow")   # `make test` installs both extras; a bare install skips here
pytest.importorskip("wandb")


# ------------------------------------------------------------------------------------- pure


def test_flatten_gives_the_key_paths_of_set():
    assert flatten({"learner": {"lr": 0.01, "gamma": 0.99}, "name": "x", "env": {}, "h": [1, 2]}) == \
        {"learner.lr": 0.01, "learner.gamma": 0.99, "name": "x", "env": {}, "h": [1, 2]}


def test_only_labruns_finite_numbers_are_metrics():
    assert numeric({"rollout/r": 1, "test/acc": 0.5, "time_this_iter_s": 3.0, "pid": 7,
                    "x/nan": float("nan"), "x/flag": True, "x/name": "a"}) == {"rollout/r": 1.0, "test/acc": 0.5}


def test_artifacts_leave_out_checkpoints_events_and_trackers_own_files(tmp_path):
    for name in ("config.yaml", "learning_curve.png", "videos/a.mp4", "checkpoints/c/state.json",
                 "checkpoint_000001/x.json", "tb/events.out.tfevents.1", "wandb/x/files/y.json",
                 "trackers.json", "report.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in artifact_files(tmp_path)] == \
        ["config.yaml", "learning_curve.png", "report.md", "videos/a.mp4"]


def test_loggers_are_checked_with_the_config():
    from cluster import labs

    _, cfg = labs.load("configs/cartpole.yaml", ["output.loggers=[tensorboard,mlflow,wandb]"])
    assert cfg.output.loggers == ("tensorboard", "mlflow", "wandb")
    assert labs.load("configs/mnist.yaml")[1].output.loggers == ("tensorboard",)
    with pytest.raises(ConfigError, match="output.loggers: expected each logger once"):
        labs.load("configs/mnist.yaml", ["output.loggers=[mlflow,mlflow]"])
    with pytest.raises(ConfigError, match=r"output.loggers\[0\]: expected one of 'tensorboard', 'mlflow', 'wandb'"):
        labs.load("configs/mnist.yaml", ["output.loggers=[neptune]"])


def test_wandb_runs_online_only_where_it_has_a_key_for_its_server(tmp_path, monkeypatch):
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine   wandb.example.org\n  login user\n  password x\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert trackers.wandb_mode() == "offline"                   # a key for another server
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert trackers.wandb_mode() == "online"                    # self-hosted, logged in
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert trackers.wandb_mode() == "offline"                   # the user's word wins
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_BASE_URL")
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert trackers.wandb_mode() == "online"


def test_a_tracker_not_installed_is_one_line_and_exit_2_before_anything_starts(monkeypatch, capsys):
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    code = cli.main(["train", "configs/cartpole.yaml", "--set", "output.loggers=[wandb]"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == ("error: output.loggers: 'wandb' needs the wandb package, which is not installed: "
                   "pip install -e '.[wandb]'"), err


def test_a_tracker_that_fails_is_dropped_with_a_warning_and_the_rest_goes_on(tmp_path, monkeypatch):
    said = []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'db.sqlite'}")
    tracking = Tracking(["tensorboard", "mlflow"], runs_dir=tmp_path, folder=tmp_path, experiment="e",
                        run_name="r", tags={}, warn=said.append)
    tracking.trackers[0].client.log_batch = lambda *a, **k: (_ for _ in ()).throw(OSError("gone"))
    tracking.metrics({"a/b": 1.0}, 1)
    tracking.metrics({"a/b": 2.0}, 2)   # dropped: nothing more is tried, nothing raised
    tracking.close("finished")
    assert said == ["warning: mlflow tracking stopped: OSError: gone"]


# ------------------------------------------------------------------- a real MLflow server


@pytest.fixture(scope="module")
def mlflow_server():
    """``mlflow server`` on 127.0.0.1 with a SQLite store, in its own process group: started here,
    stopped here (that group, by its PID)."""
    folder = Path(tempfile.mkdtemp(prefix="lr-mlflow-"))
    port = free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def answers():
        assert proc.poll() is None, (folder / "server.log").read_text()[-2000:]
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(answers, 120, 0.2, "the MLflow server")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def tracker_env(mlflow_server, tmp_path):
    """The CLI's environment: MLflow at the test server, W&B offline with its own folders here."""
    home = tmp_path / "wandb-home"
    home.mkdir()
    return {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "WANDB_MODE": "offline",
            "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(home), "WANDB_CACHE_DIR": str(home),
            "WANDB_DATA_DIR": str(home), "WANDB_PROJECT": "labrun-tests"}


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def runs_of(uri: str, experiment: str) -> list:
    exp = client(uri).get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    return client(uri).search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def artifact_paths(uri: str, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for item in client(uri).list_artifacts(run_id, path):
        out |= artifact_paths(uri, run_id, item.path) if item.is_dir else {item.path}
    return out


def wandb_history(run_folder: Path) -> list[dict]:
    """The history rows of the offline W&B run under ``run_folder/wandb``, read from its
    transaction log (LevelDB's log format: 32 KiB blocks of records, each a 7-byte header
    [crc32, length, type] and its bytes; type 1 a whole record, 2-4 first/middle/last parts)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = (run_folder / "wandb").glob("offline-run-*/run-*.wandb")
    data, pos, part, rows = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(part)
            part = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})   # a key with '/' comes nested
    return rows


def test_a_reinforce_run_in_mlflow_and_wandb(ray_address, tracker_env, tmp_path):
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  "--set", "name=tracked_rl", "--set", "stop.iterations=3", "--set", "stop.mean_return=null",
                  "--set", "output.loggers=[tensorboard,mlflow,wandb]", env=tracker_env)
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith("tracked_rl__")]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3

    uri = tracker_env["MLFLOW_TRACKING_URI"]
    (run,) = runs_of(uri, "tracked_rl")
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert run.data.params["learner.lr"] == str(config["learner"]["lr"])
    assert run.data.params["output.loggers"] == "['tensorboard', 'mlflow', 'wandb']"
    assert run.data.tags["labrun.lab"] == "rl"
    history = client(uri).get_metric_history(run.info.run_id, "rollout/episode_return_mean")
    assert [(m.step, m.value) for m in history] == \
        [(r["step"], pytest.approx(r["rollout/episode_return_mean"])) for r in rows]
    assert {"config.yaml", "learning_curve.png", "run.log"} <= artifact_paths(uri, run.info.run_id)

    logged = [r for r in wandb_history(run_dir) if "rollout/episode_return_mean" in r]
    assert [(r["_step"], r["rollout/episode_return_mean"]) for r in logged] == \
        [(r["step"], pytest.approx(r["rollout/episode_return_mean"])) for r in rows]
    files = next((run_dir / "wandb").glob("offline-run-*/files"))
    assert (files / "labrun" / "learning_curve.png").is_file()
    assert "offline; to upload: wandb sync" in out.stdout


def test_an_mnist_trial_in_mlflow(ray_address, tracker_env, tmp_path):
    out = run_cli("train", "configs/mnist.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  "--set", "name=tracked_mnist", "--set", "mnist.epochs=1", "--set", "mnist.train_limit=2000",
                  "--set", "output.loggers=[mlflow]", env=tracker_env)
    assert out.returncode == 0, out.stdout + out.stderr
    uri = tracker_env["MLFLOW_TRACKING_URI"]
    (run,) = runs_of(uri, "tracked_mnist")
    assert run.info.status == "FINISHED"
    assert run.data.params["mnist.epochs"] == "1" and run.data.params["mnist.train_limit"] == "2000"
    (folder,) = tmp_path.glob("tracked_mnist__*")
    (result,) = [json.loads(line) for line in next(folder.glob("*/result.json")).read_text().splitlines()]
    (accuracy,) = client(uri).get_metric_history(run.info.run_id, "test/accuracy")
    assert (accuracy.step, accuracy.value) == (1, pytest.approx(result["test/accuracy"]))
    assert "time_this_iter_s" not in run.data.metrics     # Tune's bookkeeping is not a metric
    assert "params.json" in artifact_paths(uri, run.info.run_id)
    assert "View run" not in out.stdout          # MLflow's own line per run stays off the console


def test_a_sweep_is_a_parent_run_with_its_trials_as_children(ray_address, tracker_env, tmp_path):
    path = write_sweep(tmp_path, {"intro.lr": {"grid": [0.002, 0.02]}}, max_concurrent_trials=2,
                       name="tracked_sweep", loggers=["mlflow"])
    out = run_cli("tune", str(path), "--address", ray_address, "--runs-dir", str(tmp_path / "runs"),
                  env=tracker_env)
    assert out.returncode == 0, out.stdout + out.stderr
    uri = tracker_env["MLFLOW_TRACKING_URI"]
    runs = runs_of(uri, "tracked_sweep")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and len(runs) == 3
    assert sorted(c.data.params["intro.lr"] for c in children) == ["0.002", "0.02"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {"results.csv", "best_config.yaml", "comparison.png"} <= artifact_paths(uri, parent.info.run_id)
    assert parent.data.params["search_space.intro.lr"] == "grid [0.002, 0.02]"
    (folder,) = (tmp_path / "runs").glob("tracked_sweep__*")
    best_row = (folder / "results.csv").read_text().splitlines()[1]
    assert best_row.split(",")[0] == parent.data.tags["labrun.best_trial"]


def test_labrun_mlflow_serves_the_store_behind_a_password_and_goes_with_sigterm(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    import psutil

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking = Tracking(["mlflow"], runs_dir=tmp_path, folder=tmp_path, experiment="served",
                        run_name="r", tags={})
    (tmp_path / "curve.png").write_bytes(b"png")
    tracking.metrics({"a/b": 1.0}, 1)
    tracking.artifacts(tmp_path, [tmp_path / "curve.png"])
    tracking.close("finished")
    run_id = trackers.read_state(tmp_path)["mlflow"]["run_id"]
    port = free_port()
    proc = start_cli("mlflow", str(tmp_path), "--port", str(port),
                     env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    lines, server = [], []
    try:
        wait_for(lambda: lines.append(proc.stdout.readline()) or "MLflow for" in lines[-1], 120,
                 0, "labrun mlflow's address")
        server = psutil.Process(proc.pid).children(recursive=True)
        match = re.search(rf"at http://127.0.0.1:{port}  \(user labrun, password (\S+): this session only", lines[-1])
        assert match, lines[-1]
        base = f"http://127.0.0.1:{port}"
        with pytest.raises(urllib.error.HTTPError) as refused:     # another user of the machine
            urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/search?max_results=10", timeout=10)
        assert refused.value.code == 401
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "labrun")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", match.group(1))
        assert "served" in [e.name for e in client(base).search_experiments()]
        request = urllib.request.Request(f"{base}/ajax-api/2.0/mlflow/artifacts/list?run_id={run_id}")
        request.add_header("Authorization", "Basic " + __import__("base64").b64encode(
            f"labrun:{match.group(1)}".encode()).decode())
        listed = json.loads(urllib.request.urlopen(request, timeout=10).read())   # what the UI shows
        assert [f["path"] for f in listed["files"]] == ["curve.png"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
    assert server and not [p for p in server if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    with socket.socket() as s:      # the server and its workers went with it
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_resumed_reinforce_run_continues_its_tracked_run_in_the_default_store(ray_address, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  "--set", "name=resumed", "--set", "stop.iterations=2", "--set", "stop.mean_return=null",
                  "--set", "output.loggers=[mlflow]", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = tmp_path.glob("resumed__*")
    out = run_cli("resume", str(run_dir), "--address", ray_address, "--set", "stop.iterations=4", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    uri = trackers.mlflow_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    (run,) = runs_of(uri, "resumed")
    assert run.info.status == "FINISHED"
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    history = client(uri).get_metric_history(run.info.run_id, "counters/iteration")
    assert [m.step for m in history] == steps and [m.value for m in history] == [1, 2, 3, 4]
    assert "learning_curve.png" in artifact_paths(uri, run.info.run_id)
    assert run.info.artifact_uri.startswith((tmp_path.resolve() / "mlartifacts").as_uri())


def test_credentials_in_the_tracking_uri_are_never_shown_or_sent_to_a_job(tmp_path, monkeypatch, capsys):
    from cluster.infra import jobs

    secret = "https://me:s3cret@mlflow.team/"
    assert trackers.shown_uri(f"error talking to {secret}api") == "error talking to https://***@mlflow.team/api"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secret)
    assert trackers.where(["mlflow"], tmp_path) == [("mlflow", "https://***@mlflow.team/")]
    _, env = jobs.job_spec("train", str(REPO / "configs" / "cartpole.yaml"), [],
                           "http://10.0.0.1:8265", "/shared/runs", None, str(tmp_path))
    assert "MLFLOW_TRACKING_URI" not in env["env_vars"]
    assert "holds credentials, so it is not passed to the job" in capsys.readouterr().err


def test_labrun_mlflow_on_a_folder_without_a_store_is_exit_2(tmp_path):
    out = run_cli("mlflow", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: {tmp_path.resolve() / 'mlflow.db'}: no MLflow store (train "
                                  f"with `--set output.loggers=[mlflow]`, or name the runs folder)")
