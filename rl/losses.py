"""The REINFORCE loss, as a pure TensorFlow function."""

from __future__ import annotations

import tensorflow as tf


def reinforce_loss(logits: tf.Tensor, actions: tf.Tensor, weights: tf.Tensor,
                   entropy_coef: float = 0.0) -> tuple[tf.Tensor, tf.Tensor]:
    """mean(cross-entropy(logits, actions) * weights) - entropy_coef * entropy.

    logits: [T, A]; actions: [T] int; weights: [T] (normalised returns, the advantages).
    Minimising it raises the log-probability of actions with positive weight. Returns
    (loss, mean policy entropy).
    """
    neg_log_prob = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=actions, logits=logits)
    log_p = tf.nn.log_softmax(logits)
    entropy = tf.reduce_mean(-tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1))
    loss = tf.reduce_mean(neg_log_prob * weights) - entropy_coef * entropy
    return loss, entropy
