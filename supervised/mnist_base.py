"""What the two MNIST labs share, framework-free: data, batches, the epoch, evaluation, pictures.

``MnistBase`` is a ``Lab`` with the model left out: it loads MNIST, cuts each epoch into batches
in an order that is a function of (seed, epoch), turns the sums its subclass returns into the
metrics, and draws the pictures. A subclass, ``MnistLab`` (TensorFlow, ``supervised/mnist.py``)
or ``TorchMnistLab`` (PyTorch, ``supervised/mnist_torch.py``), brings the model, the training
loop over a batch stream, the test-set pass and the checkpoints::

    fit(batches)      -> (summed loss, correct predictions)   # one pass of gradient steps
    predict(batches)  -> (summed loss, predicted classes [N]) # no training
    save(folder); restore(folder)

so both frameworks see the same batches and report the same metrics, computed the same way.
"""

from __future__ import annotations

import math
import time
from typing import Iterator

import numpy as np

from supervised.config import MnistConfig
from supervised.data import load_mnist
from supervised.lab import Lab

NUM_CLASSES = 10
Batches = Iterator[tuple[np.ndarray, np.ndarray]]   # (uint8 digits [B, 28, 28], uint8 labels [B])


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the training images in epoch ``epoch``: a function of (seed, epoch) alone,
    so a run resumed from a checkpoint sees the same batches as one that never stopped."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     num_classes: int = NUM_CLASSES) -> np.ndarray:
    """[true, predicted] counts, [num_classes, num_classes] int64."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def cosine_lr(lr: float, step: int, total_steps: int) -> float:
    """The rate of a cosine decay from ``lr`` at step 0 to 0 at ``total_steps`` (and after):
    lr * (1 + cos(pi * step / total)) / 2, Keras's CosineDecay with alpha 0."""
    return lr * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


class MnistBase(Lab):
    """Built, it has loaded MNIST (see ``load_mnist``); an epoch is one pass over the training
    images, then the test set; ``images`` gives each of IMAGES. The model is the subclass's."""

    METRICS = ("train/loss", "train/accuracy", "test/loss", "test/accuracy", "counters/epoch",
               "time/epoch_s")
    IMAGES = ("mnist/confusion_matrix", "mnist/misclassified")

    def __init__(self, cfg: MnistConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed
        (x_train, y_train), (self.x_test, self.y_test) = load_mnist(cfg.data_path)
        self.x_train, self.y_train = x_train[:cfg.train_limit], y_train[:cfg.train_limit]
        self.epoch = 0  # finished epochs
        self._predictions: tuple[int, np.ndarray] | None = None  # (epoch, test predictions [N])

    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs

    @property
    def total_steps(self) -> int:
        """Gradient steps of the whole run (the cosine schedule's length)."""
        return self.cfg.epochs * -(-len(self.x_train) // self.cfg.batch_size)

    # ------------------------------------------------------------------- the subclass's part

    def fit(self, batches: Batches) -> tuple[float, float]:
        """One gradient step per batch; (summed loss, correct predictions) over all of them."""
        raise NotImplementedError

    def predict(self, batches: Batches) -> tuple[float, np.ndarray]:
        """(summed loss, predicted classes [N]) over the batches, without training."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ the epoch

    def train_batches(self) -> Batches:
        """This epoch's training batches, in its seeded order."""
        n, size = len(self.x_train), self.cfg.batch_size
        order = epoch_order(n, self.seed, self.epoch)
        for lo in range(0, n, size):
            idx = order[lo:lo + size]
            yield self.x_train[idx], self.y_train[idx]

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training images in a seeded order, then the test set; METRICS."""
        start = time.perf_counter()
        loss_sum, correct = self.fit(self.train_batches())
        test_loss, predictions = self.evaluate()
        self.epoch += 1
        self._predictions = (self.epoch, predictions)
        n = len(self.x_train)
        return {
            "train/loss": float(loss_sum) / n,
            "train/accuracy": float(correct) / n,
            "test/loss": test_loss,
            "test/accuracy": float(np.mean(predictions == self.y_test)),
            "counters/epoch": float(self.epoch),
            "time/epoch_s": time.perf_counter() - start,
        }

    def evaluate(self) -> tuple[float, np.ndarray]:
        """(mean loss, predicted classes [N]) on the test set."""
        size = self.cfg.eval_batch_size
        batches = ((self.x_test[lo:lo + size], self.y_test[lo:lo + size])
                   for lo in range(0, len(self.x_test), size))
        loss_sum, predictions = self.predict(batches)
        return float(loss_sum) / len(self.x_test), predictions

    # ------------------------------------------------------------------------------- pictures

    def images(self) -> dict[str, np.ndarray]:
        """The current model's confusion matrix and a grid of misclassified test digits."""
        # matplotlib imported here: training needs only NumPy (the GPU check runs without it)
        from supervised.render import render_confusion, render_misclassified

        if self._predictions is not None and self._predictions[0] == self.epoch:
            predictions = self._predictions[1]  # this epoch's evaluation: no second pass
        else:  # e.g. straight after restore
            _, predictions = self.evaluate()
        return {
            "mnist/confusion_matrix": render_confusion(confusion_matrix(self.y_test, predictions)),
            "mnist/misclassified": render_misclassified(self.x_test, self.y_test, predictions),
        }
