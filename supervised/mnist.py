"""MnistLab: the course's handwritten-digit classifiers (lab 2, part 1) as one trial.

Data, model, train step, evaluation, pictures, checkpoints, in that order (the pictures are
drawn in ``supervised/render.py``). The class does not know who drives it: ``cluster/`` runs it
as a Ray Tune trial, a test runs it in-process (the call sequence: ``supervised/lab.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from supervised.config import MnistConfig
from supervised.data import load_mnist
from supervised.lab import Lab
from supervised.models import (
    NUM_CLASSES,
    build_mnist_model,
    load_training_state,
    save_training_state,
    visible_gpus,
)
from supervised.render import render_confusion, render_misclassified


def to_inputs(images: tf.Tensor) -> tf.Tensor:
    """uint8 digits [B, 28, 28] -> the models' inputs, grey values in [0, 1] [B, 28, 28, 1]."""
    return tf.cast(images, tf.float32)[..., None] / 255.0


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the training images in epoch ``epoch``: a function of (seed, epoch) alone,
    so a run resumed from a checkpoint sees the same batches as one that never stopped."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     num_classes: int = NUM_CLASSES) -> np.ndarray:
    """[true, predicted] counts, [num_classes, num_classes] int64."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)


class MnistLab(Lab):
    """The ``Lab`` of MNIST: built, it has loaded MNIST (see ``load_mnist``) and built the model;
    an epoch is one pass over the training images, then the test set; a checkpoint holds the
    weights, the optimizer's state and the epoch counter; ``images`` gives each of IMAGES."""

    METRICS = ("train/loss", "train/accuracy", "test/loss", "test/accuracy", "counters/epoch",
               "time/epoch_s")
    IMAGES = ("mnist/confusion_matrix", "mnist/misclassified")

    def __init__(self, cfg: MnistConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed
        self.gpus = visible_gpus()
        (x_train, y_train), (self.x_test, self.y_test) = load_mnist(cfg.data_path)
        self.x_train, self.y_train = x_train[:cfg.train_limit], y_train[:cfg.train_limit]
        self.model = build_mnist_model(cfg.model, seed)
        optimizer = keras.optimizers.Adam if cfg.optimizer == "adam" else keras.optimizers.SGD
        lr = cfg.lr
        if cfg.lr_schedule == "cosine":
            steps = cfg.epochs * -(-len(self.x_train) // cfg.batch_size)
            lr = keras.optimizers.schedules.CosineDecay(cfg.lr, decay_steps=steps)
        self.optimizer = optimizer(learning_rate=lr)
        self.optimizer.build(self.model.trainable_variables)
        self.epoch = 0  # finished epochs
        self._predictions: tuple[int, np.ndarray] | None = None  # (epoch, test predictions [N])
        batch = (tf.TensorSpec([None, 28, 28], tf.uint8), tf.TensorSpec([None], tf.uint8))
        # Closures rather than bound methods: Ray adds a keyword to actor methods.
        self._train_step = tf.function(lambda x, y: self._step(x, y), input_signature=batch)
        self._eval_step = tf.function(lambda x, y: self._eval(x, y), input_signature=batch)

    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs

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

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training images in a seeded order, then the test set; METRICS."""
        start = time.perf_counter()
        n, size = len(self.x_train), self.cfg.batch_size
        order = epoch_order(n, self.seed, self.epoch)
        totals = tf.zeros(2)                                      # (summed loss, correct)
        for lo in range(0, n, size):
            idx = order[lo:lo + size]
            totals += self._train_step(self.x_train[idx], self.y_train[idx])
        loss_sum, correct = totals.numpy().tolist()
        test_loss, predictions = self.evaluate()
        self.epoch += 1
        self._predictions = (self.epoch, predictions)
        return {
            "train/loss": loss_sum / n,
            "train/accuracy": correct / n,
            "test/loss": test_loss,
            "test/accuracy": float(np.mean(predictions == self.y_test)),
            "counters/epoch": float(self.epoch),
            "time/epoch_s": time.perf_counter() - start,
        }

    def evaluate(self) -> tuple[float, np.ndarray]:
        """(mean loss, predicted classes [N]) on the test set."""
        size, loss, predictions = self.cfg.eval_batch_size, 0.0, []
        for lo in range(0, len(self.x_test), size):
            batch_loss, p = self._eval_step(self.x_test[lo:lo + size], self.y_test[lo:lo + size])
            loss += float(batch_loss)
            predictions.append(p.numpy())
        return loss / len(self.x_test), np.concatenate(predictions)

    # ------------------------------------------------------------------------------- pictures

    def images(self) -> dict[str, np.ndarray]:
        """The current model's confusion matrix and a grid of misclassified test digits."""
        if self._predictions is not None and self._predictions[0] == self.epoch:
            predictions = self._predictions[1]  # this epoch's evaluation: no second pass
        else:  # e.g. straight after restore
            _, predictions = self.evaluate()
        return {
            "mnist/confusion_matrix": render_confusion(confusion_matrix(self.y_test, predictions)),
            "mnist/misclassified": render_misclassified(self.x_test, self.y_test, predictions),
        }

    # ---------------------------------------------------------------------------- checkpoints

    def save(self, folder: str | Path) -> None:
        save_training_state(folder, self.model, self.optimizer,
                            {"epoch": self.epoch, "model": self.cfg.model, "seed": self.seed})

    def restore(self, folder: str | Path) -> None:
        counters = load_training_state(folder, self.model, self.optimizer)
        self.epoch, self._predictions = int(counters["epoch"]), None
