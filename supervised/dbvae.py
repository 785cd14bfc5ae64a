"""DbvaeLab: the course's debiasing VAE (lab 2, part 2) in TensorFlow, as one trial.

The models, their train steps and checkpoints; the data, resampling, batches, evaluation per
group, metrics, pictures and report are ``DbvaeBase``'s (``supervised/dbvae_base.py``: read it
first, it explains the method), shared with the PyTorch lab (``supervised/dbvae_torch.py``). The
models, losses and resampling maths are in ``supervised/dbvae_model.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from supervised.config import DbvaeConfig
from supervised.dbvae_base import Batch, DbvaeBase, to_inputs
from supervised.dbvae_model import (
    DbVae,
    build_classifier,
    dbvae_loss,
    face_logits,
    kl_divergence,
    reconstruction_loss,
)
from supervised.models import load_training_state, save_training_state, visible_gpus


def face_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's probability that each image is a face, float [n], for images [n, H, W, 3]:
    uint8, or floats already in [0, 1]."""
    x = to_inputs(images) if images.dtype == np.uint8 else np.asarray(images, np.float32)
    out = [tf.sigmoid(face_logits(model, x[lo:lo + batch_size])).numpy()
           for lo in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def classifier_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, x: tf.Tensor,
                    y: tf.Tensor) -> tf.Tensor:
    """One step of a standard classifier on images x [B, H, W, 3] and labels y [B]; sums over
    the batch of [loss, classification loss (the same), correct]."""
    with tf.GradientTape() as tape:
        logits = model(x, training=True)[:, 0]                                        # [B]
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)      # [B]
        loss = tf.reduce_mean(losses)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return tf.stack([tf.reduce_sum(losses), tf.reduce_sum(losses), _correct(y, logits)])


def dbvae_step(model: DbVae, optimizer: keras.optimizers.Optimizer, x: tf.Tensor, y: tf.Tensor,
               eps: tf.Tensor, kl_weight: float) -> tf.Tensor:
    """One step of the DB-VAE; sums over the batch of [loss, classification loss, correct,
    faces' KL, faces' reconstruction loss, faces]."""
    with tf.GradientTape() as tape:
        y_logit, mu, logvar, x_hat = model((x, eps), training=True)
        total, classification = dbvae_loss(x, x_hat, y, y_logit, mu, logvar, kl_weight)
        loss = tf.reduce_mean(total)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    is_face = tf.cast(tf.equal(y, 1.0), tf.float32)                                    # [B]
    return tf.stack([tf.reduce_sum(total), tf.reduce_sum(classification), _correct(y, y_logit),
                     tf.reduce_sum(is_face * kl_divergence(mu, logvar)),
                     tf.reduce_sum(is_face * reconstruction_loss(x, x_hat)), tf.reduce_sum(is_face)])


class DbvaeLab(DbvaeBase):
    """The debiasing VAE in TensorFlow: built, it has loaded the data and built the classifier or
    the DB-VAE (and with ``baseline`` the standard classifier beside it); a checkpoint holds the
    weights, the optimizer's state and the epoch counter."""

    def __init__(self, cfg: DbvaeConfig, seed: int = 0):
        super().__init__(cfg, seed)
        self.gpus = visible_gpus()
        shape = self.image_shape
        if cfg.model == "dbvae":
            self.model = DbVae(cfg.latent_dim, cfg.n_filters, shape, seed)
        else:
            self.model = build_classifier(1, cfg.n_filters, shape, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
        self.optimizer.build(self.model.trainable_variables)
        self.baseline = self.baseline_optimizer = None  # the co-trained standard classifier
        if cfg.baseline:
            self.baseline = build_classifier(1, cfg.n_filters, shape, seed)
            self.baseline_optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
            self.baseline_optimizer.build(self.baseline.trainable_variables)
        images = tf.TensorSpec([None, *shape], tf.float32)
        labels = tf.TensorSpec([None], tf.float32)
        # Closures rather than bound methods: Ray adds a keyword to actor methods.
        if cfg.model == "dbvae":
            noise = tf.TensorSpec([None, cfg.latent_dim], tf.float32)
            self._train_step = tf.function(
                lambda x, y, eps: dbvae_step(self.model, self.optimizer, x, y, eps, cfg.kl_weight),
                input_signature=(images, labels, noise))
            self._means = tf.function(lambda x: self.model.encode(x)[1], input_signature=(images,))
        else:
            self._train_step = tf.function(
                lambda x, y: classifier_step(self.model, self.optimizer, x, y),
                input_signature=(images, labels))
        if self.baseline is not None:
            self._baseline_step = tf.function(
                lambda x, y: classifier_step(self.baseline, self.baseline_optimizer, x, y),
                input_signature=(images, labels))

    # ------------------------------------------------------------------------------ training

    def fit(self, batches: Iterator[Batch]) -> tuple[list[float], float | None]:
        totals = baseline_totals = None          # summed as tensors, read once at the end
        for x, y, eps, base in batches:
            stats = self._train_step(x, y) if eps is None else self._train_step(x, y, eps)
            totals = stats if totals is None else totals + stats
            if base is not None:
                stats = self._baseline_step(*base)
                baseline_totals = stats if baseline_totals is None else baseline_totals + stats
        return totals.numpy().tolist(), None if baseline_totals is None else float(baseline_totals[0])

    # ---------------------------------------------------------------------------- the models

    def face_probabilities(self, images: np.ndarray, baseline: bool = False) -> np.ndarray:
        return face_probabilities(self.baseline if baseline else self.model, images,
                                  self.cfg.eval_batch_size)

    def latent_means(self, x: np.ndarray) -> np.ndarray:
        return self._means(x).numpy()

    def reconstructions(self, x: np.ndarray) -> np.ndarray:
        _, mu, _ = self.model.encode(x)
        return self.model.decode(mu).numpy()

    # ---------------------------------------------------------------------------- checkpoints

    def save(self, folder: str | Path) -> None:
        save_training_state(folder, self.model, self.optimizer,
                            {"epoch": self.epoch, "model": self.cfg.model, "dataset": self.cfg.dataset,
                             "seed": self.seed})
        if self.baseline is not None:
            save_training_state(Path(folder) / "baseline", self.baseline, self.baseline_optimizer,
                                {"epoch": self.epoch})

    def restore(self, folder: str | Path) -> None:
        counters = load_training_state(folder, self.model, self.optimizer)
        if self.baseline is not None:
            load_training_state(Path(folder) / "baseline", self.baseline, self.baseline_optimizer)
        self.epoch, self._eval, self._probs = int(counters["epoch"]), None, None


def _correct(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """How many of the batch's labels (1 face, 0 not) the logits' signs get right."""
    return tf.reduce_sum(tf.cast(tf.equal(tf.cast(logits >= 0, tf.float32), y), tf.float32))
