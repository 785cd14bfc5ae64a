"""``labrun``: the command line. Parses, builds, runs; it holds no algorithm.

Exit codes: 0 success, 1 failure, 2 bad input, 130 interrupted (Ctrl-C, after a final checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from cluster.schema import ConfigError
from cluster.storage import (Mirror, StorageError, folders, is_file, is_uri, join, open_uri,
                             split, staging_dir)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input that is not a config key: a missing run folder, no checkpoint to resume."""


# ---------------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from cluster.experiment import check_env, dump_experiment
    from cluster.labs import load_any
    from cluster.outputs import CONFIG_FILE, new_run_dir

    kind, cfg = load_any(args.config, args.set)
    runs_dir = args.runs_dir or cfg.output.runs_dir
    if kind != "rl":
        from cluster.tune_runner import Study

        return _run_study(Study.single(kind, cfg, args.runs_dir), args.address)
    obs_shape, num_actions = check_env(cfg, args.config)
    mirror = None
    if is_uri(runs_dir):                # written here, copied there after every checkpoint
        open_uri(runs_dir)              # a bad scheme or missing credentials: say so now
        run_dir = new_run_dir(staging_dir(runs_dir), cfg.name, cfg.seed)
        mirror = Mirror(run_dir, join(runs_dir, run_dir.name))
    else:
        run_dir = new_run_dir(runs_dir, cfg.name, cfg.seed)
    dump_experiment(cfg, run_dir / CONFIG_FILE)
    return _run(cfg, run_dir, obs_shape, num_actions, args.address, resume=None, mirror=mirror)


def cmd_resume(args: argparse.Namespace) -> int:
    from cluster import checkpoint
    from cluster.experiment import check_env, dump_experiment, load_experiment
    from cluster.outputs import CONFIG_FILE
    from cluster.tune_runner import STUDY_FILE

    uri = is_uri(args.run_dir)
    if is_file(join(args.run_dir, STUDY_FILE)) if uri else (Path(args.run_dir) / STUDY_FILE).is_file():
        if args.set:   # a lab's run or a sweep: Tune continues it, at its URI if it has one
            raise UsageError("--set: a Tune run or sweep continues with the settings it started with")
        return _resume_study(args.run_dir, args.address)
    mirror = None
    if uri:                             # fetched into the staging folder, continued, copied back
        parent, name = split(args.run_dir)
        mirror = Mirror(staging_dir(parent) / name, args.run_dir.rstrip("/"))
        print(f"fetching {args.run_dir}: {mirror.pull()} files")
        args.run_dir = str(mirror.local)
    run_dir = _existing_run_dir(args.run_dir)
    cfg = load_experiment(run_dir / CONFIG_FILE, args.set)
    ckpt = checkpoint.latest(run_dir / "checkpoints")
    if ckpt is None:
        raise UsageError(f"{run_dir}: no checkpoint to resume from")
    obs_shape, num_actions = check_env(cfg, str(run_dir / CONFIG_FILE))
    if args.set:
        dump_experiment(cfg, run_dir / CONFIG_FILE)
    return _run(cfg, run_dir, obs_shape, num_actions, args.address, resume=checkpoint.load(ckpt),
                mirror=mirror)


def _run(cfg, run_dir: Path, obs_shape, num_actions, address: str | None, resume,
         mirror: Mirror | None = None) -> int:
    from cluster.console import ConsoleProgress
    from cluster.session import RaySession
    from cluster.trainer import Trainer, prefetch_tensorflow

    progress = ConsoleProgress(cfg.output.console_every_s)
    progress.console.print(f"run folder: {run_dir}" + (f" (copied to {mirror.uri} after every "
                                                       f"checkpoint)" if mirror else ""))
    prefetch_tensorflow(cfg)

    def push_after_checkpoint(metrics, ckpt) -> None:  # the Trainer's on_iteration hook
        if ckpt is not None:
            try:
                mirror.push()
            except StorageError as err:  # the run goes on; the next checkpoint's push retries
                progress.console.print(f"could not copy the run to storage: {err}")
    try:
        with RaySession(address=address):
            result = Trainer(cfg, run_dir, obs_shape, num_actions, resume=resume,
                             progress=progress,
                             on_iteration=push_after_checkpoint if mirror else None).run()
    except KeyboardInterrupt:  # Ctrl-C while Ray was starting or stopping
        progress.console.print("interrupted")
        return EXIT_INTERRUPTED
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
                progress.console.print(f"error: could not copy the run to storage: {err}; it is "
                                       f"complete in {run_dir}")
    s, m = result.state, result.last_metrics
    rows = [
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
        ("run folder", str(run_dir)),
        *([("stored at", mirror.uri)] if mirror else []),
    ]
    progress.summary(f"labrun: {cfg.name}", rows)
    if not stored:
        return EXIT_FAILED
    return EXIT_INTERRUPTED if result.stop_reason.startswith("interrupted") else EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    from cluster.sweep import load_sweep
    from cluster.tune_runner import Study

    sweep = load_sweep(args.config, args.set)
    if args.resume is None:
        return _run_study(Study.from_sweep(sweep, args.runs_dir), args.address)
    if args.resume == "latest":
        new = Study.from_sweep(sweep, args.runs_dir)
        prefix = f"{sweep.cfg.name}__"
        if new.storage:
            found = [join(new.storage, name) for name in folders(new.storage, prefix)]
        else:
            found = [str(p) for p in sorted(new.runs_dir.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime)]
        if not found:
            raise UsageError(f"--resume: no earlier sweep {sweep.cfg.name!r} under "
                             f"{new.storage or new.runs_dir}")
        return _resume_study(found[-1], args.address)
    return _resume_study(args.resume, args.address)


def _resume_study(folder: str | Path, address: str | None) -> int:
    from cluster.tune_runner import Study

    try:
        study = Study.load(folder)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return _run_study(study, address, resume=True)


def _run_study(study, address: str | None, resume: bool = False) -> int:
    """Runs a lab's trial(s) through Tune and prints the results table."""
    from rich.console import Console

    from cluster.session import RaySession
    from cluster.tune_runner import BEST_FILE, PLOT_FILE, RESULTS_FILE, run_trials, summarise

    console = Console(highlight=False)
    console.print(f"{'resuming' if resume else 'running'} {study.kind} trial(s): {study.location}")
    if not resume:
        study.save()
    with RaySession(address=address):
        results = run_trials(study, resume=resume)
    rows = summarise(study, results)
    from rich.table import Table

    table = Table(title=f"labrun: {study.name} (best first by {study.metric}, {study.mode})",
                  title_justify="left")
    columns = ["trial", *study.space, study.metric, "epochs", "status"]
    for column in columns:
        table.add_column(column.split(".")[-1] if column in study.space else column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    console.print(table)
    outputs = Table(show_header=False)
    stored = [("stored at", f"{study.location} (Tune's trials, checkpoints and TensorBoard files; "
                            f"copies of the files above)")] if study.storage else []
    for key, value in (("folder", study.folder), ("results", study.folder / RESULTS_FILE),
                       ("best config", study.folder / BEST_FILE),
                       ("comparison", study.folder / PLOT_FILE), *stored,
                       ("tensorboard", f"labrun tensorboard {study.folder}" if not study.storage
                        else f"tensorboard --logdir {study.location} (where TensorFlow reads that scheme)")):
        outputs.add_row(key, str(value))
    console.print(outputs)
    unfinished = [r for r in rows if r["status"] == "unfinished"]
    if unfinished:
        console.print(f"interrupted: {len(unfinished)} trial(s) unfinished; continue with: "
                      f"labrun resume {study.location}", soft_wrap=True)  # a path to copy, unbroken
        return EXIT_INTERRUPTED
    failed = [r for r in rows if r["status"] == "error"]
    if failed:
        console.print(f"error: {len(failed)} trial(s) failed after their restarts; see "
                      f"{failed[0]['path']}/error.txt", soft_wrap=True)
        return EXIT_FAILED
    return EXIT_OK


def _cell(value) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_eval(args: argparse.Namespace) -> int:
    from cluster import checkpoint
    from cluster.experiment import check_env, load_experiment
    from cluster.outputs import CONFIG_FILE
    from rl.evaluation import evaluate

    run_dir = _existing_run_dir(args.run_dir)
    cfg = load_experiment(run_dir / CONFIG_FILE)
    check_env(cfg, str(run_dir / CONFIG_FILE))
    ckpt = checkpoint.latest(run_dir / "checkpoints")
    if ckpt is None:
        raise UsageError(f"{run_dir}: no checkpoint to evaluate")
    learner_state, counters = checkpoint.load(ckpt)
    metrics = evaluate(cfg.env, cfg.policy, learner_state["weights"], args.episodes,
                       seed=cfg.seed if args.seed is None else args.seed, greedy=not args.sample)
    metrics["eval/checkpoint_iteration"] = float(counters["iteration"])
    (run_dir / "eval.json").write_text(json.dumps(metrics, indent=2))
    from cluster.console import ConsoleProgress

    rows = [(k.removeprefix("eval/"), f"{v:.2f}") for k, v in metrics.items()]
    if args.video:
        rows += [(f"video ({kind})", str(path)) for kind, path in _eval_video(
            cfg, learner_state["weights"], run_dir, counters["iteration"], args)]
    ConsoleProgress().summary(
        f"labrun eval: {run_dir.name} ({'sampled' if args.sample else 'greedy'} actions, "
        f"checkpoint {ckpt.name})", rows)
    return EXIT_OK


def _eval_video(cfg, weights, run_dir: Path, iteration: int, args) -> list[tuple[str, Path]]:
    """One more episode, rendered: an MP4 and a GIF in RUN_DIR/videos/."""
    from rl.video import VideoUnavailable, record_episode, write_gif, write_mp4

    try:
        episode = record_episode(cfg.env, cfg.policy, weights,
                                 seed=cfg.seed if args.seed is None else args.seed,
                                 greedy=not args.sample, max_steps=args.video_steps)
    except VideoUnavailable as err:
        raise UsageError(f"--video: {err}") from None
    stem = run_dir / "videos" / f"eval_iter{iteration:06d}"
    return [("mp4", write_mp4(episode.frames, stem.with_suffix(".mp4"), episode.fps)),
            ("gif", write_gif(episode.frames, stem.with_suffix(".gif"), episode.fps))]


def cmd_generate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from supervised.music import (CheckpointNotFound, find_checkpoint, find_renderer,
                                  load_generator, sample_songs, write_songs)

    try:
        folder = find_checkpoint(args.run_dir)
    except CheckpointNotFound as err:
        raise UsageError(str(err)) from None
    rnn, vocab, counters = load_generator(folder)
    saved = counters.get("generation", {})
    out = Path(args.out) if args.out else Path(args.run_dir) / "generated"
    renderer = find_renderer()
    console = Console(highlight=False)
    console.print(f"checkpoint: {folder} (epoch {counters.get('epoch')})")
    console.print("audio: " + ("no MIDI synthesiser on PATH (timidity, fluidsynth); the built-in "
                               "additive one plays the .wav files" if renderer == "builtin"
                               else f"{renderer} plays the .wav files"))
    tunes = sample_songs(rnn, vocab, args.songs, length=args.length or saved.get("length", 1000),
                         temperature=args.temperature or saved.get("temperature", 1.0),
                         start_string=saved.get("start_string", "X"), seed=args.seed)
    reports = write_songs(out, tunes, renderer)
    table = Table(title=f"labrun generate: {len(reports)} tunes in {out}", title_justify="left")
    for column in ("song", "title", "valid", "reason", "files"):
        table.add_column(column, overflow="fold")
    for r in reports:
        table.add_row(r.name, r.title or "-", "yes" if r.valid else "no",
                      r.reason + ("" if r.complete else " (cut off)"), " ".join(r.files))
    console.print(table)
    valid = sum(r.valid for r in reports)
    console.print(f"valid: {valid} of {len(reports)} ({valid / max(len(reports), 1):.0%})")
    return EXIT_OK


def cmd_tensorboard(args: argparse.Namespace) -> int:
    logdir = Path(args.runs_dir)
    if not logdir.is_dir():
        raise UsageError(f"{logdir}: no such folder (train something first, or name the runs folder)")
    port = args.port or _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
           "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    if proc.poll() is not None:
        print(f"error: TensorBoard exited: {proc.stderr.read().strip()[-500:]}", file=sys.stderr)
        return EXIT_FAILED
    print(f"TensorBoard for {logdir} at http://127.0.0.1:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        return EXIT_OK if proc.wait() == 0 else EXIT_FAILED
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        return EXIT_OK


def cmd_keys(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from cluster.schema import describe_fields
    from cluster.sweep import SweepConfig, experiment_class

    if args.kind == "sweep":
        cls, title = SweepConfig, "sweep file keys (labrun tune)"
    else:
        cls, title = experiment_class(args.kind), f"experiment file keys, lab: {args.kind}"
    table = Table(title=title, title_justify="left")
    for column in ("key", "expected", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for row in describe_fields(cls):
        table.add_row(*row)
    Console().print(table)
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from cluster import jobs

    if args.tune:   # checked here first: a bad file is refused before anything is uploaded
        from cluster.sweep import load_sweep

        load_sweep(args.config, args.set)
    else:
        from cluster.labs import load_any

        load_any(args.config, args.set)
    client = jobs.connect(args.address)
    job_id = jobs.submit(client, "tune" if args.tune else "train", args.config, args.set,
                         args.storage, args.install)
    print(f"submitted {job_id} to {client.labrun_address}", flush=True)
    if args.no_wait:
        print(f"follow it with `labrun logs {job_id} --follow`; stop it with `labrun stop {job_id}`")
        return EXIT_OK
    try:
        status = jobs.follow(client, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; the job goes on: `labrun logs {job_id} --follow`, "
              f"`labrun stop {job_id}`", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"job {job_id}: {status}")
    return EXIT_OK if status == "SUCCEEDED" else EXIT_FAILED


def cmd_jobs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from cluster import jobs

    client = jobs.connect(args.address)
    table = Table(title=f"jobs at {client.labrun_address}", title_justify="left")
    for column in ("job", "status", "started"):
        table.add_column(column, no_wrap=True)
    table.add_column("entrypoint", overflow="fold")
    for job in jobs.list_jobs(client):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.start_time / 1000)) \
            if job.start_time else ""
        table.add_row(job.submission_id or job.job_id or "", str(job.status.value), started,
                      job.entrypoint)
    Console().print(table)
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from cluster import jobs

    client = jobs.connect(args.address)
    if not args.follow:
        print(jobs.logs(client, args.job), end="")
        return EXIT_OK
    status = jobs.follow(client, args.job)
    print(f"job {args.job}: {status}")
    return EXIT_OK if status == "SUCCEEDED" else EXIT_FAILED


def cmd_stop(args: argparse.Namespace) -> int:
    from cluster import jobs

    client = jobs.connect(args.address)
    stopped = jobs.stop(client, args.job)
    print(f"job {args.job}: {'stopping' if stopped else 'had already ended'}")
    return EXIT_OK


def cmd_cluster(args: argparse.Namespace) -> int:
    from cluster import local_cluster

    if args.action == "up":
        cluster = local_cluster.up(args.workers, args.cpus_per_node, args.host, head_cpus=args.head_cpus)
        head = "" if cluster.head_cpus is None else f" (the head {cluster.head_cpus})"
        print(f"Ray cluster up: a head and {cluster.workers} worker node(s), {cluster.cpus_per_node} "
              f"CPU(s) each{head}, token authentication on\n"
              f"  join (drivers, --address):  {cluster.gcs_address}\n"
              f"  Jobs API and dashboard:     {cluster.dashboard_url}\n"
              f"  submit:  labrun submit configs/cartpole.yaml\n"
              f"  stop:    labrun cluster down")
        return EXIT_OK
    if args.action == "down":
        cluster, stopped = local_cluster.down()
        if cluster is None:
            print(f"no cluster recorded in {local_cluster.state_path()}; nothing to stop")
        else:
            print(f"stopped the cluster at {cluster.gcs_address} ({stopped} processes)")
        return EXIT_OK
    cluster = local_cluster.LocalCluster.load()
    if cluster is None:
        print(f"no cluster recorded in {local_cluster.state_path()}")
        return EXIT_FAILED
    nodes = local_cluster.alive_nodes(cluster.dashboard_url)
    print(f"cluster at {cluster.gcs_address} (Jobs API {cluster.dashboard_url}): {nodes} of "
          f"{cluster.workers + 1} nodes alive, {len(cluster.processes())} processes")
    return EXIT_OK if nodes else EXIT_FAILED


# --------------------------------------------------------------------------------- plumbing


def _existing_run_dir(path: str) -> Path:
    run_dir = Path(path)
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"{run_dir}: not a run folder (it has no config.yaml)")
    return run_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labrun",
        description="Distributed experiment runner for the MIT 6.S191 labs: REINFORCE with Ray "
                    "rollout workers, and the supervised labs (intro, mnist, music, dbvae) as Ray "
                    "Tune trials; logged to TensorBoard, checkpointed and resumable; on this "
                    "machine or submitted to a Ray cluster.",
        epilog="Exit codes: 0 success, 1 failure, 2 bad input, 130 interrupted. "
               "`labrun keys` lists every key an experiment file may set.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set learner.lr=0.01 "
                            "--set rollout.num_workers=4 (values are YAML; repeatable)")
        p.add_argument("--address", default=None, metavar="ADDR",
                       help="join a running Ray cluster (e.g. 127.0.0.1:6379 or 'auto') instead "
                            "of starting an embedded local one")

    p = sub.add_parser("train", help="train an experiment file",
                       description="Train an experiment: validate CONFIG, start Ray (or join "
                                   "--address), train until a stop criterion, write the run folder "
                                   "runs/<name>__<seed>__<time>/ (config, metrics, TensorBoard, "
                                   "checkpoints, learning curve).")
    p.add_argument("config", help="experiment file, e.g. configs/cartpole.yaml (REINFORCE), or "
                                  "configs/intro.yaml, mnist.yaml, music.yaml, dbvae.yaml "
                                  "(supervised labs)")
    add_run_options(p)
    p.add_argument("--runs-dir", default=None, help="parent folder of the run folder "
                                                    "(default: output.runs_dir of the config), or "
                                                    "a pyarrow URI (s3://bucket/runs, gs://..., "
                                                    "file://...): a REINFORCE run is written "
                                                    "locally and copied there after every "
                                                    "checkpoint; a lab's trial writes there itself")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tune", help="sweep hyperparameters of an experiment with Ray Tune",
                       description="Run a sweep file (search space over an experiment file's keys, "
                                   "metric, mode, scheduler) as Ray Tune trials; print the results "
                                   "sorted by the metric and write results.csv, best_config.yaml "
                                   "(an experiment file for `labrun train`) and comparison.png.")
    p.add_argument("config", help="sweep file, e.g. configs/mnist_sweep.yaml")
    add_run_options(p)
    p.add_argument("--runs-dir", default=None, help="parent folder of the sweep folder "
                                                    "(default: the experiment's output.runs_dir), "
                                                    "or a pyarrow URI (s3://bucket/runs...) the "
                                                    "trials write to")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="SWEEP_DIR",
                   help="continue an interrupted sweep: the latest one of this name (under "
                        "--runs-dir), or SWEEP_DIR (a folder or URI)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("resume", help="continue a run from its last checkpoint",
                       description="Continue a run from its latest checkpoint; counters, metrics "
                                   "and TensorBoard continue where they were. --set can extend "
                                   "stop budgets, e.g. --set stop.env_steps=5000000. A supervised "
                                   "lab's run or a sweep folder continues its unfinished trials "
                                   "through Tune, each from its last checkpoint.")
    p.add_argument("run_dir", help="the run folder, e.g. runs/cartpole__0__20261128-101500, or a "
                                   "lab's run or sweep folder, or either's URI "
                                   "(s3://bucket/runs/cartpole__0__...: a REINFORCE run is "
                                   "fetched, continued and copied back; Tune continues a lab's "
                                   "run or sweep there)")
    add_run_options(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("eval", help="play the latest checkpoint's policy",
                       description="Play the policy of a run's latest checkpoint in one process "
                                   "and print its returns (also written to RUN_DIR/eval.json).")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    p.add_argument("--sample", action="store_true",
                   help="sample actions from the policy instead of taking the most likely one")
    p.add_argument("--seed", type=int, default=None, help="environment seed (default: the run's)")
    p.add_argument("--video", action="store_true",
                   help="also play one episode on screen and write it as RUN_DIR/videos/"
                        "eval_iterN.mp4 and .gif (rendered off-screen, no display needed)")
    p.add_argument("--video-steps", type=int, default=None, metavar="N",
                   help="stop the video after N steps (default: the whole episode)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="sample tunes from a music lab checkpoint",
                       description="Sample tunes from the latest checkpoint of a music lab run "
                                   "(`labrun train configs/music.yaml`) and write each as "
                                   "OUT/song_XX.abc; a tune music21 parses gets song_XX.mid and "
                                   "song_XX.wav (timidity or fluidsynth if on PATH, else a "
                                   "built-in synthesiser). Prints a table and the share valid.")
    p.add_argument("run_dir", help="the run folder, one of its trial folders, or a checkpoint folder")
    p.add_argument("--songs", type=int, default=4, metavar="N", help="tunes to write (default 4)")
    p.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="sampling temperature > 0 (default: the run's music.temperature)")
    p.add_argument("--length", type=int, default=None, metavar="L",
                   help="characters per sample (default: the run's music.generation_length)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the tunes (default: RUN_DIR/generated)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("tensorboard", help="start TensorBoard on 127.0.0.1",
                       description="Start TensorBoard on 127.0.0.1 over a runs folder and print "
                                   "its address; Ctrl-C stops it.")
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of runs (default: runs)")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.set_defaults(func=cmd_tensorboard)

    from cluster.labs import KINDS

    p = sub.add_parser("keys", help="list every key an experiment or sweep file may set",
                       description="Every key of an experiment file of one lab (its top-level "
                                   "`lab` key; REINFORCE is 'rl'), or of a sweep file, with its "
                                   "type, bounds, default and meaning.")
    p.add_argument("kind", nargs="?", default="rl", choices=[*KINDS, "sweep"],
                   help="rl (default), a supervised lab, or sweep")
    p.set_defaults(func=cmd_keys)

    def add_jobs_address(p: argparse.ArgumentParser) -> None:
        p.add_argument("--address", default=None, metavar="URL",
                       help="the cluster's Jobs API (its dashboard), e.g. http://HEAD:8265 "
                            "(default: the cluster `labrun cluster up` started, else "
                            "$RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265)")

    p = sub.add_parser("submit", help="run an experiment on a Ray cluster as a job",
                       description="Submit an experiment file to a running Ray cluster through "
                                   "Ray's Jobs API: the project folder is uploaded as the job's "
                                   "working directory and the job runs `labrun train CONFIG` "
                                   "(`labrun tune` with --tune) on the cluster. Prints the job id "
                                   "and follows its logs; exit 0 when the job succeeds. The "
                                   "cluster's token comes from RAY_AUTH_TOKEN, "
                                   "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.")
    p.add_argument("config", help="experiment file (or sweep file with --tune) inside the project")
    add_jobs_address(p)
    p.add_argument("--tune", action="store_true", help="CONFIG is a sweep file: run `labrun tune`")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, as for train (checked before submitting)")
    p.add_argument("--storage", default=None, metavar="PATH_OR_URI",
                   help="runs folder every node can reach (a shared file system), or a "
                        "pyarrow URI (s3://bucket/runs, gs://..., file://...); default: "
                        "this checkout's runs/ for a cluster on this machine, else the config's "
                        "output.runs_dir inside the job's working directory")
    p.add_argument("--install", dest="install", action="store_true", default=None,
                   help="install the project's dependencies in the job's runtime environment "
                        "(the default for clusters on other machines)")
    p.add_argument("--no-install", dest="install", action="store_false",
                   help="use the packages the cluster's Python already has (the default for a "
                        "cluster on this machine)")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("jobs", help="list a cluster's jobs",
                       description="List the jobs of a Ray cluster: id, status, start, entrypoint.")
    add_jobs_address(p)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("logs", help="print a job's logs", description="Print a job's logs; "
                       "--follow prints them as they come until the job ends.")
    p.add_argument("job", help="the job id `labrun submit` printed")
    p.add_argument("--follow", action="store_true", help="follow until the job ends")
    add_jobs_address(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stop", help="stop a job", description="Ask a Ray cluster to stop a job.")
    p.add_argument("job", help="the job id `labrun submit` printed")
    add_jobs_address(p)
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("cluster", help="a multi-node Ray cluster on this machine",
                       description="up: start a Ray head and N worker nodes on this machine "
                                   "(`ray start`, 127.0.0.1 unless --host, token authentication "
                                   "on, the Jobs API on the head); down: stop exactly those "
                                   "processes; status: how many nodes are alive. The cluster is "
                                   "recorded in ~/.labrun/cluster.json ($LABRUN_HOME), which "
                                   "submit, jobs, logs and stop use.")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker nodes beside the head (default 1)")
    p.add_argument("--cpus-per-node", type=int, default=None, metavar="C",
                   help="CPUs each node offers (default: this machine's CPUs / nodes, at least 1)")
    p.add_argument("--head-cpus", type=int, default=None, metavar="C",
                   help="CPUs the head offers, if not --cpus-per-node; 0 keeps rollout workers "
                        "and trials off the head (it still runs the jobs' drivers)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address the nodes, dashboard and Jobs API bind to (default 127.0.0.1; "
                        "another address needs token authentication, which stays on)")
    p.set_defaults(func=cmd_cluster)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter (set it to see)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "episodes", 1) < 1:
        parser.error("--episodes must be at least 1")
    if (getattr(args, "video_steps", None) or 1) < 1:
        parser.error("--video-steps must be at least 1")
    if args.command == "generate" and (args.songs < 1 or (args.length or 1) < 1
                                       or (args.temperature is not None and args.temperature <= 0)):
        parser.error("--songs and --length must be at least 1, --temperature above 0")
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        from cluster.session import ClusterError

        if not isinstance(err, ClusterError) and os.environ.get("LABRUN_DEBUG"):
            traceback.print_exc()
        print(f"error: {type(err).__name__}: {err}" if not isinstance(err, ClusterError)
              else f"error: {err}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
