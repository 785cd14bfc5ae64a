"""TorchMusicLab: the course's music generation (lab 1, part 2) in PyTorch, as one trial.

The model of the course's PyTorch notebook (``PT_Part2_Music_Generation``): ``nn.Embedding`` ->
``nn.LSTM`` (PyTorch's own, cuDNN's on a GPU) -> ``nn.Linear``, trained with Adam on the
cross-entropy of each next character. The tunes, batches, sampling, judging, metrics, texts and
audio are ``MusicBase``'s (``supervised/music_base.py``), shared with the TensorFlow lab
(``supervised/music.py``); sampling runs the trained weights in NumPy, so ``labrun generate``
reads a checkpoint of either framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from supervised.config import MusicConfig
from supervised.music_base import Batches, MusicBase
from supervised.music_generation import CharRNN
from supervised.torch_state import load_torch_state, resolve_device, save_torch_state, seeded


class MusicLSTM(nn.Module):
    """Character ids [B, T] -> next-character logits [B, T, V] (and the LSTM's last state):
    Embedding(V, embedding_dim) -> LSTM(hidden_size) -> Linear(V). Its attribute names are the
    state dict's keys that ``CharRNN.from_torch_state`` reads."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, state = self.lstm(self.embedding(x), state)                 # [B, T, H]
        return self.fc(out), state                                       # [B, T, V]


class TorchMusicLab(MusicBase):
    """The character LSTM in PyTorch: built, it has loaded the tunes and built the model on
    ``device`` (default: CUDA when this process sees a GPU); a checkpoint holds the model's and
    the optimizer's state dicts, the counters and (MusicBase) the vocabulary."""

    def __init__(self, cfg: MusicConfig, seed: int = 0, device: str | torch.device | None = None):
        super().__init__(cfg, seed)
        self.device = resolve_device(device)
        with seeded(seed):
            self.model = MusicLSTM(len(self.vocab), cfg.embedding_dim, cfg.rnn_units).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

    def fit(self, batches: Batches) -> float:
        self.model.train()
        total = torch.zeros((), device=self.device)                      # read once, at the end
        for x, y in batches:
            x = torch.from_numpy(x).to(self.device).long()               # [B, T]
            y = torch.from_numpy(y).to(self.device).long()               # [B, T]
            self.optimizer.zero_grad()
            logits, _ = self.model(x)                                    # [B, T, V]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
        return total.item()

    def describe(self) -> str:
        return "LSTM: PyTorch's nn.LSTM (cuDNN's kernel on a GPU)"

    def char_rnn(self) -> CharRNN:
        return CharRNN.from_torch_state({k: v.detach().cpu().numpy()
                                         for k, v in self.model.state_dict().items()})

    def save_model(self, folder: str | Path, counters: dict[str, Any]) -> None:
        save_torch_state(folder, self.model, self.optimizer, {**counters, "framework": "torch"})

    def restore_model(self, folder: str | Path) -> dict[str, Any]:
        return load_torch_state(folder, self.model, self.optimizer)
