"""Generating music: the trained LSTM stepped in NumPy one character at a time, tunes cut from
the sampled text, and ``labrun generate``'s path from a checkpoint folder to song files.

A checkpoint (``MusicLab.save``) holds everything generation needs, the vocabulary included;
reading it needs NumPy alone, so ``labrun generate`` starts in a second, without TensorFlow.
Each tune written is checked leniently (``supervised/music_check.py``) and, if valid, played
(``supervised/music_audio.py``); it is also judged strictly (``supervised/abc_strict.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from supervised.abc_strict import check_strict
from supervised.models import STATE_FILE, TORCH_WEIGHTS_FILE, WEIGHTS_FILE
from supervised.music_audio import find_renderer, render_wav
from supervised.music_check import InvalidTune, midi_bytes, parse_tune
from supervised.tunes import extract_songs, song_title

VOCAB_FILE = "vocab.json"  # in a music checkpoint, beside the model's files

if TYPE_CHECKING:
    import keras

# ----------------------------------------------------------------------------------- sampling


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

    @staticmethod
    def from_torch_state(state: Mapping[str, np.ndarray]) -> "CharRNN":
        """From the state dict of the PyTorch model (``supervised/music_torch.MusicLSTM``, as
        NumPy arrays): PyTorch's LSTM has the same gates in the same order (i, f, g, o), its
        matrices transposed and two biases where Keras has one."""
        return CharRNN.from_weights([
            state["embedding.weight"], state["lstm.weight_ih_l0"].T, state["lstm.weight_hh_l0"].T,
            state["lstm.bias_ih_l0"] + state["lstm.bias_hh_l0"], state["fc.weight"].T, state["fc.bias"]])

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
        raise CheckpointNotFound(f"{path}: no music checkpoint in it (a folder with {WEIGHTS_FILE} "
                                 f"or {TORCH_WEIGHTS_FILE}, {STATE_FILE} and {VOCAB_FILE}); train one with "
                                 f"`labrun train configs/music.yaml`")
    trials = sorted({p.parent for p in found})
    if len(trials) > 1:
        raise CheckpointNotFound(f"{path}: checkpoints of {len(trials)} trials ("
                                 f"{', '.join(t.name for t in trials[:3])}...); name one trial folder")
    return max(found, key=lambda p: (json.loads((p / STATE_FILE).read_text()).get("epoch", 0),
                                     p.stat().st_mtime))


def _is_checkpoint(folder: Path) -> bool:
    """A music checkpoint of either framework: its model's file, the counters, the vocabulary."""
    return ((folder / WEIGHTS_FILE).is_file() or (folder / TORCH_WEIGHTS_FILE).is_file()) and all(
        (folder / name).is_file() for name in (STATE_FILE, VOCAB_FILE))


def load_generator(folder: str | Path) -> tuple[CharRNN, list[str], dict[str, Any]]:
    """(model, vocabulary, saved counters) of a checkpoint folder, without TensorFlow (a PyTorch
    lab's checkpoint needs PyTorch to read it)."""
    folder = Path(folder)
    vocab = json.loads((folder / VOCAB_FILE).read_text())
    counters = json.loads((folder / STATE_FILE).read_text())
    if (folder / TORCH_WEIGHTS_FILE).is_file():   # a PyTorch lab's: PyTorch reads it
        try:
            from supervised.torch_state import read_torch_state
        except ModuleNotFoundError:
            raise ValueError(f"{folder}: a PyTorch checkpoint; reading it needs PyTorch: "
                             f"pip install -e '.[torch]'") from None
        state = read_torch_state(folder / TORCH_WEIGHTS_FILE)["model"]
        try:
            rnn = CharRNN.from_torch_state({k: v.numpy() for k, v in state.items()})
        except KeyError as err:
            raise ValueError(f"{folder}: not a music model's checkpoint (no {err})") from None
    else:
        with np.load(folder / WEIGHTS_FILE) as data:
            rnn = CharRNN.from_weights([data[f"weights_{i}"] for i in range(6)])
    if rnn.inputs.shape[0] != len(vocab):
        raise ValueError(f"{folder}: {rnn.inputs.shape[0]} embeddings for {len(vocab)} characters")
    return rnn, vocab, counters


@dataclass(frozen=True)
class SongReport:
    name: str               # song_01
    title: str              # its T: line ('' if none)
    valid: bool             # music21's lenient verdict
    reason: str             # 'ok' or why not
    complete: bool
    files: tuple[str, ...]  # the files written, by name
    renderer: str | None    # what played the .wav (None: no .wav)
    strict_valid: bool = False       # the strict judge's verdict (supervised/abc_strict.py)
    strict_reason: str = "not judged"


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
                                  tuple(files), used, *check_strict(tune.abc)))
    return reports
