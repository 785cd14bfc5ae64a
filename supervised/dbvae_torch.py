"""TorchDbvaeLab: the course's debiasing VAE (lab 2, part 2) in PyTorch, as one trial.

The models as ``nn.Module``s (the course's CNN classifier; the DB-VAE: that CNN as encoder with
2 * latent_dim + 1 outputs and a transposed-CNN decoder), the losses as pure functions of
tensors, and the two train steps a student writes (zero_grad, forward, loss, backward, step).
The data, resampling, batches, evaluation per group, metrics, pictures and report are
``DbvaeBase``'s (``supervised/dbvae_base.py``: read it first), shared with the TensorFlow lab
(``supervised/dbvae.py``). Images are [B, H, W, 3] in the shared code and [B, 3, H, W]
(PyTorch's layout) from ``to_tensor`` on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supervised.config import DbvaeConfig
from supervised.dbvae_base import Batch, DbvaeBase, check_image_shape, to_inputs
from supervised.torch_state import load_torch_state, resolve_device, save_torch_state, seeded

# ---------------------------------------------------------------------------------------- models


def classifier(n_outputs: int = 1, n_filters: int = 12, image_size: int = 64) -> nn.Sequential:
    """The course's standard CNN, images [B, 3, S, S] in [0, 1] -> [B, n_outputs]:
    Conv(n, 5, stride 2) -> BN -> Conv(2n, 5, s2) -> BN -> Conv(4n, 3, s2) -> BN -> Conv(6n, 3, s2)
    -> BN -> Flatten -> Linear 512 relu -> Linear n_outputs; convolutions relu, padded to halve
    S exactly (S a multiple of 16)."""
    n, side = n_filters, image_size // 16
    return nn.Sequential(
        nn.Conv2d(3, n, 5, stride=2, padding=2), nn.ReLU(), nn.BatchNorm2d(n),              # S/2
        nn.Conv2d(n, 2 * n, 5, stride=2, padding=2), nn.ReLU(), nn.BatchNorm2d(2 * n),      # S/4
        nn.Conv2d(2 * n, 4 * n, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(4 * n),  # S/8
        nn.Conv2d(4 * n, 6 * n, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(6 * n),  # S/16
        nn.Flatten(),
        nn.Linear(6 * n * side * side, 512), nn.ReLU(),
        nn.Linear(512, n_outputs),
    )


def decoder(latent_dim: int, n_filters: int = 12, image_size: int = 64) -> nn.Sequential:
    """The course's decoder, codes [B, latent_dim] -> images [B, 3, S, S]: Linear((S/16)^2 6n)
    -> reshape -> ConvT(4n, 3, s2) -> ConvT(2n, 3, s2) -> ConvT(n, 5, s2) -> ConvT(3, 5, s2); all
    relu (the last too, as the course's), each doubling the side exactly."""
    n, side = n_filters, image_size // 16
    up = dict(stride=2, output_padding=1)
    return nn.Sequential(
        nn.Linear(latent_dim, 6 * n * side * side), nn.ReLU(),
        nn.Unflatten(1, (6 * n, side, side)),
        nn.ConvTranspose2d(6 * n, 4 * n, 3, padding=1, **up), nn.ReLU(),                  # S/8
        nn.ConvTranspose2d(4 * n, 2 * n, 3, padding=1, **up), nn.ReLU(),                  # S/4
        nn.ConvTranspose2d(2 * n, n, 5, padding=2, **up), nn.ReLU(),                      # S/2
        nn.ConvTranspose2d(n, 3, 5, padding=2, **up), nn.ReLU(),                          # S
    )


class DbVae(nn.Module):
    """Encoder: the classifier with 2 * latent_dim + 1 outputs, read as (class logit, latent mean,
    latent log-variance); decoder: ``decoder``. The noise of the sampled code comes from the
    caller, so a step is a function of its inputs."""

    def __init__(self, latent_dim: int = 100, n_filters: int = 12, image_size: int = 64):
        super().__init__()
        check_image_shape((image_size, image_size, 3))
        self.latent_dim = latent_dim
        self.encoder = classifier(2 * latent_dim + 1, n_filters, image_size)
        self.decoder = decoder(latent_dim, n_filters, image_size)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(class logits [B], means [B, L], log-variances [B, L]) of images x [B, 3, S, S]."""
        out = self.encoder(x)                                                      # [B, 2L + 1]
        return out[:, 0], out[:, 1:self.latent_dim + 1], out[:, self.latent_dim + 1:]

    def forward(self, x: torch.Tensor, eps: torch.Tensor):
        """(x, eps) -> (class logits [B], means, log-variances, reconstructions [B, 3, S, S])."""
        y_logit, mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps                          # reparameterised sample
        return y_logit, mu, logvar, self.decoder(z)


def face_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The face logit [B] of either model: the classifier's one output, the DB-VAE's first."""
    return model.encode(x)[0] if isinstance(model, DbVae) else model(x)[:, 0]


def to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """Images [B, H, W, 3] (floats in [0, 1]) -> a tensor [B, 3, H, W] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------- losses


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per example [B]: 0.5 sum(exp(logvar) + mu^2 - 1 - logvar)."""
    return 0.5 * torch.sum(torch.exp(logvar) + mu ** 2 - 1.0 - logvar, dim=-1)


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """The course's L1 loss per example [B]: the mean of |x - x_hat| over pixels and channels."""
    return torch.mean(torch.abs(x - x_hat), dim=(1, 2, 3))


def dbvae_loss(x: torch.Tensor, x_hat: torch.Tensor, y: torch.Tensor, y_logit: torch.Tensor,
               mu: torch.Tensor, logvar: torch.Tensor, kl_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(total [B], classification [B]): cross-entropy of the face label y (1 face, 0 not) and its
    logit, plus the VAE loss (kl_weight * KL + reconstruction) of faces only."""
    classification = F.binary_cross_entropy_with_logits(y_logit, y, reduction="none")
    vae = kl_weight * kl_divergence(mu, logvar) + reconstruction_loss(x, x_hat)
    return classification + (y == 1.0).float() * vae, classification


# ----------------------------------------------------------------------------------- train steps


def classifier_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                    y: torch.Tensor) -> torch.Tensor:
    """One step of a standard classifier on images x [B, 3, S, S] and labels y [B]; sums over
    the batch of [loss, classification loss (the same), correct]."""
    model.train()
    optimizer.zero_grad()
    logits = model(x)[:, 0]                                                          # [B]
    losses = F.binary_cross_entropy_with_logits(logits, y, reduction="none")         # [B]
    losses.mean().backward()
    optimizer.step()
    losses, correct = losses.detach(), ((logits.detach() >= 0).float() == y).sum()
    return torch.stack([losses.sum(), losses.sum(), correct])


def dbvae_step(model: DbVae, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               eps: torch.Tensor, kl_weight: float) -> torch.Tensor:
    """One step of the DB-VAE; sums over the batch of [loss, classification loss, correct,
    faces' KL, faces' reconstruction loss, faces]."""
    model.train()
    optimizer.zero_grad()
    y_logit, mu, logvar, x_hat = model(x, eps)
    total, classification = dbvae_loss(x, x_hat, y, y_logit, mu, logvar, kl_weight)
    total.mean().backward()
    optimizer.step()
    with torch.no_grad():
        is_face = (y == 1.0).float()                                                # [B]
        return torch.stack([total.sum(), classification.sum(), ((y_logit >= 0).float() == y).sum(),
                            (is_face * kl_divergence(mu, logvar)).sum(),
                            (is_face * reconstruction_loss(x, x_hat)).sum(), is_face.sum()])


# ------------------------------------------------------------------------------------------- lab


class TorchDbvaeLab(DbvaeBase):
    """The debiasing VAE in PyTorch: built, it has loaded the data and built the classifier or
    the DB-VAE (and with ``baseline`` the standard classifier beside it) on ``device`` (default:
    CUDA when this process sees a GPU); a checkpoint holds the state dicts and the epoch."""

    def __init__(self, cfg: DbvaeConfig, seed: int = 0, device: str | torch.device | None = None):
        super().__init__(cfg, seed)
        self.device = resolve_device(device)
        size = self.image_shape[0]
        with seeded(seed):
            self.model = (DbVae(cfg.latent_dim, cfg.n_filters, size) if cfg.model == "dbvae"
                          else classifier(1, cfg.n_filters, size)).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.baseline = self.baseline_optimizer = None  # the co-trained standard classifier
        if cfg.baseline:
            with seeded(seed):   # the weights a 'standard' trial of this seed starts from
                self.baseline = classifier(1, cfg.n_filters, size).to(self.device)
            self.baseline_optimizer = torch.optim.Adam(self.baseline.parameters(), lr=cfg.lr)

    def fit(self, batches: Iterator[Batch]) -> tuple[list[float], float | None]:
        totals = baseline_totals = None          # summed on the device, read once at the end
        for x, y, eps, base in batches:
            x_t, y_t = to_tensor(x, self.device), torch.from_numpy(y).to(self.device)
            if eps is None:
                stats = classifier_step(self.model, self.optimizer, x_t, y_t)
            else:
                eps_t = torch.from_numpy(eps).to(self.device)
                stats = dbvae_step(self.model, self.optimizer, x_t, y_t, eps_t, self.cfg.kl_weight)
            totals = stats if totals is None else totals + stats
            if base is not None:
                stats = classifier_step(self.baseline, self.baseline_optimizer,
                                        to_tensor(base[0], self.device), torch.from_numpy(base[1]).to(self.device))
                baseline_totals = stats if baseline_totals is None else baseline_totals + stats
        return totals.tolist(), None if baseline_totals is None else baseline_totals[0].item()

    # ---------------------------------------------------------------------------- the models

    @torch.no_grad()
    def face_probabilities(self, images: np.ndarray, baseline: bool = False) -> np.ndarray:
        model = self.baseline if baseline else self.model
        model.eval()
        x = to_inputs(images) if images.dtype == np.uint8 else np.asarray(images, np.float32)
        size = self.cfg.eval_batch_size
        out = [torch.sigmoid(face_logits(model, to_tensor(x[lo:lo + size], self.device))).cpu().numpy()
               for lo in range(0, len(x), size)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    @torch.no_grad()
    def latent_means(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        return self.model.encode(to_tensor(x, self.device))[1].cpu().numpy()

    @torch.no_grad()
    def reconstructions(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        _, mu, _ = self.model.encode(to_tensor(x, self.device))
        return self.model.decoder(mu).permute(0, 2, 3, 1).cpu().numpy()            # [B, S, S, 3]

    # ---------------------------------------------------------------------------- checkpoints

    def save(self, folder: str | Path) -> None:
        save_torch_state(folder, self.model, self.optimizer,
                         {"epoch": self.epoch, "model": self.cfg.model, "dataset": self.cfg.dataset,
                          "seed": self.seed, "framework": "torch"})
        if self.baseline is not None:
            save_torch_state(Path(folder) / "baseline", self.baseline, self.baseline_optimizer,
                             {"epoch": self.epoch})

    def restore(self, folder: str | Path) -> None:
        counters = load_torch_state(folder, self.model, self.optimizer)
        if self.baseline is not None:
            load_torch_state(Path(folder) / "baseline", self.baseline, self.baseline_optimizer)
        self.epoch, self._eval, self._probs = int(counters["epoch"]), None, None
