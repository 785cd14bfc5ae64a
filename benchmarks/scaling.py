"""How cost grows with the work (issue #15, point 5): each part of the loop measured against its
size on this machine, and a model that extrapolates from those per-part costs to 16, 64 and 256
cores with a GPU learner. Writes benchmarks/results/scaling.json and scaling_*.png.

Measured, in one run (``make bench``; 10 minutes on 2 heavily shared cores, fewer on quiet ones),
with fixed random-weight policies and nothing learning:

- sampling: env steps/s (and emulator frames/s for Pong) of Ray rollout workers
  (``WorkerGroup.sample``) against the number of workers, 1 up to the machine's cores and one
  past them, and against environments per worker (1 worker), for configs/cartpole.yaml and
  configs/pong_mlp.yaml; the course's CNN (configs/pong.yaml) with 1 and all cores' workers, for
  the model. Ray gets cores + 1 CPUs, so the last worker point is oversubscribed: one worker more
  than there are cores. CartPole's timing starts after a warm-up call; Pong's, whose calls are
  whole games (seconds), once the actors are built (environments made, ROMs loaded).
- learning: ``ReinforceLearner.update`` seconds (median of 2-5 after a warm-up) and peak memory
  against the batch's steps (fake batches of the configs' shapes), each point in a fresh Python
  process: the growth of the process's peak RSS over one full-size update (VmHWM, reset through
  /proc/self/clear_refs just before it; Linux), beside TensorFlow's own allocator peak
  (tf.config.experimental.get_memory_info, which works on CPU but misses NumPy's arrays).
- driver: one ``WorkerGroup.sample`` round trip plus the ``ray.put`` of the CNN's weights against
  1-16 simulated workers: 0-CPU actors that hand back a pre-built batch at once.

The model (``iteration_s``, ``cluster_estimates``) is pure arithmetic on those costs plus the
named assumptions below, which are modelled, not measured.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.cartpole import SAMPLING_EPISODES_PER_ENV
from benchmarks.pong import load_config, random_weights
from benchmarks.scaling_learner import fake_batches, in_fresh_processes

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONFIGS = {"cartpole": "configs/cartpole.yaml", "pong_mlp": "configs/pong_mlp.yaml",
           "pong_cnn": "configs/pong.yaml"}

# The model's assumptions: modelled, not measured by this benchmark.
# A GPU learner's device seconds per batch step (forward, backward; the Adam step is in the per-update
# part): the same update in PyTorch 2.11 on an NVIDIA H200, fp32, chunks of 8,192, int8 frames copied
# in (benchmarks/gpu_proxy.py; a stand-in: labrun's learner is TensorFlow): the CNN 0.325 s and the
# MLP 1600-200-2 0.018 s for 131,072 steps. CartPole's 4-32-2 MLP is given the Pong MLP's figure.
GPU_STEP_S = {"cartpole": 0.14e-6, "pong_mlp": 0.14e-6, "pong_cnn": 2.5e-6}
GPU_UPDATE_S = 0.002        # per update on a GPU (launches, Adam, sync): the proxy's 1,024-step MLP
DRIVER_INGRESS_BYTES_PER_S = 1.25e9   # 10 Gb/s: the workers' batches into the driver's node
DRIVER_CORES = 1            # cores kept for the driver and the learner's host side; the rest sample
CLUSTER_CORES = (16, 64, 256)


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full run (a few minutes) or ``QUICK`` (seconds, development)."""

    measure_s: float = 4.0
    """Seconds per sampling point after its warm-up call (at least one call)."""
    envs_per_worker: tuple[int, ...] = (1, 2, 4, 8, 16)
    batch_steps: tuple[int, ...] = (1024, 4096, 16384, 65536)
    """Learner points of the MLPs (CartPole, Pong MLP)."""
    cnn_batch_steps: tuple[int, ...] = (1024, 4096, 16384)
    """The CNN in one chunk (its memory grows with the batch: about 0.17 MB a step)."""
    chunked_batch_steps: tuple[int, ...] = (16384, 32768)
    """The CNN in chunks of ``chunk_steps`` (below it, the same computation as one chunk)."""
    chunk_steps: int = 8192
    learner_measure_s: float = 3.0
    driver_workers: tuple[int, ...] = (1, 2, 4, 8, 16)
    driver_measure_s: float = 1.5


QUICK = Plan(measure_s=0.2, envs_per_worker=(1, 2), batch_steps=(256, 1024), cnn_batch_steps=(256,),
             chunked_batch_steps=(1024,), chunk_steps=512, learner_measure_s=0.1,
             driver_workers=(1, 2), driver_measure_s=0.2)


# -- sampling and the driver, on Ray ----------------------------------------------------------

def sampling(config: str, workers: int, envs_per_worker: int, episodes_per_env: int,
             seconds: float) -> dict:
    """Steps/s (and frames/s) of ``workers`` rollout workers with a fixed random policy, each
    environment playing ``episodes_per_env`` whole episodes a call (never pieces of games)."""
    import ray

    from cluster.reinforce.workers import WorkerGroup
    from rl.envs import frameskip

    cfg = load_config(config)
    rollout = dataclasses.replace(cfg.rollout, envs_per_worker=envs_per_worker,
                                  episodes_per_env=episodes_per_env, steps_per_env=None)
    group = WorkerGroup("bench", workers, (cfg.env, cfg.policy, rollout), seed=0,
                        cpus_per_worker=1, max_restarts=0)
    weights = ray.put(random_weights(cfg, np.random.default_rng(0)))
    try:
        if cfg.env.is_atari:   # a call is whole games (seconds): wait for the actors to be built
            ray.get([actor.__ray_ready__.remote() for actor in group.actors.values()])
        else:                  # a call is milliseconds: a warm-up call
            group.sample(weights)
        steps, calls, start = 0, 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - start < seconds:
            steps += sum(b.num_steps for b in group.sample(weights))
            calls += 1
        elapsed = time.perf_counter() - start
    finally:
        group.shutdown()
    return {"workers": workers, "envs_per_worker": envs_per_worker,
            "steps_per_s": round(steps / elapsed), "frames_per_s": round(steps * frameskip(cfg.env) / elapsed),
            "call_s": round(elapsed / calls, 4), "steps_per_worker_call": round(steps / calls / workers, 1)}


class FixedBatchWorker:
    """A simulated rollout worker: hands back a pre-built batch at once, so that a sample round
    trip times only the driver and Ray. ``use(kind)``: 'small' (CartPole-sized, 352 steps of 4
    floats, 7 KB) or 'pong' (4 games' worth, 3,600 frame differences of 40x40, 5.8 MB)."""

    def __init__(self, seed: int, worker_index: int = 0, generation: int = 0):
        rng = np.random.default_rng(seed + worker_index)
        self.batches = {"small": fake_batches((4,), 2, 352, rng, parts=1)[0],
                        "pong": fake_batches((40, 40, 1), 3, 3600, rng, parts=1)[0]}
        self.kind = "small"

    def use(self, kind: str) -> None:
        self.kind = kind

    def sample(self, weights=None):
        return self.batches[self.kind]


def driver_overhead(workers: int, weights: list[np.ndarray], seconds: float) -> dict:
    """Milliseconds of one iteration's driver work, ``ray.put(weights)`` then
    ``WorkerGroup.sample``, with ``workers`` simulated workers; per batch kind, the median."""
    import ray

    from cluster.reinforce.workers import WorkerGroup

    class SimulatedWorkers(WorkerGroup):
        def _start(self, index: int) -> None:
            self._remote = ray.remote(num_cpus=0, max_restarts=0)(FixedBatchWorker)
            super()._start(index)

    group = SimulatedWorkers("bench-driver", workers, (), seed=0, cpus_per_worker=0, max_restarts=0)
    out = {"workers": workers}
    try:
        for kind in ("small", "pong"):
            ray.get([actor.use.remote(kind) for actor in group.actors.values()])
            group.sample(ray.put(weights))   # warm-up (and the actors placed)
            times, start = [], time.perf_counter()
            while len(times) < 5 or time.perf_counter() - start < seconds:
                t = time.perf_counter()
                group.sample(ray.put(weights))
                times.append(time.perf_counter() - t)
            out[f"{kind}_ms"] = round(1000 * statistics.median(times), 3)
    finally:
        group.shutdown()
    return out


# -- the model --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartCosts:
    """One configuration's per-part costs: measured here (the learner's and the driver's as linear
    fits), but for ``gpu_step_s``, which is modelled (``GPU_STEP_S``)."""

    sample_s: float               # one worker's sample call, every core busy
    steps_per_worker: float       # env steps one worker brings per iteration
    learn_fixed_s: float          # learner, per update (fit's intercept, this machine's CPU)
    learn_per_step_s: float       # learner, per batch step (fit's slope, this machine's CPU)
    host_per_step_s: float        # the part of learn_per_step_s that stays on the host with a GPU
    overhead_fixed_s: float       # driver, per iteration
    overhead_per_worker_s: float  # driver, per worker per iteration
    bytes_per_step: float         # observation bytes a step adds to the batch
    gpu_step_s: float = 0.0       # modelled: a GPU's device seconds per step


def learn_s(costs: PartCosts, steps: float, gpu: bool = True, gpu_update_s: float = GPU_UPDATE_S) -> float:
    """Seconds of one update of ``steps`` steps: this machine's CPU learner (measured fit), or a GPU
    learner (modelled): the CPU's per-update and host-side per-step costs plus the GPU's own."""
    if not gpu:
        return costs.learn_fixed_s + steps * costs.learn_per_step_s
    return costs.learn_fixed_s + gpu_update_s + steps * (costs.host_per_step_s + costs.gpu_step_s)


def iteration_s(costs: PartCosts, workers: int, pipelined: bool, gpu: bool = True,
                gpu_update_s: float = GPU_UPDATE_S,
                ingress_bytes_per_s: float = DRIVER_INGRESS_BYTES_PER_S) -> float:
    """Seconds per iteration: synchronous, sample + learn + overhead; pipelined (workers sample
    the next batch while the learner updates), max(sample, learn + overhead). The batch grows
    with the workers, as the configs' does; the overhead is the driver's measured per-iteration
    and per-worker costs plus the batches crossing the network into the driver's node."""
    steps = workers * costs.steps_per_worker
    learn = learn_s(costs, steps, gpu, gpu_update_s)
    overhead = (costs.overhead_fixed_s + workers * costs.overhead_per_worker_s
                + steps * costs.bytes_per_step / ingress_bytes_per_s)
    return max(costs.sample_s, learn + overhead) if pipelined else costs.sample_s + learn + overhead


def efficiency(costs: PartCosts, workers: int, pipelined: bool, **assumptions: float) -> float:
    """The share of an iteration in which the workers sample: steps/s over ``workers`` x one
    worker's own rate."""
    return costs.sample_s / iteration_s(costs, workers, pipelined, **assumptions)


def scaling_limit(costs: PartCosts, pipelined: bool, threshold: float = 0.5,
                  most: int = 1 << 20, **assumptions: float) -> int | None:
    """The fewest workers at which efficiency falls below ``threshold`` (None: not up to
    ``most``); efficiency never rises with more workers, so a bisection finds it."""
    if efficiency(costs, most, pipelined, **assumptions) >= threshold:
        return None
    lo, hi = 0, most          # efficiency(lo) >= threshold (or lo == 0), efficiency(hi) < threshold
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if efficiency(costs, mid, pipelined, **assumptions) >= threshold:
            lo = mid
        else:
            hi = mid
    return hi


def cluster_estimates(costs: PartCosts, frameskip: int, cores: tuple[int, ...] = CLUSTER_CORES) -> dict:
    """For each cluster size and loop, with a GPU learner: workers, iteration seconds, steps/s
    (frames/s), efficiency and what bounds it; each loop's scaling limit (efficiency < 0.5), also
    with this machine's CPU as the learner."""
    out: dict = {}
    for pipelined, loop in ((False, "sync"), (True, "pipelined")):
        rows = {}
        for n in cores:
            workers = n - DRIVER_CORES
            t = iteration_s(costs, workers, pipelined)
            eff = costs.sample_s / t
            rows[str(n)] = {"workers": workers, "iteration_s": round(t, 4),
                            "steps_per_s": round(workers * costs.steps_per_worker / t),
                            "frames_per_s": round(workers * costs.steps_per_worker * frameskip / t),
                            "efficiency": round(eff, 3),
                            "bound": "sampling" if eff > 0.5 else "learner + driver"}
        out[loop] = {"cores": rows, "workers_at_half_efficiency": scaling_limit(costs, pipelined),
                     "cpu_learner_workers_at_half_efficiency": scaling_limit(costs, pipelined, gpu=False)}
    return out


def model_curves(costs: dict[str, PartCosts], frameskips: dict[str, int], most_cores: int = 1024) -> dict:
    """Per configuration, for the plot: modelled steps/s (frames/s) against cluster cores."""
    cores = sorted({int(n) for n in np.geomspace(DRIVER_CORES + 1, most_cores, 40)})
    out = {}
    for name, c in costs.items():
        scale, workers = frameskips[name], [n - DRIVER_CORES for n in cores]
        out[name] = {"cores": cores, "unit": "frames/s" if scale > 1 else "env steps/s",
                     "ideal": [w * c.steps_per_worker * scale / c.sample_s for w in workers],
                     **{loop: [w * c.steps_per_worker * scale / iteration_s(c, w, pipelined) for w in workers]
                        for loop, pipelined in (("sync", False), ("pipelined", True))}}
    return out


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope), both kept >= 0."""
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    if slope < 0:       # no growth measured: a constant
        return float(np.mean(ys)), 0.0
    if intercept < 0:   # a line through the origin instead
        slope, intercept = float(np.dot(xs, ys) / np.dot(xs, xs)), 0.0
    return float(intercept), float(slope)


# -- the run ----------------------------------------------------------------------------------

OBS_BYTES_PER_STEP = {"cartpole": 4 * 4, "pong_mlp": 40 * 40, "pong_cnn": 40 * 40}   # float32 x4; int8 40x40
DRIVER_BATCH = {"cartpole": "small", "pong_mlp": "pong", "pong_cnn": "pong"}


def part_costs(name: str, sample_point: dict, learner_points: list[dict], driver: list[dict]) -> PartCosts:
    """The model's inputs for one configuration, from the measured points."""
    steps = [p["steps"] for p in learner_points]
    learn_fixed, learn_per_step = fit_line(steps, [p["update_s"] for p in learner_points])
    _, host_per_step = fit_line(steps, [p["host_s"] for p in learner_points])
    kind = DRIVER_BATCH[name]
    overhead_fixed, overhead_per_worker = fit_line([d["workers"] for d in driver],
                                                   [d[f"{kind}_ms"] / 1000 for d in driver])
    return PartCosts(sample_s=sample_point["call_s"], steps_per_worker=sample_point["steps_per_worker_call"],
                     learn_fixed_s=learn_fixed, learn_per_step_s=learn_per_step,
                     host_per_step_s=min(host_per_step, learn_per_step), overhead_fixed_s=overhead_fixed,
                     overhead_per_worker_s=overhead_per_worker, bytes_per_step=OBS_BYTES_PER_STEP[name],
                     gpu_step_s=GPU_STEP_S[name])


def run(plan: Plan = Plan(), out_dir: Path = RESULTS) -> dict:
    """``make bench``: every measurement, the model, the plots (into ``out_dir``)."""
    from benchmarks.scaling_plots import plot_all
    from cluster.infra.session import RaySession
    from rl.envs import frameskip

    cores = os.cpu_count() or 1
    cfgs = {name: load_config(path) for name, path in CONFIGS.items()}
    families = {   # learner curve -> (config, batch steps, chunk steps; None: one chunk)
        "cartpole": ("cartpole", plan.batch_steps, cfgs["cartpole"].learner.chunk_steps),
        "pong_mlp": ("pong_mlp", plan.batch_steps, cfgs["pong_mlp"].learner.chunk_steps),
        "pong_cnn_one_chunk": ("pong_cnn", plan.cnn_batch_steps, None),
        "pong_cnn_chunked": ("pong_cnn", plan.chunked_batch_steps, plan.chunk_steps),
    }
    clock = time.perf_counter()
    points = [(CONFIGS[name], s, chunk or s) for name, steps, chunk in families.values() for s in steps]
    measured = iter(in_fresh_processes(points, plan.learner_measure_s))
    learner = {family: [next(measured) for _ in steps] for family, (_, steps, _) in families.items()}
    phase_s = {"learner": time.perf_counter() - clock}
    settings = {"cartpole": (16, SAMPLING_EPISODES_PER_ENV), "pong_mlp": (5, 1), "pong_cnn": (4, 1)}
    with RaySession(num_cpus=cores + 1):
        by_workers = {name: [sampling(CONFIGS[name], w, *settings[name], plan.measure_s)
                             for w in (range(1, cores + 2) if name != "pong_cnn" else sorted({1, cores}))]
                      for name in CONFIGS}
        by_envs = {name: [sampling(CONFIGS[name], 1, e, settings[name][1], plan.measure_s)
                          for e in plan.envs_per_worker] for name in ("cartpole", "pong_mlp")}
        phase_s["sampling"] = time.perf_counter() - clock - phase_s["learner"]
        cnn_weights = random_weights(cfgs["pong_cnn"], np.random.default_rng(0))
        driver = [driver_overhead(n, cnn_weights, plan.driver_measure_s) for n in plan.driver_workers]
    phase_s["driver"] = time.perf_counter() - clock - sum(phase_s.values())
    # The CNN's fit: the chunked points and the one-chunk points no longer than a chunk (the same
    # computation: the config's chunk_steps splits nothing shorter).
    cnn_fit = ([p for p in learner["pong_cnn_one_chunk"] if p["steps"] <= plan.chunk_steps]
               + learner["pong_cnn_chunked"])
    fits = {"cartpole": learner["cartpole"], "pong_mlp": learner["pong_mlp"], "pong_cnn": cnn_fit}
    costs = {name: part_costs(name, next(p for p in by_workers[name] if p["workers"] == cores),
                              fits[name], driver) for name in CONFIGS}
    skips = {name: frameskip(cfg.env) for name, cfg in cfgs.items()}
    model = {name: cluster_estimates(costs[name], skips[name]) for name in CONFIGS}
    result = {
        "cores": cores,
        "phase_s": {k: round(v, 1) for k, v in phase_s.items()},
        "sampling_by_workers": by_workers,
        "sampling_by_envs_per_worker": by_envs,
        "learner": learner,
        "driver_overhead": driver,
        "part_costs": {name: dataclasses.asdict(c) for name, c in costs.items()},
        "model": model,
        "model_assumptions": {"gpu_step_s": GPU_STEP_S, "gpu_update_s": GPU_UPDATE_S,
                              "driver_ingress_bytes_per_s": DRIVER_INGRESS_BYTES_PER_S,
                              "driver_cores": DRIVER_CORES},
        "setup": f"Ray started with {cores + 1} CPUs on {cores} cores: the {cores + 1}-worker sampling "
                 "point is oversubscribed (one worker more than cores). Fixed random-weight policies; "
                 f"CartPole: 16 envs/worker, {SAMPLING_EPISODES_PER_ENV} episodes each per call; Pong: "
                 "whole games, 1 per env per call (pong_mlp 5 envs/worker, pong_cnn 4). Learner: fake "
                 "batches of the configs' shapes in 2 worker parts, one fresh process per point; memory "
                 "= peak RSS growth over one full-size update (VmHWM reset via /proc/self/clear_refs), "
                 "TF allocator peak beside it. Driver: 0-CPU simulated workers returning a pre-built "
                 "batch, ray.put of the CNN's weights (0.7 MB) + WorkerGroup.sample, median. Model: "
                 "measured per-part costs + the modelled assumptions in model_assumptions.",
        "plots": [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)
                  for p in plot_all(by_workers, by_envs, learner, driver,
                                    model_curves(costs, skips), cores, out_dir)],
    }
    return result


def table_rows(result: dict) -> list[tuple[str, str, str]]:
    fmt = lambda v: "-" if v is None else f"{v:,.3f}" if isinstance(v, float) else f"{v:,}"
    rows = []
    for name, points in result["sampling_by_workers"].items():
        unit = "steps_per_s" if name == "cartpole" else "frames_per_s"
        rows.append((f"{name} {unit.replace('_per_s', '/s')} by workers",
                     ", ".join(f"{p['workers']}: {p[unit]:,}" for p in points), ""))
    for name, points in result["sampling_by_envs_per_worker"].items():
        unit = "steps_per_s" if name == "cartpole" else "frames_per_s"
        rows.append((f"{name} {unit.replace('_per_s', '/s')} by envs/worker",
                     ", ".join(f"{p['envs_per_worker']}: {p[unit]:,}" for p in points), ""))
    for family, points in result["learner"].items():
        rows.append((f"learner {family}: update s (peak MB) by steps",
                     ", ".join(f"{p['steps']}: {p['update_s']:.3f} ({p['peak_rss_growth_mb']:,.0f})"
                               for p in points), ""))
    rows.append(("driver ms by workers (small / pong batch)",
                 ", ".join(f"{d['workers']}: {d['small_ms']:.1f}/{d['pong_ms']:.1f}"
                           for d in result["driver_overhead"]), ""))
    for name, model in result["model"].items():
        for loop in ("sync", "pipelined"):
            cells = ", ".join(f"{n}: {r['steps_per_s']:,} ({r['efficiency']:.2f})"
                              for n, r in model[loop]["cores"].items())
            rows.append((f"model {name} {loop}: steps/s (efficiency) by cores", cells,
                         f"50% at {fmt(model[loop]['workers_at_half_efficiency'])} workers"))
    return rows
