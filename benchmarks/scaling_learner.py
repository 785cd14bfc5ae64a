"""The scaling benchmark's learner points: ``ReinforceLearner.update`` on fake batches of a
config's shapes, each point in a fresh Python process so that its peak memory is its own.

``python -m benchmarks.scaling_learner CONFIG STEPS CHUNK_STEPS SECONDS`` prints one point as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.pong import load_config

REPO = Path(__file__).resolve().parents[1]
EPISODE_STEPS = {1: 200, 3: 1000}   # fake batches: episode length by observation rank
POINT_EVERY = 50                    # fake Pong batches: a point (reward +-1) every 50 steps


def fake_batches(obs_shape: tuple[int, ...], num_actions: int, steps: int, rng: np.random.Generator,
                 parts: int = 2) -> list:
    """``steps`` steps in ``parts`` workers' batches of whole episodes, with the shapes and dtypes
    the workers send: float32 vectors (200-step episodes, reward 1 a step) or int8 frame
    differences in {-1, 0, 1} (1000-step games, a point every 50 steps)."""
    from rl.trajectory import Trajectories

    image = len(obs_shape) == 3
    out = []
    for part in np.array_split(np.arange(steps), parts):
        n = len(part)
        obs = (rng.integers(-1, 2, (n, *obs_shape), dtype=np.int8) if image
               else rng.normal(size=(n, *obs_shape)).astype(np.float32))
        rewards = np.zeros(n, np.float32) if image else np.ones(n, np.float32)
        if image:
            rewards[POINT_EVERY - 1::POINT_EVERY] = rng.choice([-1.0, 1.0], len(rewards[POINT_EVERY - 1::POINT_EVERY]))
        length = EPISODE_STEPS[len(obs_shape)]
        lengths = [length] * (n // length) + ([n % length] if n % length else [])
        out.append(Trajectories(obs, rng.integers(0, num_actions, n).astype(np.int32), rewards,
                                np.asarray(lengths, np.int64)))
    return out


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _host_s(batches: list, cfg) -> float:
    """The update's host-side part, which a GPU does not speed up: the workers' batches
    concatenated, the returns, and the observations made float32 tensors."""
    import tensorflow as tf

    from rl.returns import advantages
    from rl.trajectory import Trajectories

    start = time.perf_counter()
    batch = Trajectories.concat(batches)
    advantages(batch.rewards, batch.episode_lengths, cfg.gamma, baseline=cfg.baseline,
               normalize=cfg.normalize_returns, reset_on_reward=cfg.reset_on_reward)
    for lo in range(0, batch.num_steps, cfg.chunk_steps):
        tf.constant(batch.obs[lo:lo + cfg.chunk_steps], tf.float32)
    return time.perf_counter() - start


def learner_point(config: str, steps: int, chunk_steps: int, measure_s: float) -> dict:
    """One learner point, in this (fresh) process: the update's seconds and its peak memory."""
    import tensorflow as tf

    from cluster.config.rl_experiment import check_env
    from rl.learner import ReinforceLearner

    cfg = load_config(config)
    obs_shape, num_actions = check_env(cfg, config)
    learner_cfg = dataclasses.replace(cfg.learner, chunk_steps=chunk_steps)
    learner = ReinforceLearner(obs_shape, num_actions, cfg.policy, learner_cfg, seed=0)
    rng = np.random.default_rng(0)
    learner.update(fake_batches(obs_shape, num_actions, 64, rng))   # compiles: one trace, any size
    batches = fake_batches(obs_shape, num_actions, steps, rng)
    Path("/proc/self/clear_refs").write_text("5")   # the peak RSS (VmHWM) := the RSS now
    rss_before = _status_bytes("VmRSS")
    tf.config.experimental.reset_memory_stats("CPU:0")
    first_s = learner.update(batches)["time/learn_s"]   # also the warm-up at this size
    rss_growth = _status_bytes("VmHWM") - rss_before
    tf_peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    times, host, start = [], [], time.perf_counter()
    while len(times) < 2 or (time.perf_counter() - start < measure_s and len(times) < 5):
        times.append(learner.update(batches)["time/learn_s"])
        host.append(_host_s(batches, learner_cfg))
    return {"steps": steps, "chunk_steps": chunk_steps, "update_s": statistics.median(times),
            "update_s_readings": [round(t, 4) for t in times], "first_update_s": round(first_s, 4),
            "host_s": statistics.median(host), "peak_rss_growth_mb": round(rss_growth / 2**20, 1),
            "tf_allocator_peak_mb": round(tf_peak / 2**20, 1),
            "batch_mb": round(sum(b.obs.nbytes for b in batches) / 2**20, 1)}


def in_fresh_processes(points: list[tuple[str, int, int]], measure_s: float) -> list[dict]:
    """``learner_point`` for each (config, steps, chunk steps), each in a process of its own so that
    its peak memory is its own: one Python imports TensorFlow (and runs nothing), then forks a
    child per point (TensorFlow's import starts no threads, so the fork is safe)."""
    args = [f"{config}:{steps}:{chunk}" for config, steps, chunk in points]
    out = subprocess.run([sys.executable, "-m", "benchmarks.scaling_learner", str(measure_s), *args],
                         cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode != 0:
        raise RuntimeError(f"learner points failed: {out.stderr[-2000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _forked(config: str, steps: int, chunk_steps: int, measure_s: float) -> dict:
    """``learner_point`` in a forked child; its result comes back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: measure, report, leave without running the parent's exit handlers
        os.close(read_end)
        try:
            data, code = json.dumps(learner_point(config, steps, chunk_steps, measure_s)).encode(), 0
        except BaseException as err:   # noqa: B036 -- whatever it is, the parent must hear of it
            data, code = json.dumps({"error": repr(err)}).encode(), 1
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    result = json.loads(data or b"{}")
    if os.waitstatus_to_exitcode(status) != 0 or "error" in result:
        raise RuntimeError(f"learner point {config} {steps} failed: {result.get('error', status)}")
    return result


def main(argv: list[str]) -> int:
    """``SECONDS CONFIG:STEPS:CHUNK ...``: one JSON line per point, each from a forked child."""
    import tensorflow  # noqa: F401 -- imported once, before the forks

    import rl.learner  # noqa: F401

    measure_s = float(argv[0])
    for arg in argv[1:]:
        config, steps, chunk = arg.rsplit(":", 2)
        print(json.dumps(_forked(config, int(steps), int(chunk), measure_s)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
