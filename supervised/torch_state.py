"""The PyTorch labs' device and checkpoints: where a lab trains, and saving a model with its
optimizer's state.

A checkpoint is the model's and the optimizer's state dicts in ``weights.pt`` (tensors and plain
numbers only, read back with ``torch.load(weights_only=True)``, which refuses any other pickled
object) and the counters in ``state.json``, each written whole or not at all; the same
``state.json`` as the TensorFlow labs' (``supervised/models.py``).
"""

from __future__ import annotations

import io
import json
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from supervised.files import atomic_write
from supervised.models import STATE_FILE, TORCH_WEIGHTS_FILE


def default_device() -> torch.device:
    """CUDA when this process sees a GPU, else the CPU. Which GPUs a process sees is its
    runner's decision (``cluster/devices.py`` hides them from a trial that was given none)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Runs the block (building a model: ``nn.Linear`` and friends draw their initial weights
    from torch's global generator) with that generator seeded, and puts its state back after:
    the weights are a function of ``seed`` alone, and nobody else's random numbers change."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def save_torch_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     counters: dict[str, Any]) -> None:
    """Writes the state dicts of ``model`` and ``optimizer`` and ``counters`` (JSON) into
    ``folder``; each file is written whole or not at all."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    atomic_write(Path(folder) / TORCH_WEIGHTS_FILE, buffer.getvalue())
    atomic_write(Path(folder) / STATE_FILE, json.dumps(counters))


def load_torch_state(folder: str | Path, model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restores what ``save_torch_state`` wrote into ``model`` and ``optimizer`` (their tensors
    moved to the model's device); returns the counters. FileNotFoundError if ``folder`` holds no
    such checkpoint (a TensorFlow one, say), ValueError if it does not fit the model or holds
    anything but tensors and plain data."""
    folder = Path(folder)
    for name in (TORCH_WEIGHTS_FILE, STATE_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: not a PyTorch checkpoint (no {name})")
    device = next(model.parameters()).device
    try:
        state = torch.load(folder / TORCH_WEIGHTS_FILE, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{folder / TORCH_WEIGHTS_FILE}: refused, it holds more than tensors "
                         f"and plain data ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or set(state) != {"model", "optimizer"}:
        raise ValueError(f"{folder / TORCH_WEIGHTS_FILE}: expected the state dicts of a model "
                         f"and an optimizer")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(f"{folder}: the checkpoint does not fit this model (a different model "
                         f"or optimizer?): {str(err).splitlines()[0]}") from None
    return json.loads((folder / STATE_FILE).read_text())
