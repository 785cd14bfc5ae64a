"""The distributed REINFORCE loop: sample from all workers -> update -> broadcast.

The rollout workers are Ray actors; the learner lives in this (driver) process, or in a Ray actor
holding GPUs when the config asks for them. Each iteration the learner's weights are put into
Ray's object store once and every worker reads that one copy. Around the loop, not inside it:
metrics to the run folder and the console, checkpoints, videos, the caller's hook (a Tune trial
reports through it) and the stop criteria (``_after_iteration``).
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from cluster.config.rl_experiment import ExperimentConfig
from cluster.config.schema import ConfigError
from cluster.devices import LEARNER_CPUS, enable_memory_growth, gpus_for, hide_gpus_from_tensorflow
from cluster.errors import ClusterError
from cluster.infra.session import RaySession
from cluster.reinforce import checkpoint
from cluster.reinforce.console import ConsoleProgress
from cluster.reinforce.outputs import RunOutputs, open_tracking, plot_learning_curve
from cluster.reinforce.startup import StartupClock, mark_when_ready
from rl import episodes
from rl.episodes import EpisodeStats
from rl.schedules import learning_rate

LEARNER_METRICS = ("learner/loss", "learner/entropy", "learner/grad_norm", "learner/lr", "learner/batch_steps",
                   "learner/baseline_mse", "learner/policy_lag", "learner/importance_weight_mean",
                   "learner/importance_weight_below_1", "time/learn_s")
LOOP_METRICS = ("time/sample_s", "time/wait_s", "time/iteration_s", "time/env_steps_per_s",
                "time/sample_steps_per_s", "time/frames_per_s", "time/train_s",
                "counters/iteration", "counters/env_steps", "counters/episodes",
                "counters/worker_restarts", "counters/workers", "counters/workers_dropped",
                "time/startup_s")
# Every metric a REINFORCE run reports (Atari's only for ALE/ ids): what sweeps may rank by.
# tests/test_cli.py and tests/test_pong.py fail when a run reports one missing from here.
METRICS = episodes.METRICS + episodes.ATARI_METRICS + LEARNER_METRICS + LOOP_METRICS

@dataclass
class RunState:
    """Counters that a checkpoint carries, so a resumed run continues where it was."""

    iteration: int = 0
    env_steps: int = 0
    episodes: int = 0
    train_time_s: float = 0.0
    worker_restarts: int = 0
    generation: int = 0
    best_return_mean: float | None = None
    recent_returns: list[float] = field(default_factory=list)
    recent_lengths: list[int] = field(default_factory=list)
    recent_won: list[int] = field(default_factory=list)      # points won and lost (Atari)
    recent_lost: list[int] = field(default_factory=list)


@dataclass
class RunResult:
    run_dir: Path
    stop_reason: str
    state: RunState
    last_metrics: dict[str, float]
    failed: bool = False      # ended by non-finite values or no workers left (stop_reason): exit 1


def stop_reason(cfg: ExperimentConfig, state: RunState, return_mean: float | None) -> str | None:
    """Which configured stop criterion the run has met, if any."""
    stop = cfg.stop
    if (stop.mean_return is not None and return_mean is not None
            and len(state.recent_returns) >= stop.window and return_mean >= stop.mean_return):
        return f"solved: mean return {return_mean:.1f} >= {stop.mean_return:g} over {stop.window} episodes"
    if stop.env_steps is not None and state.env_steps >= stop.env_steps:
        return f"env step budget reached ({stop.env_steps:,})"
    if stop.iterations is not None and state.iteration >= stop.iterations:
        return f"iteration budget reached ({stop.iterations})"
    if stop.wall_time_s is not None and state.train_time_s >= stop.wall_time_s:
        return f"wall time budget reached ({stop.wall_time_s:g} s)"
    return None


class Trainer:
    """Runs one experiment on the current Ray session. ``run()`` returns when a stop criterion is
    met or on Ctrl-C (or SIGTERM, as ``cluster.signals.Terminated``); either way it writes a
    final checkpoint and stops its actors. A loss or weights holding NaN or inf end the run at
    once, ``failed``, with no final checkpoint: the newest one stays the last finite one. With no
    rollout worker left (``workers.WorkersLost``) the run ends ``failed`` with a final checkpoint."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, obs_shape: tuple[int, ...],
                 num_actions: int, *, resume: tuple[dict[str, Any], dict[str, Any]] | None = None,
                 progress: ConsoleProgress | None = None,
                 on_iteration: Callable[[dict[str, float], Path | None], None] | None = None,
                 run_id: str | None = None, startup: StartupClock | None = None,
                 track: bool = True):
        """``on_iteration(metrics, checkpoint_dir or None)`` is called after every iteration (a
        Tune trial reports through it); ``run_id`` (default: the run folder's name) names the
        run's Ray actors, so it must be unique on the cluster. ``startup`` (default: from now)
        times the start-up: the run log gets its phases at the first iteration, and every
        metrics row ``time/startup_s``. ``track``: open the trackers of ``output.loggers`` (a
        sweep's trials are tracked by the driver instead: ``cluster/tuning/tracking.py``)."""
        self.cfg, self.run_id, self.run_dir = cfg, run_id or run_dir.name, run_dir
        self.on_iteration = on_iteration
        self.obs_shape, self.num_actions = obs_shape, num_actions
        self.progress = progress or ConsoleProgress(cfg.output.console_every_s)
        self.learner_state = None
        self.state = RunState()
        if resume is not None:
            self.learner_state, counters = resume
            self.state = RunState(**counters)
            self.state.generation += 1  # fresh worker seeds: a resumed run never replays
        self.last_checkpoint = checkpoint.folder_name(self.state.iteration) if resume is not None else None
        self.outputs = RunOutputs(run_dir, self.state.env_steps if resume is not None else None,
                                  open_tracking(cfg, run_dir, resume is not None) if track else None)
        s = self.state
        self.episodes = EpisodeStats(cfg.stop.window, cfg.env.is_atari, s.recent_returns,
                                     s.recent_lengths, s.recent_won, s.recent_lost)
        self.metrics: dict[str, float] = {}
        self.startup = startup or StartupClock(time.time(), "the trainer started")
        self.startup_s: float | None = None   # the origin to the end of the first iteration
        self.frameskip = 1
        self.videos = cfg.output.video_every is not None

    # ---------------------------------------------------------------------------------- loop

    def run(self) -> RunResult:
        from cluster.reinforce.workers import WorkersLost

        reason, started, failed, finite, interrupted = None, False, False, True, False
        try:
            with self._workers() as workers, self._learner() as learner:
                started = True   # a set-up that fails (too few CPUs, a bad checkpoint) just raises
                try:
                    reason = self._loop(workers, learner)
                except KeyboardInterrupt as err:   # Ctrl-C, or SIGTERM: cluster.signals
                    interrupted, reason = True, getattr(err, "reason", "interrupted (Ctrl-C)")
                except WorkersLost as err:
                    failed, reason = True, str(err)
                except checkpoint.NonFinite as err:
                    failed, finite = True, False
                    reason = (f"non-finite {err.what} at iteration {self.state.iteration}; " + (
                        f"the last finite checkpoint is {self.last_checkpoint}"
                        if self.last_checkpoint else "no checkpoint was written before it"))
                finally:
                    self.state.worker_restarts = workers.restarts
                    self.progress.close()
                    try:
                        if finite:
                            self._checkpoint(learner)
                    except Exception as err:  # the learner's actor may be gone with the cluster
                        self._event(f"could not write the final checkpoint: {err}")
        finally:
            if started:
                reason = reason or "failed"  # an exception is on its way up
                self._event(f"stopped: {reason}")
            try:
                self.outputs.close()
                if started:
                    plot_learning_curve(self.run_dir, self.cfg.stop.mean_return)
            finally:   # the tracked runs end however this ends
                self.outputs.finish("failed" if failed or not started or reason == "failed" else
                                    "stopped" if interrupted else "finished")
        return RunResult(self.run_dir, reason, self.state, self.metrics, failed)

    def _loop(self, workers: Any, learner: Any) -> str:
        """sample -> update -> broadcast, until a stop criterion is met; returns which. The
        wall-time budget holds while waiting for workers too (``deadline``).

        With ``rollout.pipeline`` the workers are asked for the next batch, with the weights
        they have, before the learner updates on the last one: acting overlaps learning, and the
        batch being learned from was played one update ago (``learner/policy_lag``), which the
        loss corrects for (``off_policy``)."""
        import ray

        from cluster.reinforce.workers import DeadlinePassed

        pipeline = self.cfg.rollout.pipeline
        clock = time.monotonic()
        weights = learner.get_weights()
        weights_ref = ray.put(weights)                        # one copy, read by every worker
        version = asked = 0   # updates made in this loop: weights_ref's; the asked batch's weights'
        if pipeline:
            workers.submit(weights_ref)
        asked_at = time.perf_counter()                        # when the batch collected next was asked for
        budget = self.cfg.stop.wall_time_s
        while True:
            start = time.perf_counter()
            deadline = None if budget is None else clock + budget - self.state.train_time_s
            if not pipeline:
                workers.submit(weights_ref)                  # sample: whole episodes, all workers
                asked, asked_at = version, start
            try:
                batches = workers.collect(deadline)
            except DeadlinePassed:
                self.state.train_time_s += time.monotonic() - clock
                return (f"wall time budget reached ({budget:g} s) while waiting for rollout "
                        f"workers; the unfinished iteration was dropped")
            arrived = time.perf_counter()
            sample_s, wait_s = arrived - asked_at, arrived - start   # with the pipeline, the learner
            lag = version - asked                                    # waited only the second
            if pipeline:
                workers.submit(weights_ref)                  # the next batch, while this one trains
                asked, asked_at = version, time.perf_counter()
            lr = learning_rate(self.cfg.learner, self.state.env_steps)
            learn_metrics = learner.update(batches, off_policy=pipeline, lr=lr)   # update: one step
            version += 1
            weights = learner.get_weights()
            weights_ref = ray.put(weights)                    # broadcast
            iter_s = time.perf_counter() - start
            now = time.monotonic()
            self.state.train_time_s += now - clock
            clock = now
            self.metrics = self._record(batches, {**learn_metrics, "learner/policy_lag": float(lag)},
                                        sample_s, wait_s, iter_s, workers)
            reason = self._after_iteration(learner, weights)
            if reason is not None:
                return reason

    def _after_iteration(self, learner: Any, weights: list[np.ndarray]) -> str | None:
        """The cadence around the loop: metrics out, checkpoint, the caller's hook, video; then
        the stop criterion met, if any."""
        if self.startup_s is None:
            self._started()
        self.metrics["time/startup_s"] = self.startup_s
        state, output, metrics = self.state, self.cfg.output, self.metrics
        self.outputs.write(metrics, step=state.env_steps)
        self.progress.update(metrics)
        checkpoint.check_finite(metrics, weights)
        ckpt = self._checkpoint(learner) if state.iteration % output.checkpoint_every == 0 else None
        if self.on_iteration is not None:
            self.on_iteration(metrics, ckpt)
        if self.videos and state.iteration % output.video_every == 0:
            self._video(weights)
        return stop_reason(self.cfg, state, metrics.get("rollout/episode_return_mean"))

    def _record(self, batches: list, learn_metrics: dict[str, float], sample_s: float,
                wait_s: float, iter_s: float, workers: Any) -> dict[str, float]:
        """Counts the iteration into the run's state; its flat metrics. ``sample_s``: from asking
        for the batch to its arrival; ``wait_s``: the part of it the learner spent waiting (all
        of it without the pipeline; with it, what the update did not hide)."""
        state, restarts = self.state, workers.restarts
        steps = sum(b.num_steps for b in batches)
        state.episodes += self.episodes.add(batches)
        state.env_steps += steps
        state.iteration += 1
        state.worker_restarts = restarts
        for key, value in self.episodes.state().items():  # the window, for the next checkpoint
            setattr(state, key, value)
        rollout = self.episodes.metrics()   # empty until a game ends (rollout.steps_per_env)
        means = [m for m in (state.best_return_mean, rollout.get("rollout/episode_return_mean")) if m is not None]
        state.best_return_mean = max(means, default=None)
        frames = {"time/frames_per_s": steps * self.frameskip / iter_s} if self.cfg.env.is_atari else {}
        return {
            **rollout,
            **frames,
            **learn_metrics,
            "time/sample_s": sample_s,
            "time/wait_s": wait_s,
            "time/iteration_s": iter_s,
            "time/env_steps_per_s": steps / iter_s,
            "time/sample_steps_per_s": steps / sample_s,
            "time/train_s": state.train_time_s,
            "counters/iteration": float(state.iteration),
            "counters/env_steps": float(state.env_steps),
            "counters/episodes": float(state.episodes),
            "counters/worker_restarts": float(restarts),
            "counters/workers": float(len(batches)),
            "counters/workers_dropped": float(workers.dropped),
        }

    # --------------------------------------------------------------------------------- set-up

    @contextmanager
    def _workers(self) -> Iterator[Any]:
        """The run's rollout workers (a WorkerGroup), stopped on the way out."""
        from cluster.reinforce.workers import WorkerGroup
        from rl.envs import frameskip

        cfg, state = self.cfg, self.state
        self.frameskip = frameskip(cfg.env)
        num_workers = self._num_workers()
        self._event(f"starting {num_workers} rollout worker(s) x {cfg.rollout.envs_per_worker} "
                    f"env(s) of {cfg.env.id}")
        workers = WorkerGroup(
            run_id=self.run_id, num_workers=num_workers,
            worker_args=(cfg.env, cfg.policy, cfg.rollout), seed=cfg.seed,
            cpus_per_worker=cfg.resources.cpus_per_worker,
            max_restarts=cfg.resources.max_worker_restarts, restarts_used=state.worker_restarts,
            generation=state.generation, on_event=self._event,
            placement=cfg.resources.worker_placement,
            placement_timeout_s=cfg.resources.placement_timeout_s,
            sample_timeout_s=cfg.resources.sample_timeout_s)
        mark_when_ready(self.startup, "workers_ready", workers.actors.values())
        try:
            yield workers
        finally:
            workers.shutdown()

    @contextmanager
    def _learner(self) -> Iterator[Any]:
        """The learner, restored from the checkpoint being resumed. Built after the workers, so
        that their processes start while TensorFlow loads here."""
        cfg = self.cfg
        gpus = gpus_for(cfg.resources.learner_gpus, RaySession.resources().get("GPU", 0.0))
        args = (self.obs_shape, self.num_actions, cfg.policy, cfg.learner)
        if gpus:
            from cluster.reinforce.workers import RemoteLearner
            from rl.learner import ReinforceLearner

            learner = RemoteLearner(ReinforceLearner, *args, seed=cfg.seed, num_gpus=gpus,
                                    num_cpus=LEARNER_CPUS)
            self._event(f"learner on {learner.device}, in a Ray actor with {gpus:g} GPU(s)")
        else:
            hide_gpus_from_tensorflow()   # given none: not CUDA on the machine's GPUs either
            enable_memory_growth()
            from rl.learner import ReinforceLearner

            learner = ReinforceLearner(*args, seed=cfg.seed)
            self._event("learner on the CPU, in the driver")
        self.startup.mark("learner_built")
        try:
            if self.learner_state is not None:
                learner.set_state(self.learner_state)
                self._event(f"resumed at iteration {self.state.iteration}, "
                            f"{self.state.env_steps:,} env steps")
            yield learner
        finally:
            if hasattr(learner, "shutdown"):
                learner.shutdown()

    def _started(self) -> None:
        """At the end of the first iteration: the start-up's phases into the run log."""
        self.startup.mark("first_iteration")
        self.startup_s = self.startup.phases["first_iteration"][1]
        self._event(self.startup.line())

    def _num_workers(self) -> int:
        """``rollout.num_workers`` (``auto``: as many as fit) against the cluster's free CPUs less a
        GPU learner's actor's; in a sweep trial its placement group holds them."""
        import ray

        n = self.cfg.rollout.num_workers
        per_worker = self.cfg.resources.cpus_per_worker
        cluster = RaySession.resources()
        total = cluster.get("CPU", 0.0)
        in_group = ray.util.get_current_placement_group() is not None
        free = total if in_group else min(total, ray.available_resources().get("CPU", 0.0))
        busy = "" if free >= total else f" free of {total:g} (others' work holds the rest)"
        if not in_group and gpus_for(self.cfg.resources.learner_gpus, cluster.get("GPU", 0.0)):
            free -= LEARNER_CPUS
            busy += f", less {LEARNER_CPUS:g} for the GPU learner's actor"
        if n == "auto":
            if free < per_worker:
                raise ClusterError(f"no free CPUs for a rollout worker: the Ray cluster has "
                                   f"{free:g}{busy}; try again later, or lower "
                                   f"resources.cpus_per_worker ({per_worker:g})")
            return int(free // per_worker)
        if n * per_worker > free:  # the actors would wait for CPUs
            raise ConfigError(
                f"{n} workers x resources.cpus_per_worker={per_worker:g} need {n * per_worker:g} "
                f"CPUs; the Ray cluster has {free:g}{busy}. Lower either, or use num_workers: auto",
                key="rollout.num_workers")
        return n

    def _event(self, message: str) -> None:
        self.outputs.event(message)
        self.progress.event(message)

    def _video(self, weights: list[np.ndarray]) -> None:
        """The current policy playing one episode: MP4 and GIF in videos/, the GIF in TensorBoard."""
        from rl.video import VideoUnavailable, gif_bytes, record_episode, write_mp4

        cfg, it = self.cfg, self.state.iteration
        try:
            episode = record_episode(cfg.env, cfg.policy, weights, seed=cfg.seed + it,
                                     max_steps=cfg.output.video_max_steps)
        except VideoUnavailable as err:
            self._event(f"videos off: {err}")
            self.videos = False
            return
        stem = self.run_dir / "videos" / f"iter{it:06d}"
        write_mp4(episode.frames, stem.with_suffix(".mp4"), episode.fps)
        gif = gif_bytes(episode.frames, episode.fps)
        stem.with_suffix(".gif").write_bytes(gif)
        h, w = episode.frames[0, ::2, ::2].shape[:2]
        self.outputs.add_gif("video/policy", gif, h, w, step=self.state.env_steps)
        self._event(f"video: {stem.name}.mp4 ({episode.steps} steps, return {episode.episode_return:g})")

    def _checkpoint(self, learner: Any) -> Path:
        """Saves one; NonFinite (nothing written) if the learner's state holds NaN or inf."""
        self.outputs.flush()  # TensorBoard holds events back; a checkpoint's history is on disk
        path = checkpoint.save(self.run_dir / "checkpoints", self.state.iteration, learner.get_state(),
                               dataclasses.asdict(self.state), keep=self.cfg.output.keep_checkpoints)
        self.last_checkpoint = path.name
        return path
