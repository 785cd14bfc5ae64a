"""Keras networks of the learner."""

from __future__ import annotations

import keras

from rl.config import PolicyConfig


def build_policy(obs_shape: tuple[int, ...], num_actions: int, cfg: PolicyConfig, seed: int,
                 name: str = "policy") -> keras.Model:
    """The course's policies: [Conv2D('same', activation)...] -> Flatten -> Dense(hidden, activation)
    layers -> Dense(num_actions) logits. CartPole's is one Dense(32); Pong's is the CNN.

    Seeded initialisers make the initial weights a function of ``seed`` alone.
    """
    init = iter(keras.initializers.GlorotUniform(seed=seed + i) for i in range(10_000))
    if cfg.conv and len(obs_shape) != 3:
        raise ValueError(f"policy.conv: convolutions need image observations [H, W, C]; "
                         f"this environment's are {list(obs_shape)}")
    layers: list[keras.Layer] = [keras.Input(shape=obs_shape)]
    for conv in cfg.conv:
        layers.append(keras.layers.Conv2D(conv.filters, conv.kernel, strides=conv.stride,
                                          padding="same", activation=cfg.activation,
                                          kernel_initializer=next(init)))
    layers.append(keras.layers.Flatten())
    for units in cfg.hidden_sizes:
        layers.append(keras.layers.Dense(units, activation=cfg.activation, kernel_initializer=next(init)))
    layers.append(keras.layers.Dense(num_actions, kernel_initializer=next(init)))
    return keras.Sequential(layers, name=name)


def build_value(obs_shape: tuple[int, ...], cfg: PolicyConfig, seed: int) -> keras.Model:
    """The learned baseline V(s) (``learner.baseline: value``): a network of the policy's shape,
    its own weights, one output."""
    return build_policy(obs_shape, 1, cfg, seed + 104_729, name="value")
