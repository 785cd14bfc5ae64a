"""The actors' copy of the policy: a NumPy forward pass of the learner's Keras network.

A Keras call costs ~0.5 ms even compiled; the same MLP in NumPy costs ~10-20 us, so rollout workers
evaluate the policy here, once per step for all their environments, and never import TensorFlow.
The weights are the Keras model's ``get_weights()`` list: [kernel_0, bias_0, kernel_1, bias_1, ...],
convolutions (kernels [k, k, C_in, C_out], 'same' padding, channels last) before Dense layers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rl.config import PolicyConfig

_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0, out=x),
    "tanh": lambda x: np.tanh(x, out=x),
}


def sparse_dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ kernel + bias`` for a mostly-zero integer x [B, D], reading only the kernel rows of
    x's non-zero entries. Pong's frame differences are ~2% non-zero: a dense product would read
    the whole 1600x200 kernel from memory every step, after the emulator has evicted it."""
    rows, cols = np.nonzero(x)                                 # row-major: rows are sorted
    terms = kernel[cols] * x[rows, cols].astype(np.float32)[:, None]       # [nnz, units]
    terms = np.concatenate([terms, np.zeros((1, kernel.shape[1]), np.float32)])
    starts = np.searchsorted(rows, np.arange(x.shape[0]))
    counts = np.diff(np.append(starts, len(rows)))
    sums = np.add.reduceat(terms, starts, axis=0)
    sums[counts == 0] = 0.0                                    # reduceat's value for empty rows
    return sums + bias


def mlp_logits(weights: Sequence[np.ndarray], obs: np.ndarray, activation: str = "relu") -> np.ndarray:
    """Logits of a Dense MLP: obs [B, D] -> [B, A]; hidden layers use ``activation``.

    Integer observations with under 10% non-zero entries take the sparse product in the first
    layer (the same sums, fewer memory reads)."""
    act = _ACTIVATIONS[activation]
    n_layers = len(weights) // 2
    if np.issubdtype(obs.dtype, np.integer) and np.count_nonzero(obs) < 0.1 * obs.size:
        x = sparse_dense(obs, weights[0], weights[1])
        first = 1
    else:
        x, first = obs.astype(np.float32, copy=False), 0
    for i in range(first, n_layers):
        if i:
            act(x)
        x = x @ weights[2 * i] + weights[2 * i + 1]
    return x


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding of one axis: output ceil(size / stride), the odd pixel of
    padding after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """A Keras Conv2D(padding='same', strides=stride) without activation: [B, H, W, C] -> [B, H', W', F].

    im2col: the strided windows of the padded input become the rows of one matrix, multiplied by
    the kernel reshaped to [k * k * C, F] -- one BLAS call a layer.
    """
    k = kernel.shape[0]
    b, h, w, c = x.shape
    (top, bottom), (left, right) = same_padding(h, k, stride), same_padding(w, k, stride)
    if top or bottom or left or right:
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # [B, H'', W'', C, k, k]
    windows = windows[:, ::stride, ::stride]                                    # [B, Ho, Wo, C, k, k]
    ho, wo = windows.shape[1:3]
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(b * ho * wo, k * k * c)
    out = cols @ kernel.reshape(k * k * c, -1) + bias
    return out.reshape(b, ho, wo, -1)


def policy_logits(weights: Sequence[np.ndarray], obs: np.ndarray, strides: Sequence[int] = (),
                  activation: str = "relu") -> np.ndarray:
    """Logits of convolutions (one per entry of ``strides``) then a Dense MLP: obs [B, ...] -> [B, A]."""
    act = _ACTIVATIONS[activation]
    x = obs.astype(np.float32) if strides else obs
    for i, stride in enumerate(strides):
        x = act(conv2d_same(x, weights[2 * i], weights[2 * i + 1], stride))
    return mlp_logits(weights[2 * len(strides):], x.reshape(x.shape[0], -1), activation)


def sample_actions(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row, drawn from softmax(logits): [B, A] -> [B] int32.

    Gumbel-max: argmax(logits + Gumbel noise) is an exact draw from the softmax, in four NumPy
    calls (a cumulative-sum draw takes ten, and this runs once per rollout step).
    """
    return (logits + rng.gumbel(size=logits.shape)).argmax(axis=1).astype(np.int32)


def log_probs(logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """log softmax(logits)[actions], row by row: [B, A], [B] -> [B] float32."""
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return (logits[np.arange(len(actions)), actions] - log_z).astype(np.float32)


def weight_shapes(obs_shape: Sequence[int], num_actions: int, cfg: PolicyConfig) -> list[tuple[int, ...]]:
    """The shapes of the policy's weights, in ``get_weights()`` order, worked out without
    TensorFlow: what ``rl.networks.build_policy`` makes for these observations and actions."""
    shapes: list[tuple[int, ...]] = []
    dims = tuple(obs_shape)
    for conv in cfg.conv:                                      # 'same' padding: ceil(size / stride)
        h, w, c = dims
        shapes += [(conv.kernel, conv.kernel, c, conv.filters), (conv.filters,)]
        dims = (-(-h // conv.stride), -(-w // conv.stride), conv.filters)
    width = int(np.prod(dims))                                 # Flatten
    for units in (*cfg.hidden_sizes, num_actions):
        shapes += [(width, units), (units,)]
        width = units
    return shapes


class NumpyPolicy:
    """Acts with the latest weights the learner broadcast."""

    def __init__(self, cfg: PolicyConfig | None = None):
        cfg = cfg or PolicyConfig()
        self.activation = cfg.activation
        self.strides = tuple(layer.stride for layer in cfg.conv)
        self.weights: list[np.ndarray] | None = None

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self.weights = [np.asarray(w, dtype=np.float32) for w in weights]

    def logits(self, obs: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("policy has no weights yet: call set_weights first")
        return policy_logits(self.weights, obs, self.strides, self.activation)

    def act(self, obs: np.ndarray, rng: np.random.Generator, greedy: bool = False) -> np.ndarray:
        logits = self.logits(obs)
        return logits.argmax(axis=1).astype(np.int32) if greedy else sample_actions(logits, rng)

    def act_logp(self, obs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sampled actions [B] and the log-probability each had [B]."""
        logits = self.logits(obs)
        actions = sample_actions(logits, rng)
        return actions, log_probs(logits, actions)
