"""A stand-in for a GPU learner, for the scaling model's GPU speed-up (docs/benchmarks.md, "How
cost grows with the work"): not part of ``make bench``, and not labrun's learner.

labrun's learner is TensorFlow; the GPU machine this was run on had PyTorch and no TensorFlow.
This times the same update in PyTorch: the course's CNN (configs/pong.yaml: 32/5/2, 48/5/2,
64/3/2, 64/3/2, Dense 128, 3 logits) and Karpathy's MLP (configs/pong_mlp.yaml: 1600-200-2), the
REINFORCE loss (mean of -log pi(a|s) x weight), one Adam step; int8 frame differences copied from
host memory and made float32 on the device, in chunks of 8,192 steps whose gradients are summed.
Median of 10 after 3 warm-ups, fp32 (TF32 off). ``python benchmarks/gpu_proxy.py`` prints JSON.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import torch
from torch import nn

CHUNK = 8192


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 5, 2, 2), nn.ReLU(), nn.Conv2d(32, 48, 5, 2, 2), nn.ReLU(),
                         nn.Conv2d(48, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(576, 128), nn.ReLU(), nn.Linear(128, 3))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(1600, 200), nn.ReLU(), nn.Linear(200, 2))


def update_s(model: nn.Module, steps: int, device: str) -> float:
    rng = np.random.default_rng(0)
    obs = torch.from_numpy(rng.integers(-1, 2, (steps, 1, 40, 40), dtype=np.int8)).pin_memory()
    actions = torch.from_numpy(rng.integers(0, 2, steps)).to(device)
    weights = torch.from_numpy(rng.normal(size=steps).astype(np.float32)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        for lo in range(0, steps, CHUNK):
            hi = min(lo + CHUNK, steps)
            x = obs[lo:hi].to(device, non_blocking=True).float()
            logp = torch.log_softmax(model(x), -1).gather(1, actions[lo:hi, None])[:, 0]
            (-(logp * weights[lo:hi]).sum() / steps).backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    device = "cuda"
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for name, build in (("pong_cnn", cnn), ("pong_mlp", mlp)):
        for steps in (1024, 8192, 32768, 131072):
            out[f"{name}_{steps}_s"] = round(update_s(build().to(device), steps, device), 5)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
