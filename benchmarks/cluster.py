"""Cluster-mode overhead: CartPole sampling on embedded Ray against a two-node local cluster.

In one run, on the same cores:

- ``embedded_steps_per_s``: 2 rollout workers (configs/cartpole.yaml's environments, a fixed
  random policy, no learning; ``benchmarks.cartpole.sampling_steps_per_s``) on an embedded local
  Ray with 2 CPUs;
- ``cluster_steps_per_s``: the same 2 workers on ``labrun cluster up --workers 1
  --cpus-per-node 1`` (a head and a worker node on 127.0.0.1, each its own raylet, token
  authentication on, the head running the dashboard and Jobs API), the driver joining it by its
  address; the workers are spread one per node;
- ``cluster_overhead_pct``: 100 x (1 - cluster / embedded), of the medians of the readings.
  Target: <= 10.

This machine's speed drifts by tens of percent between minutes, so the two alternate: embedded,
cluster, embedded, ..., embedded (``ROUNDS`` cluster readings, a fresh cluster each time, and no
cluster running while embedded Ray is measured).
"""

from __future__ import annotations

import os
import statistics
import tempfile

from benchmarks.cartpole import MEASURE_S, sampling_steps_per_s

TARGET_OVERHEAD_PCT = 10.0


def _embedded() -> float:
    from cluster.infra.session import RaySession

    with RaySession(num_cpus=2):
        return sampling_steps_per_s(2, MEASURE_S)


def _on_cluster() -> tuple[float, dict]:
    from cluster.infra import local_cluster
    from cluster.infra.session import RaySession

    with tempfile.TemporaryDirectory(prefix="labrun-bench-home-") as home:
        previous = os.environ.get(local_cluster.STATE_ENV)
        os.environ[local_cluster.STATE_ENV] = home
        try:
            cluster = local_cluster.up(workers=1, cpus_per_node=1)
            try:
                with RaySession(address=cluster.gcs_address):
                    import ray

                    nodes = len([n for n in ray.nodes() if n["Alive"]])
                    rate = sampling_steps_per_s(2, MEASURE_S)
            finally:
                local_cluster.down()
        finally:
            if previous is None:
                os.environ.pop(local_cluster.STATE_ENV, None)
            else:
                os.environ[local_cluster.STATE_ENV] = previous
    return rate, {"nodes": nodes, "cpus_per_node": 1}


ROUNDS = 4   # cluster readings; embedded ones before, between and after them


def run() -> dict:
    embedded_readings, cluster_readings = [_embedded()], []
    for _ in range(ROUNDS):
        rate, setup = _on_cluster()
        cluster_readings.append(rate)
        embedded_readings.append(_embedded())
    embedded, on_cluster = statistics.median(embedded_readings), statistics.median(cluster_readings)
    overhead = 100.0 * (1.0 - on_cluster / embedded)
    return {
        "embedded_steps_per_s": round(embedded),
        "embedded_readings": [round(r) for r in embedded_readings],
        "cluster_steps_per_s": round(on_cluster),
        "cluster_readings": [round(r) for r in cluster_readings],
        "cluster_setup": setup,
        "cluster_overhead_pct": round(overhead, 1),
        "measure_s": MEASURE_S,
        "targets": {"cluster_overhead_pct": f"<= {TARGET_OVERHEAD_PCT}"},
        "met": {"cluster_overhead_pct": overhead <= TARGET_OVERHEAD_PCT},
    }


def table_rows(r: dict) -> list[tuple[str, str, str]]:
    return [
        ("embedded Ray, 2 workers (steps/s, median)", f"{r['embedded_steps_per_s']:,} (readings "
         f"{', '.join(f'{x:,}' for x in r['embedded_readings'])})", ""),
        (f"{r['cluster_setup']['nodes']}-node local cluster, 2 workers (steps/s, median)",
         f"{r['cluster_steps_per_s']:,} (readings "
         f"{', '.join(f'{x:,}' for x in r['cluster_readings'])})", ""),
        ("cluster_overhead_pct", f"{r['cluster_overhead_pct']:.1f} %", f"<= {TARGET_OVERHEAD_PCT:.0f} %"),
    ]
