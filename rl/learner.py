"""ReinforceLearner: the central policy-gradient learner in TensorFlow.

Call sequence::

    learner = ReinforceLearner(obs_shape, num_actions, policy_cfg, learner_cfg, seed)
    weights = learner.get_weights()          # broadcast to the rollout workers
    metrics = learner.update(batches)        # whole episodes from every worker
    state = learner.get_state()              # for a checkpoint; set_state(state) restores it
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from rl.config import LearnerConfig, PolicyConfig
from rl.losses import reinforce_loss
from rl.networks import build_policy
from rl.returns import advantages
from rl.trajectory import Trajectories


class ReinforceLearner:
    """Policy gradient with discounted, normalised returns; Adam; a compiled train step."""

    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, policy_cfg: PolicyConfig,
                 cfg: LearnerConfig, seed: int = 0):
        self.cfg = cfg
        self.model = build_policy(obs_shape, num_actions, policy_cfg, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
        self.optimizer.build(self.model.trainable_variables)
        self.num_updates = 0
        # Closures, not bound methods: Ray adds a keyword to the methods of actor classes, which
        # would not fit the compiled functions' signatures.
        self._chunk_grads = tf.function(lambda o, a, w, s: self._grads(o, a, w, s), input_signature=(
            tf.TensorSpec([None, *obs_shape], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([], tf.float32),
        ))
        self._apply = tf.function(lambda grads: self._apply_grads(grads))

    def _grads(self, obs: tf.Tensor, actions: tf.Tensor, weights: tf.Tensor,
               scale: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
        """Gradient, loss and entropy of one chunk, scaled by its share of the batch."""
        with tf.GradientTape() as tape:
            logits = self.model(obs, training=True)                    # [T, A]
            loss, entropy = reinforce_loss(logits, actions, weights, self.cfg.entropy_coef)
            loss = loss * scale
        return tape.gradient(loss, self.model.trainable_variables), loss, entropy * scale

    def _apply_grads(self, grads: list[tf.Tensor]) -> tf.Tensor:
        grad_norm = tf.linalg.global_norm(grads)
        if self.cfg.max_grad_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.cfg.max_grad_norm, use_norm=grad_norm)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return grad_norm

    def update(self, batches: Sequence[Trajectories]) -> dict[str, float]:
        """One gradient step on all the episodes of ``batches``; returns ``learner/*`` metrics.

        The loss is a mean over the batch's steps; a long batch goes through the network
        ``chunk_steps`` at a time and the chunks' gradients, weighted by their share, are summed
        into that same gradient before the one optimizer step."""
        start = time.perf_counter()
        batch = Trajectories.concat(batches) if len(batches) != 1 else batches[0]
        adv = advantages(batch.rewards, batch.episode_lengths, self.cfg.gamma,
                         baseline=self.cfg.baseline, normalize=self.cfg.normalize_returns,
                         reset_on_reward=self.cfg.reset_on_reward)          # [T]
        total, chunk = batch.num_steps, self.cfg.chunk_steps
        grads, loss, entropy = None, 0.0, 0.0
        for lo in range(0, total, chunk):
            hi = min(lo + chunk, total)
            g, chunk_loss, chunk_entropy = self._chunk_grads(
                tf.constant(batch.obs[lo:hi], tf.float32), tf.constant(batch.actions[lo:hi], tf.int32),
                tf.constant(adv[lo:hi], tf.float32), tf.constant((hi - lo) / total, tf.float32))
            grads = g if grads is None else [x + y for x, y in zip(grads, g)]
            loss, entropy = loss + float(chunk_loss), entropy + float(chunk_entropy)
        grad_norm = self._apply(grads)
        self.num_updates += 1
        return {
            "learner/loss": loss,
            "learner/entropy": entropy,
            "learner/grad_norm": float(grad_norm),
            "learner/batch_steps": float(total),
            "time/learn_s": time.perf_counter() - start,
        }

    def get_weights(self) -> list[np.ndarray]:
        return [np.asarray(w) for w in self.model.get_weights()]

    def get_state(self) -> dict[str, Any]:
        """Policy weights, optimizer state and the update counter, as NumPy arrays."""
        return {
            "weights": self.get_weights(),
            "optimizer": [np.asarray(v.numpy()) for v in self.optimizer.variables],
            "num_updates": self.num_updates,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.model.set_weights(state["weights"])
        variables = self.optimizer.variables
        if len(variables) != len(state["optimizer"]):
            raise ValueError(f"checkpoint has {len(state['optimizer'])} optimizer variables, "
                             f"the optimizer has {len(variables)}")
        for var, value in zip(variables, state["optimizer"]):
            if var.name != "learning_rate":  # the config's lr wins (`labrun resume --set learner.lr=...`)
                var.assign(value)
        self.num_updates = int(state["num_updates"])
