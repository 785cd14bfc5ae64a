"""Pong benchmarks: rollout and training throughput (``make bench``), and a 30-minute learning run
(``make bench-pong``). Both write into benchmarks/results/pong.json.

Throughput, in one run on this machine (frames are emulator frames: 4 per agent step at the
configs' frameskip of 4, the Atari convention):

- ``raw_frames_per_s``: plain ALE stepping in one process with the configs' settings (frameskip
  4, no sticky actions, RGB observations), random actions, no preprocessing and no policy; timed
  before and after the sampling runs, the faster reading kept so the ratio is never flattered.
- ``sampling_frames_per_s`` with 1 and 2 rollout workers (Ray actors) playing whole games with
  a fixed random-weight policy, no learning, after one warm-up call; for configs/pong_mlp.yaml
  (the benchmark's policy) and configs/pong.yaml (the course's CNN).
- ``training_frames_per_s``: the whole loop (actors, learner, broadcasts) through the real CLI
  with every CPU, iterations 2 to the end (the first includes start-up).

Learning (``bench-pong``): a random policy's mean return over 20 games, then ``labrun train
configs/pong_mlp.yaml`` for 30 minutes of training time; ``improvement_over_random`` is the mean
return of the last 20 games minus the random policy's.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MEASURE_S = 20.0
TARGET_SAMPLING_RATIO = 0.7
LEARNING_S = 1800
RANDOM_GAMES = 20
TARGET_IMPROVEMENT = 5.0
CONFIG = "configs/pong_mlp.yaml"
CNN_CONFIG = "configs/pong.yaml"


def _load(config: str):
    from cluster.config.rl_experiment import load_experiment

    return load_experiment(REPO / config)


def _random_weights(cfg, rng: np.random.Generator) -> list[np.ndarray]:
    """Glorot-scaled random weights of the config's policy (a fixed, untrained policy)."""
    from cluster.config.rl_experiment import check_env
    from rl.networks import build_policy

    obs_shape, num_actions = check_env(cfg, "bench")
    model = build_policy(obs_shape, num_actions, cfg.policy, seed=int(rng.integers(1 << 30)))
    return [np.asarray(w) for w in model.get_weights()]


def raw_frames_per_s(config: str, seconds: float) -> float:
    from rl.envs import frameskip, make_env

    cfg = _load(config).env
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


def sampling_frames_per_s(config: str, num_workers: int, seconds: float) -> float:
    """Frames per second gathered by ``num_workers`` Ray rollout workers with a fixed policy."""
    import ray

    from cluster.reinforce.workers import WorkerGroup
    from rl.envs import frameskip

    cfg = _load(config)
    group = WorkerGroup("bench", num_workers, (cfg.env, cfg.policy, cfg.rollout), seed=0,
                        cpus_per_worker=1, max_restarts=0)
    weights = ray.put(_random_weights(cfg, np.random.default_rng(0)))
    try:
        group.sample(weights)  # warm-up: actors started, ROMs loaded
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            steps += sum(b.num_steps for b in group.sample(weights))
        return steps * frameskip(cfg.env) / (time.perf_counter() - start)
    finally:
        group.shutdown()


def training_frames_per_s(config: str, iterations: int) -> dict:
    """The whole loop through the CLI; frames/s over iterations 2..N from the metrics file."""
    labrun = str(Path(sys.executable).with_name("labrun"))
    with tempfile.TemporaryDirectory(prefix="labrun-bench-") as tmp:
        out = subprocess.run([labrun, "train", config, "--set", f"stop.iterations={iterations}",
                              "--set", "output.video_every=null", "--runs-dir", tmp],
                             cwd=REPO, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"labrun train failed: {out.stderr[-2000:]}")
        run_dir = next(Path(tmp).iterdir())
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rest = rows[1:]
    frames = sum(r["time/frames_per_s"] * r["time/iteration_s"] for r in rest)
    seconds = sum(r["time/iteration_s"] for r in rest)
    return {"frames_per_s": round(frames / seconds),
            "sample_share": round(sum(r["time/sample_s"] for r in rest) / seconds, 3),
            "learn_share": round(sum(r["time/learn_s"] for r in rest) / seconds, 3),
            "iterations": len(rest)}


def run() -> dict:
    """``make bench``: throughput only (a few minutes)."""
    from cluster.infra.session import RaySession

    raw_before = raw_frames_per_s(CONFIG, MEASURE_S / 2)
    sampling = {}
    with RaySession(num_cpus=2):
        for name, config in (("mlp", CONFIG), ("cnn", CNN_CONFIG)):
            sampling[name] = {str(n): round(sampling_frames_per_s(config, n, MEASURE_S)) for n in (1, 2)}
    raw_after = raw_frames_per_s(CONFIG, MEASURE_S / 2)
    raw = max(raw_before, raw_after)
    training = {"mlp": training_frames_per_s(CONFIG, 12), "cnn": training_frames_per_s(CNN_CONFIG, 4)}
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
        "setup": f"frames = emulator frames (4 per agent step). Policies: {CONFIG} (the "
                 f"benchmark's: MLP 1600-200-2) and cnn = {CNN_CONFIG} (the course's CNN); fixed "
                 "random weights for sampling; whole games, 5 (mlp) or 4 (cnn) envs per worker",
        "targets": {"sampling_per_worker_over_raw": f">= {TARGET_SAMPLING_RATIO}"},
        "met": {"sampling_per_worker_over_raw":
                min(ratio["mlp"].values()) >= TARGET_SAMPLING_RATIO},
    }


def random_policy_return(config: str, games: int) -> tuple[float, list[float]]:
    """Mean return of uniformly random actions over the config's action set (all-zero weights
    make every logit equal), over ``games`` whole games, in this process."""
    from rl.config import RolloutConfig
    from rl.rollout import RolloutWorker

    cfg = _load(config)
    worker = RolloutWorker(cfg.env, cfg.policy, RolloutConfig(envs_per_worker=games), seed=12_345)
    zeros = [np.zeros_like(w) for w in _random_weights(cfg, np.random.default_rng(0))]
    returns = worker.sample(zeros).episode_returns.tolist()
    worker.close()
    return float(np.mean(returns)), returns


def run_learning(seconds: float = LEARNING_S) -> dict:
    """``make bench-pong``: the random baseline, then a learning run of ``seconds`` of training."""
    random_mean, random_returns = random_policy_return(CONFIG, RANDOM_GAMES)
    labrun = str(Path(sys.executable).with_name("labrun"))
    with tempfile.TemporaryDirectory(prefix="labrun-bench-") as tmp:
        start = time.time()
        out = subprocess.run([labrun, "train", CONFIG, "--set", f"stop.wall_time_s={seconds}",
                              "--set", "stop.mean_return=null", "--set", "stop.env_steps=null",
                              "--set", "output.video_every=null", "--runs-dir", tmp],
                             cwd=REPO, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"labrun train failed: {out.stderr[-2000:]}")
        run_dir = next(Path(tmp).iterdir())
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        curve = plot_learning(rows, random_mean, RESULTS / "pong_learning_curve.png")
    last = rows[-1]
    final = last["rollout/episode_return_mean"]
    return {
        "learning_config": CONFIG,
        "learning_train_time_s": round(last["time/train_s"], 1),
        "learning_process_s": round(time.time() - start, 1),
        "learning_env_steps": int(last["counters/env_steps"]),
        "learning_games": int(last["counters/episodes"]),
        "learning_iterations": int(last["counters/iteration"]),
        "random_policy_return_mean": round(random_mean, 2),
        "random_policy_games": len(random_returns),
        "final_return_mean_last_20": round(final, 2),
        "best_return_mean_last_20": round(max(r["rollout/episode_return_mean"] for r in rows), 2),
        "final_points_won_mean": round(last["rollout/points_won_mean"], 2),
        "improvement_over_random": round(final - random_mean, 2),
        "curve_png": str(curve.relative_to(REPO)),
        "learning_targets": {"improvement_over_random": f">= {TARGET_IMPROVEMENT} points"},
        "learning_met": {"improvement_over_random": final - random_mean >= TARGET_IMPROVEMENT},
    }


def plot_learning(rows: list[dict], random_mean: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["time/train_s"] / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(minutes, [r["rollout/episode_return_mean"] for r in rows], label="mean return, last 20 games")
    ax.axhline(random_mean, color="grey", linestyle=":", label=f"random policy ({random_mean:.1f})")
    ax.axhline(random_mean + TARGET_IMPROVEMENT, color="grey", linestyle="--",
               label=f"target: random + {TARGET_IMPROVEMENT:g}")
    ax.set_xlabel("training time (minutes, 2 CPUs)")
    ax.set_ylabel("episode return (points won - lost)")
    ax.set_title(f"Pong, REINFORCE, {CONFIG}")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


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
    if "improvement_over_random" in result:
        r = result
        rows += [
            ("random policy, mean return", fmt(r["random_policy_return_mean"]), ""),
            ("after 30 min, mean of last 20 games", fmt(r["final_return_mean_last_20"]), ""),
            ("improvement_over_random (points)", fmt(r["improvement_over_random"]), ">= 5"),
        ]
    return rows
