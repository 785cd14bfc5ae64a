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

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input that is not a config key: a missing run folder, no checkpoint to resume."""


# ---------------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from cluster.experiment import check_env, dump_experiment, load_experiment
    from cluster.outputs import CONFIG_FILE, new_run_dir

    cfg = load_experiment(args.config, args.set)
    obs_shape, num_actions = check_env(cfg, args.config)
    run_dir = new_run_dir(args.runs_dir or cfg.output.runs_dir, cfg.name, cfg.seed)
    dump_experiment(cfg, run_dir / CONFIG_FILE)
    return _run(cfg, run_dir, obs_shape, num_actions, args.address, resume=None)


def cmd_resume(args: argparse.Namespace) -> int:
    from cluster import checkpoint
    from cluster.experiment import check_env, dump_experiment, load_experiment
    from cluster.outputs import CONFIG_FILE

    run_dir = _existing_run_dir(args.run_dir)
    cfg = load_experiment(run_dir / CONFIG_FILE, args.set)
    ckpt = checkpoint.latest(run_dir / "checkpoints")
    if ckpt is None:
        raise UsageError(f"{run_dir}: no checkpoint to resume from")
    obs_shape, num_actions = check_env(cfg, str(run_dir / CONFIG_FILE))
    if args.set:
        dump_experiment(cfg, run_dir / CONFIG_FILE)
    return _run(cfg, run_dir, obs_shape, num_actions, args.address, resume=checkpoint.load(ckpt))


def _run(cfg, run_dir: Path, obs_shape, num_actions, address: str | None, resume) -> int:
    from cluster.console import ConsoleProgress
    from cluster.session import RaySession
    from cluster.trainer import Trainer, prefetch_tensorflow

    progress = ConsoleProgress(cfg.output.console_every_s)
    progress.console.print(f"run folder: {run_dir}")
    prefetch_tensorflow(cfg)
    try:
        with RaySession(address=address):
            result = Trainer(cfg, run_dir, obs_shape, num_actions, resume=resume,
                             progress=progress).run()
    except KeyboardInterrupt:  # Ctrl-C while Ray was starting or stopping
        progress.console.print("interrupted")
        return EXIT_INTERRUPTED
    except Exception:
        with open(run_dir / "run.log", "a") as log:
            log.write(traceback.format_exc())
        raise
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
    ]
    progress.summary(f"labrun: {cfg.name}", rows)
    return EXIT_INTERRUPTED if result.stop_reason.startswith("interrupted") else EXIT_OK


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

    from cluster.experiment import ExperimentConfig
    from cluster.schema import describe_fields

    table = Table(title="experiment file keys", title_justify="left")
    for column in ("key", "expected", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for row in describe_fields(ExperimentConfig):
        table.add_row(*row)
    Console().print(table)
    return EXIT_OK


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
                    "rollout workers, logged to TensorBoard, checkpointed and resumable.",
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
    p.add_argument("config", help="experiment file, e.g. configs/cartpole.yaml")
    add_run_options(p)
    p.add_argument("--runs-dir", default=None, help="parent folder of the run folder "
                                                    "(default: output.runs_dir of the config)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a run from its last checkpoint",
                       description="Continue a run from its latest checkpoint; counters, metrics "
                                   "and TensorBoard continue where they were. --set can extend "
                                   "stop budgets, e.g. --set stop.env_steps=5000000.")
    p.add_argument("run_dir", help="the run folder, e.g. runs/cartpole__0__20261128-101500")
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

    p = sub.add_parser("tensorboard", help="start TensorBoard on 127.0.0.1",
                       description="Start TensorBoard on 127.0.0.1 over a runs folder and print "
                                   "its address; Ctrl-C stops it.")
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of runs (default: runs)")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.set_defaults(func=cmd_tensorboard)

    p = sub.add_parser("keys", help="list every key an experiment file may set",
                       description="Every experiment-file key with its type, bounds, default and "
                                   "meaning.")
    p.set_defaults(func=cmd_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter (set it to see)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "episodes", 1) < 1:
        parser.error("--episodes must be at least 1")
    if (getattr(args, "video_steps", None) or 1) < 1:
        parser.error("--video-steps must be at least 1")
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
