"""MusicLab: the course's music generation (lab 1, part 2) as one trial.

Read it top to bottom: the tunes become one text of character ids (``supervised/tunes.py``); an
LSTM learns to predict each next character; every few epochs a batch-1 copy of it in NumPy
samples new text one character at a time (``supervised/music_generation.py``); the tunes cut
from that text are checked twice: leniently with music21 (parse, at least one note, MIDI:
``supervised/music_check.py``) and strictly (every token understood:
``supervised/abc_strict.py``); the first tune music21 finds valid is played
(``supervised/music_audio.py``); checkpoints hold everything generation needs, vocabulary
included.

TensorFlow is imported only where training needs it: generating from a checkpoint
(``labrun generate``) runs on NumPy and music21 alone and starts in a second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from supervised.abc_strict import check_strict
from supervised.config import MusicConfig
from supervised.files import atomic_write
from supervised.lab import Lab
from supervised.lstm import fused_logits
from supervised.models import load_training_state, save_training_state, visible_gpus
from supervised.music_audio import SAMPLE_RATE, score_notes, synthesize
from supervised.music_check import check_tune, parse_tune
from supervised.music_generation import VOCAB_FILE, sample_songs
from supervised.tunes import build_vocab, get_batch, load_songs, vectorize

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


class MusicLab(Lab):
    """The ``Lab`` of the character LSTM: built, it has loaded the tunes (see ``load_songs``) and
    built the model; an epoch is steps_per_epoch steps, maybe then a sample; a checkpoint holds
    the weights, the optimizer's state, the vocabulary and the latest sample; ``texts`` gives
    the latest sampled tunes, ``audio`` the first valid one played.

    The generate/* metrics come from a sample taken after epoch 1, every generate_every epochs
    and after the last epoch; between samples they repeat the latest one's values (never NaN),
    and generate/epoch says which epoch that sample was taken after. generate/valid_share is
    music21's lenient verdict, generate/strict_valid_share the strict judge's.
    """

    METRICS = ("train/loss", "train/perplexity", "generate/valid_share", "generate/strict_valid_share",
               "generate/complete_share", "generate/songs", "generate/epoch", "counters/epoch",
               "time/epoch_s")
    IMAGES = ()

    def __init__(self, cfg: MusicConfig, seed: int = 0):
        import keras
        import tensorflow as tf

        self.cfg, self.seed = cfg, seed
        self.gpus = visible_gpus()
        self.source, songs = load_songs(cfg.corpus, cfg.data_path, max_songs=cfg.max_songs)
        self.vocab = build_vocab(songs)
        self.text_ids = vectorize("\n\n".join(songs), self.vocab)                   # [N]
        self.model = build_music_model(len(self.vocab), cfg.embedding_dim, cfg.rnn_units, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
        self.optimizer.build(self.model.trainable_variables)
        self.epoch = 0  # finished epochs
        # {"epoch", "tunes": [[abc, complete, valid, reason, strict_valid, strict_reason]]}
        self.sample: dict[str, Any] | None = None
        self._audio: tuple[int, dict[str, tuple[np.ndarray, int]]] | None = None
        self.fused = cfg.lstm_kernel == "fused" or (cfg.lstm_kernel == "auto" and not self.gpus)
        ids = tf.TensorSpec([None, cfg.seq_length], tf.int32)
        # A closure rather than a bound method: Ray adds a keyword to actor methods.
        self._train_step = tf.function(lambda x, y: self._step(x, y), input_signature=(ids, ids))

    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs

    def _step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """One Adam step on inputs x [B, T] and next characters y [B, T]; the batch's loss."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits = fused_logits(self.model, x) if self.fused else self.model(x, training=True)
            loss = sequence_loss(y, logits)                                         # logits [B, T, V]
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def train_epoch(self) -> dict[str, float]:
        """steps_per_epoch steps on random windows (a function of (seed, epoch) alone, so a
        resumed run sees the same batches), then a sample if due; METRICS."""
        import tensorflow as tf

        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, self.epoch])
        total = tf.zeros([])
        for _ in range(self.cfg.steps_per_epoch):
            x, y = get_batch(self.text_ids, self.cfg.seq_length, self.cfg.batch_size, rng)  # [B, T]
            total += self._train_step(x, y)
        loss = float(total) / self.cfg.steps_per_epoch
        self.epoch += 1
        if self.epoch == 1 or self.epoch % self.cfg.generate_every == 0 or self.epoch == self.total_epochs:
            self.generate()
        tunes = self.sample["tunes"]
        return {
            "train/loss": loss,
            "train/perplexity": float(np.exp(loss)),
            "generate/valid_share": float(np.mean([t[2] for t in tunes])),
            "generate/strict_valid_share": float(np.mean([t[4] for t in tunes])),
            "generate/complete_share": float(np.mean([t[1] for t in tunes])),
            "generate/songs": float(len(tunes)),
            "generate/epoch": float(self.sample["epoch"]),
            "counters/epoch": float(self.epoch),
            "time/epoch_s": time.perf_counter() - start,
        }

    def generate(self) -> None:
        """Samples generate_songs tunes from the current weights and checks each, leniently
        (music21) and strictly."""
        cfg = self.cfg
        tunes = sample_songs(self.model, self.vocab, cfg.generate_songs, length=cfg.generation_length,
                             temperature=cfg.temperature, start_string=cfg.start_string,
                             seed=[self.seed, self.epoch])
        self.sample = {"epoch": self.epoch,
                       "tunes": [[t.abc, t.complete, *check_tune(t.abc), *check_strict(t.abc)]
                                 for t in tunes]}

    def images(self) -> dict[str, np.ndarray]:
        return {}

    def texts(self) -> dict[str, str]:
        """The latest sampled tunes as Markdown (ABC in code blocks); {} before the first."""
        if self.sample is None:
            return {}
        tunes = self.sample["tunes"]
        parts = [f"after epoch {self.sample['epoch']}: {sum(t[2] for t in tunes)} of {len(tunes)} "
                 f"tunes valid (music21), {sum(t[4] for t in tunes)} strictly valid"]
        for k, (abc, complete, _, reason, _, strict) in enumerate(tunes, 1):
            parts.append(f"**tune {k}**: music21: {reason}; strict: {strict}"
                         f"{'' if complete else ' (cut off)'}\n\n"
                         + "\n".join("    " + line for line in abc.splitlines()))
        return {"music/generated": "\n\n".join(parts)}

    def audio(self) -> dict[str, tuple[np.ndarray, int]]:
        """The first valid tune of the latest sample, played by the built-in synthesiser:
        {name: (float32 samples [N] in [-1, 1], sample rate)}; {} if none is valid."""
        if self.sample is None:
            return {}
        if self._audio is None or self._audio[0] != self.sample["epoch"]:
            valid = [abc for abc, _, ok, *_ in self.sample["tunes"] if ok]
            played = {}
            if valid:
                played["music/first_valid"] = (synthesize(score_notes(parse_tune(valid[0]))), SAMPLE_RATE)
            self._audio = (self.sample["epoch"], played)  # played once per sample
        return self._audio[1]

    def save(self, folder: str | Path) -> None:
        cfg = self.cfg
        save_training_state(folder, self.model, self.optimizer, {
            "epoch": self.epoch, "seed": self.seed, "source": self.source,
            "embedding_dim": cfg.embedding_dim, "rnn_units": cfg.rnn_units,
            "generation": {"start_string": cfg.start_string, "temperature": cfg.temperature,
                           "length": cfg.generation_length},
            "sample": self.sample})
        atomic_write(Path(folder) / VOCAB_FILE, json.dumps(self.vocab))

    def restore(self, folder: str | Path) -> None:
        saved = json.loads((Path(folder) / VOCAB_FILE).read_text())
        if saved != self.vocab:
            raise ValueError(f"{folder}: the checkpoint's vocabulary ({len(saved)} characters) is "
                             f"not this corpus's ({len(self.vocab)}): a different corpus?")
        counters = load_training_state(folder, self.model, self.optimizer)
        self.epoch, self.sample, self._audio = int(counters["epoch"]), counters.get("sample"), None
        for tune in (self.sample or {}).get("tunes", []):
            if len(tune) == 4:  # saved before the strict judge: judged now
                tune += check_strict(tune[0])
