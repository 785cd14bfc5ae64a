"""Settings of the supervised labs, one frozen dataclass each.

Plain data, as in ``rl.config``: the string under a field is its documentation, ``metadata``
bounds it, and ``cluster.config.schema`` validates YAML against these classes.
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
    lstm_kernel: Literal["auto", "fused", "keras"] = "auto"
    """How TensorFlow training computes the LSTM: 'keras' is Keras's layer (cuDNN on a GPU);
    'fused' the same maths with a hand-written backward pass, about 7x faster on CPUs
    (supervised/lstm.py); 'auto' is keras with a GPU, fused without. Same weights and checkpoints
    either way. framework torch: unused (PyTorch's nn.LSTM, cuDNN's on a GPU)."""
    epochs: int = field(default=3, metadata={"ge": 1})
    """Epochs of training; an epoch is steps_per_epoch random batches, then a checkpoint."""
    steps_per_epoch: int = field(default=1000, metadata={"ge": 1})
    """Gradient steps per epoch (the course trains 3,000 iterations: 3 epochs x 1,000)."""
    generate_every: int = field(default=1, metadata={"ge": 1})
    """Sample tunes (generate/* metrics, TensorBoard text and audio) after epoch 1, every this
    many epochs and after the last one; the epochs between repeat the latest values."""
    generate_songs: int = field(default=4, metadata={"ge": 1})
    """Tunes sampled each time for generate/valid_share and generate/strict_valid_share."""
    generation_length: int = field(default=1000, metadata={"ge": 1})
    """Characters sampled per generation (a few tunes at the course's 1,000)."""
    temperature: float = field(default=1.0, metadata={"gt": 0})
    """Sampling temperature: the logits are divided by it (below 1: safer, above 1: wilder)."""
    start_string: str = field(default="X", metadata={"min_len": 1})
    """Text the sampling starts from ('X', as a tune's first header X: begins)."""


@dataclass(frozen=True)
class DbvaeConfig:
    dataset: Literal["faces", "bias_benchmark"] = "faces"
    """Training data: 'faces' is the course's train_face.h5 (about 110,000 64x64 images, CelebA
    faces and ImageNet non-faces; downloaded by users, see data_path), evaluated on the course's
    20 test faces; 'bias_benchmark' is the offline stand-in of supervised/bias_data.py (MNIST
    digits as faces with a rare group), built from the settings below and the experiment's seed."""
    data_path: str | None = None
    """faces: the course's train_face.h5, or a folder holding it; bias_benchmark: mnist.npz or a
    folder holding MNIST. null: $LABRUN_DATA_DIR, then the cache (~/.cache/labrun), then the
    download (train_face.h5 is 1.35 GB)."""
    model: Literal["standard", "dbvae"] = "dbvae"
    """'standard' is the course's CNN classifier, trained on batches of half faces (drawn
    uniformly) and half non-faces; 'dbvae' is the debiasing VAE, whose face half is drawn with
    the adaptive resampling probabilities recomputed from its latent space every epoch."""
    baseline: bool = False
    """model dbvae: also train the standard classifier in the same trial, as the course's
    notebook does, with its own optimizer and batches whose faces are drawn uniformly (the batches
    a 'standard' trial of the same seed draws), and evaluate it beside the DB-VAE: the bar plot
    shows the two side by side; its metrics are baseline/accuracy_<group>, baseline/E_A,
    baseline/Var_A, baseline/mean_face_prob_<group>. About half again the trial's time."""
    latent_dim: int = field(default=100, metadata={"ge": 1})
    """Size of the DB-VAE's latent space (the course's 100)."""
    n_filters: int = field(default=12, metadata={"ge": 1})
    """Width of the CNNs: their convolutions have 1x, 2x, 4x and 6x this many filters."""
    kl_weight: float = field(default=0.0005, metadata={"ge": 0})
    """Weight of the KL divergence against the L1 reconstruction loss in the VAE loss."""
    alpha: float = field(default=0.001, metadata={"gt": 0})
    """Smoothing of the resampling: a face's weight per latent dimension is 1 / (density + alpha);
    larger values flatten the probabilities towards uniform (the paper tries 0.001 to 0.1)."""
    bins: int = field(default=10, metadata={"ge": 1})
    """Histogram bins per latent dimension when estimating the faces' latent density."""
    combine: Literal["max", "product"] = "max"
    """How the per-dimension probabilities make one: 'max' (the course: the element-wise maximum
    over dimensions) or 'product' (the paper: the product over dimensions)."""
    epochs: int = field(default=2, metadata={"ge": 1})
    """Epochs of training; the DB-VAE recomputes its sampling probabilities before each."""
    batch_size: int = field(default=32, metadata={"ge": 2})
    """Images per gradient step, half faces and half non-faces."""
    lr: float = field(default=5e-4, metadata={"gt": 0})
    """Learning rate of Adam."""
    steps_per_epoch: int | None = field(default=None, metadata={"ge": 1})
    """Gradient steps per epoch; null: as many as one pass over the training images, the course's
    number_of_training_images // batch_size."""
    eval_batch_size: int = field(default=256, metadata={"ge": 1})
    """Images per forward pass when computing latent means and evaluating."""
    image_size: int = field(default=32, metadata={"ge": 16})
    """bias_benchmark: side of its square images in pixels, a multiple of 16."""
    num_train: int = field(default=20000, metadata={"ge": 4})
    """bias_benchmark: training images (faces and non-faces)."""
    minority_share: float = field(default=0.03, metadata={"ge": 0, "le": 1})
    """bias_benchmark: the share of the training faces in the rare groups (inverted polarity)."""
    num_test_per_group: int = field(default=500, metadata={"ge": 2})
    """bias_benchmark: test faces per group (and the size of the test non-face set)."""
    eval_faces_dir: str | None = None
    """faces: folder holding the course's test faces in LF/, LM/, DF/, DM/; null:
    $LABRUN_DATA_DIR/faces."""
    ppb_dir: str | None = None
    """faces: the Pilot Parliaments Benchmark folder (PPB-2017, with imgs/ and its metadata CSV),
    evaluated by sliding-window detection after each epoch; null: no PPB evaluation."""

    def __post_init__(self):
        if self.image_size % 16:
            raise ValueError(f"image_size: expected a multiple of 16 (the CNNs halve it four "
                             f"times), got {self.image_size}")
        if self.ppb_dir is not None and self.dataset != "faces":
            raise ValueError(f"ppb_dir: PPB is scanned with 64x64 windows for the faces dataset's "
                             f"model; dataset is {self.dataset!r}")
        if self.baseline and self.model != "dbvae":
            raise ValueError("baseline: the standard classifier is the baseline; set model: "
                             "dbvae to train the DB-VAE beside it")
        if self.batch_size % 2:
            raise ValueError(f"batch_size: expected an even number (half faces, half non-faces), "
                             f"got {self.batch_size}")
