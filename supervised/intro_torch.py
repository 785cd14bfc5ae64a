"""TorchIntroLab: the basics of PyTorch from the course's first lab (lab 1, part 1), as one trial.

The PyTorch twin of ``supervised/intro.py``, after the course's ``PT_Part1_Intro`` notebook: a
linear layer written by hand as an ``nn.Module`` with ``nn.Parameter``s; a model made of it in
two ways (``nn.Sequential``, a subclassed ``nn.Module``); gradient descent with autograd
(``loss.backward()``, ``optimizer.step()``) fitting it to the noisy line y = 3x - 1. The data and
the epoch are ``IntroBase``'s (``supervised/intro_base.py``), shared with the TensorFlow lab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from supervised.config import IntroConfig
from supervised.intro_base import IntroBase
from supervised.torch_state import load_torch_state, resolve_device, save_torch_state, seeded

# 1. A layer written by hand. An nn.Module registers the nn.Parameters it is given in __init__
# (autograd tracks them) and computes its output in forward().

class OurLinear(nn.Module):
    """y = x W + b, for x [B, d]: W [d, units] (Glorot-uniform, as the Keras layer), b [units]."""

    def __init__(self, num_inputs: int, units: int):
        super().__init__()
        self.W = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_inputs, units)))
        self.b = nn.Parameter(torch.zeros(units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W + self.b                                            # [B, units]


# 2. Two ways to make a model of it: nn.Sequential chains modules; a subclassed nn.Module makes
# them in __init__ and writes the forward pass in forward, where any Python may go.

class LineModel(nn.Module):
    """The subclassed model: one OurLinear unit, y = w x + b."""

    def __init__(self):
        super().__init__()
        self.dense = OurLinear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)                                                  # [B, 1]


def build_line_model(kind: Literal["sequential", "subclassed"], seed: int) -> nn.Module:
    """y = w x + b as an nn.Sequential or a subclassed module: the same weights for the same seed."""
    if kind not in ("sequential", "subclassed"):
        raise ValueError(f"model: expected 'sequential' or 'subclassed', got {kind!r}")
    with seeded(seed):
        return nn.Sequential(OurLinear(1, 1)) if kind == "sequential" else LineModel()


def line_of(model: nn.Module) -> tuple[float, float]:
    """(slope, intercept) of a line model: its parameters W [1, 1] and b [1]."""
    w, b = model.parameters()
    return w[0, 0].item(), b[0].item()


# 3. Optimisation. The forward pass records how the loss was computed; loss.backward() fills
# each parameter's .grad with d loss / d parameter; the optimizer moves them against it.

class TorchIntroLab(IntroBase):
    """The line fit in PyTorch: built, it has made the data and the model; a checkpoint holds the
    model's and the optimizer's state dicts and the epoch counter."""

    def __init__(self, cfg: IntroConfig, seed: int = 0, device: str | torch.device | None = None):
        super().__init__(cfg, seed)
        self.device = resolve_device(device)
        self.x_t = torch.from_numpy(self.x).to(self.device)                   # [N, 1]
        self.y_t = torch.from_numpy(self.y).to(self.device)                   # [N, 1]
        self.model = build_line_model(cfg.model, seed).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)

    def gradient_step(self) -> float:
        self.optimizer.zero_grad()
        loss = torch.mean((self.model(self.x_t) - self.y_t) ** 2)            # mean squared error
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def line(self) -> tuple[float, float]:
        return line_of(self.model)

    def save(self, folder: str | Path) -> None:
        save_torch_state(folder, self.model, self.optimizer,
                         {"epoch": self.epoch, "model": self.cfg.model, "seed": self.seed,
                          "framework": "torch"})

    def restore(self, folder: str | Path) -> None:
        self.epoch = int(load_torch_state(folder, self.model, self.optimizer)["epoch"])
