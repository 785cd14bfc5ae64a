"""A REINFORCE experiment as one Ray Tune trial, for sweeps (``labrun tune configs/cartpole_sweep.yaml``).

Each trial runs the same ``Trainer`` as ``labrun train``, with its own rollout workers, inside a
placement group that reserves the trial's whole footprint at once: one bundle for the trial's own
process (where the learner runs) and one per rollout worker, plus the learner's GPUs. Without it,
two trials on a 2-CPU machine would each take a CPU for their driver and wait forever for their
workers' CPUs. Tune places the trial in bundle 0 and captures the actors the trial creates, so the
workers land in the trial's bundles.

The trial's run folder is ``<trial folder>/run``: an ordinary labrun run folder (config.yaml,
metrics, TensorBoard, checkpoints, learning curve) that ``labrun eval`` reads. Each checkpoint is
also reported to Tune, so a crashed trial restarts from it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from cluster.config import schema
from cluster.config.rl_experiment import ExperimentConfig, check_env, dump_experiment
from cluster.config.sweep import nested
from cluster.devices import LEARNER_CPUS, gpus_for
from cluster.reinforce import checkpoint
from cluster.reinforce.console import ConsoleProgress
from cluster.reinforce.outputs import CONFIG_FILE
from cluster.reinforce.startup import StartupClock, prefetch_tensorflow
from cluster.reinforce.trainer import Trainer
from cluster.tuning.trainable import mark_finished

RUN_FOLDER = "run"


def trial_config(experiment: Mapping[str, Any], overrides: Mapping[str, Any]) -> ExperimentConfig:
    return schema.from_dict(ExperimentConfig, schema.merge(experiment, nested(overrides)),
                            source="trial")


def bundles(cfg: ExperimentConfig) -> list[dict[str, float]]:
    """The placement group of one trial: [trial process (+ learner GPUs)] + one per worker."""
    workers = cfg.rollout.num_workers
    if workers == "auto":  # load_sweep refuses this; a trial's size must not depend on the cluster
        raise ValueError("rollout.num_workers: a sweep's trials need a number of workers, not 'auto'")
    head: dict[str, float] = {"CPU": 1.0}
    gpus = cfg.resources.learner_gpus
    out = [head] + [{"CPU": float(cfg.resources.cpus_per_worker)} for _ in range(workers)]
    if gpus:  # "auto" was resolved before the trials started
        out.append({"CPU": LEARNER_CPUS, "GPU": float(gpus)})  # the learner's actor
    return out


def resolve_gpus(experiment: dict[str, Any], cluster_gpus: float) -> dict[str, Any]:
    """The experiment with ``resources.learner_gpus: auto`` made a number for this cluster, so
    that the placement group and the trial's learner agree."""
    resources = dict(experiment.get("resources") or {})
    if resources.get("learner_gpus", 0) == "auto":
        resources["learner_gpus"] = gpus_for("auto", cluster_gpus)
        return {**experiment, "resources": resources}
    return experiment


def resources(cfg: ExperimentConfig) -> Any:
    """Tune's resources for each trial of a sweep over ``cfg``: its placement group."""
    from ray import tune

    return lambda config: tune.PlacementGroupFactory(
        bundles(trial_config(config["experiment"], config["overrides"])))


def rl_trainable(config: dict[str, Any]) -> None:
    """One Tune trial: config = {"lab": "rl", "experiment" (plain data), "overrides" (key path -> value)}."""
    from ray import tune
    from rich.console import Console

    startup = StartupClock(time.time(), "the trial started")
    cfg = trial_config(config["experiment"], config["overrides"])
    obs_shape, num_actions = check_env(cfg, "trial")
    run_dir = Path(tune.get_context().get_trial_dir()) / RUN_FOLDER
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_experiment(cfg, run_dir / CONFIG_FILE)
    resume = None
    restored = tune.get_checkpoint()
    if restored is not None:  # a restarted trial continues from what it last reported
        with restored.as_directory() as folder:
            resume = checkpoint.load(Path(folder))
    startup.mark("checked")
    # TensorFlow loads while the workers start (the Trainer turns memory growth on before the
    # learner first touches a GPU): not before them, which made every trial ~5 s longer.
    prefetch_tensorflow(cfg, startup)

    def report(metrics: dict[str, float], ckpt: Path | None) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(ckpt)) if ckpt else None)

    result = Trainer(cfg, run_dir, obs_shape, num_actions, resume=resume, run_id=run_dir.parent.name,
                     progress=ConsoleProgress(cfg.output.console_every_s, Console(quiet=True)),
                     on_iteration=report, startup=startup,
                     track=False).run()   # the sweep's driver tracks its trials (cluster/tuning/tracking.py)
    if result.failed:   # non-finite values: the trial is an error, its last checkpoint finite
        raise RuntimeError(result.stop_reason)
    if not result.stop_reason.startswith("interrupted"):
        mark_finished(run_dir.parent)
