"""CartPole benchmark: time to solve through the real CLI, and rollout sampling throughput.

Measures, in one run on this machine:

- ``time_to_solve_s``: wall-clock seconds from launching ``labrun train configs/cartpole.yaml``
  (embedded local Ray, every CPU) until the first iteration whose 100-episode mean return is
  >= 475; the median over 3 seeds, with ``env_steps_to_solve`` and ``seeds_solved``.
  It includes Python start-up, TensorFlow import, Ray start and actor start-up.
- ``sampling_steps_per_s`` with 1 and 2 rollout workers (Ray actors, a fixed random policy, no
  learning) and ``raw_env_steps_per_s``: plain Gymnasium stepping with random actions in one
  process, no policy at all.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
MEASURE_S = 6.0
TARGET_SOLVE_S = 20.0
# Sampling uses configs/cartpole.yaml's environments per worker; with a random policy episodes
# last ~22 steps, so each call plays 8 episodes per environment to time the stepping rather than
# one Ray round trip per 350 steps.
SAMPLING_EPISODES_PER_ENV = 8
TARGET_SAMPLING_RATIO = 0.6


def solve_once(seed: int, runs_dir: Path) -> dict:
    labrun = str(Path(sys.executable).with_name("labrun"))
    start = time.time()
    out = subprocess.run([labrun, "train", "configs/cartpole.yaml", "--set", f"seed={seed}",
                          "--runs-dir", str(runs_dir)], cwd=REPO, capture_output=True, text=True)
    total = time.time() - start
    run_dir = max(runs_dir.glob(f"cartpole__{seed}__*"), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    solved = [r for r in rows if r["counters/episodes"] >= 100 and r["rollout/episode_return_mean"] >= 475]
    return {
        "seed": seed, "exit_code": out.returncode, "process_s": round(total, 2),
        "solved": bool(solved),
        "time_to_solve_s": round(solved[0]["timestamp"] - start, 2) if solved else None,
        "env_steps_to_solve": solved[0]["step"] if solved else None,
        "first_iteration_at_s": round(rows[0]["timestamp"] - start, 2) if rows else None,
    }


def raw_env_steps_per_s(seconds: float) -> float:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
            if terminated or truncated:
                env.reset()
        steps += 1000
    return steps / (time.perf_counter() - start)


def sampling_steps_per_s(num_workers: int, seconds: float) -> float:
    """Steps per second gathered by ``num_workers`` Ray rollout workers with a fixed policy."""
    import ray

    from cluster.config.rl_experiment import load_experiment
    from cluster.reinforce.workers import WorkerGroup
    from rl.config import RolloutConfig

    cfg = load_experiment(REPO / "configs" / "cartpole.yaml")
    rollout = RolloutConfig(num_workers=num_workers, envs_per_worker=cfg.rollout.envs_per_worker,
                            episodes_per_env=SAMPLING_EPISODES_PER_ENV)
    group = WorkerGroup("bench", num_workers, (cfg.env, cfg.policy, rollout), seed=0,
                        cpus_per_worker=1, max_restarts=0)
    rng = np.random.default_rng(0)
    weights = ray.put([rng.normal(0, 0.5, (4, 32)).astype(np.float32), np.zeros(32, np.float32),
                       rng.normal(0, 0.5, (32, 2)).astype(np.float32), np.zeros(2, np.float32)])
    try:
        group.sample(weights)  # warm-up: actors started and imported
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            steps += sum(b.num_steps for b in group.sample(weights))
        return steps / (time.perf_counter() - start)
    finally:
        group.shutdown()


def run() -> dict:
    from cluster.infra.session import RaySession

    with tempfile.TemporaryDirectory(prefix="labrun-bench-") as tmp:
        solves = [solve_once(seed, Path(tmp)) for seed in SEEDS]
    # This machine's speed drifts by tens of percent; raw stepping is timed before and after the
    # sampling runs and the faster reading is the reference, so the ratio is never flattered.
    raw_before = raw_env_steps_per_s(MEASURE_S)
    with RaySession(num_cpus=2):
        one = sampling_steps_per_s(1, MEASURE_S)
        two = sampling_steps_per_s(2, MEASURE_S)
    raw_after = raw_env_steps_per_s(MEASURE_S)
    raw = max(raw_before, raw_after)
    solved = [s for s in solves if s["solved"]]
    median = statistics.median(s["time_to_solve_s"] for s in solved) if len(solved) == len(SEEDS) else None
    return {
        "time_to_solve_s": median,
        "env_steps_to_solve": statistics.median(s["env_steps_to_solve"] for s in solved) if solved else None,
        "seeds_solved": len(solved),
        "seeds": list(SEEDS),
        "per_seed": solves,
        "raw_env_steps_per_s": round(raw),
        "raw_env_steps_per_s_readings": [round(raw_before), round(raw_after)],
        "sampling_steps_per_s": {"1": round(one), "2": round(two)},
        "sampling_per_worker_over_raw": {"1": round(one / raw, 3), "2": round(two / 2 / raw, 3)},
        "sampling_setup": "configs/cartpole.yaml environments per worker, "
                          f"{SAMPLING_EPISODES_PER_ENV} episodes per environment per call, "
                          "fixed random MLP policy; raw: one gym.make env, random actions",
        "targets": {"time_to_solve_s": f"<= {TARGET_SOLVE_S}",
                    "sampling_per_worker_over_raw": f">= {TARGET_SAMPLING_RATIO}"},
        "met": {
            "time_to_solve_s": median is not None and median <= TARGET_SOLVE_S,
            "sampling_per_worker_over_raw": min(one, two / 2) / raw >= TARGET_SAMPLING_RATIO,
        },
    }


def table_rows(result: dict) -> list[tuple[str, str, str]]:
    fmt = lambda v: "-" if v is None else f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"
    return [
        ("time_to_solve_s (median of 3 seeds)", fmt(result["time_to_solve_s"]), "<= 20"),
        ("env_steps_to_solve (median)", fmt(result["env_steps_to_solve"]), ""),
        ("seeds_solved", f"{result['seeds_solved']}/{len(result['seeds'])}", "3/3"),
        ("raw_env_steps_per_s", fmt(result["raw_env_steps_per_s"]), ""),
        ("sampling_steps_per_s, 1 worker", fmt(result["sampling_steps_per_s"]["1"]), ""),
        ("sampling_steps_per_s, 2 workers", fmt(result["sampling_steps_per_s"]["2"]), ""),
        ("per worker / raw, 1 worker", f"{result['sampling_per_worker_over_raw']['1']:.2f}", ">= 0.6"),
        ("per worker / raw, 2 workers", f"{result['sampling_per_worker_over_raw']['2']:.2f}", ">= 0.6"),
    ]
