"""The supervised labs' experiment files (``lab: mnist | intro | music | dbvae``).

Each file names its lab, its framework (TensorFlow or PyTorch), a seed, the lab's own settings
under a key named after it (the classes in ``supervised/config.py``), what each Tune trial gets
(``trial``) and where runs go (``output``). ``cluster/labs.py`` maps each lab to its class here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cluster.trackers import TrackedOutput
from supervised.config import DbvaeConfig, IntroConfig, MnistConfig, MusicConfig

Framework = Literal["tensorflow", "torch"]
FRAMEWORK_NAMES = {"tensorflow": "TensorFlow", "torch": "PyTorch"}
FRAMEWORK_MODULES = {"tensorflow": "tensorflow", "torch": "torch"}   # what must be importable
FRAMEWORK_INSTALL = {"tensorflow": "pip install -e .", "torch": "pip install -e '.[torch]'"}
FRAMEWORK_EXTRAS = {"torch": "torch"}   # the optional dependencies (pyproject.toml) a framework needs


@dataclass(frozen=True)
class TrialResources:
    cpus: float = field(default=1.0, metadata={"gt": 0})
    """CPUs Ray reserves for each trial."""
    gpus: float | Literal["auto"] = field(default="auto", metadata={"ge": 0})
    """GPUs for each trial: 'auto' gives a trial one GPU when the cluster has GPUs, else none;
    fractions (e.g. 0.5) let trials share a GPU (TensorFlow's memory growth is on)."""
    max_failures: int = field(default=2, metadata={"ge": 0})
    """How many times a crashed trial is restarted from its last checkpoint."""
    fail_once_after_epoch: int | None = field(default=None, metadata={"ge": 1})
    """Fault injection for testing recovery: the trial raises once after this epoch."""


@dataclass(frozen=True)
class LabOutput(TrackedOutput):
    runs_dir: str = "runs"
    """Folder under which each run or sweep gets its own folder (Tune's storage path)."""
    keep_checkpoints: int = field(default=2, metadata={"ge": 1})
    """Checkpoints kept per trial (the latest ones)."""


@dataclass(frozen=True)
class MnistExperiment:
    name: str = field(default="mnist", metadata={"min_len": 1, "folder_name": True})
    """Name of the experiment; the start of its run folder's name, so one folder's name: no
    slashes, no leading '.' or '~', printable, at most 200 bytes."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the weights' initialisation and of the data order."""
    lab: Literal["mnist"] = "mnist"
    """Which lab this file runs."""
    framework: Framework = "tensorflow"
    """The lab's framework: 'tensorflow' (Keras 3) or 'torch' (PyTorch, as the course's PT_
    notebooks; needs pip install -e '.[torch]'). The same settings, metrics and outputs."""
    mnist: MnistConfig = field(default_factory=MnistConfig)
    trial: TrialResources = field(default_factory=TrialResources)
    output: LabOutput = field(default_factory=LabOutput)


@dataclass(frozen=True)
class IntroExperiment:
    name: str = field(default="intro", metadata={"min_len": 1, "folder_name": True})
    """Name of the experiment; the start of its run folder's name, so one folder's name: no
    slashes, no leading '.' or '~', printable, at most 200 bytes."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the synthetic data and the weights."""
    lab: Literal["intro"] = "intro"
    """Which lab this file runs."""
    framework: Framework = "tensorflow"
    """The lab's framework: 'tensorflow' (Keras 3) or 'torch' (PyTorch, as the course's PT_
    notebooks; needs pip install -e '.[torch]'). The same settings, metrics and outputs."""
    intro: IntroConfig = field(default_factory=IntroConfig)
    trial: TrialResources = field(default_factory=TrialResources)
    output: LabOutput = field(default_factory=LabOutput)


@dataclass(frozen=True)
class MusicExperiment:
    name: str = field(default="music", metadata={"min_len": 1, "folder_name": True})
    """Name of the experiment; the start of its run folder's name, so one folder's name: no
    slashes, no leading '.' or '~', printable, at most 200 bytes."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the weights, of the training windows and of the sampled tunes."""
    lab: Literal["music"] = "music"
    """Which lab this file runs."""
    framework: Framework = "tensorflow"
    """The lab's framework: 'tensorflow' (Keras 3) or 'torch' (PyTorch, as the course's PT_
    notebooks; needs pip install -e '.[torch]'). The same settings, metrics and outputs."""
    music: MusicConfig = field(default_factory=MusicConfig)
    trial: TrialResources = field(default_factory=TrialResources)
    output: LabOutput = field(default_factory=LabOutput)


@dataclass(frozen=True)
class DbvaeExperiment:
    name: str = field(default="dbvae", metadata={"min_len": 1, "folder_name": True})
    """Name of the experiment; the start of its run folder's name, so one folder's name: no
    slashes, no leading '.' or '~', printable, at most 200 bytes."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seed of the weights, of the batches and the VAE's noise, and of the bias benchmark's data."""
    lab: Literal["dbvae"] = "dbvae"
    """Which lab this file runs."""
    framework: Framework = "tensorflow"
    """The lab's framework: 'tensorflow' (Keras 3) or 'torch' (PyTorch, as the course's PT_
    notebooks; needs pip install -e '.[torch]'). The same settings, metrics and outputs."""
    dbvae: DbvaeConfig = field(default_factory=DbvaeConfig)
    trial: TrialResources = field(default_factory=TrialResources)
    output: LabOutput = field(default_factory=LabOutput)
