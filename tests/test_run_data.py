"""No run data is lost (issue #14): checkpoints that fail to load are skipped for the newest
intact one, iterations sort as numbers, a dead writer's temporary folders go, a non-finite state
is never saved (and ends the run), ``resume`` checks the checkpoint against the new config before
writing anything and rewrites the metrics file atomically, a run folder has one writer, and the
storage mirror deletes only what it put there. Faults are real: files cut short, processes killed
mid-write (a file-size limit's SIGXFSZ), a second process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cluster.errors import UsageError
from cluster.reinforce import checkpoint
from cluster.reinforce.outputs import METRICS_FILE, read_metrics, with_returns
from cluster.storage import Mirror
from helpers import REPO, only_run_dir, run_cli, start_cli, wait_for

CARTPOLE_SHAPES = [(4, 32), (32,), (32, 2), (2,)]          # configs/cartpole.yaml's policy
FAST = ["--set", "rollout.num_workers=1", "--set", "rollout.envs_per_worker=2"]


def learner_state(shapes=CARTPOLE_SHAPES, value: float = 0.1, n: int = 1) -> dict:
    """A learner state as ReinforceLearner.get_state() gives it: weights, then Adam's step,
    rate, and m and v of each weight."""
    weights = [np.full(s, value, np.float32) for s in shapes]
    optimizer = [np.array(n, np.int64), np.array(0.01, np.float32)]
    optimizer += [np.zeros(s, np.float32) for s in shapes for _ in "mv"]
    return {"weights": weights, "optimizer": optimizer, "num_updates": n}


LIMIT = 64 << 10


def python(code: str, limit: str | None = None) -> subprocess.Popen:
    """``code`` in a fresh Python (this one's, the repository first on its path). With ``limit``,
    the line ``# LIMIT`` of the code (after its imports) stops its files growing past LIMIT
    bytes: a write past it then kills the process with SIGXFSZ, as a kill in mid-write would
    (``limit="kill"``), or fails with EFBIG (``limit="disk full"``: SIGXFSZ ignored, as Python
    has it by default), as a full disk fails with ENOSPC."""
    code = textwrap.dedent(code)
    if limit is not None:
        action = "SIG_IGN" if limit == "disk full" else "SIG_DFL"   # Python starts with SIG_IGN
        code = code.replace("# LIMIT", f"import resource, signal\n"
                            f"signal.signal(signal.SIGXFSZ, signal.{action})\n"
                            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, resource.RLIM_INFINITY))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def make_run(root: Path, iterations=(1, 2, 3)) -> Path:
    """A CartPole run folder as ``labrun train`` leaves it: config.yaml and checkpoints."""
    from cluster.config.rl_experiment import dump_experiment, load_experiment

    run = root / "cartpole__0__20260101-000000"
    run.mkdir(parents=True)
    dump_experiment(load_experiment(REPO / "configs/cartpole.yaml"), run / "config.yaml")
    for i in iterations:
        checkpoint.save(run / "checkpoints", i, learner_state(n=i), {"iteration": i, "env_steps": 100 * i},
                        keep=5)
    return run


# ------------------------------------------------------------------------------- checkpoints


def test_the_newest_intact_checkpoint_is_found_past_a_truncated_and_an_empty_one(tmp_path):
    run = make_run(tmp_path)
    npz = run / "checkpoints/iter_000003/learner.npz"
    os.truncate(npz, npz.stat().st_size // 2)                       # cut short, as by a kill
    (run / "checkpoints/iter_000002/state.json").write_text("")    # written, never filled
    found = checkpoint.newest_intact(run / "checkpoints")
    assert found.path.name == "iter_000001" and found.counters["iteration"] == 1
    assert found.learner["num_updates"] == 1
    (skip3, why3), (skip2, why2) = found.skipped
    assert skip3.name == "iter_000003" and "learner.npz" in why3 and "BadZipFile" in why3
    assert skip2.name == "iter_000002" and "state.json is empty" in why2
    os.truncate(run / "checkpoints/iter_000001/learner.npz", 0)
    assert checkpoint.newest_intact(run / "checkpoints").path is None


def test_eval_uses_the_newest_intact_checkpoint_and_says_which_it_skipped(tmp_path):
    """Today's bug: a truncated newest learner.npz stopped eval with 'BadZipFile' (exit 1)
    although older checkpoints were whole; none whole is exit 2 with one line."""
    run = make_run(tmp_path)
    npz = run / "checkpoints/iter_000003/learner.npz"
    os.truncate(npz, npz.stat().st_size // 2)
    out = run_cli("eval", str(run), "--episodes", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "skipped checkpoint iter_000003" in out.stderr and "BadZipFile" in out.stderr
    assert json.loads((run / "eval.json").read_text())["eval/checkpoint_iteration"] == 2
    for i in (1, 2):
        (run / f"checkpoints/iter_00000{i}/state.json").write_text("")
    out = run_cli("eval", str(run), "--episodes", "1")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "no intact checkpoint" in out.stderr
    assert all(f"iter_00000{i}" in out.stderr for i in (1, 2, 3))


def test_metrics_leave_out_a_row_still_being_written_and_curves_only_rows_with_a_return(tmp_path):
    rows = [{"step": 1, "counters/env_steps": 500},                        # no game ended yet
            {"step": 2, "rollout/episode_return_mean": -20.0},
            {"step": 3, "counters/env_steps": 1500},                       # a piece, no game ended
            {"step": 4, "rollout/episode_return_mean": -19.5}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / METRICS_FILE).write_text(text + '{"step": 5, "rollout/epi')  # the run appending
    assert read_metrics(tmp_path) == rows
    assert [r["step"] for r in with_returns(read_metrics(tmp_path))] == [2, 4]


def test_iterations_sort_as_numbers_past_999999(tmp_path):
    """iter_1000000 sorts before iter_999999 as text: keep=1 deleted the newest one."""
    root = tmp_path / "checkpoints"
    checkpoint.save(root, 999_999, learner_state(), {"iteration": 999_999}, keep=1)
    checkpoint.save(root, 1_000_000, learner_state(), {"iteration": 1_000_000}, keep=1)
    assert [p.name for p in checkpoint.list_checkpoints(root)] == ["iter_1000000"]
    assert checkpoint.latest(root).name == "iter_1000000"
    checkpoint.save(root, 1_000_001, learner_state(), {"iteration": 1_000_001}, keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(root)] == ["iter_1000000", "iter_1000001"]


def test_a_killed_writers_temporary_folder_goes_with_the_next_checkpoint_a_live_ones_stays(tmp_path):
    root = tmp_path / "checkpoints"
    checkpoint.save(root, 1, learner_state(), {"iteration": 1}, keep=5)
    killed = python(f"""
        import numpy as np
        from pathlib import Path
        from cluster.reinforce import checkpoint
        # LIMIT
        state = {{"weights": [np.ones((512, 512), np.float32)], "optimizer": [], "num_updates": 2}}
        checkpoint.save(Path({str(root)!r}), 2, state, {{"iteration": 2}}, keep=5)
    """, limit="kill")
    assert killed.wait(timeout=60) == -signal.SIGXFSZ, killed.stderr.read()
    orphan = root / f".tmp-iter_000002-{killed.pid}"
    assert 0 < (orphan / "learner.npz").stat().st_size <= LIMIT     # cut off mid-write
    live = python(f"""
        import os, time
        from pathlib import Path
        Path({str(root)!r}, f".tmp-iter_000003-{{os.getpid()}}").mkdir()
        print("writing", flush=True)
        time.sleep(120)
    """)
    try:
        assert live.stdout.readline() == "writing\n"
        checkpoint.save(root, 3, learner_state(), {"iteration": 3}, keep=5)
        assert not orphan.exists()
        assert (root / f".tmp-iter_000003-{live.pid}").is_dir()     # another live writer's
        assert [p.name for p in checkpoint.list_checkpoints(root)] == ["iter_000001", "iter_000003"]
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("where", ["weights", "optimizer"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_save_refuses_a_non_finite_state_and_keeps_the_last_finite_checkpoint(tmp_path, where, bad):
    root = tmp_path / "checkpoints"
    checkpoint.save(root, 1, learner_state(), {"iteration": 1}, keep=1)
    state = learner_state(n=2)
    state[where][-1][0] = bad
    with pytest.raises(ValueError, match=rf"{where}_\d+ .*NaN or inf"):
        checkpoint.save(root, 2, state, {"iteration": 2}, keep=1)
    assert [p.name for p in root.iterdir()] == ["iter_000001"]       # no temporary folder either
    assert checkpoint.load(root / "iter_000001")[0]["num_updates"] == 1


# --------------------------------------------------------------- the checkpoint fits the config


def test_weight_shapes_are_the_keras_policys_and_a_real_learner_state_fits():
    from rl.config import ConvLayer, LearnerConfig, PolicyConfig
    from rl.learner import ReinforceLearner
    from rl.networks import build_policy
    from rl.policy import weight_shapes

    for obs, cfg in [((4,), PolicyConfig()), ((6,), PolicyConfig(hidden_sizes=(16, 8), activation="tanh")),
                     ((80, 80, 1), PolicyConfig(conv=(ConvLayer(32, 5, 2), ConvLayer(48, 3, 2)),
                                                hidden_sizes=(64,))),
                     ((42, 41, 3), PolicyConfig(conv=(ConvLayer(8, 5, 3),), hidden_sizes=(7,)))]:
        model = build_policy(obs, 5, cfg, seed=0)
        assert weight_shapes(obs, 5, cfg) == [w.shape for w in model.get_weights()]
    state = ReinforceLearner((4,), 2, PolicyConfig(), LearnerConfig()).get_state()
    assert checkpoint.misfit(state, (4,), 2, PolicyConfig()) is None        # Adam's layout too


def test_a_misfit_names_the_part_of_the_config_at_fault():
    from rl.config import ConvLayer, PolicyConfig
    from rl.policy import weight_shapes

    def misfit(saved_obs, saved_actions, saved_cfg, obs, actions, cfg):
        state = learner_state(weight_shapes(saved_obs, saved_actions, saved_cfg))
        found = checkpoint.misfit(state, obs, actions, cfg)
        return found and found[0]

    mlp, conv = PolicyConfig(), PolicyConfig(conv=(ConvLayer(16, 3, 2),), hidden_sizes=(32,))
    assert misfit((4,), 2, mlp, (4,), 2, mlp) is None
    assert misfit((4,), 2, mlp, (4,), 2, PolicyConfig(hidden_sizes=(64,))) == "policy.hidden_sizes"
    assert misfit((4,), 2, mlp, (4,), 2, PolicyConfig(hidden_sizes=(32, 32))) == "policy.hidden_sizes"
    assert misfit((4,), 2, mlp, (6,), 2, mlp) == "env"                        # observations
    assert misfit((4,), 2, mlp, (4,), 3, mlp) == "env"                        # actions
    assert misfit((8, 8, 1), 2, conv, (8, 8, 1), 2, PolicyConfig(conv=(ConvLayer(8, 3, 2),))) \
        == "policy.conv"
    assert misfit((8, 8, 1), 2, conv, (8, 8, 2), 2, conv) == "env"            # channels
    assert misfit((8, 8, 1), 2, conv, (8, 8, 1), 2, mlp) == "policy.conv"
    state = learner_state()
    state["optimizer"] = state["optimizer"][:2]
    assert checkpoint.misfit(state, (4,), 2, mlp)[0] == "learner"


def test_a_value_baseline_is_saved_loaded_and_must_match_the_config(tmp_path):
    from rl.config import LearnerConfig, PolicyConfig
    from rl.learner import ReinforceLearner

    state = ReinforceLearner((4,), 2, PolicyConfig(), LearnerConfig(baseline="value")).get_state()
    assert checkpoint.misfit(state, (4,), 2, PolicyConfig(), value=True) is None   # Adam's too
    path = checkpoint.save(tmp_path, 1, state, {"iteration": 1}, keep=2)
    loaded, _ = checkpoint.load(path)
    for saved, read in zip(state["value_weights"], loaded["value_weights"], strict=True):
        np.testing.assert_array_equal(saved, read)
    assert checkpoint.misfit(loaded, (4,), 2, PolicyConfig())[0] == "learner.baseline"
    assert checkpoint.misfit(learner_state(), (4,), 2, PolicyConfig(), value=True) == \
        ("learner.baseline", "it has no learned value baseline to continue")


# ------------------------------------------------------------------------------ metrics file


@pytest.mark.parametrize("fault", ["kill", "disk full"])
def test_a_resume_killed_or_out_of_space_while_rewriting_metrics_keeps_the_history(tmp_path, fault):
    """RunOutputs(resume_step) rewrites metrics.jsonl without the rows after the checkpoint:
    written in place, a fault in mid-write truncated the whole history."""
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"timestamp": 0.0, "step": 100 * i, "counters/iteration": i, "pad": "x" * 100}
            for i in range(1, 2001)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = (run / "metrics.jsonl").read_bytes()
    proc = python(f"""
        from pathlib import Path
        import tensorboardX
        from cluster.reinforce.outputs import RunOutputs
        # LIMIT
        RunOutputs(Path({str(run)!r}), resume_step=150000)
    """, limit=fault)
    code = proc.wait(timeout=120)
    assert code == (-signal.SIGXFSZ if fault == "kill" else 1), proc.stderr.read()
    assert (run / "metrics.jsonl").read_bytes() == before
    assert len(read_metrics(run)) == 2000


# -------------------------------------------------------------------------- one writer a run


def test_a_run_folder_has_one_writer_and_its_lock_goes_with_the_process(tmp_path):
    from cluster.folders import locked

    run = make_run(tmp_path)
    holder = python(f"""
        import time
        from pathlib import Path
        from cluster.folders import locked
        with locked(Path({str(run)!r})):
            print("locked", flush=True)
            time.sleep(120)
    """)
    try:
        assert holder.stdout.readline() == "locked\n", holder.stderr.read()
        with pytest.raises(UsageError, match=rf"^{re.escape(str(run))}: .*PID {holder.pid}\b"):
            with locked(run):
                pass
        holder.send_signal(signal.SIGKILL)                       # no chance to clean up
        holder.wait(timeout=30)
    finally:
        holder.kill()
    with locked(run):                                            # the kernel let go of it
        assert (run / ".lock").read_text() == f"{os.getpid()}\n"


# ------------------------------------------------------------------------------------ storage


def test_the_mirror_deletes_at_the_uri_only_files_it_put_there(tmp_path):
    """Two writers at one URI: each one's push leaves the other's files, and a folder holding
    them; what a mirror deleted locally it deletes there."""
    remote = tmp_path / "bucket" / "run"
    uri = f"file://{remote}"
    a = Mirror(tmp_path / "a", uri)
    (a.local / "checkpoints" / "iter_1").mkdir(parents=True)
    (a.local / "checkpoints" / "iter_1" / "learner.npz").write_bytes(b"one")
    (a.local / "metrics.jsonl").write_text("{}\n")
    assert a.push() == 2
    other = python(f"""
        from pathlib import Path
        from cluster.storage import Mirror
        local = Path({str(tmp_path / "b")!r})
        (local / "videos").mkdir(parents=True)
        (local / "videos" / "eval.gif").write_bytes(b"gif")
        (local / "eval.json").write_text("{{}}")
        print(Mirror(local, {uri!r}).push())
    """)
    assert other.wait(timeout=60) == 0, other.stderr.read()
    assert other.stdout.read() == "2\n"
    assert (remote / "metrics.jsonl").is_file() and (remote / "checkpoints/iter_1/learner.npz").is_file()
    (a.local / "checkpoints" / "iter_1" / "learner.npz").unlink()
    (a.local / "checkpoints" / "iter_1").rmdir()
    (a.local / "checkpoints" / "iter_2").mkdir()
    (a.local / "checkpoints" / "iter_2" / "learner.npz").write_bytes(b"two")
    assert a.push() == 1
    assert not (remote / "checkpoints/iter_1").exists()
    assert sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()) == \
        ["checkpoints/iter_2/learner.npz", "eval.json", "metrics.jsonl", "videos/eval.gif"]


# ------------------------------------------------------------------- through the CLI, on Ray


def test_resume_refuses_a_config_the_checkpoint_does_not_fit_then_falls_back_past_a_truncated_one(
        ray_address, tmp_path):
    """Today: --set policy.hidden_sizes=[64] rewrote config.yaml, then the learner failed, and
    the run could neither resume nor be evaluated; a truncated newest checkpoint stopped resume."""
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  "--set", "stop.iterations=2", "--set", "output.checkpoint_every=1", *FAST)
    assert out.returncode == 0, out.stdout + out.stderr
    run = only_run_dir(tmp_path)
    config, metrics = (run / "config.yaml").read_bytes(), (run / "metrics.jsonl").read_bytes()

    out = run_cli("resume", str(run), "--address", ray_address, "--set", "policy.hidden_sizes=[64]")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1
    assert "--set: policy.hidden_sizes: checkpoint iter_000002 does not fit" in out.stderr
    assert (run / "config.yaml").read_bytes() == config
    assert (run / "metrics.jsonl").read_bytes() == metrics

    npz = run / "checkpoints/iter_000002/learner.npz"
    os.truncate(npz, npz.stat().st_size // 2)
    out = run_cli("resume", str(run), "--address", ray_address, "--set", "stop.iterations=3")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "skipped checkpoint iter_000002" in out.stderr and "BadZipFile" in out.stderr
    assert [r["counters/iteration"] for r in read_metrics(run)] == [1, 2, 3]
    assert "resumed at iteration 1" in (run / "run.log").read_text()
    learner, counters = checkpoint.load(checkpoint.latest(run / "checkpoints"))
    assert counters["iteration"] == 3 and learner["num_updates"] == 3
    assert checkpoint.load(run / "checkpoints/iter_000002")[1]["iteration"] == 2   # rewritten whole


def test_a_second_writer_is_refused_while_a_run_trains_and_the_lock_goes_with_a_kill(ray_address,
                                                                                    tmp_path):
    proc = start_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                     "--set", "stop.iterations=1000", "--set", "stop.mean_return=null", *FAST)
    try:
        run = wait_for(lambda: next((p for p in tmp_path.iterdir() if p.is_dir()), None), 120,
                       what="the run folder")
        wait_for(lambda: read_metrics(run), 120, 0.1, "a first iteration")
        out = run_cli("resume", str(run), "--address", ray_address, "--set", "stop.iterations=1")
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stderr == (f"error: {run}: another process (PID {proc.pid}) is writing this run "
                              f"folder; wait for it to end or stop it\n")
        assert proc.poll() is None                               # the first one goes on
        proc.kill()                                              # SIGKILL: no clean-up
        proc.wait(timeout=30)
    finally:
        proc.kill()
    from cluster.folders import locked

    with locked(run):                                            # the kernel let go of it
        pass


def test_a_non_finite_loss_ends_the_run_with_exit_1_keeping_the_last_finite_checkpoint(ray_address,
                                                                                      tmp_path):
    """A learning rate of 1e38 makes the weights overflow within two updates: the run used to
    go on with NaN, checkpointing it (and pruning the finite ones), and exit 0."""
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(tmp_path),
                  "--set", "learner.lr=1e38", "--set", "stop.iterations=6",
                  "--set", "output.checkpoint_every=1", "--set", "output.keep_checkpoints=1", *FAST)
    assert out.returncode == 1, out.stdout + out.stderr
    found = re.search(r"error: non-finite (learner/loss \(\S+\)|policy weights_\d+) at iteration (\d+); "
                      r"the last finite checkpoint is (iter_\d{6})\n", out.stderr)
    assert found, out.stdout + out.stderr
    run = only_run_dir(tmp_path)
    kept = checkpoint.list_checkpoints(run / "checkpoints")
    assert [p.name for p in kept] == [found.group(3)]
    assert int(found.group(3)[5:]) == int(found.group(2)) - 1
    learner, _ = checkpoint.load(kept[0])
    assert all(np.isfinite(a).all() for a in learner["weights"] + learner["optimizer"])
    assert "stopped: non-finite" in (run / "run.log").read_text()
