"""The PyTorch labs' device and checkpoints: where a lab trains, and saving a model with its
optimizer's state.

A checkpoint is the model's and the optimizer's state dicts in ``weights.pt`` (tensors and plain
numbers only, read back with ``torch.load(weights_only=True)``, which refuses any other pickled
object) and the counters in ``state.json``, each written whole or not at all; ``state.json`` is
the file the TensorFlow labs write their counters to (``supervised/models.py``).
"""

from __future__ import annotations

import io
import json
import pickle
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from supervised.files import atomic_write
from supervised.models import STATE_FILE, TORCH_WEIGHTS_FILE


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or where none is given CUDA when this process sees a GPU, else the CPU. Which
    GPUs a process sees is its runner's decision (``cluster/devices.py`` hides them from a trial
    that was given none)."""
    if device is not None:
        return torch.device(device)
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


def read_torch_state(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The state dicts ``save_torch_state`` wrote to ``path`` (a ``weights.pt``), their tensors on
    ``device``. ValueError in one line if it holds anything but tensors and plain data (``torch.load``
    with ``weights_only``, which refuses to unpickle anything else) or not those state dicts."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:   # torch's text: advice, then the reason on a line of its own
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
        why = next((line.split("error:", 1)[-1].strip() for line in lines if "Unsupported" in line), "")
        if "Unsupported global" in why:
            raise ValueError(f"{path}: refused, it holds more than tensors and plain data ({why})") from None
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({why or 'unreadable'})") from None
    except (RuntimeError, EOFError, OSError) as err:   # not a torch file, cut short
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or set(state) != {"model", "optimizer"}:
        raise ValueError(f"{path}: expected the state dicts of a model and an optimizer")
    return state


def load_torch_state(folder: str | Path, model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restores what ``save_torch_state`` wrote into ``model`` and ``optimizer`` (their tensors
    moved to the model's device), all but the learning rate: the config's stays, as a resumed
    or mutated trial (Tune's PBT) may change it. Returns the counters. FileNotFoundError if
    ``folder`` holds no such checkpoint (a TensorFlow one, say), ValueError if it does not fit
    the model or holds anything but tensors and plain data."""
    folder = Path(folder)
    for name in (TORCH_WEIGHTS_FILE, STATE_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: not a PyTorch checkpoint (no {name})")
    state = read_torch_state(folder / TORCH_WEIGHTS_FILE, next(model.parameters()).device)
    rates = [group["lr"] for group in optimizer.param_groups]
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(f"{folder}: the checkpoint does not fit this model (a different model "
                         f"or optimizer?): {str(err).splitlines()[0]}") from None
    for group, lr in zip(optimizer.param_groups, rates):
        group["lr"] = lr
    return json.loads((folder / STATE_FILE).read_text())
