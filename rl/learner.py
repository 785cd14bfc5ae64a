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


def enable_memory_growth() -> list[str]:
    """Lets TensorFlow take GPU memory as it needs it rather than all at once, so learners and
    trials sharing a GPU fit side by side. Must run before TensorFlow first touches the GPU;
    returns the names of the GPUs this process sees (none on a CPU machine)."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: its setting stands
            pass
    return [gpu.name for gpu in gpus]


class ReinforceLearner:
    """Policy gradient with discounted, normalised returns; Adam; a compiled train step."""

    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, policy_cfg: PolicyConfig,
                 cfg: LearnerConfig, seed: int = 0, reset_on_reward: bool = False):
        self.cfg = cfg
        self.reset_on_reward = reset_on_reward
        self.gpus = enable_memory_growth()
        self.model = build_policy(obs_shape, num_actions, policy_cfg, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
        self.optimizer.build(self.model.trainable_variables)
        self.num_updates = 0
        # A closure, not the bound method: Ray adds a keyword to the methods of actor classes,
        # which would not fit the compiled function's signature.
        self._train_step = tf.function(lambda o, a, w: self._step(o, a, w), input_signature=(
            tf.TensorSpec([None, *obs_shape], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
        ))

    def _step(self, obs: tf.Tensor, actions: tf.Tensor, weights: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = self.model(obs, training=True)                    # [T, A]
            loss, entropy = reinforce_loss(logits, actions, weights, self.cfg.entropy_coef)
        grads = tape.gradient(loss, self.model.trainable_variables)
        grad_norm = tf.linalg.global_norm(grads)
        if self.cfg.max_grad_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.cfg.max_grad_norm, use_norm=grad_norm)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return {"loss": loss, "entropy": entropy, "grad_norm": grad_norm}

    def update(self, batches: Sequence[Trajectories]) -> dict[str, float]:
        """One gradient step on all the episodes of ``batches``; returns ``learner/*`` metrics."""
        start = time.perf_counter()
        batch = Trajectories.concat(batches) if len(batches) != 1 else batches[0]
        adv = advantages(batch.rewards, batch.episode_lengths, self.cfg.gamma,
                         baseline=self.cfg.baseline, normalize=self.cfg.normalize_returns,
                         reset_on_reward=self.reset_on_reward)              # [T]
        out = self._train_step(tf.convert_to_tensor(batch.obs, tf.float32),
                               tf.convert_to_tensor(batch.actions, tf.int32),
                               tf.convert_to_tensor(adv, tf.float32))
        self.num_updates += 1
        metrics = {f"learner/{k}": float(v) for k, v in out.items()}
        metrics["learner/batch_steps"] = float(batch.num_steps)
        metrics["time/learn_s"] = time.perf_counter() - start
        return metrics

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
            var.assign(value)
        self.num_updates = int(state["num_updates"])
