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

from benchmarks import cartpole

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = {"cartpole": cartpole}


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
    for name in names or list(BENCHMARKS):
        module = BENCHMARKS[name]
        console.print(f"[bold]benchmark {name}[/bold] (takes a few minutes)")
        result = module.run()
        result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        result["machine"] = machine()
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        table = Table(title=f"{name} ({path.relative_to(RESULTS.parent.parent)})", title_justify="left")
        for column in ("measure", "value", "target"):
            table.add_column(column)
        for row in module.table_rows(result):
            table.add_row(*row)
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
