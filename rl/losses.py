"""The REINFORCE loss and its off-policy correction, as pure TensorFlow functions."""

from __future__ import annotations

import tensorflow as tf


def reinforce_loss(logits: tf.Tensor, actions: tf.Tensor, weights: tf.Tensor,
                   entropy_coef: float = 0.0, mask: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """mean(cross-entropy(logits, actions) * weights) - entropy_coef * entropy.

    logits: [T, A]; actions: [T] int; weights: [T] (normalised returns, the advantages);
    mask: [T], 1 for a real step and 0 for padding (the means are over the real steps; None:
    every step is real). Minimising it raises the log-probability of actions with positive
    weight. Returns (loss, mean policy entropy).
    """
    mask = tf.ones_like(weights) if mask is None else mask
    count = tf.maximum(tf.reduce_sum(mask), 1.0)
    neg_log_prob = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=actions, logits=logits)
    log_p = tf.nn.log_softmax(logits)
    entropy = tf.reduce_sum(-tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1) * mask) / count
    loss = tf.reduce_sum(neg_log_prob * weights * mask) / count - entropy_coef * entropy
    return loss, entropy


def truncated_importance_weights(logits: tf.Tensor, actions: tf.Tensor, behaviour_logp: tf.Tensor,
                                 clip: float = 1.0) -> tf.Tensor:
    """min(clip, pi(a|s) / mu(a|s)) per step, without gradient: [T].

    pi is the policy being trained (``logits`` [T, A]), mu the one that acted (its log-probability
    of each action, ``behaviour_logp`` [T]). Multiplying the REINFORCE weights by it corrects for
    acting with older weights; clipping at 1, as V-trace's rho-bar, bounds the variance. Equal
    policies give 1 everywhere: the plain REINFORCE gradient.
    """
    logp = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=actions, logits=logits)
    return tf.stop_gradient(tf.minimum(tf.exp(logp - behaviour_logp), clip))
