"""A prepared GPU check of the PyTorch labs: their own training code, on a GPU, for a few hundred steps.

    python3 -m benchmarks.gpu_check [--device cuda] [--steps 300] [--mnist PATH] [--out FILE]

Run from the repository root on a machine with PyTorch and CUDA. It needs neither Ray nor
TensorFlow nor labrun's other dependencies: only PyTorch and NumPy (``supervised/`` imports
nothing else on this path) and the MNIST file, ``mnist.npz`` (11 MB; ``--mnist``, else
``$LABRUN_DATA_DIR``, else ``../shared/data``). For each lab it trains the lab's model with the
lab's own step (``TorchMnistLab.fit``) on the device, in chunks of steps, and checks that

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

import torch

from supervised.config import MnistConfig
from supervised.mnist_torch import TorchMnistLab

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "gpu.json"
CPU_STEPS = 50   # the CPU's figure needs fewer steps to be steady


def find_mnist(given: str | None) -> Path:
    """mnist.npz from --mnist, $LABRUN_DATA_DIR or ../shared/data; SystemExit(2) if none."""
    candidates = [Path(given)] if given else [
        Path(os.environ[d]) / "mnist.npz" for d in ("LABRUN_DATA_DIR",) if d in os.environ
    ] + [REPO.parent / "shared" / "data" / "mnist.npz"]
    for path in candidates:
        path = path / "mnist.npz" if path.is_dir() else path
        if path.is_file():
            return path
    print(f"error: no mnist.npz (tried {', '.join(map(str, candidates))}); give --mnist PATH",
          file=sys.stderr)
    raise SystemExit(2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_mnist(mnist: Path, device: torch.device, steps: int, chunks: int = 4) -> dict:
    """The MNIST CNN of the course (batch 64, Adam 1e-3) for ``steps`` steps in ``chunks``
    chunks through ``TorchMnistLab.fit``: steps/s (after a warm-up chunk) and each chunk's mean loss."""
    cfg = MnistConfig(model="cnn", batch_size=64, data_path=str(mnist))
    lab = TorchMnistLab(cfg, seed=0, device=device)
    batches = itertools.chain.from_iterable(lab.train_batches() for _ in itertools.count())  # endless
    per_chunk = max(1, steps // chunks)
    lab.fit(itertools.islice(batches, 5))                           # warm-up: kernels, allocator
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, start = [], time.perf_counter()
    for _ in range(chunks):
        loss_sum, _ = lab.fit(itertools.islice(batches, per_chunk))   # fit reads the loss back: synced
        losses.append(loss_sum / (per_chunk * cfg.batch_size))
    seconds = time.perf_counter() - start
    on_device = {p.device.type for p in lab.model.parameters()} == {device.type}
    return {"steps": per_chunk * chunks, "steps_per_s": per_chunk * chunks / seconds,
            "chunk_losses": losses, "loss_fell": losses[-1] < losses[0], "on_device": on_device,
            "peak_memory_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                               if device.type == "cuda" else None)}


CHECKS = {"mnist_cnn": train_mnist}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.gpu_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="the device to check (default cuda; "
                        "cpu runs the same steps on the CPU only)")
    parser.add_argument("--steps", type=int, default=300, help="gradient steps per lab on the device")
    parser.add_argument("--mnist", help="mnist.npz or a folder holding it")
    parser.add_argument("--out", default=str(RESULTS), help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.steps < 4:
        parser.error("--steps: at least 4 (four chunks of at least one step)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: PyTorch {torch.__version__} sees no CUDA device",
              file=sys.stderr)
        return 2
    mnist = find_mnist(args.mnist)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
              "labs": {}}
    passed = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        run = check(mnist, device, args.steps)
        entry = {"device_steps_per_s": run["steps_per_s"], "steps": run["steps"],
                 "chunk_losses": run["chunk_losses"], "peak_memory_mb": run["peak_memory_mb"],
                 "loss_fell": run["loss_fell"], "on_device": run["on_device"]}
        if device.type != "cpu":
            entry["cpu_steps_per_s"] = check(mnist, torch.device("cpu"), min(args.steps, CPU_STEPS))["steps_per_s"]
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
