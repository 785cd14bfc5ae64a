"""Keras models of the supervised labs, the GPUs they may use, and saving a model with its
optimizer's state.

Keras is imported where a model is built, so that reading a checkpoint's files does not load
TensorFlow (``labrun generate`` does not need it).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from supervised.files import atomic_write
from supervised.mnist_base import NUM_CLASSES

if TYPE_CHECKING:
    import keras

IMAGE_SHAPE = (28, 28, 1)  # MNIST digits, grey values in [0, 1]


def visible_gpus() -> list[str]:
    """The names of the GPUs TensorFlow sees in this process (none on a CPU machine). How they
    share memory is the runner's business (``cluster/`` sets it before a lab is built)."""
    import tensorflow as tf

    return [gpu.name for gpu in tf.config.list_physical_devices("GPU")]


def build_mnist_model(kind: Literal["dense", "cnn"], seed: int) -> keras.Model:
    """The course's MNIST classifiers, [B, 28, 28, 1] floats -> [B, 10] logits.

    dense: Flatten -> Dense 128 relu -> Dense 10 (101,770 parameters).
    cnn:   Conv 24 3x3 relu -> MaxPool 2 -> Conv 36 3x3 relu -> MaxPool 2 -> Flatten
           -> Dense 128 relu -> Dense 10 (124,670 parameters).
    The course ends in a softmax; here the last layer gives logits and the loss applies the
    softmax, which is the same model, computed more stably. Seeded initialisers make the initial
    weights a function of ``seed`` alone.
    """
    import keras

    init = iter(keras.initializers.GlorotUniform(seed=seed + i) for i in range(100))
    if kind == "dense":
        body = [keras.layers.Flatten()]
    elif kind == "cnn":
        body = [
            keras.layers.Conv2D(24, 3, activation="relu", kernel_initializer=next(init)),  # 26x26x24
            keras.layers.MaxPool2D(2),                                                     # 13x13x24
            keras.layers.Conv2D(36, 3, activation="relu", kernel_initializer=next(init)),  # 11x11x36
            keras.layers.MaxPool2D(2),                                                     # 5x5x36
            keras.layers.Flatten(),                                                        # 900
        ]
    else:
        raise ValueError(f"model: expected 'dense' or 'cnn', got {kind!r}")
    return keras.Sequential([
        keras.Input(shape=IMAGE_SHAPE),
        *body,
        keras.layers.Dense(128, activation="relu", kernel_initializer=next(init)),
        keras.layers.Dense(NUM_CLASSES, kernel_initializer=next(init)),
    ], name=f"mnist_{kind}")


# ---------------------------------------------------------------------------------- checkpoints


WEIGHTS_FILE, STATE_FILE = "weights.npz", "state.json"
TORCH_WEIGHTS_FILE = "weights.pt"   # a PyTorch lab's state dicts (supervised/torch_state.py), beside STATE_FILE


def save_training_state(folder: str | Path, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                        counters: dict[str, Any]) -> None:
    """Writes the model's weights, the optimizer's variables (step count, moments) and
    ``counters`` (JSON) into ``folder``; each file is written whole or not at all."""
    folder = Path(folder)
    arrays = {f"weights_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays |= {f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(folder / WEIGHTS_FILE, buffer.getvalue())
    atomic_write(folder / STATE_FILE, json.dumps(counters))


def load_training_state(folder: str | Path, model: keras.Model,
                        optimizer: keras.optimizers.Optimizer) -> dict[str, Any]:
    """Restores what ``save_training_state`` wrote into ``model`` and the (built) ``optimizer``,
    all but the learning rate; returns the counters. ValueError if the checkpoint does not fit."""
    folder = Path(folder)
    for name in (WEIGHTS_FILE, STATE_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: not a checkpoint (no {name})")
    with np.load(folder / WEIGHTS_FILE) as data:
        weights = [data[f"weights_{i}"] for i in range(sum(k.startswith("weights_") for k in data.files))]
        opt = [data[f"optimizer_{i}"] for i in range(sum(k.startswith("optimizer_") for k in data.files))]
    variables = optimizer.variables
    if len(opt) != len(variables):
        raise ValueError(f"{folder}: checkpoint has {len(opt)} optimizer variables, the optimizer "
                         f"has {len(variables)} (a different optimizer or model?)")
    model.set_weights(weights)  # ValueError on a different model
    for var, value in zip(variables, opt):
        if var.name != "learning_rate":  # the config's rate, not the saved one: a resumed or
            var.assign(value)            # mutated trial (Tune's PBT) may change it
    return json.loads((folder / STATE_FILE).read_text())
