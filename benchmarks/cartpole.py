"""CartPole benchmark: time to solve through the real CLI, and rollout sampling throughput.

Measures, in one run on this machine:

- ``time_to_solve_s``: wall-clock seconds from launching ``labrun train configs/cartpole.yaml``
  (embedded local Ray, every CPU) until the first iteration whose 100-episode mean return is
  >= 475; the median over 3 seeds, with ``env_steps_to_solve`` and ``seeds_solved``.
  It includes Python start-up, TensorFlow import, Ray start and actor start-up.
- ``startup``: where the start-up of those runs went, from each run's log (its ``start-up``
  line, ``cluster/reinforce/startup.py``): Python and CLI start, TensorFlow import, Ray start,
  workers ready, learner built, first iteration; the medians over the seeds.
  ``startup_over_slowest_part`` = (launch to first iteration) / max(``import tensorflow`` alone,
  ``ray.init()`` alone), the two timed in fresh processes of their own, one of each before each
  seed's run (the machine's speed drifts), medians; launch is when this script spawns the
  process. 1.0 would be start-up no longer than its slowest part.
  ``startup_cpu_s``: CPU-seconds the whole machine spent busy from launch to the first iteration
  (``/proc/stat``, sampled every 20 ms: on a quiet machine, what the run's processes used, Ray's
  included); ``startup_cpu_floor_over_slowest_part`` = ``startup_cpu_s`` / cores / the slowest
  part: no overlap of that work on this machine's cores can start up faster than this ratio.
  ``tensorflow_cpu_s`` / ``ray_cpu_s``: the same meter around each part alone (its process).
- ``trial_start_s``: in a sweep of 2 trials (configs/cartpole_sweep.yaml, 2 iterations each),
  seconds from a trial's start (its trainable called in its Ray process) to its first
  iteration, the median over the trials; ``sweep_first_iteration_at_s`` from launching
  ``labrun tune`` to the first trial's first iteration.
- ``sampling_steps_per_s`` with 1 and 2 rollout workers (Ray actors, a fixed random policy, no
  learning) and ``raw_env_steps_per_s``: plain Gymnasium stepping with random actions in one
  process, no policy at all.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cluster.reinforce.outputs import read_metrics

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
MEASURE_S = 6.0
TARGET_SOLVE_S = 20.0
# Sampling uses configs/cartpole.yaml's environments per worker; with a random policy episodes
# last ~22 steps, so each call plays 8 episodes per environment to time the stepping rather than
# one Ray round trip per 350 steps.
SAMPLING_EPISODES_PER_ENV = 8
TARGET_SAMPLING_RATIO = 0.6
TARGET_STARTUP_RATIO = 1.2
# Each timed in a fresh process: the statement alone, after the interpreter started.
TIME_IMPORT_TENSORFLOW = """
import time
start = time.perf_counter()
import tensorflow
print(time.perf_counter() - start)
"""
TIME_RAY_INIT = """
import time
from cluster.infra.session import RaySession, prepare_environment
prepare_environment(None)
import ray
session = RaySession()   # ray.init() as labrun calls it: embedded, loopback, every CPU
start = time.perf_counter()
session.__enter__()
print(time.perf_counter() - start)
session.__exit__(None, None, None)
"""


def busy_cpu_s() -> float:
    """CPU-seconds this machine's cores have spent busy since boot (not idle, not waiting on I/O)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class BusyMeter:
    """Samples ``busy_cpu_s`` every 20 ms in a thread: ``at(t)`` is the busy CPU-seconds between
    the meter's start and ``time.time()`` t."""

    def __init__(self):
        self.samples = [(time.time(), busy_cpu_s())]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append((time.time(), busy_cpu_s()))

    def __enter__(self) -> "BusyMeter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, t: float) -> float:
        times, busy = zip(*self.samples)
        return round(float(np.interp(t, times, busy)) - busy[0], 2)


def time_alone(code: str) -> tuple[float, float]:
    """(seconds the timed statement of ``code`` took in a fresh Python process, busy CPU-seconds
    of the machine over the whole process)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    before = busy_cpu_s()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=env, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 2), round(busy_cpu_s() - before, 2)


def startup_phases(run_dir: Path) -> dict:
    """The start-up line of a run's log as seconds: phases that ended at a point in time
    (``*_at_s``, since the process or trial started) and those that took a while (``*_s``)."""
    from cluster.reinforce.startup import parse_line

    out = {}
    for name, (start, end) in parse_line((run_dir / "run.log").read_text()).items():
        if start is None:
            out[f"{name}_at_s"] = end
        else:
            out[f"{name}_s"] = round(end - start, 2)
            out[f"{name}_started_at_s"] = start
    return out


def solve_once(seed: int, runs_dir: Path) -> dict:
    labrun = str(Path(sys.executable).with_name("labrun"))
    with BusyMeter() as meter:
        start = time.time()                  # launch: when the process is spawned
        out = subprocess.run([labrun, "train", "configs/cartpole.yaml", "--set", f"seed={seed}",
                              "--runs-dir", str(runs_dir)], cwd=REPO, capture_output=True, text=True)
        total = time.time() - start
    run_dir = max(runs_dir.glob(f"cartpole__{seed}__*"), key=lambda p: p.stat().st_mtime)
    rows = read_metrics(run_dir)
    solved = [r for r in rows if r["counters/episodes"] >= 100 and r["rollout/episode_return_mean"] >= 475]
    return {
        "seed": seed, "exit_code": out.returncode, "process_s": round(total, 2),
        "solved": bool(solved),
        "time_to_solve_s": round(solved[0]["timestamp"] - start, 2) if solved else None,
        "env_steps_to_solve": solved[0]["step"] if solved else None,
        "first_iteration_at_s": round(rows[0]["timestamp"] - start, 2) if rows else None,
        "startup_cpu_s": meter.at(rows[0]["timestamp"]) if rows else None,
        "startup": startup_phases(run_dir),
    }


def trial_starts(runs_dir: Path) -> dict:
    """A sweep of 2 short trials through ``labrun tune``: each trial's start-up phases."""
    labrun = str(Path(sys.executable).with_name("labrun"))
    start = time.time()
    out = subprocess.run([labrun, "tune", "configs/cartpole_sweep.yaml", "--runs-dir", str(runs_dir),
                          "--set", "fixed={rollout.num_workers: 1, stop.iterations: 2}",
                          "--set", "search_space={learner.lr: {grid: [0.01, 0.03]}, "
                                   "policy.hidden_sizes: {grid: [[32]]}}"],
                         cwd=REPO, capture_output=True, text=True)
    runs = sorted(runs_dir.glob("*/*/run"))
    firsts = [rows[0] for rows in map(read_metrics, runs) if rows]
    trials = [startup_phases(r) for r in runs]
    return {
        "exit_code": out.returncode, "trials": len(trials),
        "trial_start_s": statistics.median(t["first_iteration_at_s"] for t in trials) if trials else None,
        "sweep_first_iteration_at_s": round(min(r["timestamp"] for r in firsts) - start, 2) if firsts else None,
        "per_trial": trials,
    }


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


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

    tf_alone, ray_alone, tf_cpu, ray_cpu, solves = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="labrun-bench-") as tmp:
        for seed in SEEDS:   # interleaved: the machine's speed drifts between minutes
            for seconds, cpu, code in ((tf_alone, tf_cpu, TIME_IMPORT_TENSORFLOW),
                                       (ray_alone, ray_cpu, TIME_RAY_INIT)):
                took, used = time_alone(code)
                seconds.append(took)
                cpu.append(used)
            solves.append(solve_once(seed, Path(tmp)))
        sweep = trial_starts(Path(tmp) / "sweep")
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
    phases = sorted({k for s in solves for k in s["startup"]})
    startup = {
        "launch_to_first_iteration_s": _median([s["first_iteration_at_s"] for s in solves]),
        **{k: _median([s["startup"].get(k) for s in solves]) for k in phases},
        "import_tensorflow_alone_s": _median(tf_alone),
        "ray_init_alone_s": _median(ray_alone),
        "startup_cpu_s": _median([s["startup_cpu_s"] for s in solves]),
        "tensorflow_cpu_s": _median(tf_cpu),
        "ray_cpu_s": _median(ray_cpu),
        "cores": os.cpu_count(),
        "readings": {"import_tensorflow_alone_s": tf_alone, "ray_init_alone_s": ray_alone,
                     "tensorflow_cpu_s": tf_cpu, "ray_cpu_s": ray_cpu,
                     "startup_cpu_s": [s["startup_cpu_s"] for s in solves]},
    }
    slowest = max(startup["import_tensorflow_alone_s"], startup["ray_init_alone_s"])
    ratio = (round(startup["launch_to_first_iteration_s"] / slowest, 2)
             if startup["launch_to_first_iteration_s"] is not None else None)
    floor = (round(startup["startup_cpu_s"] / os.cpu_count() / slowest, 2)
             if startup["startup_cpu_s"] is not None else None)
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
        "startup": startup,
        "startup_over_slowest_part": ratio,
        "startup_cpu_floor_over_slowest_part": floor,
        "trial_start_s": sweep["trial_start_s"],
        "sweep": sweep,
        "sampling_setup": "configs/cartpole.yaml environments per worker, "
                          f"{SAMPLING_EPISODES_PER_ENV} episodes per environment per call, "
                          "fixed random MLP policy; raw: one gym.make env, random actions",
        "targets": {"time_to_solve_s": f"<= {TARGET_SOLVE_S}",
                    "sampling_per_worker_over_raw": f">= {TARGET_SAMPLING_RATIO}",
                    "startup_over_slowest_part": f"<= {TARGET_STARTUP_RATIO}"},
        "met": {
            "time_to_solve_s": median is not None and median <= TARGET_SOLVE_S,
            "sampling_per_worker_over_raw": min(one, two / 2) / raw >= TARGET_SAMPLING_RATIO,
            "startup_over_slowest_part": ratio is not None and ratio <= TARGET_STARTUP_RATIO,
        },
    }


def table_rows(result: dict) -> list[tuple[str, str, str]]:
    fmt = lambda v: "-" if v is None else f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"
    up = result["startup"]
    secs = lambda key: "-" if up.get(key) is None else f"{up[key]:.2f} s"
    return [
        ("start-up: Python and CLI (process start to config checked)", secs("cli_at_s"), ""),
        ("start-up: import tensorflow (in the run, beside Ray)", secs("tensorflow_s"), ""),
        ("start-up: ray.init (in the run, beside TensorFlow)", secs("ray_s"), ""),
        ("start-up: workers ready (since the process started)", secs("workers_ready_at_s"), ""),
        ("start-up: learner built (since the process started)", secs("learner_built_at_s"), ""),
        ("start-up: launch to first iteration", secs("launch_to_first_iteration_s"), ""),
        ("import tensorflow alone / ray.init alone",
         f"{secs('import_tensorflow_alone_s')} / {secs('ray_init_alone_s')}", ""),
        ("startup_over_slowest_part", fmt(result["startup_over_slowest_part"]), "<= 1.2"),
        ("  CPU-s busy to first iteration (TF alone, Ray alone)",
         f"{secs('startup_cpu_s')} ({secs('tensorflow_cpu_s')}, {secs('ray_cpu_s')})".replace(" s", ""), ""),
        ("  floor: CPU-s / cores / slowest part", fmt(result.get("startup_cpu_floor_over_slowest_part")), ""),
        ("trial_start_s (sweep trial start to first iteration)", fmt(result["trial_start_s"]), ""),
        ("time_to_solve_s (median of 3 seeds)", fmt(result["time_to_solve_s"]), "<= 20"),
        ("env_steps_to_solve (median)", fmt(result["env_steps_to_solve"]), ""),
        ("seeds_solved", f"{result['seeds_solved']}/{len(result['seeds'])}", "3/3"),
        ("raw_env_steps_per_s", fmt(result["raw_env_steps_per_s"]), ""),
        ("sampling_steps_per_s, 1 worker", fmt(result["sampling_steps_per_s"]["1"]), ""),
        ("sampling_steps_per_s, 2 workers", fmt(result["sampling_steps_per_s"]["2"]), ""),
        ("per worker / raw, 1 worker", f"{result['sampling_per_worker_over_raw']['1']:.2f}", ">= 0.6"),
        ("per worker / raw, 2 workers", f"{result['sampling_per_worker_over_raw']['2']:.2f}", ">= 0.6"),
    ]
