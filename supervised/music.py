"""MusicLab: the course's music generation (lab 1, part 2) in TensorFlow, as one trial.

The model (Embedding -> LSTM -> Dense), its train step (Keras's LSTM, or the fused kernel of
``supervised/lstm.py`` on CPUs) and its checkpoints; the tunes, batches, sampling, judging,
metrics, texts and audio are ``MusicBase``'s (``supervised/music_base.py``, read it first),
shared with the PyTorch lab (``supervised/music_torch.py``).

TensorFlow is imported only where training needs it: generating from a checkpoint
(``labrun generate``) runs on NumPy and music21 alone and starts in a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervised.config import MusicConfig
from supervised.lstm import fused_logits
from supervised.models import load_training_state, save_training_state, visible_gpus
from supervised.music_base import Batches, MusicBase
from supervised.music_generation import CharRNN

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# ---------------------------------------------------------------------------------------- model


def build_music_model(vocab_size: int, embedding_dim: int, rnn_units: int, seed: int) -> keras.Model:
    """The course's model, character ids [B, T] -> next-character logits [B, T, V]:
    Embedding(V, embedding_dim) -> LSTM(rnn_units, return_sequences) -> Dense(V).
    The course makes the LSTM stateful for generation; here training sees independent windows
    and generation carries the state itself (``music_generation.CharRNN``). Seeded initialisers."""
    import keras

    init = iter(keras.initializers.GlorotUniform(seed=seed + i) for i in range(10))
    return keras.Sequential([
        keras.Input(shape=(None,), dtype="int32"),                                 # [B, T]
        keras.layers.Embedding(vocab_size, embedding_dim,
                               embeddings_initializer=keras.initializers.RandomUniform(seed=seed)),
        keras.layers.LSTM(rnn_units, return_sequences=True, recurrent_activation="sigmoid",
                          kernel_initializer=next(init), recurrent_initializer=next(init)),
        keras.layers.Dense(vocab_size, kernel_initializer=next(init)),             # [B, T, V]
    ], name="music_lstm")


def sequence_loss(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy of the next characters: targets [B, T] ids, logits [B, T, V]."""
    import tensorflow as tf

    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))


# ------------------------------------------------------------------------------------------ lab


class MusicLab(MusicBase):
    """The character LSTM in TensorFlow: built, it has loaded the tunes and built the Keras
    model; a checkpoint holds the weights, the optimizer's state, the counters and (MusicBase)
    the vocabulary."""

    def __init__(self, cfg: MusicConfig, seed: int = 0):
        import keras
        import tensorflow as tf

        super().__init__(cfg, seed)
        self.gpus = visible_gpus()
        self.model = build_music_model(len(self.vocab), cfg.embedding_dim, cfg.rnn_units, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
        self.optimizer.build(self.model.trainable_variables)
        self.fused = cfg.lstm_kernel == "fused" or (cfg.lstm_kernel == "auto" and not self.gpus)
        ids = tf.TensorSpec([None, cfg.seq_length], tf.int32)
        # A closure rather than a bound method: Ray adds a keyword to actor methods.
        self._train_step = tf.function(lambda x, y: self._step(x, y), input_signature=(ids, ids))

    def _step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """One Adam step on inputs x [B, T] and next characters y [B, T]; the batch's loss."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits = fused_logits(self.model, x) if self.fused else self.model(x, training=True)
            loss = sequence_loss(y, logits)                                         # logits [B, T, V]
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def fit(self, batches: Batches) -> float:
        import tensorflow as tf

        total = tf.zeros([])                                      # read once, at the end
        for x, y in batches:
            total += self._train_step(x, y)
        return float(total)

    def describe(self) -> str:
        return ("LSTM: the fused CPU kernel (supervised/lstm.py)" if self.fused
                else "LSTM: Keras's layer (cuDNN's kernel on a GPU)")

    def char_rnn(self) -> CharRNN:
        return CharRNN.from_weights(self.model.get_weights())

    def save_model(self, folder: str | Path, counters: dict[str, Any]) -> None:
        save_training_state(folder, self.model, self.optimizer, counters)

    def restore_model(self, folder: str | Path) -> dict[str, Any]:
        return load_training_state(folder, self.model, self.optimizer)
