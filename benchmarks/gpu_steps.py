"""What the two GPU checks share, framework-free: the data, synthetic face batches, timed chunks
of a lab's training steps, and the report (one line a lab, a JSON file).

``benchmarks/gpu_check.py`` (PyTorch; needs only PyTorch and NumPy) and
``benchmarks/gpu_check_tf.py`` (TensorFlow, on a machine with labrun installed) bring the
labs' training code and the device's own checks: each lab's check returns ``timed_chunks``'s
dict with ``on_device`` and ``peak_memory_mb`` added.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA_FILES = ("mnist.npz", "irish.abc")
CPU_STEPS = 20   # the CPU's figure needs fewer steps to be steady


def find_data(given: str | None) -> Path:
    """The folder holding mnist.npz and irish.abc: ``given``, $LABRUN_DATA_DIR or
    ../shared/data; SystemExit(2) if none holds both."""
    candidates = [Path(given)] if given else [Path(os.environ[d]) for d in ("LABRUN_DATA_DIR",)
                                              if d in os.environ] + [REPO.parent / "shared" / "data"]
    for folder in candidates:
        if all((folder / name).is_file() for name in DATA_FILES):
            return folder
    print(f"error: no folder with {' and '.join(DATA_FILES)} (tried {', '.join(map(str, candidates))}); "
          f"give --data DIR", file=sys.stderr)
    raise SystemExit(2)


def synthetic_faces(rng: np.random.Generator, batch: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A batch shaped as the DB-VAE's (images [B, S, S, 3] in [0, 1], labels [B], half faces):
    the "faces" are smooth bright blobs, the rest noise; learnable, and no 1.35 GB train_face.h5."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    faces = batch // 2
    centres = rng.uniform(0.3, 0.7, (faces, 2, 1, 1))
    blobs = np.exp(-((xx - centres[:, 0]) ** 2 + (yy - centres[:, 1]) ** 2) / 0.05)     # [F, S, S]
    x = rng.uniform(0, 1, (batch, size, size, 3))
    x[:faces] = 0.2 * x[:faces] + 0.8 * blobs[..., None]
    return x.astype(np.float32), (np.arange(batch) < faces).astype(np.float32)


def synthetic_dbvae_batches(batch_size: int, latent_dim: int, seed: int = 0) -> Iterator:
    """Endless DB-VAE steps' inputs: ``synthetic_faces`` and the VAE's noise [B, latent_dim]."""
    rng = np.random.default_rng(seed)
    while True:
        x, y = synthetic_faces(rng, batch_size)
        yield x, y, rng.standard_normal((len(x), latent_dim), dtype=np.float32)


def timed_chunks(fit: Callable[[Iterator], float], batches: Iterator, steps: int,
                 before_timing: Callable[[], None] = lambda: None, chunks: int = 4) -> dict:
    """``steps`` steps of ``fit`` (a lab's training loop over batches, giving the sum of its
    steps' losses, read back from the device: so it waits for them) in ``chunks`` chunks, after
    a warm-up of 3 (kernels chosen, memory allocated) and ``before_timing`` (the device synced,
    its memory peak reset): steps/s and each chunk's mean loss."""
    per_chunk = max(1, steps // chunks)
    fit(itertools.islice(batches, 3))
    before_timing()
    losses, start = [], time.perf_counter()
    for _ in range(chunks):
        losses.append(float(fit(itertools.islice(batches, per_chunk))) / per_chunk)
    seconds = time.perf_counter() - start
    return {"steps": per_chunk * chunks, "steps_per_s": per_chunk * chunks / seconds,
            "chunk_losses": losses, "loss_fell": losses[-1] < losses[0]}


def report(checks: dict[str, Callable], data: Path, steps: int, on_device: Callable,
           on_cpu: Callable | None, header: dict, out: str | Path) -> int:
    """Runs each check on the device (``on_device(check, data, steps)``) and, unless the device
    is the CPU, ``CPU_STEPS`` of it on the CPU (``on_cpu``); prints a line a lab and writes
    ``out`` (``header`` first). 0 when every lab's loss fell on the device, else 1."""
    result, passed = {**header, "labs": {}}, True
    for name, check in checks.items():
        started = time.perf_counter()
        run = on_device(check, data, steps)
        entry = {"device_steps_per_s": run["steps_per_s"], "steps": run["steps"],
                 "chunk_losses": run["chunk_losses"], "peak_memory_mb": run["peak_memory_mb"],
                 "loss_fell": run["loss_fell"], "on_device": run["on_device"],
                 **{k: v for k, v in run.items() if k.startswith("note")}}
        if on_cpu is not None:
            entry["cpu_steps_per_s"] = on_cpu(check, data, min(steps, CPU_STEPS))["steps_per_s"]
        entry["seconds"] = time.perf_counter() - started
        ok = run["loss_fell"] and run["on_device"]
        passed &= ok
        result["labs"][name] = entry
        cpu = f", CPU {entry['cpu_steps_per_s']:.1f} steps/s" if "cpu_steps_per_s" in entry else ""
        memory = f", peak {entry['peak_memory_mb']:.0f} MiB" if entry["peak_memory_mb"] else ""
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {entry['device_steps_per_s']:.1f} steps/s on "
              f"{header['device']}{cpu}{memory}; loss {entry['chunk_losses'][0]:.3f} -> "
              f"{entry['chunk_losses'][-1]:.3f}", flush=True)
    result["passed"] = passed
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if passed else 1
