"""Where a run's numbers go: a metrics file (JSONL), TensorBoard, the trackers of
``output.loggers`` (``cluster/trackers.py``), a run log and a learning curve; and the run folder
itself (made here; locked while a process writes it: ``cluster/folders.py``).

Components return flat dicts of floats keyed ``area/name``; only this module writes them anywhere.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from cluster.config import schema
from cluster.folders import new_folder
from cluster.tensorboard_layout import write_layout
from cluster.trackers import Tracking, flatten, tracked
from supervised.files import atomic_write

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "run.log"
CONFIG_FILE = "config.yaml"
CURVE_FILE = "learning_curve.png"
TB_DIR = "tb"


def new_run_dir(runs_dir: str | Path, name: str, seed: int) -> Path:
    """``runs_dir/<name>__<seed>__<YYYYmmdd-HHMMSS>``, created (``-2``, ``-3``... if taken)."""
    return new_folder(runs_dir, f"{name}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}")


class RunOutputs:
    """Appends each iteration's metrics to the JSONL file and TensorBoard; logs run events.

    ``resume_step``: the env step of the checkpoint a resumed run starts from. Rows logged after
    it by the interrupted run are dropped from the metrics file and hidden in TensorBoard (a
    SessionLog.START at that step), so the resumed counters continue a clean history. The
    metrics file is rewritten whole or not at all (a temporary file renamed over it): a kill or a
    full disk during the rewrite leaves the history as it was.

    ``tracking``: the run's trackers (MLflow, W&B), fed every row; ``finish`` gives them the
    run's files and how it ended.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None,
                 tracking: Tracking | None = None):
        from tensorboardX import SummaryWriter

        self.run_dir = run_dir
        self.tracking = tracking
        if resume_step is not None:
            kept = [r for r in read_metrics(run_dir) if r["step"] <= resume_step]
            atomic_write(run_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
        self._metrics = open(run_dir / METRICS_FILE, "a")
        self._log = open(run_dir / LOG_FILE, "a")
        # TensorBoard hides events at steps >= purge_step: keep the checkpoint's own row.
        purge = None if resume_step is None else resume_step + 1
        self._tb = SummaryWriter(logdir=str(run_dir / TB_DIR), flush_secs=5, purge_step=purge)
        write_layout(self._tb, "rl")   # what TensorBoard's Custom Scalars tab shows first

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        row = {"timestamp": time.time(), "step": step, **metrics}
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        for key, value in metrics.items():
            self._tb.add_scalar(key, value, global_step=step)
        if self.tracking is not None:
            self.tracking.metrics(metrics, step)

    def add_gif(self, tag: str, gif: bytes, height: int, width: int, step: int) -> None:
        """An animated GIF under TensorBoard's Images tab (it shows the encoded image as is)."""
        from tensorboardX.proto.summary_pb2 import Summary

        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
        self._tb._get_file_writer().add_summary(
            Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def flush(self) -> None:
        """Makes everything written so far durable (called with each checkpoint)."""
        self._tb.flush()

    def event(self, message: str) -> None:
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        self._log.flush()

    def close(self) -> None:
        self._tb.close()
        self._metrics.close()
        self._log.close()

    def finish(self, status: str) -> None:
        """After ``close`` and the learning curve: the trackers get the run's files (config,
        curve, videos, log) and its end, 'finished', 'failed' or 'stopped'."""
        if self.tracking is not None:
            self.tracking.artifacts(self.run_dir)
            self.tracking.close(status)


def open_tracking(cfg: Any, run_dir: Path, resume: bool) -> Tracking | None:
    """The trackers of a run's ``output.loggers`` (None when it names none), its config logged
    as params; a resumed run continues its tracked runs."""
    if not tracked(cfg.output.loggers):
        return None
    tracking = Tracking(cfg.output.loggers, runs_dir=run_dir.parent, folder=run_dir,
                        experiment=cfg.name, run_name=run_dir.name, resume=resume,
                        tags={"labrun.lab": cfg.lab, "labrun.folder": str(run_dir.resolve())},
                        warn=lambda message: print(message, file=sys.stderr, flush=True))
    tracking.params(flatten(schema.to_dict(cfg)))
    return tracking


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of a run's metrics file. Only whole lines count: a row still being written (the
    file read while the run appends) or cut short by a kill has no newline yet and is left out."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    text = path.read_text()
    whole = text[:text.rfind("\n") + 1]
    return [json.loads(line) for line in whole.splitlines() if line.strip()]


def with_returns(rows: list[dict]) -> list[dict]:
    """The metrics rows that carry a training return: none before the first game ends, nor, with
    pieces of games (``rollout.steps_per_env``), for an iteration in which no game ended."""
    return [r for r in rows if "rollout/episode_return_mean" in r]


def plot_learning_curve(run_dir: Path, target: float | None = None) -> Path | None:
    """Mean return over the window against environment steps, as a PNG in the run folder."""
    rows = with_returns(read_metrics(run_dir))
    if not rows:
        return None
    from cluster.figures import pyplot, save

    steps = [r["step"] for r in rows]
    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=100)
    ax.fill_between(steps, [r["rollout/episode_return_min"] for r in rows],
                    [r["rollout/episode_return_max"] for r in rows], alpha=0.2, label="min-max")
    ax.plot(steps, [r["rollout/episode_return_mean"] for r in rows], label="mean")
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (moving window)")
    ax.set_title(run_dir.name)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return save(fig, run_dir / CURVE_FILE)
