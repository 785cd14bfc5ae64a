"""The GPU check's TensorFlow twin: the TensorFlow labs' own training code on a GPU.

    python -m benchmarks.gpu_check_tf [--device gpu] [--steps 300] [--data DIR] [--out FILE]

For a machine with labrun installed and TensorFlow with CUDA (`pip install -e '.[cuda]'`: a
user's GPU node; TensorFlow's wheels are too large for the project's own GPU check). The same
steps as ``benchmarks/gpu_check.py``, through the TensorFlow labs: the MNIST CNN
(``MnistLab.fit``, batch 64), the music LSTM at the course's size (``MusicLab.fit``: with a GPU
its ``lstm_kernel: auto`` picks Keras's layer, cuDNN's kernel; the CPU, the fused one) and the
DB-VAE at the course's size (``dbvae_step``, on synthetic 64 x 64 images), 300 steps each in 4
chunks after 3 warm-up steps; it checks that TensorFlow sees a GPU, that the models' variables
live on it and that the loss falls, then times 20 steps of each on the CPU, and writes
``benchmarks/results/gpu_tf.json``. docs/benchmarks.md#the-gpu-check says what each line must
print. ``--device cpu --steps 8`` runs it anywhere (the tests do).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from benchmarks.gpu_steps import REPO, find_data, report, synthetic_dbvae_batches, timed_chunks

RESULTS = REPO / "benchmarks" / "results" / "gpu_tf.json"


@contextmanager
def placed(device: str) -> Iterator[None]:
    """Builds and trains inside ``tf.device``: the first GPU, or the CPU."""
    import tensorflow as tf

    with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
        yield


def measure(variables: list, fit: Callable[[Iterator], float], batches: Iterator, steps: int,
            device: str) -> dict:
    """``timed_chunks`` of ``fit`` on ``device``, with whether every variable lives there and
    the GPU's peak memory."""
    import tensorflow as tf

    def before_timing() -> None:
        if device == "gpu":
            tf.config.experimental.reset_memory_stats("GPU:0")

    with placed(device):
        run = timed_chunks(fit, batches, steps, before_timing)
    kind = "GPU" if device == "gpu" else "CPU"
    # a Keras 3 variable's TensorFlow variable says where it lives: ".../device:GPU:0"
    return {**run, "on_device": all(f"DEVICE:{kind}:" in v.value.device.upper() for v in variables),
            "peak_memory_mb": (tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
                               if device == "gpu" else None)}


def mnist_cnn(data: Path, device: str, steps: int) -> dict:
    """The course's MNIST CNN, batch 64, Adam 1e-3 (``MnistLab``); loss: mean per image."""
    from supervised.config import MnistConfig
    from supervised.mnist import MnistLab

    with placed(device):
        lab = MnistLab(MnistConfig(model="cnn", batch_size=64, data_path=str(data / "mnist.npz")), seed=0)
    batches = itertools.chain.from_iterable(lab.train_batches() for _ in itertools.count())  # endless
    return measure(lab.model.variables, lambda b: lab.fit(b)[0] / 64, batches, steps, device)


def music_lstm(data: Path, device: str, steps: int) -> dict:
    """The course's music LSTM (Embedding 256 -> LSTM 1024 -> Dense, batch 8 x 100 characters,
    Adam 5e-3) on irish.abc (``MusicLab``, its kernel as ``auto`` picks it for this device);
    loss: mean per character."""
    from supervised.config import MusicConfig
    from supervised.music import MusicLab
    from supervised.tunes import get_batch

    kernel = "keras" if device == "gpu" else "fused"
    with placed(device):
        lab = MusicLab(MusicConfig(corpus="irish", data_path=str(data / "irish.abc"), lstm_kernel=kernel), seed=0)
    rng = np.random.default_rng(0)
    batches = (get_batch(lab.text_ids, 100, 8, rng) for _ in itertools.count())
    return {**measure(lab.model.variables, lab.fit, batches, steps, device), "note_kernel": kernel}


def dbvae(data: Path, device: str, steps: int) -> dict:
    """The course's DB-VAE (64 x 64 images, latent 100, 12 filters, batch 32, Adam 5e-4, KL
    weight 5e-4) through the lab's own ``dbvae_step``, on ``synthetic_faces``; loss: mean per image."""
    import keras
    import tensorflow as tf

    from supervised.config import DbvaeConfig
    from supervised.dbvae import dbvae_step
    from supervised.dbvae_model import DbVae

    cfg = DbvaeConfig()
    with placed(device):
        model = DbVae(cfg.latent_dim, cfg.n_filters, (64, 64, 3), seed=0)
        optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
        optimizer.build(model.trainable_variables)
    step = tf.function(lambda x, y, eps: dbvae_step(model, optimizer, x, y, eps, cfg.kl_weight))

    def fit(chunk: Iterator) -> float:
        total = tf.zeros([])
        for x, y, eps in chunk:
            total += step(x, y, eps)[0] / len(x)
        return float(total)

    return measure(model.variables, fit, synthetic_dbvae_batches(cfg.batch_size, cfg.latent_dim), steps,
                   device)


CHECKS = {"mnist_cnn": mnist_cnn, "music_lstm": music_lstm, "dbvae": dbvae}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check_tf",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="gpu", choices=("gpu", "cpu"),
                        help="the device to check (default gpu; cpu runs the same steps on the CPU only)")
    parser.add_argument("--steps", type=int, default=300, help="gradient steps per lab on the device")
    parser.add_argument("--data", help="folder holding mnist.npz and irish.abc (default "
                        "$LABRUN_DATA_DIR, else ../shared/data)")
    parser.add_argument("--out", default=str(RESULTS), help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.steps < 4:
        parser.error("--steps: at least 4 (four chunks of at least one step)")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if args.device == "gpu" and not gpus:
        print(f"error: --device gpu: TensorFlow {tf.__version__} sees no GPU (no CUDA libraries? "
              f"pip install -e '.[cuda]')", file=sys.stderr)
        return 2
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name) \
        if args.device == "gpu" else "cpu"
    header = {"device": name, "tensorflow": tf.__version__,
              "cuda": tf.sysconfig.get_build_info().get("cuda_version"), "python": platform.python_version()}
    return report(CHECKS, find_data(args.data), args.steps, lambda check, d, n: check(d, args.device, n),
                  None if args.device == "cpu" else (lambda check, d, n: check(d, "cpu", n)),
                  header, args.out)


if __name__ == "__main__":
    sys.exit(main())
