"""A study's trials through Ray Tune: the search space as Tune's samplers, the scheduler, the
failure and checkpoint settings, and the lab's own trainable with its resources."""

from __future__ import annotations

import os
import sys
from typing import Any

from cluster.infra.session import RaySession
from cluster.tuning.study import Study


def _param(dist: str, args: list) -> Any:
    """A search-space entry as Tune's sampler."""
    from ray import tune

    if dist == "grid":
        return tune.grid_search(args)
    if dist == "choice":
        return tune.choice(args)
    return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[dist](*args)


def accept_old_tuner_files() -> None:
    """Tune keeps its callbacks pickled in tuner.pkl, by module path: a sweep started before
    cluster/ was laid out by concern (2026-11-29) names ``cluster.tune_progress.Progress``."""
    from cluster.tuning import progress  # imports Ray: after RaySession set it up

    sys.modules.setdefault("cluster.tune_progress", progress)


def run_trials(study: Study, lab: Any, resume: bool = False):
    """Runs (or, with ``resume``, continues) the study of ``lab`` (its ``cluster.labs`` entry)
    on the current Ray session; its ResultGrid."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from cluster.tuning.progress import Progress  # imports Ray: after RaySession set it up
    from cluster.tuning.tracking import track

    # A trial that fails at once (no data: ``trainable.fail_permanently``) ends cleanly with no
    # metrics, which Tune's strict check refuses; labrun checks a sweep's metric against the
    # lab's metrics when it loads the sweep. Read by Tune in this (the driver's) process.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Tune's own console output is off: labrun prints each trial's progress (``Progress``) and
    # the results. Tune's new output engine prints its experiment box and a TensorBoard hint on
    # a folder under Ray's temp directory even at verbose=0; the legacy one honours verbose=0.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # Trials checkpoint every epoch on purpose (a restart loses at most one); Tune's warning that
    # its experiment snapshots come often would repeat through a sweep and asks for nothing.
    os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] = "0"
    cluster = RaySession.resources()
    # The trackers' callback; on resume Tune brings back its own from tuner.pkl, which tracks
    # this session's study (``track`` sets it).
    tracked = track(study, () if resume else study.loggers(lab))
    trial = lab.tune_trial(study.experiment, cluster)
    if resume:
        accept_old_tuner_files()
        return tune.Tuner.restore(study.location, trainable=trial.trainable, resume_errored=True).fit()
    scheduler = None
    if study.scheduler is not None and study.scheduler.kind == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=10_000,
                                  grace_period=study.scheduler.grace_period,
                                  reduction_factor=study.scheduler.reduction_factor)
    tuner = tune.Tuner(
        trial.trainable,
        param_space={"lab": study.lab, "experiment": lab.prepare(study.experiment, cluster),
                     "overrides": {k: _param(dist, args) for k, (dist, args) in study.space.items()}},
        tune_config=tune.TuneConfig(
            metric=study.metric, mode=study.mode, num_samples=study.num_samples,
            scheduler=scheduler, max_concurrent_trials=study.max_concurrent_trials,
            search_alg=BasicVariantGenerator(random_state=study.search_seed)),
        run_config=tune.RunConfig(
            name=study.name, storage_path=study.storage or str(study.runs_dir), verbose=0,
            # With a URI, the files trials write in their folders (TensorBoard images, reports,
            # `finished`) go there too, at each checkpoint and at the trial's end.
            sync_config=tune.SyncConfig(sync_artifacts=study.storage is not None),
            failure_config=tune.FailureConfig(max_failures=trial.max_failures),
            callbacks=[Progress(study.metric), *tracked],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=trial.keep_checkpoints)))
    return tuner.fit()
