"""A fused LSTM for training the music model on CPUs: the same maths and weights as Keras's
``LSTM`` layer, with a hand-written backward pass.

Why: on a CPU, TensorFlow differentiates Keras's LSTM step by step, and each step's gradient
matmuls (``dz @ U^T`` with ``transpose_b``, ``h^T @ dz`` accumulated into a [H, 4H] sum) are
slow kernels for a batch of 8; at the course's size (LSTM 1024, batch 8, 100 characters) a
training step took 4.3 s on this project's 2-core machine. Here the backward pass runs in
[feature, batch] layout so that every per-step product is a plain ``U @ dz``, and the recurrent
kernel's gradient is one [H, T*B] x [T*B, 4H] product after the loop: 0.62 s per step, the
gradients equal to Keras's to float32 rounding (``tests/test_music.py`` checks both). On a GPU
Keras's layer runs cuDNN, which is faster still; ``MusicConfig.lstm_kernel`` chooses.

The time loop is unrolled when the function is traced, so the window length must be static.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


def lstm_sequence(xp: "tf.Tensor", recurrent: "tf.Tensor") -> "tf.Tensor":
    """Hidden states hs [T, B, H] of an LSTM from zero state, given each step's input
    projection xp [T, B, 4H] (x_t @ kernel + bias, gates in Keras's order i, f, g, o) and the
    recurrent kernel [H, 4H]; sigmoid gates, tanh cell. Differentiable in both arguments."""
    import tensorflow as tf

    @tf.custom_gradient
    def run(xp, recurrent):
        steps, batch, units = xp.shape[0], tf.shape(xp)[1], recurrent.shape[0]
        if steps is None:
            raise ValueError("lstm_sequence needs a static number of time steps")
        h = c = tf.zeros([batch, units])
        hs, cs, gates = [], [], []
        for t in range(steps):
            z = xp[t] + tf.matmul(h, recurrent)                                    # [B, 4H]
            i, f, g, o = tf.split(z, 4, axis=1)
            i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
            cs.append(c)
            c = f * c + i * g
            tc = tf.tanh(c)
            h = o * tc
            hs.append(h)
            gates.append(tf.stack([i, f, g, o, tc]))                                 # [5, B, H]
        out = tf.stack(hs)                                                          # [T, B, H]

        def grad(d_out):
            # [feature, batch] layout: the per-step product is U @ dz, no transposed operands.
            gate_t = tf.transpose(tf.stack(gates), [0, 1, 3, 2])                    # [T, 5, H, B]
            c_prev = tf.transpose(tf.stack(cs), [0, 2, 1])                          # [T, H, B]
            d_hs = tf.transpose(d_out, [0, 2, 1])                                   # [T, H, B]
            dh_next = dc_next = tf.zeros([units, batch])
            dzs = []
            for t in reversed(range(steps)):
                i, f, g, o, tc = tf.unstack(gate_t[t])
                dh = d_hs[t] + dh_next
                dc = dh * o * (1.0 - tc * tc) + dc_next
                dz = tf.concat([dc * g * i * (1.0 - i),                                # d pre-i
                                dc * c_prev[t] * f * (1.0 - f),                        # d pre-f
                                dc * i * (1.0 - g * g),                                # d pre-g
                                dh * tc * o * (1.0 - o)], axis=0)                      # d pre-o [4H, B]
                dzs.append(dz)
                dc_next = dc * f
                dh_next = tf.matmul(recurrent, dz)                                  # [H, B]
            d_xp = tf.transpose(tf.stack(dzs[::-1]), [0, 2, 1])                     # [T, B, 4H]
            h_prev = tf.concat([tf.zeros([1, batch, units]), out[:-1]], axis=0)     # [T, B, H]
            d_recurrent = tf.matmul(tf.reshape(h_prev, [-1, units]),
                                    tf.reshape(d_xp, [-1, 4 * units]), transpose_a=True)  # [H, 4H]
            return d_xp, d_recurrent

        return out, grad

    return run(xp, recurrent)


def fused_logits(model: "keras.Model", ids: "tf.Tensor") -> "tf.Tensor":
    """``model(ids)`` for ``supervised.music.build_music_model``'s Embedding -> LSTM -> Dense,
    computed with ``lstm_sequence``: character ids [B, T] -> logits [B, T, V]."""
    import tensorflow as tf

    embedding, kernel, recurrent, bias, dense_w, dense_b = model.trainable_variables
    table = tf.matmul(embedding, kernel) + bias                     # [V, 4H]: one row per character
    xp = tf.gather(table, tf.transpose(ids))                        # [T, B, 4H]
    hs = lstm_sequence(xp, tf.convert_to_tensor(recurrent))         # [T, B, H]
    return tf.transpose(tf.tensordot(hs, dense_w, 1) + dense_b, [1, 0, 2])
