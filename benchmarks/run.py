"""``make bench``: runs each benchmark, prints a table, writes benchmarks/results/<name>.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import cartpole, cluster, dbvae, mnist, pipeline, pong, pong_seeds, scaling, supervised

RESULTS = Path(__file__).resolve().parent / "results"
# name -> (function, results file, table rows). pong-learning (~35 minutes) and pipeline join
# pong.json beside the throughput keys; music (36 minutes) and music-check (a minute: the music
# checks on corpus tunes) join supervised.json; mnist alone writes mnist.json.
BENCHMARKS = {
    "cartpole": (cartpole.run, "cartpole", cartpole.table_rows),
    "pong": (pong.run, "pong", pong.table_rows),
    "pong-learning": (pong.run_learning, "pong", pong.table_rows),
    "pong-seeds": (pong_seeds.run, "pong_seeds", pong_seeds.table_rows),
    "pipeline": (pipeline.run, "pong", pipeline.table_rows),
    "mnist": (mnist.run, "mnist", mnist.table_rows),
    "dbvae": (dbvae.run, "dbvae", dbvae.table_rows),
    "dbvae-torch": (dbvae.run_torch, "dbvae", dbvae.table_rows),
    "cluster": (cluster.run, "cluster", cluster.table_rows),
    "scaling": (scaling.run, "scaling", scaling.table_rows),
    "supervised": (supervised.run, "supervised", supervised.table_rows),
    "mnist-frameworks": (supervised.run_frameworks, "supervised", supervised.table_rows),
    "music": (supervised.run_music, "supervised", supervised.table_rows),
    "music-torch": (supervised.run_music_torch, "supervised", supervised.table_rows),
    "music-check": (supervised.run_music_check, "supervised", supervised.table_rows),
}
DURATION = {"mnist-frameworks": "~12 minutes", "music-torch": "~20 minutes", "pong-learning": "~35 minutes", "pong-seeds": "~12 hours", "music": "~40 minutes", "pipeline": "~10 minutes",
            "scaling": "~6-10 minutes"}
# `make bench` runs DEFAULT; `make bench-pong` and `make bench-music` the long ones.
DEFAULT = ["cartpole", "pong", "pipeline", "supervised", "music-check", "dbvae", "cluster",
           "scaling"]


def machine() -> dict:
    import gymnasium
    import ray

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "ray": ray.__version__,
            "gymnasium": gymnasium.__version__}


def main(names: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    console = Console()
    RESULTS.mkdir(exist_ok=True)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        console.print(f"error: unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
        return 2
    for name in names or DEFAULT:
        function, file_name, table_rows = BENCHMARKS[name]
        console.print(f"[bold]benchmark {name}[/bold] "
                      f"({DURATION.get(name, 'a few minutes')})")
        try:
            result = function()
        except pong.RefusedRun as err:
            console.print(f"error: {err}", markup=False, soft_wrap=True)
            return 1
        result[f"measured_at_{name}"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        result["machine"] = machine()
        path = RESULTS / f"{file_name}.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        merged = {**previous, **result}  # pong.json holds both pong benchmarks' keys
        for key in ("targets", "met"):    # and both benchmarks' targets
            merged[key] = {**previous.get(key, {}), **result.get(key, {})}
        path.write_text(json.dumps(merged, indent=2) + "\n")
        table = Table(title=f"{name} ({path.relative_to(RESULTS.parent.parent)})", title_justify="left")
        for column in ("measure", "value", "target"):
            table.add_column(column)
        for row in table_rows(result):
            table.add_row(*row)
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
