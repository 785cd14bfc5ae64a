"""MnistLab: the course's handwritten-digit classifiers (lab 2, part 1) in TensorFlow, as one trial.

The model, its train step and evaluation step, and checkpoints; the data, the epoch's batches,
the metrics and the pictures are ``MnistBase``'s (``supervised/mnist_base.py``), shared with
the PyTorch lab (``supervised/mnist_torch.py``). The class does not know who drives it:
``cluster/`` runs it as a Ray Tune trial, a test runs it in-process (the call sequence:
``supervised/lab.py``).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from supervised.config import MnistConfig
from supervised.mnist_base import Batches, MnistBase
from supervised.models import build_mnist_model, load_training_state, save_training_state


def to_inputs(images: tf.Tensor) -> tf.Tensor:
    """uint8 digits [B, 28, 28] -> the models' inputs, grey values in [0, 1] [B, 28, 28, 1]."""
    return tf.cast(images, tf.float32)[..., None] / 255.0


class MnistLab(MnistBase):
    """MNIST in TensorFlow: built, it has loaded MNIST and built the Keras model; a checkpoint
    holds the weights, the optimizer's state and the epoch counter."""

    def __init__(self, cfg: MnistConfig, seed: int = 0):
        super().__init__(cfg, seed)
        self.model = build_mnist_model(cfg.model, seed)
        optimizer = keras.optimizers.Adam if cfg.optimizer == "adam" else keras.optimizers.SGD
        lr = cfg.lr
        if cfg.lr_schedule == "cosine":
            lr = keras.optimizers.schedules.CosineDecay(cfg.lr, decay_steps=self.total_steps)
        self.optimizer = optimizer(learning_rate=lr)
        self.optimizer.build(self.model.trainable_variables)
        batch = (tf.TensorSpec([None, 28, 28], tf.uint8), tf.TensorSpec([None], tf.uint8))
        # Closures rather than bound methods: Ray adds a keyword to actor methods.
        self._train_step = tf.function(lambda x, y: self._step(x, y), input_signature=batch)
        self._eval_step = tf.function(lambda x, y: self._eval(x, y), input_signature=batch)

    # ------------------------------------------------------------------------------ training

    def _step(self, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """One gradient step on a batch; [summed loss, correct predictions] of the batch."""
        labels = tf.cast(labels, tf.int32)                                        # [B]
        with tf.GradientTape() as tape:
            logits = self.model(to_inputs(images), training=True)                 # [B, 10]
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)   # [B]
            loss = tf.reduce_mean(losses)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, -1, output_type=tf.int32) == labels, tf.float32))
        return tf.stack([tf.reduce_sum(losses), correct])

    def _eval(self, images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(summed loss, predicted classes [B]) of a batch, without training."""
        logits = self.model(to_inputs(images), training=False)                    # [B, 10]
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)
        return tf.reduce_sum(losses), tf.argmax(logits, -1, output_type=tf.int32)

    def fit(self, batches: Batches) -> tuple[float, float]:
        totals = tf.zeros(2)                      # (summed loss, correct), read once at the end
        for images, labels in batches:
            totals += self._train_step(images, labels)
        loss_sum, correct = totals.numpy().tolist()
        return loss_sum, correct

    def predict(self, batches: Batches) -> tuple[float, np.ndarray]:
        loss, predictions = 0.0, []
        for images, labels in batches:
            batch_loss, p = self._eval_step(images, labels)
            loss += float(batch_loss)
            predictions.append(p.numpy())
        return loss, np.concatenate(predictions)

    # ---------------------------------------------------------------------------- checkpoints

    def save(self, folder: str | Path) -> None:
        save_training_state(folder, self.model, self.optimizer,
                            {"epoch": self.epoch, "model": self.cfg.model, "seed": self.seed})

    def restore(self, folder: str | Path) -> None:
        counters = load_training_state(folder, self.model, self.optimizer)
        self.epoch, self._predictions = int(counters["epoch"]), None
