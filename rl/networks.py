"""Keras networks of the learner."""

from __future__ import annotations

import keras

from rl.config import PolicyConfig


def build_policy(obs_shape: tuple[int, ...], num_actions: int, cfg: PolicyConfig, seed: int) -> keras.Model:
    """The course's policy: Dense(hidden, activation) layers -> Dense(num_actions) logits.

    Seeded initialisers make the initial weights a function of ``seed`` alone.
    """
    layers: list[keras.Layer] = [keras.Input(shape=obs_shape), keras.layers.Flatten()]
    for i, units in enumerate(cfg.hidden_sizes):
        layers.append(keras.layers.Dense(
            units, activation=cfg.activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i)))
    layers.append(keras.layers.Dense(
        num_actions, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + len(cfg.hidden_sizes))))
    return keras.Sequential(layers, name="policy")
