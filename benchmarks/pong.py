"""Pong benchmarks: rollout and training throughput (``make bench``), and a learning run at the
course's settings (``make bench-pong``). Both write into benchmarks/results/pong.json.

Throughput, in one run on this machine (frames are emulator frames: 5 per agent step at the
configs' frameskip of 5, the course's setting):

- ``raw_frames_per_s``: plain ALE stepping in one process with the configs' settings (frameskip
  5, sticky actions 0.25, RGB observations), random actions, no preprocessing and no policy;
  timed before and after the sampling runs, the faster reading kept so the ratio is never
  flattered.
- ``sampling_frames_per_s`` with 1 and 2 rollout workers (Ray actors) playing whole games with
  a fixed random-weight policy, no learning, timed once the actors are built (``scaling.sampling``,
  the scaling benchmark's measure); for configs/pong_mlp.yaml (the benchmark's policy) and
  configs/pong.yaml (the course's CNN).
- ``training_frames_per_s``: the whole loop (actors, learner, broadcasts) through the real CLI
  with every CPU, iterations 2 to the end (the first includes start-up).

Learning (``bench-pong``), as the Atari literature evaluates (Machado et al. 2018): a random
policy's mean return over 20 games; ``labrun train configs/pong_mlp.yaml`` (sticky actions at
0.25) to 20 M emulator frames, its final policy evaluated over 20 games on seeds no worker
played, greedy and sampled, sticky actions on; resumed to 40 M frames and evaluated again, and
also with sticky actions off (the deterministic game) beside it. The curve plots the training
return against frames and against minutes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MEASURE_S = 20.0
TARGET_SAMPLING_RATIO = 0.7
RANDOM_GAMES = 20
FRAMES = (20_000_000, 40_000_000)   # bench-pong's evaluation points, in emulator frames
EVAL_GAMES = 20
EVAL_SEED = 1_000_003
RUNS = REPO / "runs" / "bench-pong"  # bench-pong's run, kept: an interrupted benchmark continues it
CONFIG = "configs/pong_mlp.yaml"
CNN_CONFIG = "configs/pong.yaml"
# Throughput is measured with 5 whole games per worker for the MLP, as since the first round
# (the learning config plays pieces of 2 games per worker since smaller, more frequent updates
# paid off): batching across environments is what the sampling figures measure.
MLP_THROUGHPUT_ENVS = 5


class RefusedRun(RuntimeError):
    """A kept run that the benchmark will not continue or report (it trained otherwise than the
    config says now, or its saved config no longer loads); ``benchmarks.run`` prints it as one
    line."""


def load_config(config: str, sets: Sequence[str] = ()):
    """The experiment config at ``config`` (a path from the repository's root) with ``sets``
    (``key=value`` overrides), validated."""
    from cluster.config.rl_experiment import load_experiment

    return load_experiment(REPO / config, sets)


def trained_otherwise(run_dir: Path, sets: Sequence[str]) -> list[str]:
    """Where the run's saved config differs from CONFIG with ``sets`` in what it trains (seed,
    env, policy, learner, rollout), one "key: run's value, now value" each: not empty for a run
    made before CONFIG changed. ConfigError when the saved config no longer loads (a key
    renamed or removed since)."""
    from cluster.config.rl_experiment import load_experiment
    from cluster.config.schema import to_dict
    from cluster.reinforce.outputs import CONFIG_FILE
    from cluster.trackers import flatten

    def training(cfg) -> dict:
        return {k: v for k, v in flatten(to_dict(cfg)).items()
                if k.split(".")[0] in ("seed", "env", "policy", "learner", "rollout")}

    want = training(load_config(CONFIG, sets))
    have = training(load_experiment(run_dir / CONFIG_FILE))
    return [f"{k}: {have.get(k)!r} in the run, {want.get(k)!r} now"
            for k in sorted(have.keys() | want.keys()) if have.get(k) != want.get(k)]


def config_frameskip() -> int:
    """Emulator frames per agent step of the learning config (CONFIG): frames = steps x this."""
    from rl.envs import frameskip

    return frameskip(load_config(CONFIG).env)


def random_weights(cfg, rng: np.random.Generator) -> list[np.ndarray]:
    """Glorot-scaled random weights of the config's policy (a fixed, untrained policy)."""
    from cluster.config.rl_experiment import check_env
    from rl.networks import build_policy

    obs_shape, num_actions = check_env(cfg, "bench")
    model = build_policy(obs_shape, num_actions, cfg.policy, seed=int(rng.integers(1 << 30)))
    return [np.asarray(w) for w in model.get_weights()]


def raw_frames_per_s(config: str, seconds: float) -> float:
    from rl.envs import frameskip, make_env

    cfg = load_config(config).env
    env = make_env(dataclasses.replace(cfg, preprocess="none"))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            if terminated or truncated:
                env.reset()
        steps += 200
    env.close()
    return steps * frameskip(cfg) / (time.perf_counter() - start)


def train_rows(config: str, sets: list[str]) -> list[dict]:
    """``labrun train config --set ...`` through the CLI, without videos, in a temporary runs
    folder; its metrics rows."""
    from cluster.reinforce.outputs import read_metrics

    labrun = str(Path(sys.executable).with_name("labrun"))
    args = [labrun, "train", config, "--set", "output.video_every=null"]
    for s in sets:
        args += ["--set", s]
    with tempfile.TemporaryDirectory(prefix="labrun-bench-") as tmp:
        out = subprocess.run([*args, "--runs-dir", tmp], cwd=REPO, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"labrun train failed: {out.stderr[-2000:]}")
        return read_metrics(next(Path(tmp).iterdir()))


def frames_per_s(rows: list[dict]) -> float:
    """Emulator frames per second of a run's iterations 2..N (the first includes start-up)."""
    rest = rows[1:]
    return (sum(r["time/frames_per_s"] * r["time/iteration_s"] for r in rest)
            / sum(r["time/iteration_s"] for r in rest))


def training_frames_per_s(config: str, iterations: int, sets: tuple[str, ...] = ()) -> dict:
    """The whole loop through the CLI; frames/s over iterations 2..N from the metrics file."""
    rows = train_rows(config, [f"stop.iterations={iterations}", *sets])
    rest = rows[1:]
    seconds = sum(r["time/iteration_s"] for r in rest)
    return {"frames_per_s": round(frames_per_s(rows)),
            "sample_share": round(sum(r["time/sample_s"] for r in rest) / seconds, 3),
            "learn_share": round(sum(r["time/learn_s"] for r in rest) / seconds, 3),
            "iterations": len(rest)}


def run() -> dict:
    """``make bench``: throughput only (a few minutes)."""
    from benchmarks import scaling  # imports this module: here, not at the top
    from cluster.infra.session import RaySession
    from rl.envs import frameskip

    cfg = load_config(CONFIG)
    raw_before = raw_frames_per_s(CONFIG, MEASURE_S / 2)
    envs_per_worker = {"mlp": MLP_THROUGHPUT_ENVS, "cnn": load_config(CNN_CONFIG).rollout.envs_per_worker}
    sampling = {}
    with RaySession(num_cpus=2):
        for name, config in (("mlp", CONFIG), ("cnn", CNN_CONFIG)):
            sampling[name] = {str(n): scaling.sampling(config, n, envs_per_worker[name], 1, MEASURE_S)["frames_per_s"]
                              for n in (1, 2)}
    raw_after = raw_frames_per_s(CONFIG, MEASURE_S / 2)
    raw = max(raw_before, raw_after)
    training = {"mlp": training_frames_per_s(CONFIG, 12, (f"rollout.envs_per_worker={MLP_THROUGHPUT_ENVS}",
                                                          "rollout.steps_per_env=null")),
                "cnn": training_frames_per_s(CNN_CONFIG, 4)}
    ratio = {name: {"1": round(s["1"] / raw, 3), "2": round(s["2"] / 2 / raw, 3)}
             for name, s in sampling.items()}
    return {
        "raw_frames_per_s": round(raw),
        "raw_frames_per_s_readings": [round(raw_before), round(raw_after)],
        "sampling_frames_per_s": sampling["mlp"],
        "sampling_per_worker_over_raw": ratio["mlp"],
        "training_frames_per_s": training["mlp"]["frames_per_s"],
        "training_detail": training,
        "cnn_sampling_frames_per_s": sampling["cnn"],
        "cnn_sampling_per_worker_over_raw": ratio["cnn"],
        "setup": f"frames = emulator frames ({frameskip(cfg.env)} per agent step; sticky "
                 f"actions {cfg.env.repeat_action_probability}). Policies: {CONFIG} (the "
                 f"benchmark's: MLP 1600-200-2) and cnn = {CNN_CONFIG} (the course's CNN); fixed "
                 f"random weights for sampling; whole games, {envs_per_worker['mlp']} (mlp) or "
                 f"{envs_per_worker['cnn']} (cnn) envs per worker",
        "targets": {"sampling_per_worker_over_raw": f">= {TARGET_SAMPLING_RATIO}"},
        "met": {"sampling_per_worker_over_raw":
                min(ratio["mlp"].values()) >= TARGET_SAMPLING_RATIO},
    }


def random_policy_return(config: str, games: int) -> tuple[float, list[float]]:
    """Mean return of uniformly random actions over the config's action set (all-zero weights
    make every logit equal), over ``games`` whole games, in this process."""
    from rl.config import RolloutConfig
    from rl.rollout import RolloutWorker

    cfg = load_config(config)
    worker = RolloutWorker(cfg.env, cfg.policy, RolloutConfig(envs_per_worker=games), seed=12_345)
    zeros = [np.zeros_like(w) for w in random_weights(cfg, np.random.default_rng(0))]
    returns = worker.sample(zeros).games().returns.tolist()
    worker.close()
    return float(np.mean(returns)), returns


def _labrun(*args: str) -> subprocess.Popen:
    labrun = str(Path(sys.executable).with_name("labrun"))
    return subprocess.Popen([labrun, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, what: str) -> None:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {(out + err)[-2000:]}")


def evaluate_run(run_dir: Path, label: str, settings: dict[str, list[str]]) -> dict[str, dict]:
    """``labrun eval`` of the run's final checkpoint, EVAL_GAMES games on EVAL_SEED (games no
    rollout worker played: workers' seeds derive from the run seed and their index), one
    process per setting, two at a time; {setting: eval.json}. A setting whose eval_<label>_<name>
    .json the run already holds is read, not played again (an interrupted benchmark)."""
    files = {name: run_dir / f"eval_{label}_{name}.json" for name in settings}
    results = {name: json.loads(f.read_text()) for name, f in files.items() if f.is_file()}
    names = [name for name in settings if name not in results]
    for i in range(0, len(names), 2):
        procs = {}
        for name in names[i:i + 2]:
            out = files[name]
            procs[name] = (out, _labrun("eval", str(run_dir), "--episodes", str(EVAL_GAMES),
                                        "--seed", str(EVAL_SEED), "--out", str(out),
                                        *settings[name]))
        for name, (out, proc) in procs.items():
            _finish(proc, f"labrun eval ({name})")
            results[name] = json.loads(out.read_text())
    return results


STICKY = ["--set", "env.repeat_action_probability=0.25"]
DETERMINISTIC = ["--set", "env.repeat_action_probability=0"]


def train_to(runs: Path, frames: int, sets: Sequence[str] = ()) -> Path:
    """The run in ``runs``, trained under sticky actions to at least ``frames`` emulator frames:
    ``labrun train CONFIG`` with ``sets`` (``key=value`` overrides) when ``runs`` holds none,
    else continued from its last checkpoint when it stopped short (an interrupted benchmark, or
    a second leg). Its config keeps the ``sets``, so a continued run trains the same way; a run
    that trained otherwise (CONFIG changed since), or whose saved config no longer loads, is
    refused (RefusedRun), never continued or reported."""
    from cluster.config.schema import ConfigError
    from cluster.folders import locked
    from cluster.reinforce import checkpoint
    from cluster.reinforce.outputs import CONFIG_FILE

    skip = config_frameskip()
    runs.mkdir(parents=True, exist_ok=True)
    with locked(runs):     # a second benchmark on the same folder stops here, naming this one
        found = lambda: sorted(p for p in runs.iterdir() if (p / CONFIG_FILE).is_file())
        last = found()[-1] if found() else None
        if last is not None and not checkpoint.list_checkpoints(last / "checkpoints"):
            with locked(last):    # not while a labrun writes it (UsageError, naming it)
                print(f"{last} holds no checkpoint (stopped before its first): training again",
                      flush=True)
                shutil.rmtree(last)
        if not found():
            print(f"training {CONFIG} {' '.join(sets)} to {frames:,} frames in {runs}", flush=True)
            overrides = [arg for kv in sets for arg in ("--set", kv)]
            _finish(_labrun("train", CONFIG, "--runs-dir", str(runs), "--set", "stop.mean_return=null",
                            "--set", f"stop.env_steps={frames // skip}",
                            "--set", "output.video_every=null", "--set", "output.checkpoint_every=20",
                            *overrides), "labrun train")
        run_dir = found()[-1]
        try:
            differ = trained_otherwise(run_dir, sets)
        except ConfigError as err:
            if err.source != str(run_dir / CONFIG_FILE):     # CONFIG or ``sets`` themselves
                raise
            where = ", ".join(str(p) for p in (f"line {err.line}" if err.line else None, err.key) if p)
            raise RefusedRun(f"{run_dir}: its saved config no longer loads ({where + ': ' if where else ''}"
                             f"{err.message}), so it cannot be checked against {CONFIG}: remove it "
                             "to train again") from None
        if differ:
            raise RefusedRun(f"{run_dir} was trained otherwise than {CONFIG}"
                             f"{' with ' + ' '.join(sets) if sets else ''} ({'; '.join(differ)}):"
                             " remove it to train again")
        steps = checkpoint.newest_intact(run_dir / "checkpoints").counters.get("env_steps", 0)
        if steps < frames // skip:      # a kill cut it short, or the next leg
            print(f"continuing {run_dir} from {steps * skip:,} to {frames:,} frames", flush=True)
            _finish(_labrun("resume", str(run_dir), "--set", f"stop.env_steps={frames // skip}"),
                    "labrun resume")
    return run_dir


def run_learning() -> dict:
    """``make bench-pong``: the random baseline; CONFIG trained under sticky actions to 20 M
    emulator frames, evaluated; resumed to 40 M, evaluated again, also without sticky actions.

    The run lives in runs/bench-pong/ and each step is done once: an interrupted benchmark (a
    machine that went away after 30 M frames) continues where it stopped when run again, from
    the run's last checkpoint. Remove runs/bench-pong/ to start over."""
    from cluster.reinforce.outputs import read_metrics
    from rl.envs import frameskip

    cfg = load_config(CONFIG)
    if not cfg.env.repeat_action_probability:
        raise RuntimeError(f"{CONFIG} must train under sticky actions")
    skip = frameskip(cfg.env)
    random_mean, random_returns = random_policy_return(CONFIG, RANDOM_GAMES)
    evals = {}
    for label, frames, settings in (
            ("20M", FRAMES[0], {"greedy": STICKY, "sampled": [*STICKY, "--sample"]}),
            ("40M", FRAMES[1], {"greedy": STICKY, "sampled": [*STICKY, "--sample"],
                                "deterministic_greedy": DETERMINISTIC,
                                "deterministic_sampled": [*DETERMINISTIC, "--sample"]})):
        run_dir = train_to(RUNS, frames)       # nothing to do once the run has the frames
        evals[label] = evaluate_run(run_dir, label, settings)
    rows = read_metrics(run_dir)
    at_20 = evals["20M"]["greedy"]["eval/checkpoint_env_steps"]
    rows_20 = [r for r in rows if r["counters/env_steps"] <= at_20]
    points = {k: (e["greedy"]["eval/checkpoint_env_steps"] * skip,
                  e["greedy"]["eval/episode_return_mean"]) for k, e in evals.items()}
    curve = plot_learning(rows, skip, random_mean, points, RESULTS / "pong_learning_curve.png")
    mean = lambda e: round(e["eval/episode_return_mean"], 2)
    spread = lambda e: {k.removeprefix("eval/episode_return_"): round(e[k], 2) for k in
                        ("eval/episode_return_std", "eval/episode_return_stderr",
                         "eval/episode_return_min", "eval/episode_return_max")}
    e20, e40 = evals["20M"], evals["40M"]
    result = {
        "learning_config": CONFIG,
        "learning_setup": f"{CONFIG}: frameskip {skip}, sticky actions "
                          f"{cfg.env.repeat_action_probability} in training and in the sticky "
                          f"evaluations; {EVAL_GAMES} evaluation games from seed {EVAL_SEED} "
                          "(never used in training), greedy and sampled actions",
        "learning_run_dir": str(run_dir.relative_to(REPO)),
        "eval_games": EVAL_GAMES,
        "random_policy_return_mean": round(random_mean, 2),
        "random_policy_games": len(random_returns),
        "sticky_eval_return_mean_20M": mean(e20["greedy"]),
        "sticky_eval_return_mean_20M_sampled": mean(e20["sampled"]),
        "sticky_eval_return_mean_40M": mean(e40["greedy"]),
        "sticky_eval_return_mean_40M_sampled": mean(e40["sampled"]),
        "deterministic_eval_return_mean": mean(e40["deterministic_greedy"]),
        "deterministic_eval_return_mean_sampled": mean(e40["deterministic_sampled"]),
        "eval_spread": {f"{k}_{name}": spread(e) for k, per in evals.items() for name, e in per.items()},
        "frames_20M": int(rows_20[-1]["counters/env_steps"] * skip),
        "frames_40M": int(rows[-1]["counters/env_steps"] * skip),
        "train_minutes_20M": round(rows_20[-1]["time/train_s"] / 60, 1),
        "train_minutes_40M": round(rows[-1]["time/train_s"] / 60, 1),
        "learning_games": int(rows[-1]["counters/episodes"]),
        "learning_iterations": int(rows[-1]["counters/iteration"]),
        "curve_png": str(curve.relative_to(REPO)),
        "learning_targets": {"sticky_eval_return_mean_20M": ">= 10",
                             "sticky_eval_return_mean_40M": ">= 18 (solved)"},
    }
    result["learning_met"] = {"sticky_eval_return_mean_20M": result["sticky_eval_return_mean_20M"] >= 10,
                              "sticky_eval_return_mean_40M": result["sticky_eval_return_mean_40M"] >= 18}
    return result


def plot_learning(rows: list[dict], skip: int, random_mean: float,
                  evals: dict[str, tuple[float, float]], path: Path) -> Path:
    """Training return (last 20 games, sampled, sticky) against emulator frames and against
    minutes, the greedy sticky evaluations marked."""
    from cluster.figures import pyplot, save
    from cluster.reinforce.outputs import with_returns

    plt = pyplot()
    rows = with_returns(rows)
    frames = [r["counters/env_steps"] * skip / 1e6 for r in rows]
    minutes = [r["time/train_s"] / 60 for r in rows]
    returns = [r["rollout/episode_return_mean"] for r in rows]
    by_frames = dict(zip(frames, minutes))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100, sharey=True)
    for ax, xs, label in ((axes[0], frames, "emulator frames (millions)"),
                          (axes[1], minutes, "training time (minutes, 2 CPUs)")):
        ax.plot(xs, returns, label="training: mean return, last 20 games (sampled)")
        for name, (f, ret) in evals.items():
            x = f / 1e6 if ax is axes[0] else by_frames.get(f / 1e6, minutes[-1])
            ax.plot([x], [ret], "o", label=f"eval at {name}: {ret:.1f} (greedy, {EVAL_GAMES} games)")
        ax.axhline(random_mean, color="grey", linestyle=":", label=f"random policy ({random_mean:.1f})")
        ax.axhline(18, color="grey", linestyle="--", label="solved (+18)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("episode return (points won - lost)")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle(f"Pong under sticky actions (0.25), REINFORCE, {CONFIG}")
    return save(fig, path)


def table_rows(result: dict) -> list[tuple[str, str, str]]:
    fmt = lambda v: "-" if v is None else f"{v:,.2f}" if isinstance(v, float) else f"{v:,}"
    rows = []
    if "raw_frames_per_s" in result:
        r = result
        rows += [
            ("raw_frames_per_s", fmt(r["raw_frames_per_s"]), ""),
            ("sampling_frames_per_s, 1 worker", fmt(r["sampling_frames_per_s"]["1"]), ""),
            ("sampling_frames_per_s, 2 workers", fmt(r["sampling_frames_per_s"]["2"]), ""),
            ("per worker / raw, 1 worker", fmt(r["sampling_per_worker_over_raw"]["1"]), ">= 0.7"),
            ("per worker / raw, 2 workers", fmt(r["sampling_per_worker_over_raw"]["2"]), ">= 0.7"),
            ("training_frames_per_s", fmt(r["training_frames_per_s"]), ""),
            ("course CNN: sampling, 2 workers", fmt(r["cnn_sampling_frames_per_s"]["2"]), ""),
            ("course CNN: per worker / raw, 2 workers", fmt(r["cnn_sampling_per_worker_over_raw"]["2"]), ""),
            ("course CNN: training_frames_per_s", fmt(r["training_detail"]["cnn"]["frames_per_s"]), ""),
        ]
    if "sticky_eval_return_mean_40M" in result:
        r = result
        rows += [
            ("random policy, mean return (sticky)", fmt(r["random_policy_return_mean"]), ""),
            (f"sticky, 20 M frames ({r['train_minutes_20M']} min): greedy",
             fmt(r["sticky_eval_return_mean_20M"]), ">= 10"),
            ("sticky, 20 M frames: sampled", fmt(r["sticky_eval_return_mean_20M_sampled"]), ""),
            (f"sticky, 40 M frames ({r['train_minutes_40M']} min): greedy",
             fmt(r["sticky_eval_return_mean_40M"]), ">= 18"),
            ("sticky, 40 M frames: sampled", fmt(r["sticky_eval_return_mean_40M_sampled"]), ""),
            ("deterministic, 40 M frames: greedy", fmt(r["deterministic_eval_return_mean"]), ""),
            ("deterministic, 40 M frames: sampled", fmt(r["deterministic_eval_return_mean_sampled"]), ""),
        ]
    return rows
