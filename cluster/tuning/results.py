"""A study's results: each trial's status, results.csv (best first), best_config.yaml (an
experiment file ``labrun train`` accepts) and comparison.png (each trial's metric over time)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from cluster import storage
from cluster.config import schema
from cluster.config.sweep import nested
from cluster.tuning.study import BEST_FILE, PLOT_FILE, RESULTS_FILE, Study
from cluster.tuning.trainable import FAILED_FILE, FINISHED_FILE


def trial_statuses(location: str) -> dict[str, tuple[str, str | None]]:
    """Trial path -> (status, reason). Status: 'ok' (ran to its own end), 'stopped early' (by
    the scheduler), 'error' (failed after its restarts, or at once where no retry would help: its
    ``failed_permanently`` file holds the reason) or 'unfinished' (the sweep was interrupted),
    from the experiment state Tune saved last (after Ctrl-C, Tune's in-memory trials all read
    TERMINATED) and the trials' own files. ``location``: a study's folder or storage URI."""
    import pyarrow.fs
    from ray.tune import ExperimentAnalysis

    fs = storage.open_uri(location)[0] if storage.is_uri(location) else pyarrow.fs.LocalFileSystem()
    out: dict[str, tuple[str, str | None]] = {}
    for trial in ExperimentAnalysis(location).trials:   # trial.path: a path on fs
        if _is_file(fs, f"{trial.path}/{FAILED_FILE}"):
            with fs.open_input_stream(f"{trial.path}/{FAILED_FILE}") as f:
                out[trial.path] = ("error", f.read().decode("utf-8", "replace").strip())
        elif _is_file(fs, f"{trial.path}/{FINISHED_FILE}"):
            out[trial.path] = ("ok", None)
        elif trial.status == "TERMINATED":
            out[trial.path] = ("stopped early", None)
        else:
            out[trial.path] = ("error" if trial.status == "ERROR" else "unfinished", None)
    return out


def _is_file(fs, path: str) -> bool:
    import pyarrow.fs

    return fs.get_file_info(path).type == pyarrow.fs.FileType.File


def error_reason(error: BaseException | None) -> str | None:
    """The last line of a failed trial's error (Tune's error carries the trial's traceback;
    the exception's own message ends it), as error.txt holds it."""
    lines = [line for line in str(error or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def summarise(study: Study, lab: Any, results) -> list[dict[str, Any]]:
    """Rows (one per trial, best first) into results.csv; the best trial's experiment into
    best_config.yaml; each trial's metric against ``lab.step`` (epochs, iterations) into
    comparison.png."""
    rows = []
    statuses = trial_statuses(study.location)
    for result in results:
        overrides = (result.config or {}).get("overrides", {})
        metrics = result.metrics or {}
        status, reason = statuses.get(result.path, ("error" if result.error else "ok", None))
        rows.append({"trial": Path(result.path).name, **{k: overrides.get(k) for k in study.space},
                     study.metric: metrics.get(study.metric),
                     "epochs": metrics.get("training_iteration"),
                     "status": status,
                     "path": storage.join(study.location, Path(result.path).name) if study.storage
                     else result.path,
                     "_overrides": overrides, "_history": result.metrics_dataframe,
                     "_reason": reason or (error_reason(result.error) if status == "error" else None)})
    done = [r for r in rows if r[study.metric] is not None]
    done.sort(key=lambda r: r[study.metric], reverse=study.mode == "max")
    rows = done + [r for r in rows if r[study.metric] is None]
    study.folder.mkdir(parents=True, exist_ok=True)
    columns = [c for c in rows[0] if not c.startswith("_")] if rows else []
    with open(study.folder / RESULTS_FILE, "w", newline="") as out:
        writer = csv.writer(out)   # quotes fields with commas (trial names, list values, paths)
        writer.writerow(columns)
        writer.writerows(["" if r[c] is None else str(r[c]) for c in columns] for r in rows)
    if done:
        best = schema.merge(study.experiment, nested(done[0]["_overrides"]))
        best["name"] = f"{best.get('name', study.lab)}_best"
        (study.folder / BEST_FILE).write_text(
            f"# best trial of {study.name} by {study.metric} ({study.mode}): "
            f"{done[0][study.metric]:.6g}\n" + yaml.safe_dump(best, sort_keys=False))
        _plot(study, done, lab.step)
    study.publish()
    return rows


def read_results(folder: Path) -> list[dict[str, str]]:
    """The rows of a sweep folder's results.csv (best first), as strings keyed by column."""
    with open(Path(folder) / RESULTS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def _plot(study: Study, rows: list[dict[str, Any]], step: str) -> None:
    from cluster.figures import pyplot, save

    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=100)
    for r in rows:
        history = r["_history"]
        if history is None or study.metric not in history:
            continue
        label = ", ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in r["_overrides"].items()) or r["trial"]
        ax.plot(history["training_iteration"], history[study.metric], marker="o", label=label)
    ax.set_xlabel(step)
    ax.set_ylabel(study.metric)
    ax.set_title(study.name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    save(fig, study.folder / PLOT_FILE)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
