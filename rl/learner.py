"""ReinforceLearner: the central policy-gradient learner in TensorFlow.

Call sequence::

    learner = ReinforceLearner(obs_shape, num_actions, policy_cfg, learner_cfg, seed)
    weights = learner.get_weights()          # broadcast to the rollout workers
    metrics = learner.update(batches)        # whole episodes from every worker
    metrics = learner.update(batches, off_policy=True)  # acted with older weights: corrected
    metrics = learner.update(batches, lr=5e-4)          # this step's learning rate (annealed)
    state = learner.get_state()              # for a checkpoint; set_state(state) restores it
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from rl.config import LearnerConfig, PolicyConfig
from rl.losses import reinforce_loss, truncated_importance_weights
from rl.networks import build_policy, build_value
from rl.returns import baseline_values, episode_returns, normalise
from rl.trajectory import Trajectories

PAD_ROWS = 256   # a chunk's rows are padded up to a multiple of this (or to chunk_steps)


def padded(rows: np.ndarray, chunk: int) -> np.ndarray:
    """``rows`` [n, ...] with zero rows after them, up to the next multiple of PAD_ROWS (at most
    ``chunk``): a batch's last chunk then takes one of a few shapes, not a new one every
    iteration, which a GPU's kernels (cuDNN's autotuning) and TensorFlow's compiled functions
    would otherwise be chosen afresh for. The padding is masked out of every sum."""
    n = len(rows)
    size = min(chunk, -(-n // PAD_ROWS) * PAD_ROWS) if n else 0
    if size <= n:
        return rows
    return np.concatenate([rows, np.zeros((size - n, *rows.shape[1:]), rows.dtype)])


class ReinforceLearner:
    """Policy gradient with discounted, normalised returns; Adam; a compiled train step."""

    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, policy_cfg: PolicyConfig,
                 cfg: LearnerConfig, seed: int = 0):
        self.cfg = cfg
        self.model = build_policy(obs_shape, num_actions, policy_cfg, seed)
        self.value_model = build_value(obs_shape, policy_cfg, seed) if cfg.baseline == "value" else None
        self.variables = self.model.trainable_variables + (
            self.value_model.trainable_variables if self.value_model is not None else [])
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)          # the policy's
        self.optimizer.build(self.model.trainable_variables)
        self.value_optimizer = None     # the value network's own Adam: its own step count, so
        if self.value_model is not None:   # value_steps never changes the policy's step size
            self.value_optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
            self.value_optimizer.build(self.value_model.trainable_variables)
        self.num_updates = 0
        self.obs_shape = tuple(obs_shape)
        self._compiled: dict[str, tuple[Any, Any, Any]] = {}  # obs dtype -> compiled functions
        self._apply = tf.function(lambda grads: self._apply_grads(grads))
        self._apply_value = None if self.value_model is None else tf.function(
            lambda grads: self._apply_value_grads(grads))

    def _functions(self, dtype: np.dtype) -> tuple[Any, Any, Any]:
        """The compiled value pass, chunk gradient and value-only chunk gradient (None without a
        value baseline) for observations of ``dtype``, made on first use. Observations go in as
        the workers sent them (Pong's int8 frame differences: a quarter of float32's bytes to a
        GPU) and become float32 inside, on the learner's device.
        Closures, not bound methods: Ray adds a keyword to the methods of actor classes, which
        would not fit the compiled functions' signatures."""
        name = np.dtype(dtype).name
        if name not in self._compiled:
            obs_spec = tf.TensorSpec([None, *self.obs_shape], tf.as_dtype(name))
            vector, flag = tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.bool)
            values = None if self.value_model is None else tf.function(
                lambda o: self.value_model(tf.cast(o, tf.float32), training=False)[:, 0],
                input_signature=(obs_spec,))
            grads = tf.function(lambda o, a, w, g, b, m, c, s: self._grads(o, a, w, g, b, m, c, s),
                                input_signature=(obs_spec, tf.TensorSpec([None], tf.int32), vector,
                                                 vector, vector, vector, flag, tf.TensorSpec([], tf.float32)))
            value_grads = None if self.value_model is None else tf.function(
                lambda o, g, m, s: self._value_grads(o, g, m, s),
                input_signature=(obs_spec, vector, vector, tf.TensorSpec([], tf.float32)))
            self._compiled[name] = (values, grads, value_grads)
        return self._compiled[name]

    def _grads(self, obs: tf.Tensor, actions: tf.Tensor, weights: tf.Tensor, returns: tf.Tensor,
               behaviour_logp: tf.Tensor, mask: tf.Tensor, correct: tf.Tensor, scale: tf.Tensor):
        """Gradient, policy loss, entropy, and the importance weights' sum and count below 1 of
        one chunk (``mask``: 1 for its real steps, 0 for the padding after them), the loss and
        entropy scaled by its share of the batch. ``correct``: weight each step by
        ``truncated_importance_weights`` (else by 1, and ``behaviour_logp`` is unused). With a
        value baseline its squared error to ``returns`` joins the loss; the two networks share
        no weights, so neither term moves the other."""
        obs = tf.cast(obs, tf.float32)
        count = tf.maximum(tf.reduce_sum(mask), 1.0)
        with tf.GradientTape() as tape:
            logits = self.model(obs, training=True)                    # [T, A]
            rho = tf.where(correct, truncated_importance_weights(logits, actions, behaviour_logp),
                           tf.ones_like(weights)) * mask                # [T], 0 on padding
            loss, entropy = reinforce_loss(logits, actions, weights * rho, self.cfg.entropy_coef, mask)
            value_loss = tf.constant(0.0)
            if self.value_model is not None:
                values = self.value_model(obs, training=True)[:, 0]    # [T]
                value_loss = 0.5 * tf.reduce_sum(tf.square(values - returns) * mask) / count
            total = (loss + value_loss) * scale
        grads = tape.gradient(total, self.variables)
        return (grads, loss * scale, entropy * scale, tf.reduce_sum(rho),
                tf.reduce_sum(tf.cast(rho < 1, tf.float32) * mask))

    def _value_grads(self, obs: tf.Tensor, returns: tf.Tensor, mask: tf.Tensor, scale: tf.Tensor):
        """The value network's gradient of one chunk's squared error to ``returns``, scaled by
        the chunk's share of the batch (the value term of ``_grads``, alone)."""
        obs = tf.cast(obs, tf.float32)
        count = tf.maximum(tf.reduce_sum(mask), 1.0)
        with tf.GradientTape() as tape:
            values = self.value_model(obs, training=True)[:, 0]
            loss = 0.5 * tf.reduce_sum(tf.square(values - returns) * mask) / count * scale
        return tape.gradient(loss, self.value_model.trainable_variables)

    def _apply_value_grads(self, grads: list[tf.Tensor]) -> None:
        """One step of the value network's Adam alone (clipped as in ``_apply_grads``)."""
        if self.cfg.max_grad_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.cfg.max_grad_norm)
        self.value_optimizer.apply_gradients(zip(grads, self.value_model.trainable_variables))

    def _apply_grads(self, grads: list[tf.Tensor]) -> tf.Tensor:
        """One Adam step of the policy and one of the value network (if any), the two gradients
        clipped each to its own norm (neither shrinks the other). Returns the policy gradient's
        norm."""
        n = len(self.model.trainable_variables)
        norms = []
        for part, optimizer, variables in ((grads[:n], self.optimizer, self.model.trainable_variables),
                                           (grads[n:], self.value_optimizer, self.variables[n:])):
            norm = tf.linalg.global_norm(part) if part else tf.constant(0.0)
            if part and self.cfg.max_grad_norm is not None:
                part, _ = tf.clip_by_global_norm(part, self.cfg.max_grad_norm, use_norm=norm)
            if part:
                optimizer.apply_gradients(zip(part, variables))
            norms.append(norm)
        return norms[0]

    def update(self, batches: Sequence[Trajectories], off_policy: bool = False,
               lr: float | None = None) -> dict[str, float]:
        """One gradient step on all the steps of ``batches`` (whole episodes or pieces of games:
        the returns restart at each one's end); returns ``learner/*`` metrics.

        The loss is a mean over the batch's steps; a long batch goes through the network
        ``chunk_steps`` at a time and the chunks' gradients, weighted by their share, are summed
        into that same gradient before the one optimizer step (then ``value_steps - 1`` steps
        of the value baseline alone, on the same batch). ``off_policy``: the batches were
        played with older weights (their ``behaviour_logp`` says how likely each action was);
        each step's weight is multiplied by min(1, pi/mu) (else by 1); ``learner/importance_weight_mean``
        and ``learner/importance_weight_below_1`` (the share of steps down-weighted) report it.
        ``lr``: this step's learning rate (``rl.schedules``), kept for the next ones (None: keep
        the current rate, ``cfg.lr`` until one is given)."""
        start = time.perf_counter()
        batch = Trajectories.concat(batches) if len(batches) != 1 else batches[0]
        if off_policy and batch.behaviour_logp is None:
            raise ValueError("off_policy update: the batches hold no behaviour_logp")
        behaviour = batch.behaviour_logp if off_policy else np.zeros(batch.num_steps, np.float32)
        total, chunk = batch.num_steps, self.cfg.chunk_steps
        value_fn, chunk_grads, value_grads = self._functions(batch.obs.dtype)
        returns = episode_returns(batch.rewards, batch.episode_lengths, self.cfg.gamma,
                                  self.cfg.reset_on_reward)                 # [T]
        values = None if value_fn is None else np.concatenate([
            value_fn(padded(batch.obs[lo:lo + chunk], chunk)).numpy()[:min(chunk, total - lo)]
            for lo in range(0, total, chunk)])                              # [T], before the step
        base = baseline_values(returns, batch.episode_lengths, self.cfg.baseline, values)
        adv = returns - base
        adv = normalise(adv) if self.cfg.normalize_returns else adv
        grads, loss, entropy, rho_sum, below = None, 0.0, 0.0, 0.0, 0.0
        for lo in range(0, total, chunk):
            hi = min(lo + chunk, total)
            g, chunk_loss, chunk_entropy, chunk_rho, chunk_below = chunk_grads(
                padded(batch.obs[lo:hi], chunk), padded(batch.actions[lo:hi].astype(np.int32), chunk),
                padded(adv[lo:hi].astype(np.float32), chunk), padded(returns[lo:hi].astype(np.float32), chunk),
                padded(behaviour[lo:hi].astype(np.float32), chunk),
                padded(np.ones(hi - lo, np.float32), chunk),
                tf.constant(off_policy), tf.constant((hi - lo) / total, tf.float32))
            grads = g if grads is None else [x + y for x, y in zip(grads, g)]
            loss, entropy = loss + float(chunk_loss), entropy + float(chunk_entropy)
            rho_sum, below = rho_sum + float(chunk_rho), below + float(chunk_below)
        if lr is not None:
            for optimizer in self._optimizers():
                optimizer.learning_rate.assign(lr)
        grad_norm = self._apply(grads)
        value_chunks = [(padded(batch.obs[lo:hi], chunk), padded(returns[lo:hi].astype(np.float32), chunk),
                         padded(np.ones(hi - lo, np.float32), chunk),
                         tf.constant((hi - lo) / total, tf.float32))
                        for lo, hi in ((lo, min(lo + chunk, total)) for lo in range(0, total, chunk))
                        ] if self.cfg.value_steps > 1 else []     # padded once, for every step
        for _ in range(self.cfg.value_steps - 1):     # the value baseline's further steps
            vgrads = None
            for args in value_chunks:
                g = value_grads(*args)
                vgrads = g if vgrads is None else [x + y for x, y in zip(vgrads, g)]
            self._apply_value(vgrads)
        self.num_updates += 1
        return {
            "learner/loss": loss,
            "learner/entropy": entropy,
            "learner/grad_norm": float(grad_norm),
            "learner/lr": float(self.optimizer.learning_rate.numpy()),
            "learner/batch_steps": float(total),
            "learner/baseline_mse": float(np.mean(np.square(returns - base))),   # before the step
            "learner/importance_weight_mean": rho_sum / total,     # 1 when not off_policy
            "learner/importance_weight_below_1": below / total,
            "time/learn_s": time.perf_counter() - start,
        }

    def _optimizers(self) -> list[keras.optimizers.Optimizer]:
        return [self.optimizer] + ([self.value_optimizer] if self.value_optimizer is not None else [])

    def get_weights(self) -> list[np.ndarray]:
        return [np.asarray(w) for w in self.model.get_weights()]

    def get_state(self) -> dict[str, Any]:
        """Policy weights, the value baseline's (if any), optimizer state and the update counter,
        as NumPy arrays. The optimizer state: Adam's step count and rate, then m and v of each
        policy array, then of each value array (the value network's Adam's own step count is
        num_updates x value_steps)."""
        value_moments = [] if self.value_optimizer is None else self.value_optimizer.variables[2:]
        return {
            "weights": self.get_weights(),
            "value_weights": ([] if self.value_model is None
                              else [np.asarray(w) for w in self.value_model.get_weights()]),
            "optimizer": [np.asarray(v.numpy()) for v in self.optimizer.variables + value_moments],
            "num_updates": self.num_updates,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        value_weights = state.get("value_weights", [])
        if bool(value_weights) != (self.value_model is not None):
            raise ValueError("checkpoint has " + ("a" if value_weights else "no") + " value "
                             "baseline network, the learner " + ("has" if self.value_model else "has none"))
        self.model.set_weights(state["weights"])
        if self.value_model is not None:
            self.value_model.set_weights(value_weights)
        variables = self.optimizer.variables + (
            [] if self.value_optimizer is None else self.value_optimizer.variables[2:])
        if len(variables) != len(state["optimizer"]):
            raise ValueError(f"checkpoint has {len(state['optimizer'])} optimizer variables, "
                             f"the optimizer has {len(variables)}")
        for var, value in zip(variables, state["optimizer"]):
            if var.name != "learning_rate":  # the config's lr wins (`labrun resume --set learner.lr=...`)
                var.assign(value)
        if self.value_optimizer is not None:   # exact when resumed with the value_steps it ran with
            self.value_optimizer.iterations.assign(
                int(self.optimizer.iterations.numpy()) * self.cfg.value_steps)
        self.num_updates = int(state["num_updates"])
