"""IntroLab: the basics of TensorFlow from the course's first lab (lab 1, part 1), as one trial.

Read it top to bottom: tensors and operations; a Dense layer is written by hand; it goes into a
model in two ways (Sequential, subclassed); gradient descent with tf.GradientTape fits the model
to the noisy line y = 3x - 1, and every epoch reports how close it has come (the data and the
epoch: ``supervised/intro_base.py``, shared with the PyTorch lab ``supervised/intro_torch.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import keras
import tensorflow as tf

from supervised.config import IntroConfig
from supervised.intro_base import IntroBase
from supervised.models import load_training_state, save_training_state

# 1. Tensors and operations. A tensor is an n-dimensional array with a dtype and a shape; a
# rank-2 tensor [N, 1] is a column of N numbers. Operations (*, +, tf.matmul, tf.reduce_mean)
# take tensors and give new ones, broadcasting scalars over every element. The data, the noisy
# line y = 3x - 1, is made with NumPy (``make_line``, shared with the PyTorch lab).

def mean_squared_error(y_pred: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """mean((y_pred - y)^2) over all elements: a scalar tensor."""
    return tf.reduce_mean(tf.square(y_pred - y))


# 2. A layer written by hand. A Keras layer creates its weights in build(), once it knows the
# size of its input, and computes its output in call().

class OurDense(keras.layers.Layer):
    """y = x W + b, for x [B, d]: W [d, units], b [units]."""

    def __init__(self, units: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.seed = units, seed

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.W = self.add_weight(name="weight", shape=(input_shape[-1], self.units),
                                 initializer=keras.initializers.GlorotUniform(seed=self.seed))
        self.b = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, self.W) + self.b                                  # [B, units]


# 3. Two ways to make a model of it. Sequential stacks layers; subclassing keras.Model makes the
# layers in __init__ and writes the forward pass in call, where any Python may go.

class LineModel(keras.Model):
    """The subclassed model: one OurDense unit, y = w x + b."""

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.dense = OurDense(1, seed=seed)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.dense(x)                                                  # [B, 1]


def build_line_model(kind: Literal["sequential", "subclassed"], seed: int) -> keras.Model:
    """y = w x + b as a Sequential or a subclassed model: the same weights for the same seed."""
    if kind == "sequential":
        return keras.Sequential([keras.Input(shape=(1,)), OurDense(1, seed=seed)], name="line")
    if kind == "subclassed":
        model = LineModel(seed, name="line")
        model(tf.zeros([1, 1]))  # the first call builds the layers' weights
        return model
    raise ValueError(f"model: expected 'sequential' or 'subclassed', got {kind!r}")


def line_of(model: keras.Model) -> tuple[float, float]:
    """(slope, intercept) of a line model: its weights W [1, 1] and b [1]."""
    w, b = model.get_weights()
    return float(w[0, 0]), float(b[0])


# 4. Optimisation. tf.GradientTape records the operations of the forward pass so that
# tape.gradient can give d loss / d weights; the optimizer moves the weights against it.

class IntroLab(IntroBase):
    """The line fit in TensorFlow: built, it has made the data and the model; a checkpoint holds
    the weights, the optimizer's state and the epoch counter."""

    def __init__(self, cfg: IntroConfig, seed: int = 0):
        super().__init__(cfg, seed)
        self.x, self.y = tf.constant(self.x), tf.constant(self.y)            # [N, 1] each
        self.model = build_line_model(cfg.model, seed)
        self.optimizer = keras.optimizers.SGD(learning_rate=cfg.lr)
        self.optimizer.build(self.model.trainable_variables)
        self._step = tf.function(lambda: self._gradient_step())

    def _gradient_step(self) -> tf.Tensor:
        with tf.GradientTape() as tape:  # watches the trainable variables used inside
            loss = mean_squared_error(self.model(self.x), self.y)
        grads = tape.gradient(loss, self.model.trainable_variables)           # [dL/dW, dL/db]
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def gradient_step(self) -> float:
        return float(self._step())

    def line(self) -> tuple[float, float]:
        return line_of(self.model)

    def save(self, folder: str | Path) -> None:
        save_training_state(folder, self.model, self.optimizer,
                            {"epoch": self.epoch, "model": self.cfg.model, "seed": self.seed})

    def restore(self, folder: str | Path) -> None:
        self.epoch = int(load_training_state(folder, self.model, self.optimizer)["epoch"])
