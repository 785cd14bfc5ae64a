"""The actors' copy of the policy: a NumPy forward pass of the learner's Keras MLP.

A Keras call costs ~0.5 ms even compiled; the same MLP in NumPy costs ~10-20 us, so rollout workers
evaluate the policy here, once per step for all their environments, and never import TensorFlow.
The weights are the Keras model's ``get_weights()`` list: [kernel_0, bias_0, kernel_1, bias_1, ...].
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0, out=x),
    "tanh": lambda x: np.tanh(x, out=x),
}


def mlp_logits(weights: Sequence[np.ndarray], obs: np.ndarray, activation: str = "relu") -> np.ndarray:
    """Logits of a Dense MLP: obs [B, D] -> [B, A]; hidden layers use ``activation``."""
    act = _ACTIVATIONS[activation]
    x = obs
    n_layers = len(weights) // 2
    for i in range(n_layers):
        x = x @ weights[2 * i] + weights[2 * i + 1]
        if i < n_layers - 1:
            act(x)
    return x


def sample_actions(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row, drawn from softmax(logits): [B, A] -> [B] int32.

    Gumbel-max: argmax(logits + Gumbel noise) is an exact draw from the softmax, in four NumPy
    calls (a cumulative-sum draw takes ten, and this runs once per rollout step).
    """
    return (logits + rng.gumbel(size=logits.shape)).argmax(axis=1).astype(np.int32)


class MLPPolicy:
    """Acts with the latest weights the learner broadcast."""

    def __init__(self, activation: str = "relu"):
        self.activation = activation
        self.weights: list[np.ndarray] | None = None

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self.weights = [np.asarray(w, dtype=np.float32) for w in weights]

    def logits(self, obs: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("policy has no weights yet: call set_weights first")
        return mlp_logits(self.weights, obs.astype(np.float32, copy=False), self.activation)

    def act(self, obs: np.ndarray, rng: np.random.Generator, greedy: bool = False) -> np.ndarray:
        logits = self.logits(obs)
        return logits.argmax(axis=1).astype(np.int32) if greedy else sample_actions(logits, rng)
