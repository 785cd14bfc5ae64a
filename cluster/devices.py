"""Devices of a process, decided by its runner: which GPUs it sees, TensorFlow's memory growth,
PyTorch's threads.

Where a GPU is used or shared is a placement decision, so it is made here, by the runners (the
REINFORCE trainer, the learner's actor, the Tune trainables), before a component first touches
the GPU; the components in rl/ and supervised/ use whatever device their process sees and do not
know whether they share one.
"""

from __future__ import annotations

import os
import subprocess

LEARNER_CPUS = 1.0   # what a GPU learner's actor reserves beside its GPU (its host-side work)


def gpus_for(requested: float | str, cluster_gpus: float) -> float:
    """A request of GPUs (``trial.gpus``, ``resources.learner_gpus``) as a number: ``auto`` is one
    GPU when the cluster has one alive now, else none (it never waits for an autoscaler)."""
    if requested == "auto":
        return 1.0 if cluster_gpus >= 1 else 0.0
    return float(requested)


class GpuUnusable(RuntimeError):
    """A process was given a GPU that its framework cannot use (no CUDA build, no driver)."""


def hide_gpus() -> None:
    """Makes this process see no GPU, before its framework first looks: Ray does not empty
    CUDA_VISIBLE_DEVICES for a process given no GPU, which would otherwise open CUDA on every GPU
    of the machine and train on the first one, unreserved."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


def hide_gpus_from_tensorflow() -> None:
    """Makes this process's TensorFlow use no GPU, leaving the environment (and so anything
    else in the process: a later Ray, PyTorch) alone: for a driver whose learner was given no
    GPU. Must run before TensorFlow first touches the GPU; GpuUnusable if it already has."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        if tf.config.get_visible_devices("GPU"):
            raise GpuUnusable("TensorFlow was initialised in this process before its GPUs could "
                              "be hidden from a learner given none") from None


def place_trial(framework: str, gpus: int, cpus: float, gpu_share: float = 1.0) -> str:
    """Readies this trial process for ``framework`` with the ``gpus`` Ray gave it (whose
    CUDA_VISIBLE_DEVICES Ray has set), ``cpus``, and ``gpu_share``, the fraction of its GPU the
    trial asked for (``trial.gpus: 0.5``); returns the device it trains on, in words. None
    given: GPUs hidden. Some given but unusable: GpuUnusable, with what to install. A share
    below 1 caps the trial's memory at that fraction of the GPU's (PyTorch's allocator; a
    TensorFlow logical device of that size, where nvidia-smi tells the GPU's memory); a whole GPU
    is TensorFlow's with memory growth, PyTorch's uncapped."""
    if gpus == 0:
        hide_gpus()
    share = f", {gpu_share:g} of it" if 0 < gpu_share < 1 else ""
    if framework == "torch":
        import torch

        torch.set_num_threads(max(1, round(cpus)))   # intra-op threads: the trial's CPUs
        if gpus == 0:
            threads = torch.get_num_threads()
            return f"cpu ({threads} thread{'s' if threads != 1 else ''})"
        if not torch.cuda.is_available():
            raise GpuUnusable(f"this trial was given {gpus} GPU(s) but PyTorch {torch.__version__} "
                              f"cannot use CUDA here; install a CUDA build of PyTorch")
        if share:   # trials sharing a GPU: each within its fraction of the memory
            torch.cuda.set_per_process_memory_fraction(gpu_share, 0)
        return f"cuda:0 ({torch.cuda.get_device_name(0)}{share})"
    import tensorflow as tf

    seen = tf.config.list_physical_devices("GPU")
    if gpus == 0:
        return "cpu"
    if not seen:
        raise GpuUnusable(f"this trial was given {gpus} GPU(s) but TensorFlow sees none (no CUDA "
                          f"libraries?); install them with: pip install -e '.[cuda]'")
    total = gpu_memory_mib() if share else None
    if total:   # a share of a GPU: a logical device of that much memory (growth cannot go with it)
        limit = int(total * gpu_share)
        tf.config.set_logical_device_configuration(
            seen[0], [tf.config.LogicalDeviceConfiguration(memory_limit=limit)])
        return f"{seen[0].name}{share}, {limit} of {total} MiB"
    enable_memory_growth()
    return f"{seen[0].name}{share}{', memory uncapped (its size unknown)' if share else ''}"


def gpu_memory_mib() -> int | None:
    """The memory of the first GPU this process sees, in MiB, from nvidia-smi (CUDA_VISIBLE_DEVICES
    names it as Ray set it); None where nvidia-smi cannot tell."""
    first = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip()
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits",
                              "-i", first], capture_output=True, text=True, timeout=20)
        return int(out.stdout.split()[0]) if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def enable_memory_growth() -> list[str]:
    """Lets TensorFlow take GPU memory as it needs it rather than all at once, so that processes
    sharing a GPU fit side by side. Must run before TensorFlow first touches the GPU; returns the
    names of the GPUs this process sees (none on a CPU machine). GpuUnusable if TensorFlow was
    initialised before with growth off: it would take the whole GPU, silently."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: its setting stands
            if not tf.config.experimental.get_memory_growth(gpu):
                raise GpuUnusable(f"{gpu.name}: TensorFlow was initialised in this process before "
                                  f"its memory growth could be turned on; it would hold the whole "
                                  f"GPU (something touched the GPU before the runner set it up)") from None
    return [gpu.name for gpu in gpus]
