"""``labrun runs``: each status read from a run's own files, by hand (``cluster/catalog.py``),
and the command on a folder holding a finished, a stopped, a failed, a killed and a running
REINFORCE run and a finished and a killed study."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from cluster.catalog import lock_held, run_status, scan
from cluster.folders import locked
from helpers import run_cli

START = "2026-01-01 10:00:00 starting 2 rollout worker(s) x 8 env(s) of CartPole-v1\n"


def test_a_run_status_is_how_its_last_session_ended():
    assert run_status(START + "2026-01-01 10:01:00 stopped: solved: mean return 480.0 >= 475 over 100 episodes\n") == "finished"
    assert run_status(START + "x y stopped: env step budget reached (1,000)\n") == "finished"
    assert run_status(START + "x y stopped: interrupted (Ctrl-C)\n") == "stopped"
    assert run_status(START + "x y stopped: stopped by request (SIGTERM)\n") == "stopped"
    assert run_status(START + "x y stopped: non-finite loss at iteration 3; no checkpoint\n") == "failed"
    assert run_status(START) == "interrupted"                       # killed: no word at all
    finished_then_killed = START + "x y stopped: iteration budget reached (3)\n" + START
    assert run_status(finished_then_killed) == "interrupted"        # the resume was killed
    assert run_status(finished_then_killed + "x y stopped: wall time budget reached (5 s)\n") == "finished"


def fake_run(runs: Path, name: str, log: str, returns: list[float]) -> Path:
    """A REINFORCE run folder as the trainer leaves it: config, metrics rows, run log."""
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"name": name.split("__")[0], "lab": "rl"}))
    rows = [{"step": 100 * (k + 1), "counters/env_steps": 100.0 * (k + 1), "time/train_s": 2.0 * (k + 1),
             "rollout/episode_return_mean": r} for k, r in enumerate(returns)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "run.log").write_text(log)
    return folder


def fake_study(runs: Path, name: str, losses: list[list[float]], results: bool) -> Path:
    """A Tune study folder: study.yaml, one folder per trial with Tune's result.json, and
    results.csv when labrun summarised it (the study ended; not when it was killed)."""
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "study.yaml").write_text(yaml.safe_dump({"lab": "mnist", "metric": "fit/loss", "mode": "min"}))
    for t, trial in enumerate(losses):
        (folder / f"trial_{t}").mkdir()
        (folder / f"trial_{t}" / "result.json").write_text("".join(
            json.dumps({"fit/loss": v, "training_iteration": e + 1, "time_total_s": 3.0 * (e + 1)}) + "\n"
            for e, v in enumerate(trial)))
    if results:
        (folder / "results.csv").write_text("trial,fit/loss,epochs,status\ntrial_0,0.5,2,ok\ntrial_1,0.7,3,stopped early\n")
    return folder


def test_runs_lists_every_run_newest_first_with_its_status(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "cp__0__20260101-100000", START + "x y stopped: env step budget reached (300)\n", [10, 30, 20])
    fake_run(runs, "cp__0__20260101-110000", START + "x y stopped: interrupted (Ctrl-C)\n", [5])
    fake_run(runs, "cp__0__20260101-120000", START + "x y stopped: rollout workers lost\n", [5])
    fake_run(runs, "cp__0__20260101-130000", START, [7, 8])                        # SIGKILLed
    running = fake_run(runs, "cp__1__20260101-140000", START, [1])
    fake_study(runs, "sweep__20260101-090000", [[0.9, 0.5], [0.8, 0.7, 0.75]], results=True)
    fake_study(runs, "sweep__20260101-080000", [[0.9]], results=False)          # killed
    (runs / "not_a_run").mkdir()
    with locked(running):
        assert lock_held(running) and not lock_held(runs / "cp__0__20260101-130000")
        entries = scan(runs)
        out = run_cli("runs", str(runs), "--json")
    assert [(e.name, e.status) for e in entries] == [
        ("cp__1__20260101-140000", "running"), ("cp__0__20260101-130000", "interrupted"),
        ("cp__0__20260101-120000", "failed"), ("cp__0__20260101-110000", "stopped"),
        ("cp__0__20260101-100000", "finished"), ("sweep__20260101-090000", "finished"),
        ("sweep__20260101-080000", "interrupted")]
    finished = entries[4]
    assert (finished.last, finished.best, finished.steps, finished.train_s) == (20, 30, 300, 6.0)
    sweep = entries[5]   # mode min: the best trial's latest loss, the lowest loss of any trial
    assert (sweep.lab, sweep.last, sweep.best, sweep.trials, sweep.epochs) == ("mnist", 0.5, 0.5, 2, 3)
    assert out.returncode == 0, out.stderr
    assert [(e["name"], e["status"]) for e in json.loads(out.stdout)] == [(e.name, e.status) for e in entries]
    # the lock is the kernel's: released, the run reads as what its log says
    assert scan(runs)[0].status == "interrupted"


def test_runs_filters_by_status_and_lab_and_refuses_a_missing_folder(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "cp__0__20260101-100000", START + "x y stopped: env step budget reached (300)\n", [10])
    fake_run(runs, "cp__0__20260101-130000", START, [7])
    fake_study(runs, "sweep__20260101-090000", [[0.9]], results=True)
    out = run_cli("runs", str(runs), "--status", "finished")
    assert out.returncode == 0, out.stderr
    assert "2 runs under" in out.stdout and "cp__0" in out.stdout and "interrupted" not in out.stdout
    out = run_cli("runs", str(runs), "--lab", "mnist", "--json")
    assert [e["name"] for e in json.loads(out.stdout)] == ["sweep__20260101-090000"]
    out = run_cli("runs", str(tmp_path / "nosuch"))
    assert out.returncode == 2 and out.stderr.strip() == f"error: {tmp_path / 'nosuch'}: no such folder"


def test_one_unreadable_folder_does_not_hide_the_others(tmp_path):
    """On a shared runs folder: a folder with a malformed study file, one whose name only looks
    stamped, and a non-finite metric; the rest is listed, the bad one named on stderr."""
    runs = tmp_path / "runs"
    fake_run(runs, "cp__0__20260101-100000", START + "x y stopped: env step budget reached (300)\n",
             [10, float("nan")])
    fake_run(runs, "cp__0__20261399-000000", START, [1])                     # month 13
    (runs / "broken__20260101-090000").mkdir()
    (runs / "broken__20260101-090000" / "study.yaml").write_text("- a list\n- not a mapping\n")
    out = run_cli("runs", str(runs), "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert sorted(e["name"] for e in listed) == ["cp__0__20260101-100000", "cp__0__20261399-000000"]
    assert next(e for e in listed if e["name"] == "cp__0__20260101-100000")["last"] is None   # NaN
    assert "broken__20260101-090000" in out.stderr and "left out" in out.stderr
