"""Helpers the tests share: the real CLI, polling, run folders, sweep files. Fixtures live in
conftest.py; this module is imported by name (pytest puts tests/ on the path)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from cluster.infra.local_cluster import processes_of, stop_processes  # noqa: F401 (tests use them)
from cluster.infra.net import free_port  # noqa: F401 (tests use it)

REPO = Path(__file__).resolve().parents[1]
LABRUN = str(Path(sys.executable).with_name("labrun"))


def run_cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``labrun ARGS`` through the installed console script, from the repository root."""
    return subprocess.run([LABRUN, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def start_cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([LABRUN, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def only_run_dir(runs_dir: Path) -> Path:
    runs = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder in {runs_dir}, found {runs}"
    return runs[0]


def write_sweep(tmp_path: Path, space: dict, metric: str = "fit/loss", mode: str = "min",
                experiment: dict | None = None, **extra) -> Path:
    """A sweep file (and its experiment file, a short intro lab by default) in ``tmp_path``."""
    exp = experiment or {"name": "intro_t", "lab": "intro", "intro": {"epochs": 3, "steps_per_epoch": 20},
                         "trial": {"cpus": 1, "gpus": 0}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    sweep = {"name": "s", "experiment": "exp.yaml", "search_space": space, "metric": metric,
             "mode": mode, **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path
