"""``labrun``: the command line. Parses and dispatches; each command's work lives with its concern
(``cluster/reinforce/commands.py``, ``cluster/tuning/commands.py``, ``cluster/infra/commands.py``;
the commands that only read, print or fetch in ``cluster/views.py``),
and the lab an experiment file names is looked up in the registry (``cluster/labs.py``).

Exit codes: 0 success, 1 failure, 2 bad input, 130 interrupted (Ctrl-C), 143 stopped by SIGTERM
(both after a final checkpoint).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from cluster import labs, trackers, views
from cluster.config import preview
from cluster.config.schema import ConfigError
from cluster.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from cluster.infra import commands as infra
from cluster.infra.jobs import STOP_GRACE_S
from cluster.infra.session import ClusterError
from cluster.reinforce import commands as reinforce
from cluster.tuning import commands as tuning

# ---------------------------------------------------------------------------------- commands


def require_trackers(loggers) -> None:
    """A tracker the config names but that is not installed: one line, exit 2, before any work."""
    problem = trackers.missing(loggers)
    if problem:
        raise UsageError(problem)


def cmd_train(args: argparse.Namespace) -> int:
    lab, cfg = labs.load(args.config, args.set)
    require_trackers(cfg.output.loggers)
    labs.require_installed((lab, cfg), args.config)
    if args.dry_run:
        lab.check(cfg, args.config)
        return views.dry_run(f"labrun train {args.config}", cfg)
    return lab.train(cfg, source=args.config, runs_dir=args.runs_dir, address=args.address)


def cmd_resume(args: argparse.Namespace) -> int:
    if tuning.is_study(args.run_dir):   # a lab's run or a sweep: Tune continues it
        if args.set:
            raise UsageError("--set: a Tune run or sweep continues with the settings it started with")
        return tuning.resume_study(args.run_dir, labs.LABS, args.address)
    return reinforce.resume(args.run_dir, args.set, args.address)


def cmd_tune(args: argparse.Namespace) -> int:
    sweep = labs.load_sweep(args.config, args.set)
    require_trackers(sweep.experiment_data.get("output", {}).get("loggers", ()))
    labs.require_installed(sweep, args.config)
    if args.dry_run:
        return views.dry_run(f"labrun tune {args.config}", sweep.cfg, preview.trial_grid(sweep))
    return tuning.tune(sweep, args.runs_dir, args.address, args.resume, labs.LABS)


def cmd_eval(args: argparse.Namespace) -> int:
    return reinforce.evaluate(args.run_dir, args.episodes, args.seed, args.sample, args.video,
                              args.video_steps, args.set, args.out)


def cmd_generate(args: argparse.Namespace) -> int:
    return tuning.generate(args.run_dir, args.songs, args.temperature, args.length, args.seed,
                           args.out)


def cmd_tensorboard(args: argparse.Namespace) -> int:
    return infra.tensorboard(args.runs_dir, args.port)


def cmd_mlflow(args: argparse.Namespace) -> int:
    return infra.mlflow_ui(args.runs_dir, args.port)


def cmd_submit(args: argparse.Namespace) -> int:
    # The file is checked here first: a bad one is refused before anything is uploaded.
    loaded = (labs.load_sweep if args.tune else labs.load)(args.config, args.set)
    if args.dry_run:
        cfg, trials = (loaded.cfg, preview.trial_grid(loaded)) if args.tune else (loaded[1], None)
        return views.dry_run(f"labrun submit {args.config}", cfg, trials)
    extra = [loaded.experiment_path] if args.tune else []   # a sweep's experiment goes up with it
    loggers = (loaded.experiment_data.get("output", {}).get("loggers", ()) if args.tune
               else loaded[1].output.loggers)
    return infra.submit("tune" if args.tune else "train", args.config, args.set, args.address,
                        args.storage, args.install, wait=not args.no_wait, extra=extra,
                        stop_grace_s=args.stop_grace,
                        extras=[name for name in loggers if name in trackers.TRACKERS]
                        + labs.job_extras(loaded))


def cmd_jobs(args: argparse.Namespace) -> int:
    return infra.list_jobs(args.address)


def cmd_logs(args: argparse.Namespace) -> int:
    return infra.logs(args.job, args.follow, args.address)


def cmd_stop(args: argparse.Namespace) -> int:
    return infra.stop(args.job, args.address, wait=not args.no_wait)


def grace_seconds(text: str) -> int:
    """``--stop-grace``: whole seconds, 1 to 3600."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected whole seconds from 1 to 3600, got {text!r}")
    return value


def cmd_cluster(args: argparse.Namespace) -> int:
    if args.action == "up":
        return infra.cluster_up(args.workers, args.cpus_per_node, args.host, args.head_cpus)
    return infra.cluster_down() if args.action == "down" else infra.cluster_status()


# ------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labrun",
        description="Distributed experiment runner for the MIT 6.S191 labs: REINFORCE with Ray "
                    "rollout workers, and the supervised labs (intro, mnist, music, dbvae) as Ray "
                    "Tune trials; logged to TensorBoard, checkpointed and resumable; on this "
                    "machine or submitted to a Ray cluster.",
        epilog="Exit codes: 0 success, 1 failure, 2 bad input, 130 interrupted, 143 stopped by SIGTERM. "
               "`labrun keys` lists every key an experiment file may set.")
    parser.add_argument("--version", action="version", version=views.version(),
                        help="print labrun's version and those of Python, Ray, TensorFlow and "
                             "Gymnasium, then exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set learner.lr=0.01 "
                            "--set rollout.num_workers=4 (values are YAML; repeatable)")
        p.add_argument("--address", default=None, metavar="ADDR",
                       help="join a running Ray cluster (e.g. 127.0.0.1:6379 or 'auto') instead "
                            "of starting an embedded local one")

    def add_dry_run(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dry-run", action="store_true",
                       help="check the file, print the resolved config (a sweep's trials too) and "
                            "exit 0 without starting anything")

    p = sub.add_parser("train", help="train an experiment file",
                       description="Train an experiment: validate CONFIG, start Ray (or join "
                                   "--address), train until a stop criterion, write the run folder "
                                   "runs/<name>__<seed>__<time>/ (config, metrics, TensorBoard, "
                                   "checkpoints, learning curve).")
    p.add_argument("config", help="experiment file, e.g. configs/cartpole.yaml (REINFORCE), or "
                                  "configs/intro.yaml, mnist.yaml, music.yaml, dbvae.yaml "
                                  "(supervised labs)")
    add_run_options(p)
    add_dry_run(p)
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
    add_dry_run(p)
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
                                   "and print the mean return and its spread (also written to "
                                   "RUN_DIR/eval.json). --set changes how the game is played, "
                                   "e.g. --set env.repeat_action_probability=0 (sticky actions "
                                   "off); --seed picks unseen games.")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=20, help="episodes to play (default 20)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an env.* key of the run's config for this evaluation, e.g. "
                        "--set env.repeat_action_probability=0.25 (repeatable)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write the results to FILE instead of RUN_DIR/eval.json")
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

    p = sub.add_parser("mlflow", help="start MLflow's UI on 127.0.0.1",
                       description="Start MLflow's server and UI on 127.0.0.1 over the tracking "
                                   "store that runs with output.loggers: [mlflow] wrote in a runs "
                                   "folder (RUNS_DIR/mlflow.db), and print its address with a "
                                   "user and a password made for this session (other users of "
                                   "the machine reach 127.0.0.1 too, and MLflow's server takes "
                                   "writes); Ctrl-C stops it. With MLFLOW_TRACKING_URI set, runs "
                                   "go to that server instead: open its own UI.")
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of runs (default: runs)")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.set_defaults(func=cmd_mlflow)

    views.add_parsers(sub, parser)   # runs, completion, data, keys: commands that only read

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
    add_dry_run(p)
    p.add_argument("--stop-grace", type=grace_seconds, default=STOP_GRACE_S, metavar="SECONDS",
                   help="after `labrun stop`'s SIGTERM, the seconds the job has to write its "
                        f"final checkpoint and copy its results before SIGKILL (default "
                        f"{STOP_GRACE_S}; Ray's own is 3)")
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

    p = sub.add_parser("stop", help="stop a job",
                       description="Ask a Ray cluster to stop a job: SIGTERM, on which a run "
                                   "writes its final checkpoint and copies its results, then "
                                   "SIGKILL after the grace period it was submitted with "
                                   "(submit --stop-grace). Waits until the job has ended.")
    p.add_argument("job", help="the job id `labrun submit` printed")
    p.add_argument("--no-wait", action="store_true", help="ask, and return at once")
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
    except KeyboardInterrupt as err:   # Ctrl-C, or SIGTERM (cluster.signals.Terminated)
        print("interrupted", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_INTERRUPTED)
    except Exception as err:
        if not isinstance(err, ClusterError) and os.environ.get("LABRUN_DEBUG"):
            traceback.print_exc()
        print(f"error: {type(err).__name__}: {err}" if not isinstance(err, ClusterError)
              else f"error: {err}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
