"""The work of ``labrun train`` for a supervised lab, ``labrun tune`` and ``labrun resume`` of a
Tune run: start (or join) Ray, run the study's trials, print the results table and where the
files are. Each returns the command's exit code. What is printed from data (names, paths, keys,
values, tunes) goes to rich as ``Text``, so it prints as it is, never as rich markup."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cluster import storage, trackers
from cluster.config.sweep import Sweep
from cluster.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, UsageError
from cluster.folders import locked
from cluster.infra.session import RaySession
from cluster.signals import StopSignals
from cluster.tuning.results import summarise
from cluster.tuning.runner import run_trials
from cluster.tuning.study import BEST_FILE, PLOT_FILE, RESULTS_FILE, STUDY_FILE, Study
from cluster.tuning.trainable import DEVICE_FILE


def train(lab: Any, cfg: Any, runs_dir: str | None, address: str | None, source: str = "") -> int:
    """``labrun train`` of a supervised lab: one Tune trial."""
    lab.check(cfg, source)   # e.g. no version in its framework: exit 2 before Ray starts
    return run_study(Study.single(lab, cfg, runs_dir), lab, address)


def tune(sweep: Sweep, runs_dir: str | None, address: str | None, resume: str | None,
         labs: Mapping[str, Any]) -> int:
    """``labrun tune``: a new sweep, or (``resume``) the latest one of its name or a given folder
    (``labs``: the registry, ``cluster.labs.LABS``, for the lab of that folder)."""
    if resume is None:
        return run_study(Study.from_sweep(sweep, runs_dir), sweep.lab, address)
    if resume != "latest":
        return resume_study(resume, labs, address)
    new = Study.from_sweep(sweep, runs_dir)
    prefix = f"{sweep.cfg.name}__"
    if new.storage:
        found = [storage.join(new.storage, name) for name in storage.folders(new.storage, prefix)]
    else:
        found = [str(p) for p in sorted(new.runs_dir.glob(glob.escape(prefix) + "*"), key=lambda p: p.stat().st_mtime)]
    if not found:
        raise UsageError(f"--resume: no earlier sweep {sweep.cfg.name!r} under "
                         f"{new.storage or new.runs_dir}")
    return resume_study(found[-1], labs, address)


def is_study(folder: str) -> bool:
    """Whether ``folder`` (a path or URI) is a Tune run or sweep rather than a REINFORCE run."""
    if storage.is_uri(folder):
        return storage.is_file(storage.join(folder, STUDY_FILE))
    return (Path(folder) / STUDY_FILE).is_file()


def resume_study(folder: str | Path, labs: Mapping[str, Any], address: str | None) -> int:
    """Continues the unfinished trials of a Tune run or sweep (``labs``: the registry)."""
    try:
        study = Study.load(folder)
    except ValueError as err:
        raise UsageError(str(err)) from None
    lab = labs[study.lab]
    if problem := trackers.missing(study.loggers(lab)):
        raise UsageError(problem)
    return run_study(study, lab, address, resume=True)


def run_study(study: Study, lab: Any, address: str | None, resume: bool = False) -> int:
    """Runs a lab's trial(s) through Tune and prints the results table."""
    console = Console(highlight=False)
    if not resume:
        study = study.claim_folder()    # `-2` when another of its name started this second
    console.print(Text(f"{'resuming' if resume else 'running'} {study.lab} trial(s): {study.location}"))
    if not resume:
        study.save()
    loggers = study.loggers(lab)
    rows: list[dict[str, Any]] = []
    with locked(study.folder):   # one writer; `labrun runs` reads it as running
        try:
            with StopSignals() as stop, RaySession(address=address):
                stop.claim()   # SIGTERM: like Ctrl-C (Tune stops the trials, saves its state)
                results = run_trials(study, lab, resume=resume)
            rows = summarise(study, lab, results)
        finally:   # the tracked runs end however this ends (imports Ray: set up by now)
            if trackers.tracked(loggers):
                from cluster.tuning.tracking import finish_study

                finish_study(study, loggers, rows, stopped=any(r["status"] == "unfinished" for r in rows))
    unfinished = [r for r in rows if r["status"] == "unfinished"]
    console.print(_results_table(study, rows))
    console.print(_files_table(study, loggers))
    if unfinished:
        console.print(Text(f"interrupted: {len(unfinished)} trial(s) unfinished; continue with: "
                           f"labrun resume {study.location}"), soft_wrap=True)  # a path to copy, unbroken
        return EXIT_TERMINATED if stop.received else EXIT_INTERRUPTED
    failed = [r for r in rows if r["status"] == "error"]
    for row in failed:   # the reason is data (paths, values): Text, never markup
        console.print(Text(f"trial {row['trial']} failed: {row.get('_reason') or 'no reason recorded'}"),
                      soft_wrap=True)
    if failed:
        console.print(Text(f"error: {len(failed)} trial(s) failed (why: above; a trial that used "
                           f"its restarts has its traceback in error.txt, e.g. "
                           f"{failed[0]['path']}/error.txt)"), soft_wrap=True)
        return EXIT_FAILED
    return EXIT_OK


def _results_table(study: Study, rows: list[dict[str, Any]]) -> Table:
    title = Text(f"labrun: {study.name} (best first by {study.metric}, {study.mode})", style="table.title")
    table = Table(title=title, title_justify="left", min_width=min(len(title), 80))
    columns = ["trial", *study.space, study.metric, "epochs", "status"]
    for column in columns:
        table.add_column(Text(column.split(".")[-1] if column in study.space else column),
                         overflow="fold")
    for row in rows:   # the trial's short id (its folder: results.csv), swept values beside it
        table.add_row(*(_cell(short_trial_name(row[c]) if c == "trial" else row[c]) for c in columns))
    return table


def short_trial_name(folder: str) -> str:
    """A Tune trial folder's name, ``lab_trainable_1b39e_00001_1_intro_lr=0.1000_2026-...``, as
    its trial id ``1b39e_00001``; any other name as it is."""
    match = re.search(r"_([0-9a-f]{5}_\d{5})_", folder)
    return match.group(1) if match else folder


def _files_table(study: Study, loggers: tuple[str, ...] = ()) -> Table:
    outputs = Table(show_header=False)
    stored = [("stored at", f"{study.location} (Tune's trials, checkpoints and TensorBoard files; "
                            f"copies of the files above)")] if study.storage else []
    devices = sorted({p.read_text().strip() for p in study.folder.glob(f"*/{DEVICE_FILE}")})
    for key, value in (("trained on", "; ".join(devices) or "-"),
                       ("folder", study.folder), ("results", study.folder / RESULTS_FILE),
                       ("best config", study.folder / BEST_FILE),
                       ("comparison", study.folder / PLOT_FILE), *stored,
                       ("tensorboard", f"labrun tensorboard {study.folder}" if not study.storage
                        else f"tensorboard --logdir {study.location} (where TensorFlow reads that scheme)"),
                       *trackers.where(loggers, study.runs_dir, study.folder, study.folder / "*")):
        outputs.add_row(key, Text(str(value)))
    return outputs


def _cell(value) -> Text:
    return Text("-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value))


def generate(run_dir: str, songs: int, temperature: float | None, length: int | None, seed: int,
             out: str | None) -> int:
    """``labrun generate``: tunes sampled from a music lab run's latest checkpoint."""
    from supervised.music_audio import find_renderer
    from supervised.music_generation import (
        CheckpointNotFound,
        find_checkpoint,
        load_generator,
        sample_songs,
        write_songs,
    )

    try:
        folder = find_checkpoint(run_dir)
    except CheckpointNotFound as err:
        raise UsageError(str(err)) from None
    try:
        rnn, vocab, counters = load_generator(folder)
    except ValueError as err:   # not a music model's, refused by weights_only, PyTorch missing
        raise UsageError(str(err)) from None
    saved = counters.get("generation", {})
    target = Path(out) if out else Path(run_dir) / "generated"
    renderer = find_renderer()
    console = Console(highlight=False)
    console.print(Text(f"checkpoint: {folder} (epoch {counters.get('epoch')})"))
    console.print(Text("audio: " + ("no MIDI synthesiser on PATH (timidity, fluidsynth); the built-in "
                                    "additive one plays the .wav files" if renderer == "builtin"
                                    else f"{renderer} plays the .wav files")))
    tunes = sample_songs(rnn, vocab, songs, length=length or saved.get("length", 1000),
                         temperature=temperature or saved.get("temperature", 1.0),
                         start_string=saved.get("start_string", "X"), seed=seed)
    reports = write_songs(target, tunes, renderer)
    table = Table(title=Text(f"labrun generate: {len(reports)} tunes in {target}", style="table.title"),
                  title_justify="left")
    for column in ("song", "title", "valid", "reason", "strict", "files"):
        table.add_column(column, overflow="fold")
    for r in reports:   # a sampled tune's title and the judges' reasons are data: Text, not markup
        table.add_row(*map(Text, (r.name, r.title or "-", "yes" if r.valid else "no",
                                  r.reason + ("" if r.complete else " (cut off)"),
                                  "yes" if r.strict_valid else r.strict_reason, " ".join(r.files))))
    console.print(table)
    n = max(len(reports), 1)
    valid, strict = sum(r.valid for r in reports), sum(r.strict_valid for r in reports)
    console.print(f"valid (music21): {valid} of {len(reports)} ({valid / n:.0%}); strictly valid "
                  f"(every token understood): {strict} of {len(reports)} ({strict / n:.0%})")
    return EXIT_OK
