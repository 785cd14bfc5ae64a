"""MusicLab: the course's music generation (lab 1, part 2) as one trial.

Read it top to bottom: the tunes become one text of character ids (``supervised/tunes.py``); an
LSTM learns to predict each next character; a batch-1 copy of it in NumPy samples new text one
character at a time, carrying its state; the tunes cut from that text are checked with music21
(parse, at least one note, MIDI) and played (an external MIDI synthesiser, else a small
additive one here); checkpoints hold everything generation needs, vocabulary included.

TensorFlow is imported only where training needs it: generating from a checkpoint
(``labrun generate``) runs on NumPy and music21 alone and starts in a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from supervised.tunes import build_vocab, extract_songs, get_batch, load_songs, song_title, vectorize
from supervised.config import MusicConfig
from supervised.lstm import fused_logits
from supervised.models import (STATE_FILE, WEIGHTS_FILE, load_training_state,
                               save_training_state)

VOCAB_FILE = "vocab.json"
SAMPLE_RATE = 22_050
RENDER_TIMEOUT_S = 60

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# ---------------------------------------------------------------------------------------- model


def build_music_model(vocab_size: int, embedding_dim: int, rnn_units: int, seed: int) -> keras.Model:
    """The course's model, character ids [B, T] -> next-character logits [B, T, V]:
    Embedding(V, embedding_dim) -> LSTM(rnn_units, return_sequences) -> Dense(V).
    The course makes the LSTM stateful for generation; here training sees independent windows
    and generation carries the state itself (``CharRNN``). Seeded initialisers."""
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


# ----------------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class CharRNN:
    """The model's weights in NumPy, stepped one character at a time (batch 1).

    An LSTM step is z = x K + h R + b, split into the gates i, f, g, o (Keras's order);
    c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c'). With x the embedding of
    one character, x K + b is a row of ``inputs`` = E K + b, computed once.
    """

    inputs: np.ndarray      # [V, 4H]: embedding [V, E] @ kernel [E, 4H] + bias [4H]
    recurrent: np.ndarray   # [H, 4H]
    dense_w: np.ndarray     # [H, V]
    dense_b: np.ndarray     # [V]

    @staticmethod
    def from_weights(weights: Sequence[np.ndarray]) -> "CharRNN":
        """From ``model.get_weights()`` of ``build_music_model`` (or a checkpoint's arrays)."""
        embedding, kernel, recurrent, bias, dense_w, dense_b = (np.asarray(w, np.float32) for w in weights)
        return CharRNN(embedding @ kernel + bias, recurrent, dense_w, dense_b)

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def step(self, char: int, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logits [V], h [H], c [H]) after reading character id ``char`` in state (h, c)."""
        z = self.inputs[char] + h @ self.recurrent                                  # [4H]
        i, f, g, o = np.split(z, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        return h @ self.dense_w + self.dense_b, h, c


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def generate_text(model: CharRNN | keras.Model, vocab: list[str], start_string: str, length: int,
                  temperature: float = 1.0, seed: int | Sequence[int] = 0) -> str:
    """``start_string`` and ``length`` characters sampled after it, each from
    softmax(logits / temperature) given everything before (the LSTM state carries it)."""
    rnn = model if isinstance(model, CharRNN) else CharRNN.from_weights(model.get_weights())
    index = {char: i for i, char in enumerate(vocab)}
    unknown = sorted(set(start_string) - set(index))
    if not start_string or unknown:
        raise ValueError(f"start_string {start_string!r}: needs at least one character, all in the "
                         f"vocabulary (not in it: {unknown})")
    rng = np.random.default_rng(seed)
    h = c = np.zeros(rnn.units, np.float32)
    for char in start_string:
        logits, h, c = rnn.step(index[char], h, c)
    out = []
    for _ in range(length):
        z = logits.astype(np.float64) / temperature
        p = np.exp(z - z.max())
        char = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[char])
        logits, h, c = rnn.step(char, h, c)
    return start_string + "".join(out)


@dataclass(frozen=True)
class Tune:
    abc: str
    complete: bool          # a blank line (or the next X: header) ended it within the sample


def sample_songs(model: CharRNN | keras.Model, vocab: list[str], n: int, *, length: int = 1000,
                 temperature: float = 1.0, start_string: str = "X", seed: int | Sequence[int] = 0,
                 max_attempts: int | None = None) -> list[Tune]:
    """``n`` tunes: the complete tunes of successive samples (seeds [*seed, attempt]); if
    ``max_attempts`` (default n + 2) samples give fewer, the rest are filled with the samples'
    unfinished last tunes, marked ``complete=False``."""
    rnn = model if isinstance(model, CharRNN) else CharRNN.from_weights(model.get_weights())
    seed = [seed] if isinstance(seed, int) else list(seed)
    done: list[Tune] = []
    cut: list[Tune] = []
    for attempt in range(max_attempts or n + 2):
        text = generate_text(rnn, vocab, start_string, length, temperature, [*seed, attempt])
        complete = extract_songs(text, complete_only=True)
        done += [Tune(song, True) for song in complete]
        everything = extract_songs(text)
        if len(everything) > len(complete):
            cut.append(Tune(everything[-1], False))
        if len(done) >= n:
            break
    return (done + cut)[:n]


# ------------------------------------------------------------------------------------- validity


class InvalidTune(ValueError):
    """A tune music21 cannot turn into notes and MIDI; the message says why."""


def parse_tune(abc: str):
    """The music21 score of one ABC tune (the first, if the text holds several); InvalidTune if
    it does not parse or has no notes."""
    import warnings

    from music21 import converter, stream

    if not abc.strip():
        raise InvalidTune("empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parseData(abc, format="abc")  # parseData: never read as a file name
        if isinstance(score, stream.Opus):
            score = score.scores[0]
        notes = len(score.flatten().notes)
    except Exception as err:  # music21 raises anything from its ABC handler on bad text
        raise InvalidTune(f"music21 cannot parse it: {_first_line(err)}") from None
    if notes == 0:
        raise InvalidTune("no notes")
    unshare_marks(score)
    return score


def unshare_marks(score) -> int:
    """Give each measure its own copy of a time or key signature or tempo it shares with another;
    returns how many were copied.

    music21's ABC reader puts one TimeSignature object into two measures when it splits an
    overfull bar (one note too many for the metre: common in hand transcriptions and in
    generated tunes alike); its MIDI writer then fails, inserting that object twice into its
    conductor track ("... is already found in this Stream"). One copy per measure is what a
    well-formed score has, and the MIDI is then written.
    """
    import copy

    seen: set[int] = set()
    copied = 0
    for container in score.recurse(streamsOnly=True, includeSelf=True):
        for mark in list(container.getElementsByClass(("TimeSignature", "KeySignature", "MetronomeMark"))):
            if id(mark) in seen:
                container.replace(mark, copy.deepcopy(mark))
                copied += 1
            else:
                seen.add(id(mark))
    return copied


def midi_bytes(score) -> bytes:
    """A standard MIDI file of the score; InvalidTune if music21 cannot write one. A score whose
    repeats music21 cannot unfold is changed in place to play straight through (``drop_repeats``)."""
    from music21.midi import translate
    from music21.repeat import ExpanderException

    try:
        try:
            return translate.music21ObjectToMidiFile(score).writestr()
        except ExpanderException:
            # Repeats music21 cannot unfold (a |: never closed, a :: that opens a section with
            # no end): ABC players play such a section once; the MIDI here then plays the whole
            # tune straight through, every bar once.
            drop_repeats(score)
            return translate.music21ObjectToMidiFile(score).writestr()
    except Exception as err:
        raise InvalidTune(f"MIDI writing failed: {_first_line(err)}") from None


def drop_repeats(score) -> int:
    """Make every repeat barline of the score a plain one and remove its first/second-ending
    brackets, in place: the score then plays straight through. Returns how many were changed."""
    from music21 import bar

    changed = 0
    for measure in score.recurse().getElementsByClass("Measure"):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(measure, side), bar.Repeat):
                setattr(measure, side, bar.Barline("regular"))
                changed += 1
    for container in score.recurse(streamsOnly=True, includeSelf=True):
        for bracket in list(container.getElementsByClass("RepeatBracket")):
            container.remove(bracket)
            changed += 1
    return changed


def check_tune(abc: str) -> tuple[bool, str]:
    """(True, 'ok') if music21 parses the tune, finds a note and writes MIDI; else (False, why)."""
    try:
        midi_bytes(parse_tune(abc))
    except InvalidTune as why:
        return False, str(why)
    return True, "ok"


def _first_line(err: Exception) -> str:
    """The error's type and first sentence, at most 100 characters: a reason for a table."""
    sentence = re.split(r"(?<=\.)\s|\n", str(err).strip(), maxsplit=1)[0]
    if len(sentence) > 100:
        sentence = sentence[:99] + "…"
    return f"{type(err).__name__}: {sentence}".rstrip(": ")


# ------------------------------------------------------------------------------------ rendering


def score_notes(score, max_seconds: float = 120.0) -> list[tuple[float, float, float]]:
    """(frequency Hz, start s, duration s) of every sounding pitch, timed by the score's tempo
    (music21's default when the tune gives none); grace notes skipped; cut at ``max_seconds``."""
    notes = []
    for entry in score.flatten().secondsMap:
        element, start, duration = entry["element"], entry["offsetSeconds"], entry["durationSeconds"]
        if not hasattr(element, "pitches") or duration <= 0 or start >= max_seconds:
            continue  # rests have no pitches; clefs, keys and meters no duration
        for pitch in element.pitches:
            notes.append((float(pitch.frequency), float(start), float(min(duration, max_seconds - start))))
    return notes


def synthesize(notes: Sequence[tuple[float, float, float]], rate: int = SAMPLE_RATE) -> np.ndarray:
    """Additive synthesis, float32 [N] in [-1, 1], N = rate * (last note's end): each note is a
    fundamental with two overtones (1, 1/2, 1/4), a 10 ms attack, a decay and a 20 ms release."""
    end = max((start + dur for _, start, dur in notes), default=0.0)
    out = np.zeros(int(round(end * rate)), np.float64)
    for freq, start, dur in notes:
        lo, n = int(round(start * rate)), int(round(dur * rate))
        n = min(n, len(out) - lo)
        if n <= 0:
            continue
        t = np.arange(n) / rate                                                     # [n] s
        left = (n - np.arange(n)) / rate                                            # [n] s to the end
        tone = sum(a * np.sin(2 * np.pi * k * freq * t) for k, a in ((1, 1.0), (2, 0.5), (3, 0.25)))
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-2.0 * t) * np.minimum(1.0, left / 0.02)
        out[lo:lo + n] += tone * envelope
    peak = np.abs(out).max() if len(out) else 0.0
    return (out * (0.8 / peak) if peak > 0 else out).astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """16-bit mono WAV of float samples [N] in [-1, 1] (the standard library's ``wave``)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
               "/usr/share/soundfonts/default.sf2")


def find_renderer() -> str:
    """'timidity' or 'fluidsynth' (with a General MIDI sound font) if on PATH, else 'builtin'."""
    if shutil.which("timidity"):
        return "timidity"
    if shutil.which("fluidsynth") and any(Path(f).is_file() for f in _SOUNDFONTS):
        return "fluidsynth"
    return "builtin"


def render_wav(score, midi_file: Path, wav_file: Path, renderer: str) -> str:
    """Writes ``wav_file`` from the MIDI file with ``renderer``, or from the score with the
    built-in synthesiser if that is the renderer or the external one fails; the one used."""
    if renderer == "timidity":
        freepats = "/etc/timidity/freepats.cfg"
        cmd = ["timidity", *(["-c", freepats] if Path(freepats).is_file() else []),
               "-Ow", "-s", str(SAMPLE_RATE), "-o", str(wav_file), str(midi_file)]
    elif renderer == "fluidsynth":
        font = next(f for f in _SOUNDFONTS if Path(f).is_file())
        cmd = ["fluidsynth", "-ni", "-F", str(wav_file), "-r", str(SAMPLE_RATE), font, str(midi_file)]
    else:
        cmd = None
    if cmd is not None:
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=RENDER_TIMEOUT_S)
            if done.returncode == 0 and wav_file.is_file() and wav_file.stat().st_size > 44:
                return renderer
        except (OSError, subprocess.TimeoutExpired):
            pass
    write_wav(wav_file, synthesize(score_notes(score)))
    return "builtin"


# ------------------------------------------------------------------------------------------ lab


class MusicLab:
    """Call sequence::

        lab = MusicLab(cfg, seed=0)        # loads the tunes (see load_songs), builds the model
        lab.restore(folder)                # optional: continue from a checkpoint folder
        while lab.epoch < lab.total_epochs:
            metrics = lab.train_epoch()    # steps_per_epoch steps, maybe a sample; flat floats
            lab.save(folder)               # weights, optimizer, vocabulary, latest sample
        lab.texts(), lab.audio()           # the latest sampled tunes, the first valid one played

    The generate/* metrics come from a sample taken after epoch 1, every generate_every epochs
    and after the last epoch; between samples they repeat the latest one's values (never NaN),
    and generate/epoch says which epoch that sample was taken after.
    """

    METRICS = ("train/loss", "train/perplexity", "generate/valid_share", "generate/complete_share",
               "generate/songs", "generate/epoch", "counters/epoch", "time/epoch_s")
    IMAGES = ()

    def __init__(self, cfg: MusicConfig, seed: int = 0):
        import keras
        import tensorflow as tf

        from rl.learner import enable_memory_growth

        self.cfg, self.seed = cfg, seed
        self.gpus = enable_memory_growth()
        self.source, songs = load_songs(cfg.corpus, cfg.data_path, max_songs=cfg.max_songs)
        self.vocab = build_vocab(songs)
        self.text_ids = vectorize("\n\n".join(songs), self.vocab)                   # [N]
        self.model = build_music_model(len(self.vocab), cfg.embedding_dim, cfg.rnn_units, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
        self.optimizer.build(self.model.trainable_variables)
        self.epoch = 0  # finished epochs
        self.sample: dict[str, Any] | None = None  # {"epoch", "tunes": [[abc, complete, valid, reason]]}
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
            "generate/complete_share": float(np.mean([t[1] for t in tunes])),
            "generate/songs": float(len(tunes)),
            "generate/epoch": float(self.sample["epoch"]),
            "counters/epoch": float(self.epoch),
            "time/epoch_s": time.perf_counter() - start,
        }

    def generate(self) -> None:
        """Samples generate_songs tunes from the current weights and checks each."""
        cfg = self.cfg
        tunes = sample_songs(self.model, self.vocab, cfg.generate_songs, length=cfg.generation_length,
                             temperature=cfg.temperature, start_string=cfg.start_string,
                             seed=[self.seed, self.epoch])
        self.sample = {"epoch": self.epoch,
                       "tunes": [[t.abc, t.complete, *check_tune(t.abc)] for t in tunes]}

    def images(self) -> dict[str, np.ndarray]:
        return {}

    def texts(self) -> dict[str, str]:
        """The latest sampled tunes as Markdown (ABC in code blocks); {} before the first."""
        if self.sample is None:
            return {}
        tunes = self.sample["tunes"]
        parts = [f"after epoch {self.sample['epoch']}: {sum(t[2] for t in tunes)} of {len(tunes)} "
                 f"tunes valid"]
        for k, (abc, complete, _, reason) in enumerate(tunes, 1):
            parts.append(f"**tune {k}**: {reason}{'' if complete else ' (cut off)'}\n\n"
                         + "\n".join("    " + line for line in abc.splitlines()))
        return {"music/generated": "\n\n".join(parts)}

    def audio(self) -> dict[str, tuple[np.ndarray, int]]:
        """The first valid tune of the latest sample, played by the built-in synthesiser:
        {name: (float32 samples [N] in [-1, 1], sample rate)}; {} if none is valid."""
        if self.sample is None:
            return {}
        if self._audio is None or self._audio[0] != self.sample["epoch"]:
            valid = [abc for abc, _, ok, _ in self.sample["tunes"] if ok]
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
        _write_text(Path(folder) / VOCAB_FILE, json.dumps(self.vocab))

    def restore(self, folder: str | Path) -> None:
        saved = json.loads((Path(folder) / VOCAB_FILE).read_text())
        if saved != self.vocab:
            raise ValueError(f"{folder}: the checkpoint's vocabulary ({len(saved)} characters) is "
                             f"not this corpus's ({len(self.vocab)}): a different corpus?")
        counters = load_training_state(folder, self.model, self.optimizer)
        self.epoch, self.sample, self._audio = int(counters["epoch"]), counters.get("sample"), None


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------ generating from a checkpoint


class CheckpointNotFound(FileNotFoundError):
    """No music checkpoint where one was looked for; the message says where and why."""


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder to generate from: ``path`` itself if it is one, else the latest
    (by epoch) under it, e.g. in a ``labrun train`` run folder or one of its trial folders."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointNotFound(f"{path}: no such folder")
    if _is_checkpoint(path):
        return path
    found = [p.parent for p in path.rglob(VOCAB_FILE) if _is_checkpoint(p.parent)]
    if not found:
        raise CheckpointNotFound(f"{path}: no music checkpoint in it (a folder with {WEIGHTS_FILE}, "
                                 f"{STATE_FILE} and {VOCAB_FILE}); train one with "
                                 f"`labrun train configs/music.yaml`")
    trials = sorted({p.parent for p in found})
    if len(trials) > 1:
        raise CheckpointNotFound(f"{path}: checkpoints of {len(trials)} trials ("
                                 f"{', '.join(t.name for t in trials[:3])}...); name one trial folder")
    return max(found, key=lambda p: (json.loads((p / STATE_FILE).read_text()).get("epoch", 0),
                                     p.stat().st_mtime))


def _is_checkpoint(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (WEIGHTS_FILE, STATE_FILE, VOCAB_FILE))


def load_generator(folder: str | Path) -> tuple[CharRNN, list[str], dict[str, Any]]:
    """(model, vocabulary, saved counters) of a checkpoint folder, without TensorFlow."""
    folder = Path(folder)
    vocab = json.loads((folder / VOCAB_FILE).read_text())
    counters = json.loads((folder / STATE_FILE).read_text())
    with np.load(folder / WEIGHTS_FILE) as data:
        rnn = CharRNN.from_weights([data[f"weights_{i}"] for i in range(6)])
    if rnn.inputs.shape[0] != len(vocab):
        raise ValueError(f"{folder}: {rnn.inputs.shape[0]} embeddings for {len(vocab)} characters")
    return rnn, vocab, counters


@dataclass(frozen=True)
class SongReport:
    name: str               # song_01
    title: str              # its T: line ('' if none)
    valid: bool
    reason: str             # 'ok' or why not
    complete: bool
    files: tuple[str, ...]  # the files written, by name
    renderer: str | None    # what played the .wav (None: no .wav)


def write_songs(folder: str | Path, tunes: Sequence[Tune], renderer: str | None = None) -> list[SongReport]:
    """For each tune: song_XX.abc, and if it is valid song_XX.mid and song_XX.wav (played by
    ``renderer``, default ``find_renderer()``). One report per tune."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    renderer = renderer or find_renderer()
    reports = []
    for k, tune in enumerate(tunes, 1):
        name = f"song_{k:02d}"
        (folder / f"{name}.abc").write_text(tune.abc + "\n")
        files, used = [f"{name}.abc"], None
        try:
            score = parse_tune(tune.abc)
            (folder / f"{name}.mid").write_bytes(midi_bytes(score))
            files.append(f"{name}.mid")
            valid, reason = True, "ok"
            used = render_wav(score, folder / f"{name}.mid", folder / f"{name}.wav", renderer)
            files.append(f"{name}.wav")
        except InvalidTune as why:
            valid, reason = False, str(why)
        reports.append(SongReport(name, song_title(tune.abc), valid, reason, tune.complete,
                                  tuple(files), used))
    return reports
