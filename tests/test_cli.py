"""The real ``labrun`` command line, end to end, on the session's Ray head (127.0.0.1)."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml

from cluster.labs import LABS
from cluster.reinforce import checkpoint
from cluster.reinforce.outputs import read_metrics
from cluster.tuning.results import read_results
from helpers import REPO, free_port, only_run_dir, run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow

SCALARS = [
    "rollout/episode_return_mean", "rollout/episode_return_min", "rollout/episode_return_max",
    "rollout/episode_length_mean", "learner/loss", "learner/entropy", "learner/grad_norm",
    "time/env_steps_per_s", "time/sample_s", "time/learn_s",
]


@pytest.fixture(scope="module")
def solved_run(ray_address, tmp_path_factory) -> tuple[Path, str]:
    """configs/cartpole.yaml trained through the CLI with 2 Ray rollout workers until solved."""
    runs = tmp_path_factory.mktemp("solved")
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(runs),
                  "--set", "rollout.num_workers=2", "--set", "stop.env_steps=800000")
    assert out.returncode == 0, out.stdout + out.stderr
    return only_run_dir(runs), out.stdout


def test_cartpole_is_solved_within_its_step_budget(solved_run):
    run_dir, stdout = solved_run
    rows = read_metrics(run_dir)
    last = rows[-1]
    assert last["rollout/episode_return_mean"] >= 475
    assert last["counters/episodes"] >= 100 and last["step"] <= 800_000 + 20_000
    assert "solved: mean return" in stdout and "run folder" in stdout
    listed = run_cli("runs", str(run_dir.parent), "--json")                 # labrun runs reads it
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert (entry["name"], entry["status"], entry["steps"]) == (run_dir.name, "finished", int(last["step"]))
    assert (run_dir / "config.yaml").is_file() and (run_dir / "learning_curve.png").stat().st_size > 1000
    ckpts = checkpoint.list_checkpoints(run_dir / "checkpoints")
    assert 1 <= len(ckpts) <= 3 and ckpts[-1].name == f"iter_{int(last['counters/iteration']):06d}"
    # env steps and iterations count up by one batch each row
    assert [r["counters/iteration"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(a["step"] < b["step"] for a, b in zip(rows, rows[1:]))


def test_tensorboard_files_hold_the_scalars(solved_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = solved_run
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert set(SCALARS) <= tags
    rows = read_metrics(run_dir)
    events = acc.Scalars("rollout/episode_return_mean")
    assert len(events) == len(rows)
    assert events[-1].step == rows[-1]["step"]
    assert events[-1].value == pytest.approx(rows[-1]["rollout/episode_return_mean"], rel=1e-5)


def test_eval_plays_the_trained_policy(solved_run):
    run_dir, _ = solved_run
    out = run_cli("eval", str(run_dir), "--episodes", "5")
    assert out.returncode == 0, out.stdout + out.stderr
    metrics = json.loads((run_dir / "eval.json").read_text())
    assert metrics["eval/episodes"] == 5
    assert metrics["eval/episode_return_mean"] >= 400   # a random policy scores about 22
    assert "episode_return_mean" in out.stdout


def test_tensorboard_command_serves_the_runs(solved_run):
    run_dir, _ = solved_run
    port = free_port()
    proc = start_cli("tensorboard", str(run_dir.parent), "--port", str(port))
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/#custom_scalars" in line     # opens on the layout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=30) as resp:
            assert resp.status == 200
        url = f"http://127.0.0.1:{port}/data/plugin/custom_scalars/layout"
        layout = wait_for(lambda: json.loads(urllib.request.urlopen(url, timeout=30).read()) or None,
                          60, 1.0, "the custom scalars layout")
        titles = [c["title"] for category in layout["category"] for c in category["chart"]]
        assert "episode return: mean, min-max band (last stop.window episodes)" in titles
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stdout.read()


def test_resume_continues_the_counters(ray_address, tmp_path):
    common = ("--set", "rollout.num_workers=2", "--set", "rollout.envs_per_worker=2")
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  "--set", "stop.iterations=3", *common)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = only_run_dir(tmp_path)
    first = read_metrics(run_dir)
    out = run_cli("resume", str(run_dir), "--address", ray_address, "--set", "stop.iterations=6")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = read_metrics(run_dir)
    assert [r["counters/iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[:3] == first
    assert all(a["step"] < b["step"] for a, b in zip(rows, rows[1:]))
    assert rows[3]["counters/episodes"] == first[-1]["counters/episodes"] + 2 * 2
    learner, counters = checkpoint.load(checkpoint.latest(run_dir / "checkpoints"))
    assert learner["num_updates"] == 6 and counters["iteration"] == 6
    assert "resumed at iteration 3" in (run_dir / "run.log").read_text()


def test_a_killed_worker_is_replaced_and_the_run_completes(ray_client, ray_address, tmp_path):
    proc = start_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                     "--set", "stop.iterations=25", "--set", "stop.mean_return=null",
                     "--set", "rollout.num_workers=2", "--set", "rollout.episodes_per_env=4")
    try:
        run_dir = wait_for(lambda: next((p for p in tmp_path.iterdir() if p.is_dir()), None), 120,
                           what="the run folder")
        wait_for(lambda: len(read_metrics(run_dir)) >= 3, 120, 0.05, "three iterations")
        names = [a["name"] for a in ray_client.util.list_named_actors(all_namespaces=True)
                 if a["name"].startswith(f"{run_dir.name}/rollout-1.")]
        assert names, "the run's rollout workers are named Ray actors"
        ray_client.kill(ray_client.get_actor(names[0], namespace="labrun"), no_restart=True)
        output, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    rows = read_metrics(run_dir)
    assert rows[-1]["counters/iteration"] == 25
    assert rows[-1]["counters/worker_restarts"] >= 1
    assert "rollout worker 1 was lost" in (run_dir / "run.log").read_text()
    assert "rollout worker 1 was lost" in output


def test_ctrl_c_checkpoints_and_leaves_no_processes(tmp_path):
    """On the embedded local Ray (no --address): SIGINT mid-run."""
    proc = start_cli("train", "configs/cartpole.yaml", "--runs-dir", str(tmp_path),
                     "--set", "stop.mean_return=null", "--set", "stop.env_steps=100000000",
                     "--set", "rollout.num_workers=2")
    try:
        run_dir = wait_for(lambda: next((p for p in tmp_path.iterdir() if p.is_dir()), None), 120,
                           what="the run folder")
        wait_for(lambda: len(read_metrics(run_dir)) >= 3, 180, 0.1, "three iterations")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "embedded Ray runs in child processes"
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    rows = read_metrics(run_dir)
    latest = checkpoint.latest(run_dir / "checkpoints")
    assert latest.name == f"iter_{int(rows[-1]['counters/iteration']):06d}"
    assert "interrupted" in (run_dir / "run.log").read_text()
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left running: {[p.pid for p in alive]}"


# The smallest budget of each kind of experiment file, as --set overrides.
TINY = {
    "rl": ["stop.iterations=2", "rollout.num_workers=1", "rollout.envs_per_worker=2"],
    "intro": ["intro.epochs=1", "intro.steps_per_epoch=5"],
    "mnist": ["mnist.epochs=1", "mnist.train_limit=500"],
    "music": ["music.epochs=1", "music.steps_per_epoch=5", "music.embedding_dim=8",
              "music.rnn_units=16", "music.seq_length=20", "music.generate_songs=1",
              "music.generation_length=100", "music.max_songs=50"],
    "dbvae": ["dbvae.dataset=bias_benchmark", "dbvae.epochs=1", "dbvae.steps_per_epoch=3",
              "dbvae.num_train=400", "dbvae.num_test_per_group=20", "dbvae.n_filters=4"],
}


def config_lab(path: Path) -> tuple[str, bool]:
    """(lab, whether it is a sweep file) of a shipped config."""
    data = yaml.safe_load(path.read_text())
    if "experiment" in data:
        return yaml.safe_load((path.parent / data["experiment"]).read_text()).get("lab", "rl"), True
    return data.get("lab", "rl"), False


def config_cases():
    """Every shipped config, and again in PyTorch where its lab has a PyTorch version."""
    for path in sorted((REPO / "configs").glob("*.yaml")):
        yield pytest.param(path, None, id=path.name)
        if "torch" in getattr(LABS[config_lab(path)[0]], "runners", {}):
            yield pytest.param(path, "torch", id=f"{path.name}-torch")


@pytest.mark.parametrize("config,framework", list(config_cases()))
def test_every_config_runs_a_tiny_budget(ray_address, tmp_path, config, framework):
    lab, sweep = config_lab(config)
    overrides = TINY[lab] + ([f"framework={framework}"] if framework else [])
    sets = [a for o in overrides for a in ("--set", f"fixed.{o}" if sweep else o)]
    if sweep:   # one trial: each grid cut to its first value (whole sweeps run in test_tune.py)
        space = yaml.safe_load(config.read_text())["search_space"]
        first = {key: {"grid": spec["grid"][:1]} for key, spec in space.items() if "grid" in spec}
        sets += ["--set", f"search_space={json.dumps(first)}"]
    out = run_cli("tune" if sweep else "train", str(config), "--address", ray_address,
                  "--runs-dir", str(tmp_path), *sets, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = only_run_dir(tmp_path)
    if lab == "rl" and not sweep:
        rows = read_metrics(run_dir)
        assert len(rows) == 2
        reported = set(rows[-1]) - {"timestamp", "step"}
        assert reported <= set(LABS["rl"].metrics()), f"not accepted by sweeps: {reported - set(LABS['rl'].metrics())}"
        assert checkpoint.latest(run_dir / "checkpoints") is not None
        return
    if lab != "rl":   # which framework trained it, on which device
        (device,) = [p.read_text() for p in run_dir.glob("*/device")]
        assert device.startswith(f"{framework or 'tensorflow'} on cpu"), device
        assert ("; LSTM: " in device) == (lab == "music"), device          # the kernel it chose
        assert "trained on" in out.stdout and f"{framework or 'tensorflow'} on cpu" in out.stdout, out.stdout
    rows = read_results(run_dir)                                      # Tune trials, best first
    assert [row["status"] for row in rows] == ["ok"], rows           # one trial, to its end
    assert (run_dir / "best_config.yaml").exists()


def test_bad_input_exits_2_with_one_message_and_no_traceback(tmp_path):
    out = run_cli("train", "configs/cartpole.yaml", "--set", "learner.gamma=1.5")
    assert out.returncode == 2
    assert "--set: learner.gamma: expected a number > 0 and <= 1, got 1.5" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    out = run_cli("train", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2 and "missing.yaml: no such file" in out.stderr
    out = run_cli("train", "configs/cartpole.yaml", "--set", "env.id=NoSuchEnv-v0")
    assert out.returncode == 2 and "env" in out.stderr and "NoSuchEnv-v0" in out.stderr
    out = run_cli("resume", str(tmp_path))
    assert out.returncode == 2 and "not a run folder" in out.stderr
    assert "Traceback" not in out.stderr


def test_more_workers_than_the_cluster_has_cpus_is_bad_input(ray_address, tmp_path):
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  "--set", "rollout.num_workers=5")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "rollout.num_workers: 5 workers x resources.cpus_per_worker=1 need 5 CPUs; " \
           "the Ray cluster has 2" in out.stderr


def test_help_explains_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("train", "tune", "resume", "eval", "tensorboard", "keys"):
        assert command in out.stdout
    out = run_cli("keys")
    assert out.returncode == 0 and "learner.lr" in out.stdout
    out = run_cli("keys", "mnist")
    assert out.returncode == 0 and "mnist.batch_size" in out.stdout and "learner.lr" not in out.stdout
    out = run_cli("keys", "sweep")
    assert out.returncode == 0 and "search_space" in out.stdout and "num_samples" in out.stdout


def test_a_run_killed_outright_resumes_from_its_last_checkpoint(ray_address, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = start_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                     "--set", "stop.mean_return=null", "--set", "stop.iterations=1000",
                     "--set", "output.checkpoint_every=5", "--set", "rollout.num_workers=2")
    try:
        run_dir = wait_for(lambda: next((p for p in tmp_path.iterdir() if p.is_dir()), None), 120,
                           what="the run folder")
        wait_for(lambda: checkpoint.latest(run_dir / "checkpoints"), 180, 0.05, "a checkpoint")
        # kill two or three iterations after a checkpoint, well clear of the next one
        wait_for(lambda: len(read_metrics(run_dir)) % 5 in (2, 3), 60, 0.01, "iterations past a checkpoint")
        proc.kill()                                          # SIGKILL: no chance to clean up
        proc.wait(timeout=30)
    finally:
        proc.kill()
    ckpt = checkpoint.latest(run_dir / "checkpoints")
    at = int(ckpt.name[5:])
    assert len(read_metrics(run_dir)) > at                  # rows the checkpoint does not cover
    out = run_cli("resume", str(run_dir), "--address", ray_address, "--set", f"stop.iterations={at + 2}")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = read_metrics(run_dir)
    assert [r["counters/iteration"] for r in rows] == list(range(1, at + 3))
    assert all(a["step"] < b["step"] for a, b in zip(rows, rows[1:]))
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("rollout/episode_return_mean")]
    assert steps == [r["step"] for r in rows]               # the orphaned events are purged
