"""A supervised lab as one Ray Tune trial: ``lab_trainable``.

The lab (``supervised/``, the contract in ``supervised/lab.py``) does not know about Tune. The
trial builds it, restores Tune's checkpoint if it has one (a restarted trial continues where it
was), and per epoch reports the lab's flat metrics with a checkpoint; TensorBoard gets the metrics
(Tune's logger) and the lab's images, texts and audio (``TrialSummaries``); the lab's own files go
to the trial folder (``write_report``). A trial that ran to its own end leaves ``finished``; one
that cannot run however often it is retried (no data, a value the lab refuses) ends at once and
leaves ``failed_permanently`` with its reason.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from cluster.config import schema
from cluster.config.lab_experiments import FRAMEWORK_INSTALL, FRAMEWORK_MODULES
from cluster.config.sweep import nested
from cluster.devices import GpuUnusable, place_trial
from cluster.tensorboard_layout import TUNE_PREFIX, write_layout
from supervised.data import DataUnavailable
from supervised.lab import Lab

FINISHED_FILE = "finished"   # in a trial folder: the trial ran to its own end
DEVICE_FILE = "device"       # in a trial folder: the framework and the device it trains on
FAILED_FILE = "failed_permanently"   # in a trial folder: why it failed where no retry would help
# What no retry changes: data missing or malformed (MNIST, faces, the test faces), and a value
# the lab's constructor refuses. A trial that meets one ends at once, its restarts unused.
PERMANENT_ON_START = (DataUnavailable, ValueError, FileNotFoundError, GpuUnusable)
PERMANENT = (DataUnavailable,)


def mark_finished(trial_dir: Path) -> None:
    """Tune's last result of a trial does not reliably say whether the trial returned or was
    stopped; this file does (see ``cluster.tuning.results.trial_statuses``)."""
    (trial_dir / FINISHED_FILE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))


def fail_permanently(trial_dir: Path, err: Exception) -> None:
    """The trial ends without an exception, so Tune does not restart it; this file says it
    failed, and why (``cluster.tuning.results.trial_statuses`` reads it)."""
    (trial_dir / FAILED_FILE).write_text(f"{type(err).__name__}: {err}\n")


def lab_trainable(config: dict[str, Any], lab: Any) -> None:
    """One Tune trial of ``lab`` (its registry entry, ``cluster.labs.SupervisedLab``, given by
    ``tune.with_parameters``): config = {"lab", "experiment" (plain data), "overrides" (key path
    -> value)}."""
    import ray
    from ray import tune

    data = schema.merge(config["experiment"], nested(config["overrides"]))
    cfg = schema.from_dict(lab.experiment, data, source="trial")
    trial_dir = Path(tune.get_context().get_trial_dir())
    trial_dir.mkdir(parents=True, exist_ok=True)   # on a worker node Tune makes it only later
    try:   # the device first: before the framework touches a GPU this trial was not given
        gpu_ids = ray.get_gpu_ids()
        share = cfg.trial.gpus if isinstance(cfg.trial.gpus, float) else float(bool(gpu_ids))
        device = place_trial(cfg.framework, len(gpu_ids), cfg.trial.cpus, share)
        runner: Lab = lab.runner_class(cfg.framework)(getattr(cfg, lab.name), seed=cfg.seed)
    except PERMANENT_ON_START as err:
        return fail_permanently(trial_dir, err)
    except ModuleNotFoundError as err:   # the framework is not installed where the trial runs
        if err.name != FRAMEWORK_MODULES[cfg.framework]:
            raise
        return fail_permanently(trial_dir, ModuleNotFoundError(
            f"{err} where this trial runs; install it with: {FRAMEWORK_INSTALL[cfg.framework]}"))
    how = runner.describe()
    (trial_dir / DEVICE_FILE).write_text(f"{cfg.framework} on {device}{'; ' + how if how else ''}\n")
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            runner.restore(folder)
    summaries = TrialSummaries(trial_dir / "images", lab.name)
    while runner.epoch < runner.total_epochs:
        try:
            metrics = runner.train_epoch()
        except PERMANENT as err:   # data read as it is needed (the test faces)
            summaries.close()
            return fail_permanently(trial_dir, err)
        summaries.write(runner, runner.epoch)
        runner.write_report(trial_dir)   # a lab's own files in the trial folder (DB-VAE's)
        with tempfile.TemporaryDirectory() as folder:
            runner.save(folder)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        marker = trial_dir / "injected_failure"
        if cfg.trial.fail_once_after_epoch == runner.epoch and not marker.exists():
            marker.write_text(f"failed once after epoch {runner.epoch}\n")
            raise RuntimeError(f"injected failure after epoch {runner.epoch} (trial.fail_once_after_epoch)")
    summaries.close()
    mark_finished(trial_dir)


class TrialSummaries:
    """What a lab shows beyond its metrics, into TensorBoard: ``lab.images()`` (confusion
    matrix...), ``lab.texts()`` (Markdown) and ``lab.audio()`` ({tag: (float samples [N] in
    [-1, 1], sample rate)}). The folder keeps its old name, images."""

    def __init__(self, logdir: Path, lab: str):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=str(logdir))
        write_layout(self._writer, lab, TUNE_PREFIX)   # the Custom Scalars tab: the lab's charts

    def write(self, lab: Lab, step: int) -> None:
        for tag, image in lab.images().items():
            self._writer.add_image(tag, image, global_step=step, dataformats="HWC")
        for tag, text in lab.texts().items():
            self._writer.add_text(tag, text, global_step=step)
        for tag, (samples, rate) in lab.audio().items():
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
