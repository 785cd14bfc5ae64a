"""Settings of the supervised labs, one frozen dataclass each.

Plain data, as in ``rl.config``: the string under a field is its documentation, ``metadata``
bounds it, and ``cluster.schema`` validates YAML against these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class MnistConfig:
    model: Literal["dense", "cnn"] = "cnn"
    """The course's classifiers: 'dense' is Flatten -> Dense 128 relu -> Dense 10; 'cnn' is
    Conv 24 3x3 relu -> MaxPool 2 -> Conv 36 3x3 relu -> MaxPool 2 -> Dense 128 relu -> Dense 10."""
    epochs: int = field(default=5, metadata={"ge": 1})
    """Passes over the training images."""
    batch_size: int = field(default=64, metadata={"ge": 1})
    """Training images per gradient step."""
    lr: float = field(default=1e-3, metadata={"gt": 0})
    """Learning rate of the optimizer."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """Adam (the course's choice for the CNN) or plain stochastic gradient descent."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """'constant' keeps lr throughout (the course); 'cosine' decays it from lr to 0 over all the
    epochs' steps (Keras's CosineDecay), which settles the last epochs' accuracy."""
    data_path: str | None = None
    """A mnist.npz file (Keras's layout), or a folder holding mnist.npz or the four MNIST IDX
    files (optionally .gz); null: LABRUN_DATA_DIR, then the download cache, then the download."""
    train_limit: int | None = field(default=None, metadata={"ge": 1})
    """Train on the first N of the 60,000 training images only (tiny runs); null: all of them."""
    eval_batch_size: int = field(default=1000, metadata={"ge": 1})
    """Test images per forward pass when evaluating."""


@dataclass(frozen=True)
class IntroConfig:
    model: Literal["sequential", "subclassed"] = "subclassed"
    """How the line model is put together: a keras.Sequential of the custom Dense layer, or a
    subclassed keras.Model around it (the same maths either way)."""
    epochs: int = field(default=5, metadata={"ge": 1})
    """Epochs of the fit; each one reports the current slope, intercept and loss."""
    steps_per_epoch: int = field(default=100, metadata={"ge": 1})
    """Gradient steps per epoch, each on all the points."""
    lr: float = field(default=1e-2, metadata={"gt": 0})
    """Learning rate of plain gradient descent."""
    num_points: int = field(default=256, metadata={"ge": 2})
    """Points of the synthetic line y = 3x - 1 + noise, with x uniform in [-3, 3]."""
    noise: float = field(default=0.1, metadata={"ge": 0})
    """Standard deviation of the Gaussian noise added to y."""


@dataclass(frozen=True)
class MusicConfig:
    corpus: Literal["auto", "irish", "music21"] = "auto"
    """Tunes to learn from: 'irish' is the course's irish.abc (804 Irish folk tunes; from
    data_path, $LABRUN_DATA_DIR, an installed mitdeeplearning package, the cache, else the
    download); 'music21' is O'Neill's Music of Ireland (1850, 2,009 tunes) from music21's bundled
    corpus, always offline; 'auto' is irish.abc if a source has it without downloading, else the
    music21 corpus."""
    data_path: str | None = None
    """irish.abc, or a folder holding it; null: the other sources (see corpus). When set, it must
    hold irish.abc, with corpus 'auto' too."""
    max_songs: int | None = field(default=None, metadata={"ge": 1})
    """Learn from the first N tunes only (tiny runs); null: all of them."""
    seq_length: int = field(default=100, metadata={"ge": 1})
    """Characters per training sequence (the model predicts each next character)."""
    batch_size: int = field(default=8, metadata={"ge": 1})
    """Sequences per gradient step."""
    embedding_dim: int = field(default=256, metadata={"ge": 1})
    """Size of each character's learned embedding vector."""
    rnn_units: int = field(default=1024, metadata={"ge": 1})
    """Units of the LSTM layer (the size of its hidden and cell state)."""
    lr: float = field(default=5e-3, metadata={"gt": 0})
    """Learning rate of Adam."""
    epochs: int = field(default=3, metadata={"ge": 1})
    """Epochs of training; an epoch is steps_per_epoch random batches, then a checkpoint."""
    steps_per_epoch: int = field(default=1000, metadata={"ge": 1})
    """Gradient steps per epoch (the course trains 3,000 iterations: 3 epochs x 1,000)."""
    generate_every: int = field(default=1, metadata={"ge": 1})
    """Sample tunes (generate/* metrics, TensorBoard text and audio) after epoch 1, every this
    many epochs and after the last one; the epochs between repeat the latest values."""
    generate_songs: int = field(default=4, metadata={"ge": 1})
    """Tunes sampled each time for generate/valid_share."""
    generation_length: int = field(default=1000, metadata={"ge": 1})
    """Characters sampled per generation (a few tunes at the course's 1,000)."""
    temperature: float = field(default=1.0, metadata={"gt": 0})
    """Sampling temperature: the logits are divided by it (below 1: safer, above 1: wilder)."""
    start_string: str = field(default="X", metadata={"min_len": 1})
    """Text the sampling starts from ('X', as a tune's first header X: begins)."""
