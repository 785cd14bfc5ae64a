"""A prepared GPU check of the PyTorch labs: their own training code, on a GPU, for a few hundred steps.

    python3 -m benchmarks.gpu_check [--device cuda] [--steps 300] [--data DIR] [--out FILE]

Run from the repository root on a machine with PyTorch and CUDA. It needs neither Ray nor
TensorFlow nor labrun's other dependencies: only PyTorch and NumPy (``supervised/`` imports
nothing else on this path) and two data files, ``mnist.npz`` (11 MB) and ``irish.abc`` (0.6 MB),
in ``--data`` (else ``$LABRUN_DATA_DIR``, else ``../shared/data``). For each lab (the MNIST CNN,
the music LSTM and the DB-VAE at the course's sizes; the DB-VAE on synthetic images, as the
course's faces are 1.35 GB) it trains the lab's model with the lab's own training code
(``TorchMnistLab.fit``, ``TorchMusicLab.fit``, ``dbvae_step``) on the device, in chunks of
steps, and checks that

- the device is the one asked for (``cuda``: CUDA available, the model's weights on it),
- the loss falls (the mean of the last chunk below the first's),

then times the same steps on the CPU, and writes ``benchmarks/results/gpu.json``: the device's
name, PyTorch's and CUDA's versions, and per lab steps/s on the device and the CPU, the losses
and the peak GPU memory. Exit 0 when every check passes, 1 when one fails, 2 on bad input.
``--device cpu --steps 4`` runs it anywhere in seconds (the tests do). docs/benchmarks.md#gpu
says how to bring it to a GPU machine and what it printed there.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from benchmarks.gpu_steps import REPO, find_data, report, synthetic_dbvae_batches, timed_chunks
from supervised.config import DbvaeConfig, MnistConfig, MusicConfig
from supervised.dbvae_torch import DbVae, dbvae_step, to_tensor
from supervised.mnist_torch import TorchMnistLab
from supervised.music_torch import TorchMusicLab
from supervised.torch_state import seeded
from supervised.tunes import get_batch

RESULTS = REPO / "benchmarks" / "results" / "gpu.json"


def measure(model: torch.nn.Module, fit: Callable[[Iterator], float], batches: Iterator, steps: int,
            device: torch.device) -> dict:
    """``timed_chunks`` of ``fit`` on ``device``, with whether ``model``'s weights are on it
    and the peak GPU memory."""
    def before_timing() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)

    run = timed_chunks(fit, batches, steps, before_timing)
    return {**run, "on_device": {p.device.type for p in model.parameters()} == {device.type},
            "peak_memory_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                               if device.type == "cuda" else None)}


def mnist_cnn(data: Path, device: torch.device, steps: int) -> dict:
    """The course's MNIST CNN, batch 64, Adam 1e-3 (``TorchMnistLab``); loss: mean per image."""
    lab = TorchMnistLab(MnistConfig(model="cnn", batch_size=64, data_path=str(data / "mnist.npz")),
                        seed=0, device=device)
    batches = itertools.chain.from_iterable(lab.train_batches() for _ in itertools.count())  # endless
    return measure(lab.model, lambda b: lab.fit(b)[0] / 64, batches, steps, device)  # fit sums over images


def music_lstm(data: Path, device: torch.device, steps: int) -> dict:
    """The course's music LSTM (Embedding 256 -> LSTM 1024 -> Linear, batch 8 x 100
    characters, Adam 5e-3) on irish.abc (``TorchMusicLab``); loss: mean per character."""
    lab = TorchMusicLab(MusicConfig(corpus="irish", data_path=str(data / "irish.abc")), seed=0,
                        device=device)
    rng = np.random.default_rng(0)
    batches = (get_batch(lab.text_ids, 100, 8, rng) for _ in itertools.count())
    return measure(lab.model, lab.fit, batches, steps, device)


def dbvae(data: Path, device: torch.device, steps: int) -> dict:
    """The course's DB-VAE (64 x 64 images, latent 100, 12 filters, batch 32, Adam 5e-4, KL
    weight 5e-4: ``DbvaeConfig``'s defaults) through the lab's own ``dbvae_step``, on
    ``synthetic_faces``; loss: mean per image."""
    cfg = DbvaeConfig()
    with seeded(0):
        model = DbVae(cfg.latent_dim, cfg.n_filters, 64).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def fit(chunk: Iterator) -> float:
        total = torch.zeros((), device=device)
        for x, y, eps in chunk:
            stats = dbvae_step(model, optimizer, to_tensor(x, device), torch.from_numpy(y).to(device),
                               torch.from_numpy(eps).to(device), cfg.kl_weight)
            total += stats[0] / len(x)
        return total.item()

    return measure(model, fit, synthetic_dbvae_batches(cfg.batch_size, cfg.latent_dim), steps, device)


CHECKS = {"mnist_cnn": mnist_cnn, "music_lstm": music_lstm, "dbvae": dbvae}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.gpu_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="the device to check (default cuda; "
                        "cpu runs the same steps on the CPU only)")
    parser.add_argument("--steps", type=int, default=300, help="gradient steps per lab on the device")
    parser.add_argument("--data", help="folder holding mnist.npz and irish.abc (default "
                        "$LABRUN_DATA_DIR, else ../shared/data)")
    parser.add_argument("--out", default=str(RESULTS), help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.steps < 4:
        parser.error("--steps: at least 4 (four chunks of at least one step)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: PyTorch {torch.__version__} sees no CUDA device",
              file=sys.stderr)
        return 2
    header = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}
    cpu = torch.device("cpu")
    return report(CHECKS, find_data(args.data), args.steps, lambda check, d, n: check(d, device, n),
                  None if device.type == "cpu" else (lambda check, d, n: check(d, cpu, n)),
                  header, args.out)


if __name__ == "__main__":
    sys.exit(main())
