"""The supervised labs as Ray Tune trials, through the real ``labrun`` command line."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from cluster.config.schema import ConfigError
from cluster.labs import load, load_sweep
from cluster.reinforce.startup import parse_line
from cluster.tuning.results import read_results
from helpers import REPO, run_cli, write_sweep

pytestmark = pytest.mark.slow

INTRO_FAST = ["--set", "intro.epochs=3", "--set", "intro.steps_per_epoch=20"]


def trial_rows(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line]


def trial_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "result.json").exists())


@pytest.mark.parametrize("space, extra, expected", [
    ({"intro.lr": {"gaussian": [0, 1]}}, {}, "search_space.intro.lr: unknown search-space kind 'gaussian'"),
    ({"intro.lr": {"grid": []}}, {}, "search_space.intro.lr: grid: expected a non-empty list"),
    ({"intro.lr": {"loguniform": [0, 1]}}, {}, "loguniform: expected low > 0"),
    ({"intro.lr": {"uniform": [1, 0.5]}}, {}, "uniform: expected [low, high] numbers with low < high"),
    ({"intro.lrr": {"grid": [0.1]}}, {}, "search_space.intro.lrr: grid value 0.1 does not fit the experiment: intro.lrr: unknown key"),
    ({"intro.lr": {"grid": [0.1, -1]}}, {}, "grid value -1 does not fit the experiment: intro.lr: expected a number > 0"),
    ({"intro.lr": {"grid": [0.1]}}, {"metric": "test/accuracy"}, "metric: 'test/accuracy' is not reported by the intro lab; it reports fit/loss"),
    ({}, {}, "search_space: expected at least one key"),
])
def test_bad_sweeps_are_refused_before_any_trial(tmp_path, space, extra, expected):
    path = write_sweep(tmp_path, space, **extra)
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    assert expected in str(info.value)


def test_bad_sweep_through_the_cli_exits_2_without_starting_ray(tmp_path):
    path = write_sweep(tmp_path, {"intro.lr": {"grid": []}})
    out = run_cli("tune", str(path))
    assert out.returncode == 2 and "grid: expected a non-empty list" in out.stderr
    assert "Traceback" not in out.stderr and "running" not in out.stdout


def test_an_unknown_lab_is_bad_input(tmp_path):
    (tmp_path / "x.yaml").write_text("lab: gan\n")
    with pytest.raises(ConfigError, match="lab: expected one of 'rl', 'mnist', 'intro', 'music', 'dbvae', got 'gan'"):
        load(tmp_path / "x.yaml")


def test_intro_trial_converges_and_leaves_checkpoints(ray_address, tmp_path):
    out = run_cli("train", "configs/intro.yaml", "--address", ray_address, "--runs-dir", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    folder = next(tmp_path.iterdir())
    (trial,) = trial_dirs(folder)
    rows = trial_rows(trial)
    assert [r["counters/epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[-1]["fit/loss"] < rows[0]["fit/loss"]
    assert rows[-1]["fit/slope"] == pytest.approx(3, abs=0.1)
    assert list(trial.glob("checkpoint_*"))
    assert (folder / "best_config.yaml").exists() and (folder / "experiment.yaml").exists()
    assert "fit/loss" in out.stdout


def test_mnist_trial_reports_accuracy_and_images(ray_address, tmp_path):
    out = run_cli("train", "configs/mnist.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  "--set", "mnist.epochs=1", "--set", "mnist.train_limit=3000",
                  "--set", "mnist.lr_schedule=constant")
    assert out.returncode == 0, out.stdout + out.stderr
    (trial,) = trial_dirs(next(tmp_path.iterdir()))
    (row,) = trial_rows(trial)
    assert row["test/accuracy"] > 0.85 and row["counters/epoch"] == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images = EventAccumulator(str(trial / "images"), size_guidance={"images": 0})
    images.Reload()
    assert {"mnist/confusion_matrix", "mnist/misclassified"} <= set(images.Tags()["images"])
    scalars = EventAccumulator(str(trial))                           # Tune's own TensorBoard logger
    scalars.Reload()
    assert any(tag.endswith("test/accuracy") for tag in scalars.Tags()["scalars"])


def test_a_two_trial_sweep_writes_table_best_config_and_plot(ray_address, tmp_path):
    path = write_sweep(tmp_path, {"intro.lr": {"grid": [0.002, 0.02]}}, max_concurrent_trials=2)
    out = run_cli("tune", str(path), "--address", ray_address, "--runs-dir", str(tmp_path / "runs"),
                  env={**os.environ, "COLUMNS": "80"})
    assert out.returncode == 0, out.stdout + out.stderr
    folder = next((tmp_path / "runs").iterdir())
    assert (folder / "results.csv").read_text().startswith("trial,intro.lr,fit/loss,epochs,status")
    # a quiet, truthful console: none of Tune's own output (its box, a TensorBoard hint on a
    # folder under Ray's temp directory, its snapshot warning), the table within 80 columns
    # with short trial ids and the swept value as a column
    assert "/tmp/ray" not in out.stdout + out.stderr and "Configuration for experiment" not in out.stdout
    assert "snapshotting" not in out.stderr, out.stderr
    table = out.stdout[out.stdout.index("labrun: "):]
    assert max(map(len, table.splitlines())) <= 80, table
    assert re.search(r"│ [0-9a-f]{5}_0000[01] +│ 0\.02 ", table), table
    rows = read_results(folder)
    losses = [float(row["fit/loss"]) for row in rows]
    assert len(rows) == 2 and losses == sorted(losses)               # best (lowest) first
    assert float(rows[0]["intro.lr"]) == 0.02                        # the larger step fits faster
    lab, best = load(folder / "best_config.yaml")                # labrun train accepts it
    assert lab.name == "intro" and best.intro.lr == 0.02
    assert (folder / "comparison.png").stat().st_size > 0


def test_a_trial_that_crashes_once_resumes_from_its_checkpoint(ray_address, tmp_path):
    out = run_cli("train", "configs/intro.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  *INTRO_FAST, "--set", "trial.fail_once_after_epoch=2")
    assert out.returncode == 0, out.stdout + out.stderr
    (trial,) = trial_dirs(next(tmp_path.iterdir()))
    assert (trial / "injected_failure").exists()
    epochs = [r["counters/epoch"] for r in trial_rows(trial)]
    assert epochs == [1, 2, 3]                                       # not 1, 2, 1, 2, 3: restored


def test_a_pytorch_trial_that_crashes_once_resumes_from_its_checkpoint(ray_address, tmp_path):
    out = run_cli("train", "configs/intro.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  *INTRO_FAST, "--set", "framework=torch", "--set", "trial.fail_once_after_epoch=2")
    assert out.returncode == 0, out.stdout + out.stderr
    (trial,) = trial_dirs(next(tmp_path.iterdir()))
    assert (trial / "injected_failure").exists() and (trial / "device").read_text() == "torch on cpu (1 thread)\n"
    rows = trial_rows(trial)
    assert [r["counters/epoch"] for r in rows] == [1, 2, 3]          # restored, not started again
    assert rows[-1]["fit/slope"] == pytest.approx(3, abs=0.2)
    assert list(trial.glob("checkpoint_*/weights.pt"))               # PyTorch's state dicts


def test_a_sweep_over_both_frameworks_reports_both(ray_address, tmp_path):
    path = write_sweep(tmp_path, {"framework": {"grid": ["tensorflow", "torch"]}}, max_concurrent_trials=2)
    out = run_cli("tune", str(path), "--address", ray_address, "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stdout + out.stderr
    folder = next((tmp_path / "runs").iterdir())
    rows = read_results(folder)
    assert sorted(row["framework"] for row in rows) == ["tensorflow", "torch"], rows
    assert all(row["status"] == "ok" and float(row["fit/loss"]) < 0.5 for row in rows), rows
    devices = sorted((trial / "device").read_text().split()[0] for trial in trial_dirs(folder))
    assert devices == ["tensorflow", "torch"]


def cartpole_sweep(tmp_path: Path, fixed: dict, **extra) -> Path:
    experiment = yaml.safe_load((REPO / "configs" / "cartpole.yaml").read_text())
    return write_sweep(tmp_path, {"learner.lr": {"grid": [0.001, 0.03]}},
                       metric="rollout/episode_return_mean", mode="max", experiment=experiment,
                       fixed=fixed, **extra)


def test_rl_sweeps_need_a_number_of_workers_and_a_real_environment(tmp_path):
    with pytest.raises(ConfigError, match="rollout.num_workers: a sweep's trials need a number of workers"):
        load_sweep(cartpole_sweep(tmp_path, fixed={}))
    with pytest.raises(ConfigError, match="env: cannot make 'NoSuchEnv-v0'"):
        load_sweep(cartpole_sweep(tmp_path, fixed={"rollout.num_workers": 1, "env.id": "NoSuchEnv-v0"}))
    with pytest.raises(ConfigError, match="fixed: does not fit the experiment: learner.lr: expected a number > 0"):
        load_sweep(cartpole_sweep(tmp_path, fixed={"rollout.num_workers": 1, "learner.lr": -1}))


def test_an_rl_trial_reserves_its_workers_in_one_placement_group():
    from cluster.reinforce.trial import bundles, resolve_gpus, trial_config

    cfg = trial_config({"rollout": {"num_workers": 3}, "resources": {"cpus_per_worker": 0.5,
                                                                     "learner_gpus": 0.25}}, {})
    assert bundles(cfg) == [{"CPU": 1.0}, {"CPU": 0.5}, {"CPU": 0.5}, {"CPU": 0.5},
                            {"CPU": 1.0, "GPU": 0.25}]                # the learner's: a CPU beside its GPU
    auto = {"resources": {"learner_gpus": "auto"}}
    assert resolve_gpus(auto, cluster_gpus=0)["resources"]["learner_gpus"] == 0.0
    assert resolve_gpus(auto, cluster_gpus=2)["resources"]["learner_gpus"] == 1.0


def test_an_rl_sweep_runs_whole_reinforce_runs_as_trials(ray_address, tmp_path):
    # Each trial needs 2 CPUs (itself and one worker) on this 2-CPU cluster and two may start at
    # once: without placement groups both would take a CPU and wait for their workers forever.
    path = cartpole_sweep(tmp_path, max_concurrent_trials=2, fixed={
        "rollout.num_workers": 1, "rollout.envs_per_worker": 4, "stop.iterations": 4,
        "output.checkpoint_every": 2})
    out = run_cli("tune", str(path), "--address", ray_address, "--runs-dir", str(tmp_path / "runs"),
                  timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    folder = next((tmp_path / "runs").iterdir())
    rows = read_results(folder)
    assert list(rows[0])[:3] == ["trial", "learner.lr", "rollout/episode_return_mean"]
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows), rows
    for trial in trial_dirs(folder):
        assert [r["counters/iteration"] for r in trial_rows(trial)] == [1, 2, 3, 4]
        run = trial / "run"                                          # an ordinary run folder
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["rollout"]["num_workers"] == 1 and cfg["learner"]["lr"] in (0.001, 0.03)
        assert (run / "checkpoints" / "iter_000004" / "learner.npz").exists()
        assert list(trial.glob("checkpoint_*"))                      # reported to Tune as well
        # start-up timed from the trial's start; TensorFlow loads after the checks, beside the
        # workers starting (not before: enable_memory_growth imported it first)
        phases = parse_line((run / "run.log").read_text())
        assert set(phases) == {"checked", "tensorflow", "workers_ready", "learner_built",
                               "first_iteration"}
        assert phases["checked"][1] <= phases["tensorflow"][0] < phases["workers_ready"][1]
        assert {r["time/startup_s"] for r in trial_rows(trial)} == {phases["first_iteration"][1]}
    best_lr = float(rows[0]["learner.lr"])
    lab, best = load(folder / "best_config.yaml")
    assert lab.name == "rl" and best.learner.lr == best_lr and best.rollout.num_workers == 1


def test_an_interrupted_sweep_resumes_its_unfinished_trials(ray_address, tmp_path):
    """Ctrl-C mid-sweep exits 130 and says how to continue; `labrun resume` finishes the trials,
    the interrupted one from its last checkpoint rather than from epoch 1."""
    import signal

    from helpers import start_cli, wait_for

    experiment = {"name": "intro_t", "lab": "intro", "intro": {"epochs": 8, "steps_per_epoch": 1500},
                  "trial": {"cpus": 1, "gpus": 0}}
    path = write_sweep(tmp_path, {"intro.lr": {"grid": [0.002, 0.02]}}, experiment=experiment,
                       max_concurrent_trials=1)
    runs = tmp_path / "runs"
    proc = start_cli("tune", str(path), "--address", ray_address, "--runs-dir", str(runs))
    try:
        first = wait_for(lambda: next((t for t in trial_dirs(runs / next(runs.iterdir()).name)
                                       if len(trial_rows(t)) >= 2), None) if runs.exists() and
                         any(runs.iterdir()) else None, 180, 0.2, "a trial's second epoch")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    folder = first.parent
    assert f"labrun resume {folder}" in output
    assert len(trial_rows(first)) < 8

    out = run_cli("resume", str(folder), "--address", ray_address, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = read_results(folder)
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows), rows
    for trial in trial_dirs(folder):
        epochs = [r["counters/epoch"] for r in trial_rows(trial)]
        assert sorted(set(epochs)) == list(range(1, 9)) and epochs.count(1) == 1, epochs


def test_a_sweep_started_before_the_callbacks_module_moved_still_restores_it():
    """tuner.pkl names the console callback by module path; older sweeps name the old one."""
    import pickle

    from cluster.tuning.progress import Progress
    from cluster.tuning.runner import accept_old_tuner_files

    old = pickle.dumps(Progress("fit/loss", every_s=3.0), protocol=0).replace(
        b"cluster.tuning.progress", b"cluster.tune_progress")
    assert b"cluster.tune_progress" in old
    accept_old_tuner_files()
    restored = pickle.loads(old)
    assert isinstance(restored, Progress) and (restored.metric, restored.every_s) == ("fit/loss", 3.0)
