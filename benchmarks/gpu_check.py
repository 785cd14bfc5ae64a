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
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from supervised.config import DbvaeConfig, MnistConfig, MusicConfig
from supervised.dbvae_torch import DbVae, dbvae_step, to_tensor
from supervised.mnist_torch import TorchMnistLab
from supervised.music_torch import TorchMusicLab
from supervised.torch_state import seeded
from supervised.tunes import get_batch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "gpu.json"
CPU_STEPS = 20   # the CPU's figure needs fewer steps to be steady
DATA_FILES = ("mnist.npz", "irish.abc")


def find_data(given: str | None) -> Path:
    """The folder holding mnist.npz and irish.abc: --data, $LABRUN_DATA_DIR or ../shared/data;
    SystemExit(2) if none holds both."""
    candidates = [Path(given)] if given else [Path(os.environ[d]) for d in ("LABRUN_DATA_DIR",)
                                              if d in os.environ] + [REPO.parent / "shared" / "data"]
    for folder in candidates:
        if all((folder / name).is_file() for name in DATA_FILES):
            return folder
    print(f"error: no folder with {' and '.join(DATA_FILES)} (tried {', '.join(map(str, candidates))}); "
          f"give --data DIR", file=sys.stderr)
    raise SystemExit(2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: torch.nn.Module, fit: Callable[[Iterator], float], batches: Iterator, steps: int,
            device: torch.device, chunks: int = 4) -> dict:
    """``steps`` steps of ``fit`` (a lab's training loop over batches, giving the sum of its
    steps' losses) in ``chunks`` chunks, after a warm-up of 3 (kernels chosen, memory allocated):
    steps/s, each chunk's mean loss, whether ``model``'s weights are on ``device``, the peak
    GPU memory."""
    per_chunk = max(1, steps // chunks)
    fit(itertools.islice(batches, 3))
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, start = [], time.perf_counter()
    for _ in range(chunks):
        losses.append(fit(itertools.islice(batches, per_chunk)) / per_chunk)   # read back: synced
    seconds = time.perf_counter() - start
    return {"steps": per_chunk * chunks, "steps_per_s": per_chunk * chunks / seconds,
            "chunk_losses": losses, "loss_fell": losses[-1] < losses[0],
            "on_device": {p.device.type for p in model.parameters()} == {device.type},
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


def synthetic_faces(rng: np.random.Generator, batch: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A batch shaped as the DB-VAE's (images [B, S, S, 3] in [0, 1], labels [B], half faces):
    the "faces" are smooth bright blobs, the rest noise; learnable, and 7 MB of code instead of
    the course's 1.35 GB train_face.h5."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    faces = batch // 2
    centres = rng.uniform(0.3, 0.7, (faces, 2, 1, 1))
    blobs = np.exp(-((xx - centres[:, 0]) ** 2 + (yy - centres[:, 1]) ** 2) / 0.05)     # [F, S, S]
    x = rng.uniform(0, 1, (batch, size, size, 3))
    x[:faces] = 0.2 * x[:faces] + 0.8 * blobs[..., None]
    return x.astype(np.float32), (np.arange(batch) < faces).astype(np.float32)


def dbvae(data: Path, device: torch.device, steps: int) -> dict:
    """The course's DB-VAE (64 x 64 images, latent 100, 12 filters, batch 32, Adam 5e-4, KL
    weight 5e-4: ``DbvaeConfig``'s defaults) through the lab's own ``dbvae_step``, on
    ``synthetic_faces``; loss: mean per image."""
    cfg = DbvaeConfig()
    with seeded(0):
        model = DbVae(cfg.latent_dim, cfg.n_filters, 64).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(0)

    def batches() -> Iterator:
        while True:
            x, y = synthetic_faces(rng, cfg.batch_size)
            yield x, y, rng.standard_normal((len(x), cfg.latent_dim), dtype=np.float32)

    def fit(chunk: Iterator) -> float:
        total = torch.zeros((), device=device)
        for x, y, eps in chunk:
            stats = dbvae_step(model, optimizer, to_tensor(x, device), torch.from_numpy(y).to(device),
                               torch.from_numpy(eps).to(device), cfg.kl_weight)
            total += stats[0] / len(x)
        return total.item()

    return measure(model, fit, batches(), steps, device)


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
    data = find_data(args.data)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
              "labs": {}}
    passed = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        run = check(data, device, args.steps)
        entry = {"device_steps_per_s": run["steps_per_s"], "steps": run["steps"],
                 "chunk_losses": run["chunk_losses"], "peak_memory_mb": run["peak_memory_mb"],
                 "loss_fell": run["loss_fell"], "on_device": run["on_device"]}
        if device.type != "cpu":
            entry["cpu_steps_per_s"] = check(data, torch.device("cpu"), min(args.steps, CPU_STEPS))["steps_per_s"]
        entry["seconds"] = time.perf_counter() - started
        ok = run["loss_fell"] and run["on_device"]
        passed &= ok
        result["labs"][name] = entry
        cpu = f", CPU {entry['cpu_steps_per_s']:.1f} steps/s" if "cpu_steps_per_s" in entry else ""
        memory = f", peak {entry['peak_memory_mb']:.0f} MiB" if entry["peak_memory_mb"] else ""
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {entry['device_steps_per_s']:.1f} steps/s on "
              f"{result['device']}{cpu}{memory}; loss {entry['chunk_losses'][0]:.3f} -> "
              f"{entry['chunk_losses'][-1]:.3f}", flush=True)
    result["passed"] = passed
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
