"""The supervised labs' contract, written once: what a runner may call on a lab, and in what order."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np


class Lab(Protocol):
    """One trial of a lab (``IntroLab``, ``MnistLab``, ``MusicLab``, ``DbvaeLab``). Call sequence,
    as the Tune trainable (``cluster/tuning/trainable.py``) runs it::

        lab = LabClass(cfg, seed=seed)          # cfg: the lab's section of the experiment file
        lab.restore(folder)                     # only when a restarted trial continues from a checkpoint
        while lab.epoch < lab.total_epochs:
            metrics = lab.train_epoch()         # flat {"area/name": float}, keys from METRICS
            lab.images(); lab.texts(); lab.audio()   # for TensorBoard
            lab.write_report(trial_dir)         # the lab's own files in the trial folder
            lab.save(folder)                    # a checkpoint

    A lab does not know who drives it: the same calls run it in a test, in one process. A
    checkpoint holds what ``restore`` needs to continue as if the run had never stopped (the
    epoch counter included); epochs draw their data from (seed, epoch), so a resumed run sees
    the same batches. Labs subclass this class for the defaults of ``texts``, ``audio`` and
    ``write_report`` (nothing to show, no files) and ``describe``.
    """

    METRICS: ClassVar[tuple[str, ...]]  # every metric name train_epoch may report
    epoch: int                          # finished epochs

    @property
    def total_epochs(self) -> int:
        """How many epochs the trial runs (from the config)."""
        ...

    def train_epoch(self) -> dict[str, float]:
        """One epoch of training (and whatever evaluation the lab does after it); its metrics."""
        ...

    def save(self, folder: str | Path) -> None:
        """A checkpoint of everything the trial needs to continue, written into ``folder``."""
        ...

    def restore(self, folder: str | Path) -> None:
        """Continues from the checkpoint ``save`` wrote into ``folder``."""
        ...

    def images(self) -> dict[str, np.ndarray]:
        """Pictures of the current state: {tag: uint8 RGB [H, W, 3]}."""
        ...

    def texts(self) -> dict[str, str]:
        """Text of the current state: {tag: Markdown}. None by default."""
        return {}

    def audio(self) -> dict[str, tuple[np.ndarray, int]]:
        """Sound of the current state: {tag: (float32 samples [N] in [-1, 1], sample rate)}.
        None by default."""
        return {}

    def write_report(self, folder: str | Path) -> None:
        """The lab's own files of the current state, written into the trial's ``folder``.
        None by default."""

    def describe(self) -> str:
        """How the lab computes, in words, where a choice was made for it (the music lab's LSTM
        kernel); the runner records it beside the device. Nothing by default."""
        return ""
