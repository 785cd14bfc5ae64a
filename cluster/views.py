"""The commands that only read, print or fetch: ``labrun runs``, ``keys`` (and the JSON Schemas
it writes), ``completion``, ``data fetch``, ``--dry-run`` and ``--version``, with their parsers
(``add_parsers``). Nothing here starts Ray."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cluster import catalog, labs
from cluster.config import json_schema, preview
from cluster.config.reference import markdown
from cluster.config.schema import describe_fields
from cluster.config.sweep import SweepConfig
from cluster.errors import EXIT_FAILED, EXIT_OK, UsageError
from supervised.files import atomic_write


def runs(runs_dir: str, lab: str | None, status: str | None, as_json: bool) -> int:
    """``labrun runs``: the runs and sweeps under ``runs_dir`` (``cluster/catalog.py``)."""
    if not Path(runs_dir).is_dir():
        raise UsageError(f"{runs_dir}: no such folder")
    skipped: list[str] = []
    entries = [e for e in catalog.scan(runs_dir, skipped)
               if lab in (None, e.lab) and status in (None, e.status)]
    for why in skipped:
        print(f"warning: {runs_dir}/{why} (left out)", file=sys.stderr)
    if as_json:
        print(json.dumps([e.as_dict() for e in entries], indent=1))
        return EXIT_OK
    title = f"{len(entries)} run{'s' * (len(entries) != 1)} under {runs_dir}, newest first"
    table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False)
    for column in ("run", "started", "status", "last / best", "progress", "time"):
        table.add_column(column, no_wrap=column != "run", overflow="fold")
    number = lambda v: "-" if v is None else f"{v:.4g}"
    for e in entries:
        seconds = "-" if e.train_s is None else _hours(e.train_s)
        table.add_row(Text(e.short_name), time.strftime("%m-%d %H:%M", time.localtime(e.started)),
                      e.status, f"{number(e.last)} / {number(e.best)}", e.progress, seconds)
    Console().print(table)
    metrics = sorted({e.metric for e in entries})
    if metrics:
        print(f"last / best: {', '.join(metrics)}; time: training time; folders: --json")
    return EXIT_OK


def write_json_schemas(folder: str) -> int:
    """``labrun keys --json-schema DIR``: the experiment and sweep files' JSON Schemas."""
    written = []
    for kind, schema in (("experiment", json_schema.experiment_schema(
            {name: lab.experiment for name, lab in labs.LABS.items()})),
                         ("sweep", json_schema.sweep_schema(SweepConfig))):
        path = Path(folder) / json_schema.FILES[kind]
        atomic_write(path, json.dumps(schema, indent=1) + "\n")
        written.append(str(path))
    print(f"wrote {' and '.join(written)}")
    return EXIT_OK


def fetch_data(names: list[str]) -> int:
    """``labrun data fetch``: each dataset into the cache (or found where it is); exit 1 if one
    could not be fetched (a broken download continues on the next call)."""
    from supervised import datasets

    known = datasets.datasets()
    failed = 0
    for name in known if "all" in names else dict.fromkeys(names):
        dataset = known[name]
        try:
            path, how = datasets.fetch(dataset)
        except (OSError, ValueError) as err:   # the network, a full disk, a file that is not it
            failed += 1
            left = Path(str(datasets.default_cache_dir() / dataset.file) + ".partial")
            resume = (f"; {left.stat().st_size / 2**20:.0f} MiB fetched, `labrun data fetch {name}` "
                      f"continues from there" if left.is_file() and left.stat().st_size else "")
            print(f"error: {name}: {getattr(err, 'reason', None) or err}{resume}", file=sys.stderr)
            continue
        print(f"{name}: {path} ({how}; {datasets.how_checked(dataset, how)}; read by {dataset.labs})")
    return EXIT_FAILED if failed else EXIT_OK


def _hours(seconds: float) -> str:
    """H:MM:SS, hours past 24 included."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def keys(lab: str, as_markdown: bool) -> int:
    """``labrun keys``: every key of a lab's experiment file, or of a sweep file."""
    if as_markdown:
        print(markdown((name, entry.experiment) for name, entry in labs.LABS.items()), end="")
        return EXIT_OK
    if lab == "sweep":
        cls, title = SweepConfig, "sweep file keys (labrun tune)"
    else:
        cls, title = labs.LABS[lab].experiment, f"experiment file keys, lab: {lab}"
    table = Table(title=title, title_justify="left")
    for column in ("key", "expected", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for row in describe_fields(cls):   # "[low, high]" in a doc is text, not rich markup
        table.add_row(*map(Text, row))
    Console().print(table)
    return EXIT_OK


def dry_run(what: str, cfg, trials: list[dict] | None = None) -> int:
    """``--dry-run``: the resolved config (and a sweep's trials), then exit 0; nothing started."""
    print(f"# {what} --dry-run: the config is valid; resolved (file, --set, defaults) it is:")
    print(preview.resolved_yaml(cfg), end="")
    if trials is not None:
        table = Table(title=f"{len(trials)} trials", title_justify="left")
        table.add_column("#", justify="right")
        for key in trials[0]:
            table.add_column(key, overflow="fold")
        for k, trial in enumerate(trials, 1):
            table.add_row(str(k), *(Text(str(v)) for v in trial.values()))
        Console().print(table)
    print("# nothing was started (no Ray, no run folder)")
    return EXIT_OK


def version() -> str:
    """labrun's version and its main dependencies', from package metadata (nothing imported)."""
    from importlib import metadata

    def of(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"
    return (f"labrun {of('labrun')} (Python {sys.version.split()[0]}, Ray {of('ray')}, "
            f"TensorFlow {of('tensorflow')}, Gymnasium {of('gymnasium')})")


# ------------------------------------------------------------------------------- the commands

def cmd_runs(args: argparse.Namespace) -> int:
    return runs(args.runs_dir, args.lab, args.status, args.json)


def cmd_completion(args: argparse.Namespace, root: argparse.ArgumentParser) -> int:
    from cluster.completion import script

    print(script(root, args.shell))
    return EXIT_OK


def cmd_data(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.names) - {"mnist", "music", "faces", "all"})
    if unknown:
        raise UsageError(f"data fetch: unknown dataset(s) {', '.join(unknown)}; "
                         f"expected mnist, music, faces or all")
    return fetch_data(args.names)


def cmd_keys(args: argparse.Namespace) -> int:
    if args.json_schema:
        return write_json_schemas(args.json_schema)
    return keys(args.lab, args.markdown)


def add_parsers(sub, root: argparse.ArgumentParser) -> None:
    """Adds the commands of this module to ``sub`` (``root``: the whole parser, for completion)."""
    p = sub.add_parser("runs", help="list past and running runs and sweeps",
                       description="List the runs and sweeps under RUNS_DIR, newest first: when "
                                   "each started, its lab, its status (running, finished, "
                                   "stopped, failed, interrupted: docs/labs.md), its main metric "
                                   "(latest and best), how far it got and its training time. "
                                   "Reads the folders only; starts nothing.")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                   help="the folder that holds the run folders (default: runs)")
    p.add_argument("--lab", default=None, choices=sorted(labs.LABS), help="only this lab's runs")
    p.add_argument("--status", default=None, choices=catalog.STATUSES, help="only runs in this status")
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)",
                       description="Print the completion script of labrun for a shell: commands, "
                                   "options, experiment and sweep files, run folders. Bash: "
                                   "`eval \"$(labrun completion bash)\"` in ~/.bashrc; zsh: "
                                   "`labrun completion zsh > \"${fpath[1]}/_labrun\"`, then a new "
                                   "shell.")
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=lambda args: cmd_completion(args, root))

    p = sub.add_parser("data", help="fetch the labs' datasets ahead of a run",
                       description="fetch: download the published files the labs read (MNIST, "
                                   "the course's irish.abc, the DB-VAE's 1.35 GB train_face.h5) "
                                   "into the cache the labs look in (~/.cache/labrun), with "
                                   "progress, checked (SHA-256, or the file's layout where none is "
                                   "published), resuming a broken download; says where each is. A "
                                   "file already in $LABRUN_DATA_DIR or the cache is not fetched.")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("names", nargs="*", default=["all"], metavar="NAME",
                   help="mnist, music, faces or all (default)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("keys", help="list every key an experiment or sweep file may set",
                       description="Every key of an experiment file of one lab (its top-level "
                                   "`lab` key; REINFORCE is 'rl'), or of a sweep file, with its "
                                   "type, bounds, default and meaning.")
    p.add_argument("lab", nargs="?", default="rl", choices=[*labs.LABS, "sweep"],
                   help="rl (default), a supervised lab, or sweep")
    p.add_argument("--markdown", action="store_true",
                   help="every lab's keys and the sweep file's, as the Markdown of "
                        "docs/configuration.md")
    p.add_argument("--json-schema", default=None, metavar="DIR",
                   help="write DIR/experiment.schema.json and DIR/sweep.schema.json, the JSON "
                        "Schemas editors check experiment and sweep files with (the shipped "
                        "configs point at configs/schema/)")
    p.set_defaults(func=cmd_keys)
