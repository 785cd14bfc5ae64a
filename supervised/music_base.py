"""What the two music labs share, framework-free: the tunes, the batches, sampling and judging
tunes, the metrics, texts, audio and the checkpoint's vocabulary.

Read it top to bottom: the tunes become one text of character ids (``supervised/tunes.py``); an
LSTM learns to predict each next character (the subclass's model); every few epochs a batch-1
copy of it in NumPy samples new text one character at a time (``supervised/music_generation.py``);
the tunes cut from that text are checked twice: leniently with music21 (parse, at least one note,
MIDI: ``supervised/music_check.py``) and strictly (every token understood:
``supervised/abc_strict.py``); the first tune music21 finds valid is played
(``supervised/music_audio.py``); checkpoints hold everything generation needs, vocabulary
included. A subclass, ``MusicLab`` (TensorFlow, ``supervised/music.py``) or ``TorchMusicLab``
(PyTorch, ``supervised/music_torch.py``), brings the model::

    fit(batches)                 -> summed loss       # one Adam step per (x [B, T], y [B, T])
    char_rnn()                   -> CharRNN           # its weights, for sampling in NumPy
    save_model(folder, counters); restore_model(folder) -> counters
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from supervised.abc_strict import check_strict
from supervised.config import MusicConfig
from supervised.files import atomic_write
from supervised.lab import Lab
from supervised.music_audio import SAMPLE_RATE, score_notes, synthesize
from supervised.music_check import check_tune, parse_tune
from supervised.music_generation import VOCAB_FILE, CharRNN, sample_songs
from supervised.tunes import build_vocab, get_batch, load_songs, vectorize

Batches = Iterator[tuple[np.ndarray, np.ndarray]]   # (inputs x [B, T], next characters y [B, T]) int32


class MusicBase(Lab):
    """The ``Lab`` of the character LSTM, model left out: built, it has loaded the tunes (see
    ``load_songs``); an epoch is steps_per_epoch steps, maybe then a sample; a checkpoint holds
    the model's state (the subclass's), the vocabulary and the latest sample; ``texts`` gives
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
        self.cfg, self.seed = cfg, seed
        self.source, songs = load_songs(cfg.corpus, cfg.data_path, max_songs=cfg.max_songs)
        self.vocab = build_vocab(songs)
        self.text_ids = vectorize("\n\n".join(songs), self.vocab)                   # [N]
        self.epoch = 0  # finished epochs
        # {"epoch", "tunes": [[abc, complete, valid, reason, strict_valid, strict_reason]]}
        self.sample: dict[str, Any] | None = None
        self._audio: tuple[int, dict[str, tuple[np.ndarray, int]]] | None = None

    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs

    # ------------------------------------------------------------------- the subclass's part

    def fit(self, batches: Batches) -> float:
        """One Adam step per batch on the mean cross-entropy of the next characters; the sum of
        the batches' losses."""
        raise NotImplementedError

    def char_rnn(self) -> CharRNN:
        """The model's current weights as the NumPy sampler's."""
        raise NotImplementedError

    def save_model(self, folder: str | Path, counters: dict[str, Any]) -> None:
        """The model's and the optimizer's state, and ``counters``, into ``folder``."""
        raise NotImplementedError

    def restore_model(self, folder: str | Path) -> dict[str, Any]:
        """What ``save_model`` wrote, back into the model and the optimizer; the counters."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ the epoch

    def train_epoch(self) -> dict[str, float]:
        """steps_per_epoch steps on random windows (a function of (seed, epoch) alone, so a
        resumed run sees the same batches), then a sample if due; METRICS."""
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, self.epoch])
        cfg = self.cfg
        batches = (get_batch(self.text_ids, cfg.seq_length, cfg.batch_size, rng)      # [B, T] each
                   for _ in range(cfg.steps_per_epoch))
        loss = float(self.fit(batches)) / cfg.steps_per_epoch
        self.epoch += 1
        if self.epoch == 1 or self.epoch % cfg.generate_every == 0 or self.epoch == self.total_epochs:
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
        tunes = sample_songs(self.char_rnn(), self.vocab, cfg.generate_songs, length=cfg.generation_length,
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

    # ---------------------------------------------------------------------------- checkpoints

    def save(self, folder: str | Path) -> None:
        cfg = self.cfg
        self.save_model(folder, {
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
        counters = self.restore_model(folder)
        self.epoch, self.sample, self._audio = int(counters["epoch"]), counters.get("sample"), None
        for tune in (self.sample or {}).get("tunes", []):
            if len(tune) == 4:  # saved before the strict judge: judged now
                tune += check_strict(tune[0])
