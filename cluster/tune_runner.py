"""Labs as Ray Tune trials: one trial (``labrun train``) or a sweep (``labrun tune``, also of
REINFORCE experiments: see ``cluster/rl_trial.py``).

Call sequence::

    study = Study.single(kind, cfg, runs_dir)        # or Study.from_sweep(sweep, runs_dir)
    study.save()                                     # study.yaml: what `labrun resume` needs
    results = run_trials(study)                      # or run_trials(Study.load(folder), resume=True)
    rows = summarise(study, results)                 # one row per trial, best first

Each trial builds the lab's runner (``supervised/``), restores Tune's checkpoint if it has one
(a restarted trial continues where it was), and per epoch reports the lab's flat metrics with a
checkpoint; TensorBoard gets the metrics (Tune's logger) and the lab's images, texts and audio
(ours); a lab with ``write_report(folder)`` also leaves its own files in the trial folder. At
the end the sweep folder holds ``results.csv``, ``best_config.yaml`` (an experiment file
``labrun train`` accepts) and ``comparison.png``.

Storage: a runs folder every node reaches, or a URI (``s3://…``, see ``cluster/storage.py``)
that Tune writes to directly, trials' own files included; labrun's files are then written in a
local staging folder (``Study.folder``) and copied beside Tune's (``Study.location``).
"""

from __future__ import annotations

import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster import schema, storage
from cluster.labs import LABS
from cluster.sweep import Sweep, experiment_class, nested

RESULTS_FILE, BEST_FILE, PLOT_FILE = "results.csv", "best_config.yaml", "comparison.png"
STUDY_FILE, TUNER_FILE = "study.yaml", "tuner.pkl"   # ours (what resume needs), Tune's
EXPERIMENT_FILE = "experiment.yaml"
OUR_FILES = [STUDY_FILE, EXPERIMENT_FILE, RESULTS_FILE, BEST_FILE, PLOT_FILE]  # copied to a storage URI
FINISHED_FILE = "finished"   # in a trial folder: the trial ran to its own end


def mark_finished(trial_dir: Path) -> None:
    """Tune's last result of a trial does not reliably say whether the trial returned or was
    stopped; this file does (see ``trial_statuses``)."""
    (trial_dir / FINISHED_FILE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))


def lab_trainable(config: dict[str, Any]) -> None:
    """One Tune trial: config = {"kind", "experiment" (plain data), "overrides" (key path -> value)}."""
    from ray import tune

    from rl.learner import enable_memory_growth

    enable_memory_growth()  # before TensorFlow touches a GPU that trials may share
    lab = LABS[config["kind"]]
    data = schema.merge(config["experiment"], nested(config["overrides"]))
    cfg = schema.from_dict(lab.experiment, data, source="trial")
    runner = lab.runner_class()(getattr(cfg, config["kind"]), seed=cfg.seed)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            runner.restore(folder)
    trial_dir = Path(tune.get_context().get_trial_dir())
    summaries = _SummaryWriter(trial_dir / "images")
    while runner.epoch < runner.total_epochs:
        metrics = runner.train_epoch()
        summaries.write(runner, runner.epoch)
        if hasattr(runner, "write_report"):   # a lab's own files in the trial folder (DB-VAE)
            runner.write_report(trial_dir)
        with tempfile.TemporaryDirectory() as folder:
            runner.save(folder)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        marker = trial_dir / "injected_failure"
        if cfg.trial.fail_once_after_epoch == runner.epoch and not marker.exists():
            marker.write_text(f"failed once after epoch {runner.epoch}\n")
            raise RuntimeError(f"injected failure after epoch {runner.epoch} (trial.fail_once_after_epoch)")
    summaries.close()
    mark_finished(trial_dir)


class _SummaryWriter:
    """What a lab shows beyond its metrics, into TensorBoard: ``runner.images()`` (confusion
    matrix...) and, for labs that have them, ``runner.texts()`` (Markdown) and ``runner.audio()``
    ({tag: (float samples [N] in [-1, 1], sample rate)}). The folder keeps its old name, images."""

    def __init__(self, logdir: Path):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=str(logdir))

    def write(self, runner: Any, step: int) -> None:
        for tag, image in runner.images().items():
            self._writer.add_image(tag, image, global_step=step, dataformats="HWC")
        for tag, text in getattr(runner, "texts", dict)().items():
            self._writer.add_text(tag, text, global_step=step)
        for tag, (samples, rate) in getattr(runner, "audio", dict)().items():
            self._add_audio(tag, samples, rate, step)
        self._writer.flush()

    def _add_audio(self, tag: str, samples: Any, rate: int, step: int) -> None:
        """add_audio's summary, its WAV made with the standard library: tensorboardX's own
        add_audio needs the soundfile package, which labrun does not depend on."""
        import io
        import wave

        import numpy as np
        from tensorboardX.proto.summary_pb2 import Summary

        pcm = (np.clip(np.asarray(samples, np.float32), -1, 1) * 32767).astype("<i2")   # [N]
        with io.BytesIO() as buffer:
            with wave.open(buffer, "wb") as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(rate)
                f.writeframes(pcm.tobytes())
            audio = Summary.Audio(sample_rate=rate, num_channels=1, length_frames=len(pcm),
                                  encoded_audio_string=buffer.getvalue(), content_type="audio/wav")
        self._writer._get_file_writer().add_summary(
            Summary(value=[Summary.Value(tag=tag, audio=audio)]), step)

    def close(self) -> None:
        self._writer.close()


@dataclass(frozen=True)
class Study:
    """What to run: a lab's experiment, a search space over it (empty for one trial), the ranking."""

    kind: str
    name: str                       # folder under runs_dir
    runs_dir: Path
    experiment: dict[str, Any]
    space: dict[str, tuple[str, list]]
    metric: str
    mode: str
    num_samples: int = 1
    scheduler: Any = None           # cluster.sweep.SchedulerConfig or None
    max_concurrent_trials: int | None = None
    search_seed: int = 0
    storage: str | None = None      # a URI (s3://...): Tune writes there, runs_dir is our staging

    @staticmethod
    def single(kind: str, cfg: Any, runs_dir: str | None) -> "Study":
        lab = LABS[kind]
        data = _absolute_paths(schema.to_dict(cfg), kind)
        root, uri = _where(runs_dir or cfg.output.runs_dir)
        name = f"{cfg.name}__{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
        return Study(kind, name, root, data, {}, lab.metric, lab.mode, storage=uri)

    @staticmethod
    def from_sweep(sweep: Sweep, runs_dir: str | None, name: str | None = None) -> "Study":
        cfg = sweep.cfg
        data = _absolute_paths(sweep.experiment_data, sweep.kind, base=sweep.experiment_path.parent)
        root, uri = _where(runs_dir or data.get("output", {}).get("runs_dir", "runs"))
        return Study(sweep.kind, name or f"{cfg.name}__{time.strftime('%Y%m%d-%H%M%S')}", root, data,
                     sweep.space, cfg.metric, cfg.mode, cfg.num_samples, cfg.scheduler,
                     cfg.max_concurrent_trials, cfg.seed, storage=uri)

    @property
    def folder(self) -> Path:
        """Where labrun writes the study's files (with a storage URI: the local staging copy)."""
        return self.runs_dir / self.name

    @property
    def location(self) -> str:
        """Where Tune keeps the study: the storage URI's folder, else the local one."""
        return storage.join(self.storage, self.name) if self.storage else str(self.folder)

    def publish(self) -> None:
        """With a storage URI: copies labrun's files of the study there, beside Tune's."""
        if self.storage:
            storage.upload(self.folder, self.location, OUR_FILES)

    def save(self) -> None:
        """What ``load`` needs to continue the study, in ``folder/study.yaml``, and the experiment
        the trials start from in ``experiment.yaml``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"kind": self.kind, "metric": self.metric, "mode": self.mode,
                "space": {k: [kind, args] for k, (kind, args) in self.space.items()},
                "experiment": self.experiment}
        (self.folder / STUDY_FILE).write_text(yaml.safe_dump(data, sort_keys=False))
        (self.folder / EXPERIMENT_FILE).write_text(yaml.safe_dump(self.experiment, sort_keys=False))
        self.publish()

    @staticmethod
    def load(where: str | Path) -> "Study":
        """The study of a run or sweep folder, or of its storage URI, that Tune can restore;
        ValueError if it is not one. From a URI, labrun's files are fetched to the staging folder."""
        uri = parent = None
        if storage.is_uri(str(where)):
            uri = str(where).rstrip("/")
            parent, name = storage.split(uri)
            folder = storage.staging_dir(parent) / name
            storage.download(uri, folder, OUR_FILES)
            has_tuner = storage.is_file(storage.join(uri, TUNER_FILE))
        else:
            folder = Path(where).resolve()
            has_tuner = (folder / TUNER_FILE).is_file()
        if not (folder / STUDY_FILE).is_file() or not has_tuner:
            raise ValueError(f"{uri or folder}: not a labrun Tune folder (no {STUDY_FILE} and {TUNER_FILE})")
        data = yaml.safe_load((folder / STUDY_FILE).read_text())
        space = {k: (kind, args) for k, (kind, args) in (data.get("space") or {}).items()}
        return Study(data["kind"], folder.name, folder.parent, data["experiment"], space,
                     data["metric"], data["mode"], storage=parent)


def _where(runs_dir: str) -> tuple[Path, str | None]:
    """(local folder for labrun's files, storage URI or None) of a runs_dir or URI."""
    if storage.is_uri(runs_dir):
        uri = runs_dir.rstrip("/")
        storage.open_uri(uri)        # a bad scheme or missing credentials: said before anything runs
        return storage.staging_dir(uri), uri
    return Path(runs_dir).resolve(), None


def _absolute_paths(data: dict[str, Any], kind: str, base: Path | None = None) -> dict[str, Any]:
    """Trials run in their own folders: a lab's relative data path becomes absolute here."""
    settings = data.get(kind)
    if not isinstance(settings, dict) or not settings.get("data_path"):
        return data
    path = str(((base or Path.cwd()) / settings["data_path"]).resolve())
    return {**data, kind: {**settings, "data_path": path}}


def _param(kind: str, args: list) -> Any:
    """A search-space entry as Tune's sampler."""
    from ray import tune

    if kind == "grid":
        return tune.grid_search(args)
    if kind == "choice":
        return tune.choice(args)
    return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[kind](*args)


def _trainable(study: Study) -> tuple[Any, int, int]:
    """(Tune trainable with its resources, max failures, checkpoints to keep) of the study."""
    from ray import tune

    from cluster.session import RaySession

    cluster = RaySession.resources()
    if study.kind == "rl":  # each trial: a placement group for itself and its rollout workers
        from cluster import rl_trial

        cfg = rl_trial.trial_config(study.experiment, {})
        return (tune.with_resources(rl_trial.rl_trainable, lambda config: tune.PlacementGroupFactory(
                    rl_trial.bundles(rl_trial.trial_config(config["experiment"], config["overrides"])))),
                cfg.resources.max_trial_failures, cfg.output.keep_checkpoints)
    cfg = schema.from_dict(experiment_class(study.kind), study.experiment)
    gpus = cfg.trial.gpus
    if gpus == "auto":
        gpus = 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
    return (tune.with_resources(lab_trainable, {"cpu": cfg.trial.cpus, "gpu": gpus}),
            cfg.trial.max_failures, cfg.output.keep_checkpoints)


def run_trials(study: Study, resume: bool = False):
    """Runs (or, with ``resume``, continues) the study on the current Ray session; its ResultGrid."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from cluster.tune_progress import Progress

    trainable, max_failures, keep = _trainable(study)
    if resume:
        return tune.Tuner.restore(study.location, trainable=trainable, resume_errored=True).fit()
    scheduler = None
    if study.scheduler is not None and study.scheduler.kind == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=10_000,
                                  grace_period=study.scheduler.grace_period,
                                  reduction_factor=study.scheduler.reduction_factor)
    tuner = tune.Tuner(
        trainable,
        param_space={"kind": study.kind, "experiment": _resolved(study),
                     "overrides": {k: _param(kind, args) for k, (kind, args) in study.space.items()}},
        tune_config=tune.TuneConfig(
            metric=study.metric, mode=study.mode, num_samples=study.num_samples,
            scheduler=scheduler, max_concurrent_trials=study.max_concurrent_trials,
            search_alg=BasicVariantGenerator(random_state=study.search_seed)),
        run_config=tune.RunConfig(
            name=study.name, storage_path=study.storage or str(study.runs_dir), verbose=0,
            # With a URI, the files trials write in their folders (TensorBoard images, reports,
            # `finished`) go there too, at each checkpoint and at the trial's end.
            sync_config=tune.SyncConfig(sync_artifacts=study.storage is not None),
            failure_config=tune.FailureConfig(max_failures=max_failures), callbacks=[Progress(study.metric)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=keep)))
    return tuner.fit()


def _resolved(study: Study) -> dict[str, Any]:
    """The experiment as trials get it: an RL learner's ``gpus: auto`` decided for this cluster."""
    if study.kind != "rl":
        return study.experiment
    from cluster.rl_trial import resolve_gpus
    from cluster.session import RaySession

    return resolve_gpus(study.experiment, RaySession.resources().get("GPU", 0.0))


def trial_statuses(location: str) -> dict[str, str]:
    """Trial path -> 'ok' (ran to its own end), 'stopped early' (by the scheduler), 'error'
    (failed after its restarts) or 'unfinished' (the sweep was interrupted), from the experiment
    state Tune saved last (after Ctrl-C, Tune's in-memory trials all read TERMINATED) and the
    trials' own ``finished`` files. ``location``: a study's folder or storage URI."""
    import pyarrow.fs
    from ray.tune import ExperimentAnalysis

    fs = storage.open_uri(location)[0] if storage.is_uri(location) else pyarrow.fs.LocalFileSystem()
    out = {}
    for trial in ExperimentAnalysis(location).trials:   # trial.path: a path on fs
        if fs.get_file_info(f"{trial.path}/{FINISHED_FILE}").type == pyarrow.fs.FileType.File:
            out[trial.path] = "ok"
        elif trial.status == "TERMINATED":
            out[trial.path] = "stopped early"
        else:
            out[trial.path] = "error" if trial.status == "ERROR" else "unfinished"
    return out


def summarise(study: Study, results) -> list[dict[str, Any]]:
    """Rows (one per trial, best first) into results.csv; the best trial's experiment into
    best_config.yaml; each trial's metric against epochs into comparison.png."""
    rows = []
    statuses = trial_statuses(study.location)
    for result in results:
        overrides = (result.config or {}).get("overrides", {})
        metrics = result.metrics or {}
        rows.append({"trial": Path(result.path).name, **{k: overrides.get(k) for k in study.space},
                     study.metric: metrics.get(study.metric),
                     "epochs": metrics.get("training_iteration"),
                     "status": statuses.get(result.path, "error" if result.error else "ok"),
                     "path": storage.join(study.location, Path(result.path).name) if study.storage
                     else result.path,
                     "_overrides": overrides, "_history": result.metrics_dataframe})
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
        best["name"] = f"{best.get('name', study.kind)}_best"
        (study.folder / BEST_FILE).write_text(
            f"# best trial of {study.name} by {study.metric} ({study.mode}): "
            f"{done[0][study.metric]:.6g}\n" + yaml.safe_dump(best, sort_keys=False))
        _plot(study, done)
    study.publish()
    return rows


def read_results(folder: Path) -> list[dict[str, str]]:
    """The rows of a sweep folder's results.csv (best first), as strings keyed by column."""
    with open(Path(folder) / RESULTS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def _plot(study: Study, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for r in rows:
        history = r["_history"]
        if history is None or study.metric not in history:
            continue
        label = ", ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in r["_overrides"].items()) or r["trial"]
        ax.plot(history["training_iteration"], history[study.metric], marker="o", label=label)
    ax.set_xlabel("iteration" if study.kind == "rl" else "epoch")
    ax.set_ylabel(study.metric)
    ax.set_title(study.name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(study.folder / PLOT_FILE)
    plt.close(fig)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
