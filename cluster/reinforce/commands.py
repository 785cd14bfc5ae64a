"""The work of ``labrun train``, ``resume`` and ``eval`` for a REINFORCE run: the run folder (or
its storage URI), Ray, the Trainer, and the summary table. Each returns the command's exit code."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cluster import trackers
from cluster.config.rl_experiment import ExperimentConfig, check_env, dump_experiment, load_experiment
from cluster.config.schema import ConfigError
from cluster.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, UsageError
from cluster.folders import LOCK_FILE, locked
from cluster.infra.session import RaySession
from cluster.reinforce import checkpoint
from cluster.reinforce.console import ConsoleProgress
from cluster.reinforce.outputs import CONFIG_FILE, new_run_dir
from cluster.reinforce.startup import StartupClock, prefetch_tensorflow
from cluster.reinforce.trainer import RunResult, Trainer
from cluster.signals import StopSignals, Terminated
from cluster.storage import (
    LEASE_FILE,
    Mirror,
    StorageError,
    is_uri,
    join,
    leased,
    open_uri,
    split,
    staging_dir,
)
from supervised.files import atomic_write


def train(lab: Any, cfg: ExperimentConfig, runs_dir: str | None, address: str | None,
          source: str = "") -> int:
    """``labrun train``: a new run folder under ``runs_dir`` (or a storage URI's staging
    folder, mirrored there), trained until a stop criterion."""
    runs_dir = runs_dir or cfg.output.runs_dir
    obs_shape, num_actions = check_env(cfg, source)
    mirror = None
    if is_uri(runs_dir):                # written here, copied there after every checkpoint
        open_uri(runs_dir)              # a bad scheme or missing credentials: say so now
        run_dir = new_run_dir(staging_dir(runs_dir), cfg.name, cfg.seed)
        mirror = Mirror(run_dir, join(runs_dir, run_dir.name), ignore=(LOCK_FILE, LEASE_FILE))
    else:
        run_dir = new_run_dir(runs_dir, cfg.name, cfg.seed)
    with locked(run_dir), leased(mirror and mirror.uri):
        dump_experiment(cfg, run_dir / CONFIG_FILE)
        return _run(cfg, run_dir, obs_shape, num_actions, address, resume=None, mirror=mirror)


def resume(run_dir: str, overrides: list[str], address: str | None) -> int:
    """``labrun resume`` of a REINFORCE run folder (or URI: fetched, continued, copied back).
    The folder (for a URI, its staging copy) is locked first, and the new config checked against
    the checkpoint before anything in the folder is written."""
    mirror = None
    if is_uri(run_dir):
        parent, name = split(run_dir)
        mirror = Mirror(staging_dir(parent) / name, run_dir.rstrip("/"),
                        ignore=(LOCK_FILE, LEASE_FILE))
        folder = mirror.local
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = existing_run_dir(run_dir)
    with locked(folder), _leased_pull(mirror):
        if mirror is not None:
            print(f"fetching {run_dir}: {mirror.pull()} files")
            existing_run_dir(str(folder))
        source = str(folder / CONFIG_FILE)
        cfg = load_experiment(folder / CONFIG_FILE, overrides)
        if problem := trackers.missing(cfg.output.loggers):
            raise UsageError(problem)
        found = newest_checkpoint(folder, "resume from")
        obs_shape, num_actions = check_env(cfg, source)
        check_fits(cfg, found, obs_shape, num_actions, overrides, source)
        if overrides:
            dump_experiment(cfg, folder / CONFIG_FILE)
        return _run(cfg, folder, obs_shape, num_actions, address,
                    resume=(found.learner, found.counters), mirror=mirror)


@contextmanager
def _leased_pull(mirror: Mirror | None) -> Iterator[None]:
    """The lease of the run at the mirror's URI, held while the block runs; a staging folder
    made for a run that is not there, or is another's to write, is removed."""
    try:
        with leased(mirror and mirror.uri, existing=True):
            yield
    except (StorageError, UsageError):
        if mirror is not None and [p.name for p in mirror.local.iterdir()] == [LOCK_FILE]:
            shutil.rmtree(mirror.local, ignore_errors=True)
        raise



def newest_checkpoint(folder: Path, what: str) -> checkpoint.Found:
    """The run's newest intact checkpoint, each newer one skipped said on stderr; UsageError
    (one line) if there is none."""
    found = checkpoint.newest_intact(folder / "checkpoints")
    if found.path is None:
        why = "; ".join(f"{p.name}: {reason}" for p, reason in found.skipped)
        raise UsageError(f"{folder}: no intact checkpoint to {what} ({why})" if why else
                         f"{folder}: no checkpoint to {what}")
    for path, reason in found.skipped:
        print(f"warning: skipped checkpoint {path.name} ({reason}); using {found.path.name}",
              file=sys.stderr)
    return found


def check_fits(cfg: ExperimentConfig, found: checkpoint.Found, obs_shape: tuple[int, ...],
               num_actions: int, overrides: list[str], source: str) -> None:
    """ConfigError if the checkpoint does not fit the policy ``cfg`` builds, naming the key at
    fault: the ``--set`` key under that part of the config if there is one, else the part."""
    misfit = checkpoint.misfit(found.learner, obs_shape, num_actions, cfg.policy,
                               value=cfg.learner.baseline == "value")
    if misfit is None:
        return
    part, why = misfit
    keys = [o.partition("=")[0].strip() for o in overrides]
    key = next((k for k in keys if k == part or k.startswith(part + ".")), part)
    raise ConfigError(f"checkpoint {found.path.name} does not fit this config: {why}; nothing "
                      f"was changed", source="--set" if key in keys else source, key=key)


def _run(cfg: ExperimentConfig, run_dir: Path, obs_shape, num_actions, address: str | None,
         resume, mirror: Mirror | None = None) -> int:
    startup = StartupClock()
    startup.mark("cli")   # Python up, labrun imported, the config and environment checked
    progress = ConsoleProgress(cfg.output.console_every_s)
    progress.line(f"run folder: {run_dir}" + (f" (copied to {mirror.uri} after every checkpoint)"
                                              if mirror else ""))
    prefetch_tensorflow(cfg, startup)   # TensorFlow loads while Ray and the workers start

    def push_after_checkpoint(metrics, ckpt) -> None:  # the Trainer's on_iteration hook
        if ckpt is not None:
            try:
                mirror.push()
            except StorageError as err:  # the run goes on; the next checkpoint's push retries
                progress.line(f"could not copy the run to storage: {err}")
    try:
        startup.begin("ray")
        with StopSignals() as stop, RaySession(address=address):
            startup.end("ray")
            stop.claim()   # SIGTERM: like Ctrl-C, from here on (ray.init took it over)
            result = Trainer(cfg, run_dir, obs_shape, num_actions, resume=resume,
                             progress=progress, startup=startup,
                             on_iteration=push_after_checkpoint if mirror else None).run()
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM while Ray was starting or stopping
        progress.line("interrupted")
        return getattr(err, "exit_code", EXIT_INTERRUPTED)
    except Exception:
        with open(run_dir / "run.log", "a") as log:
            log.write(traceback.format_exc())
        raise
    finally:
        stored = True
        if mirror is not None:
            try:
                mirror.push()   # the final checkpoint and logs (also after a failure or Ctrl-C)
            except StorageError as err:
                stored = False
                progress.line(f"error: could not copy the run to storage: {err}; it is complete "
                              f"in {run_dir}")
    progress.summary(f"labrun: {cfg.name}", _summary_rows(result, mirror, cfg.output.loggers))
    if result.failed:
        print(f"error: {result.stop_reason}", file=sys.stderr)
    if not stored or result.failed:
        return EXIT_FAILED
    if result.stop_reason == Terminated.reason:
        return EXIT_TERMINATED
    return EXIT_INTERRUPTED if result.stop_reason.startswith("interrupted") else EXIT_OK


def _summary_rows(result: RunResult, mirror: Mirror | None,
                  loggers: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    s, m = result.state, result.last_metrics
    return [
        ("stopped", result.stop_reason),
        ("iterations", f"{s.iteration:,}"),
        ("env steps", f"{s.env_steps:,}"),
        ("episodes", f"{s.episodes:,}"),
        ("train time", f"{s.train_time_s:.1f} s"),
        (f"return (last {len(s.recent_returns)})",
         f"{m['rollout/episode_return_mean']:.1f}" if "rollout/episode_return_mean" in m else "-"),
        ("best return mean", f"{s.best_return_mean:.1f}" if s.best_return_mean is not None else "-"),
        ("env steps/s", f"{s.env_steps / max(s.train_time_s, 1e-9):,.0f}"),
        ("worker restarts", str(s.worker_restarts)),
        ("run folder", str(result.run_dir)),
        *([("stored at", mirror.uri)] if mirror else []),
        *trackers.where(loggers, result.run_dir.parent, result.run_dir),
    ]


def evaluate(run_dir: str, episodes: int, seed: int | None, sample: bool, video: bool,
             video_steps: int | None, overrides: list[str] = (), out: str | None = None) -> int:
    """``labrun eval``: the latest checkpoint's policy played in this process, under the run's
    environment settings or ``overrides`` of them (``env.*`` keys: sticky actions on or off...)."""
    from rl.evaluation import evaluate as play

    folder = existing_run_dir(run_dir)
    for override in overrides:
        key = override.partition("=")[0].strip()
        if not key.startswith("env."):
            raise ConfigError("eval plays the trained policy: only env.* keys (how the game is "
                              "played) can be changed", source="--set", key=key)
    if episodes < 1:
        raise UsageError(f"--episodes: {episodes}: play at least one episode")
    cfg = load_experiment(folder / CONFIG_FILE, overrides)
    source = "--set" if overrides else str(folder / CONFIG_FILE)
    obs_shape, num_actions = check_env(cfg, source)
    found = newest_checkpoint(folder, "evaluate")
    check_fits(cfg, found, obs_shape, num_actions, overrides, source)
    ckpt, learner_state, counters = found.path, found.learner, found.counters
    seed = cfg.seed if seed is None else seed
    metrics = play(cfg.env, cfg.policy, learner_state["weights"], episodes, seed=seed,
                   greedy=not sample)
    metrics["eval/checkpoint_iteration"] = float(counters["iteration"])
    metrics["eval/checkpoint_env_steps"] = float(counters["env_steps"])
    record = {**metrics, "settings": {"actions": "sampled" if sample else "greedy", "seed": seed,
                                      "overrides": list(overrides),
                                      "env": dataclasses.asdict(cfg.env)}}
    path = Path(out) if out else folder / "eval.json"
    atomic_write(path, json.dumps(record, indent=2))
    rows = [(k.removeprefix("eval/"), f"{v:.2f}") for k, v in metrics.items()]
    if video:
        rows += [(f"video ({kind})", str(path)) for kind, path in _eval_video(
            cfg, learner_state["weights"], folder, counters["iteration"], seed, sample, video_steps)]
    rows.append(("written to", str(path)))
    ConsoleProgress().summary(
        f"labrun eval: {folder.name} ({'sampled' if sample else 'greedy'} actions, "
        f"checkpoint {ckpt.name}{''.join(', ' + o for o in overrides)})", rows)
    return EXIT_OK


def _eval_video(cfg: ExperimentConfig, weights, run_dir: Path, iteration: int, seed: int,
                sample: bool, max_steps: int | None) -> list[tuple[str, Path]]:
    """One more episode, rendered: an MP4 and a GIF in RUN_DIR/videos/."""
    from rl.video import VideoUnavailable, record_episode, write_gif, write_mp4

    try:
        episode = record_episode(cfg.env, cfg.policy, weights, seed=seed, greedy=not sample,
                                 max_steps=max_steps)
    except VideoUnavailable as err:
        raise UsageError(f"--video: {err}") from None
    stem = run_dir / "videos" / f"eval_iter{iteration:06d}"
    return [("mp4", write_mp4(episode.frames, stem.with_suffix(".mp4"), episode.fps)),
            ("gif", write_gif(episode.frames, stem.with_suffix(".gif"), episode.fps))]


def existing_run_dir(path: str) -> Path:
    run_dir = Path(path)
    if not (run_dir / CONFIG_FILE).is_file():
        raise UsageError(f"{run_dir}: not a run folder (it has no config.yaml)")
    return run_dir
