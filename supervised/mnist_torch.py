"""TorchMnistLab: the course's handwritten-digit classifiers (lab 2, part 1) in PyTorch, as one trial.

The models of the course's PyTorch notebook (``PT_Part1_MNIST``), subclassed ``nn.Module``s, and
its training loop: zero the gradients, forward, cross-entropy, backward, step. The data, the
epoch's batches, the metrics and the pictures are ``MnistBase``'s (``supervised/mnist_base.py``),
shared with the TensorFlow lab (``supervised/mnist.py``): the same experiment file trains either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supervised.config import MnistConfig
from supervised.mnist_base import NUM_CLASSES, Batches, MnistBase, cosine_lr
from supervised.torch_state import load_torch_state, resolve_device, save_torch_state, seeded


class FullyConnectedModel(nn.Module):
    """Flatten -> Linear 784x128 -> ReLU -> Linear 128x10 (101,770 parameters)."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, 128)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(128, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # [B, 1, 28, 28] -> logits [B, 10]
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


class CNN(nn.Module):
    """Conv 24 3x3 -> ReLU -> MaxPool 2 -> Conv 36 3x3 -> ReLU -> MaxPool 2 -> Flatten
    -> Linear 900x128 -> ReLU -> Linear 128x10 (124,670 parameters, as the Keras CNN)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 24, kernel_size=3)                  # 26x26x24
        self.pool1 = nn.MaxPool2d(kernel_size=2)                      # 13x13x24
        self.conv2 = nn.Conv2d(24, 36, kernel_size=3)                 # 11x11x36
        self.pool2 = nn.MaxPool2d(kernel_size=2)                      # 5x5x36
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(36 * 5 * 5, 128)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(128, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # [B, 1, 28, 28] -> logits [B, 10]
        x = self.pool1(self.relu(self.conv1(x)))
        x = self.pool2(self.relu(self.conv2(x)))
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


def build_mnist_net(kind: Literal["dense", "cnn"], seed: int) -> nn.Module:
    """The course's classifiers, [B, 1, 28, 28] floats -> [B, 10] logits, with PyTorch's own
    initialisation drawn from ``seed`` alone. 'dense' is the notebook's FullyConnectedModel."""
    models = {"dense": FullyConnectedModel, "cnn": CNN}
    if kind not in models:
        raise ValueError(f"model: expected 'dense' or 'cnn', got {kind!r}")
    with seeded(seed):
        return models[kind]()


def to_inputs(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 digits [B, 28, 28] -> the models' inputs on ``device``, grey values in [0, 1]
    [B, 1, 28, 28] (channels first, PyTorch's layout)."""
    return torch.from_numpy(images).to(device).float().unsqueeze(1) / 255.0


class TorchMnistLab(MnistBase):
    """MNIST in PyTorch: built, it has loaded MNIST and built the model on ``device`` (default:
    CUDA when this process sees a GPU); a checkpoint holds the model's and the optimizer's state
    dicts and the counters (epoch and step: the cosine schedule continues where it was)."""

    def __init__(self, cfg: MnistConfig, seed: int = 0, device: str | torch.device | None = None):
        super().__init__(cfg, seed)
        self.device = resolve_device(device)
        self.model = build_mnist_net(cfg.model, seed).to(self.device)
        optimizer = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
        self.optimizer = optimizer(self.model.parameters(), lr=cfg.lr)
        self.step = 0  # gradient steps taken

    def learning_rate(self) -> float:
        """The rate of the next step: the config's, decayed by the cosine schedule if it has one."""
        if self.cfg.lr_schedule == "cosine":
            return cosine_lr(self.cfg.lr, self.step, self.total_steps)
        return self.cfg.lr

    def fit(self, batches: Batches) -> tuple[float, float]:
        self.model.train()
        total_loss = torch.zeros((), device=self.device)     # summed on the device, read once
        correct = torch.zeros((), device=self.device)
        for images, labels in batches:
            x, y = to_inputs(images, self.device), torch.from_numpy(labels).to(self.device).long()
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate()
            self.optimizer.zero_grad()
            logits = self.model(x)                                         # [B, 10]
            loss = F.cross_entropy(logits, y)                              # mean over the batch
            loss.backward()
            self.optimizer.step()
            self.step += 1
            total_loss += loss.detach() * len(y)
            correct += (logits.argmax(dim=1) == y).sum()
        return total_loss.item(), correct.item()

    @torch.no_grad()
    def predict(self, batches: Batches) -> tuple[float, np.ndarray]:
        self.model.eval()
        total_loss, predictions = torch.zeros((), device=self.device), []
        for images, labels in batches:
            logits = self.model(to_inputs(images, self.device))
            total_loss += F.cross_entropy(logits, torch.from_numpy(labels).to(self.device).long(),
                                          reduction="sum")
            predictions.append(logits.argmax(dim=1))
        return total_loss.item(), torch.cat(predictions).cpu().numpy()

    def save(self, folder: str | Path) -> None:
        save_torch_state(folder, self.model, self.optimizer,
                         {"epoch": self.epoch, "step": self.step, "model": self.cfg.model,
                          "seed": self.seed, "framework": "torch"})

    def restore(self, folder: str | Path) -> None:
        counters = load_torch_state(folder, self.model, self.optimizer)
        self.epoch, self.step, self._predictions = int(counters["epoch"]), int(counters["step"]), None
