"""DbvaeLab: the course's debiasing VAE (lab 2, part 2) as one trial.

Amini, Soleimany, Schwarting, Bhatia and Rus, "Uncovering and Mitigating Algorithmic Bias through
Learned Latent Structure" (AIES 2019). A face detector trained on data where some kinds of faces
are rare gets those faces wrong more often. The DB-VAE is a classifier whose encoder also outputs a
latent code (a VAE trained on the faces only); faces whose codes sit where the training faces'
codes are sparse are the rare ones, and each epoch draws them more often.

Read it top to bottom: the models (the course's CNN classifier; the DB-VAE = that CNN with
2 * latent_dim + 1 outputs and a transposed-CNN decoder); the losses and the resampling
probabilities as pure functions; the evaluation per group of faces (accuracy, its mean E[A] and
variance Var[A] over groups); the lab; the pictures. Data comes from ``supervised/faces.py``
(the course's train_face.h5 and test faces) or ``supervised/bias_data.py`` (an offline stand-in).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal, Mapping

import keras
import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rl.learner import enable_memory_growth
from supervised.bias_data import GROUPS as BENCHMARK_GROUPS
from supervised.bias_data import make_bias_benchmark
from supervised.config import DbvaeConfig
from supervised.faces import GROUPS as FACE_GROUPS
from supervised.faces import (FaceData, bias_summary, detect_faces, group_accuracy, load_face_data,
                             load_ppb, load_test_faces, sample_batch)
from supervised.models import load_training_state, save_training_state

# ---------------------------------------------------------------------------------------- models


def _initializers(seed: int):
    """Glorot initialisers seeded seed, seed + 1, ...: the weights are a function of the seed."""
    return iter(keras.initializers.GlorotUniform(seed=seed + i) for i in range(100))


def build_classifier(n_outputs: int = 1, n_filters: int = 12,
                     image_shape: tuple[int, int, int] = (64, 64, 3), seed: int = 0,
                     name: str = "classifier") -> keras.Model:
    """The course's standard CNN, images [B, H, W, 3] in [0, 1] -> [B, n_outputs]:
    Conv(n, 5, stride 2) -> BN -> Conv(2n, 5, s2) -> BN -> Conv(4n, 3, s2) -> BN -> Conv(6n, 3, s2)
    -> BN -> Flatten -> Dense 512 relu -> Dense n_outputs; convolutions relu, 'same' padding, so
    H and W shrink 16 times (they must be multiples of 16)."""
    init = _initializers(seed)
    conv = dict(padding="same", activation="relu")
    n = n_filters
    return keras.Sequential([
        keras.Input(shape=image_shape),
        keras.layers.Conv2D(1 * n, 5, strides=2, kernel_initializer=next(init), **conv),  # H/2
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(2 * n, 5, strides=2, kernel_initializer=next(init), **conv),  # H/4
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(4 * n, 3, strides=2, kernel_initializer=next(init), **conv),  # H/8
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(6 * n, 3, strides=2, kernel_initializer=next(init), **conv),  # H/16
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(512, activation="relu", kernel_initializer=next(init)),
        keras.layers.Dense(n_outputs, kernel_initializer=next(init)),
    ], name=name)


def build_decoder(latent_dim: int, n_filters: int = 12, image_shape: tuple[int, int, int] = (64, 64, 3),
                  seed: int = 0) -> keras.Model:
    """The course's decoder, codes [B, latent_dim] -> images [B, H, W, 3]: Dense((H/16)(W/16)6n)
    -> Reshape -> ConvT(4n, 3, s2) -> ConvT(2n, 3, s2) -> ConvT(n, 5, s2) -> ConvT(3, 5, s2); all
    relu (the last too, as the course's), 'same' padding."""
    init = _initializers(seed)
    h, w = image_shape[0] // 16, image_shape[1] // 16
    n = n_filters
    deconv = dict(padding="same", activation="relu")
    return keras.Sequential([
        keras.Input(shape=(latent_dim,)),
        keras.layers.Dense(h * w * 6 * n, activation="relu", kernel_initializer=next(init)),
        keras.layers.Reshape((h, w, 6 * n)),
        keras.layers.Conv2DTranspose(4 * n, 3, strides=2, kernel_initializer=next(init), **deconv),
        keras.layers.Conv2DTranspose(2 * n, 3, strides=2, kernel_initializer=next(init), **deconv),
        keras.layers.Conv2DTranspose(1 * n, 5, strides=2, kernel_initializer=next(init), **deconv),
        keras.layers.Conv2DTranspose(3, 5, strides=2, kernel_initializer=next(init), **deconv),
    ], name="decoder")


def reparameterize(mu: tf.Tensor, logvar: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
    """A sample of N(mu, exp(logvar)) from standard normal noise eps: mu + exp(logvar / 2) eps."""
    return mu + tf.exp(0.5 * logvar) * eps


class DbVae(keras.Model):
    """Encoder: the classifier with 2 * latent_dim + 1 outputs, read as (class logit, latent mean,
    latent log-variance); decoder: ``build_decoder``. The noise of the sampled code comes from the
    caller (``reparameterize``), so a step is a function of its inputs."""

    def __init__(self, latent_dim: int = 100, n_filters: int = 12,
                 image_shape: tuple[int, int, int] = (64, 64, 3), seed: int = 0):
        super().__init__(name="dbvae")
        self.latent_dim = latent_dim
        self.encoder = build_classifier(2 * latent_dim + 1, n_filters, image_shape, seed, name="encoder")
        self.decoder = build_decoder(latent_dim, n_filters, image_shape, seed + 50)

    def encode(self, x: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(class logits [B], means [B, L], log-variances [B, L]) of images x [B, H, W, 3]."""
        out = self.encoder(x, training=training)                                  # [B, 2L + 1]
        return out[:, 0], out[:, 1:self.latent_dim + 1], out[:, self.latent_dim + 1:]

    def decode(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.decoder(z, training=training)                                 # [B, H, W, 3]

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False):
        """(x, eps) -> (class logits [B], means, log-variances, reconstructions [B, H, W, 3])."""
        x, eps = inputs
        y_logit, mu, logvar = self.encode(x, training)
        return y_logit, mu, logvar, self.decode(reparameterize(mu, logvar, eps), training)


def face_logits(model: keras.Model, x: tf.Tensor, training: bool = False) -> tf.Tensor:
    """The face logit [B] of either model: the classifier's one output, the DB-VAE's first."""
    if isinstance(model, DbVae):
        return model.encode(x, training)[0]
    return model(x, training=training)[:, 0]


# ---------------------------------------------------------------------------------------- losses


def kl_divergence(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per example [B]: 0.5 sum(exp(logvar) + mu^2 - 1 - logvar)."""
    return 0.5 * tf.reduce_sum(tf.exp(logvar) + tf.square(mu) - 1.0 - logvar, axis=-1)


def reconstruction_loss(x: tf.Tensor, x_hat: tf.Tensor) -> tf.Tensor:
    """The course's L1 loss per example [B]: the mean of |x - x_hat| over pixels and channels."""
    return tf.reduce_mean(tf.abs(x - x_hat), axis=[1, 2, 3])


def vae_loss(x: tf.Tensor, x_hat: tf.Tensor, mu: tf.Tensor, logvar: tf.Tensor,
             kl_weight: float) -> tf.Tensor:
    """kl_weight * KL + reconstruction, per example [B]."""
    return kl_weight * kl_divergence(mu, logvar) + reconstruction_loss(x, x_hat)


def dbvae_loss(x: tf.Tensor, x_hat: tf.Tensor, y: tf.Tensor, y_logit: tf.Tensor, mu: tf.Tensor,
               logvar: tf.Tensor, kl_weight: float) -> tuple[tf.Tensor, tf.Tensor]:
    """(total [B], classification [B]): cross-entropy of the face label y (1 face, 0 not) and its
    logit, plus the VAE loss of faces only (the VAE models faces; non-faces add nothing)."""
    y_logit = tf.convert_to_tensor(y_logit)
    y = tf.cast(y, y_logit.dtype)                                                  # [B]
    classification = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=y_logit)
    is_face = tf.cast(tf.equal(y, 1.0), y_logit.dtype)
    return classification + is_face * vae_loss(x, x_hat, mu, logvar, kl_weight), classification


# ------------------------------------------------------------------------------------ resampling


def sampling_probabilities(mu: np.ndarray, bins: int = 10, alpha: float = 0.001,
                           combine: Literal["max", "product"] = "max") -> np.ndarray:
    """Probabilities [F] of drawing each of F faces from their latent means mu [F, L].

    For each latent dimension i: a histogram of mu[:, i] with ``bins`` equal bins over its range,
    as a density (np.histogram's density=True: count / (F * bin width)); each face gets the density
    d_i of its bin (the last bin includes its right edge) and the weight 1 / (d_i + alpha),
    normalised over the faces to p_i. Faces in sparse bins get large weights; ``alpha`` caps them
    (alpha much larger than the densities makes every weight about 1 / alpha: uniform).
    'max' (the course's get_training_sample_probabilities): p = max_i p_i, element-wise.
    'product' (the paper's W(z) ~ prod_i 1 / (Q_i(z_i) + alpha)): p = prod_i p_i, summed in log
    space and shifted by its maximum before exp, so 100 small factors do not underflow.
    Either way p is normalised to sum 1.
    """
    mu = np.asarray(mu, np.float64)
    if mu.ndim != 2 or len(mu) == 0:
        raise ValueError(f"mu: expected latent means [F, L] with F >= 1, got shape {mu.shape}")
    p = np.empty_like(mu)                                                         # [F, L]
    for i in range(mu.shape[1]):
        density, edges = np.histogram(mu[:, i], bins=bins, density=True)       # [bins], [bins + 1]
        which = np.clip(np.searchsorted(edges, mu[:, i], side="right") - 1, 0, bins - 1)   # [F]
        weight = 1.0 / (density[which] + alpha)
        p[:, i] = weight / weight.sum()
    if combine == "max":
        out = p.max(axis=1)
    elif combine == "product":
        log_p = np.log(p).sum(axis=1)
        out = np.exp(log_p - log_p.max())
    else:
        raise ValueError(f"combine: expected 'max' or 'product', got {combine!r}")
    return out / out.sum()


# ------------------------------------------------------------------------------------ evaluation


def to_inputs(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images [B, H, W, 3] -> the models' inputs, float32 in [0, 1]."""
    return np.asarray(images, np.float32) / 255.0


def face_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's probability that each image is a face, float [n], for images [n, H, W, 3]:
    uint8, or floats already in [0, 1]."""
    x = to_inputs(images) if images.dtype == np.uint8 else np.asarray(images, np.float32)
    out = [tf.sigmoid(face_logits(model, x[lo:lo + batch_size])).numpy()
           for lo in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def group_metrics(face_probs: Mapping[str, np.ndarray], negative_probs: np.ndarray | None = None,
                  threshold: float = 0.5) -> dict[str, float]:
    """Flat eval/ metrics from face probabilities per group of faces (all positives) and,
    optionally, of non-faces: eval/accuracy_<group> (share with probability >= threshold),
    eval/E_A and eval/Var_A (their mean and population variance in percent, bias_summary),
    eval/negative_accuracy (share of non-faces below threshold), eval/mean_face_prob_<group>."""
    accuracy = group_accuracy({g: np.asarray(p) >= threshold for g, p in face_probs.items()})
    summary = bias_summary(accuracy)
    out = {f"eval/accuracy_{g}": a for g, a in accuracy.items()}
    out |= {"eval/E_A": float(summary["E[A]"]), "eval/Var_A": float(summary["Var[A]"])}
    if negative_probs is not None:
        out["eval/negative_accuracy"] = float(np.mean(np.asarray(negative_probs) < threshold))
    out |= {f"eval/mean_face_prob_{g}": float(np.mean(p)) for g, p in face_probs.items()}
    return out


def evaluate_groups(model: keras.Model, groups: Mapping[str, np.ndarray],
                    negatives: np.ndarray | None = None, batch_size: int = 256) -> dict[str, float]:
    """``group_metrics`` of the model on uint8 faces per group (e.g. load_test_faces()) and
    optional uint8 non-faces."""
    probs = {g: face_probabilities(model, images, batch_size) for g, images in groups.items()}
    neg = None if negatives is None else face_probabilities(model, negatives, batch_size)
    return group_metrics(probs, neg)


def evaluate_ppb(model: keras.Model, photos: list[np.ndarray], groups: np.ndarray, size: int = 64,
                 batch_size: int = 256) -> dict[str, float]:
    """The Pilot Parliaments Benchmark as in the course: a photo (all are faces) counts as
    detected if any of its sliding windows has a face probability >= 0.5 (``detect_faces``);
    ppb/accuracy_<group> per group present, and their ppb/E_A and ppb/Var_A."""
    found = detect_faces(lambda x: face_probabilities(model, x, batch_size), photos, size=size)
    accuracy = group_accuracy({g: found[groups == g] for g in FACE_GROUPS if np.any(groups == g)})
    summary = bias_summary(accuracy)
    return {**{f"ppb/accuracy_{g}": a for g, a in accuracy.items()},
            "ppb/E_A": summary["E[A]"], "ppb/Var_A": summary["Var[A]"]}


# ------------------------------------------------------------------------------------------- lab

MODEL_NAMES = {"dbvae": "DB-VAE", "standard": "standard CNN"}


def load_data(cfg: DbvaeConfig, seed: int) -> tuple[FaceData, dict[str, np.ndarray], np.ndarray | None]:
    """(training data, uint8 test faces per group, uint8 test non-faces or None) of the config's
    dataset: the course's train_face.h5 and 20 test faces, or the offline bias benchmark."""
    if cfg.dataset == "bias_benchmark":
        bench = make_bias_benchmark(cfg.data_path, size=cfg.image_size, num_train=cfg.num_train,
                                    num_test_per_group=cfg.num_test_per_group,
                                    minority_share=cfg.minority_share, seed=seed)
        return bench.train, dict(bench.test), bench.test_negatives
    data = load_face_data(cfg.data_path)
    return data, load_test_faces(cfg.eval_faces_dir, size=data.image_shape[0]), None


class DbvaeLab:
    """Call sequence::

        lab = DbvaeLab(cfg, seed=0)        # loads the data, builds the classifier or the DB-VAE
        lab.restore(folder)                # optional: continue from a checkpoint folder
        while lab.epoch < lab.total_epochs:
            metrics = lab.train_epoch()    # (DB-VAE: resampling probabilities) steps, evaluate()
            lab.save(folder)               # weights, optimizer state, epoch counter
        images = lab.images()              # {name: uint8 RGB [H, W, 3]}, some of IMAGES

    METRICS is every metric a trial may report; ``metric_names(model, dataset, baseline)`` the
    ones it does: the standard model has no train/kl, train/reconstruction, sampling/max_over_uniform
    (and shows the group bar plot only); eval/negative_accuracy needs test non-faces (the bias
    benchmark has them, the course's test faces do not); the groups are the dataset's; with
    ``baseline`` the co-trained standard classifier's evaluation follows as baseline/. With
    ppb_dir the metrics also hold ppb/accuracy_<group>, ppb/E_A and ppb/Var_A (``evaluate_ppb``).
    """

    IMAGES = ("dbvae/group_face_prob", "dbvae/reconstructions", "dbvae/resampling_extremes")

    @staticmethod
    def metric_names(model: str = "dbvae", dataset: str = "faces",
                     baseline: bool = False) -> tuple[str, ...]:
        """The metrics a trial reports each epoch, in order: the evaluation's groups are the
        course's (LF, LM, DF, DM) on faces, the benchmark's (NT, NK, IT, IK) on bias_benchmark."""
        groups = FACE_GROUPS if dataset == "faces" else BENCHMARK_GROUPS
        vae = ("train/kl", "train/reconstruction", "sampling/max_over_uniform")

        def evaluation(prefix: str) -> tuple[str, ...]:
            return (*(f"{prefix}/accuracy_{g}" for g in groups), f"{prefix}/E_A", f"{prefix}/Var_A",
                    *((f"{prefix}/negative_accuracy",) if dataset == "bias_benchmark" else ()),
                    *(f"{prefix}/mean_face_prob_{g}" for g in groups))

        return ("train/loss", "train/classification_loss", "train/accuracy",
                *(vae if model == "dbvae" else ()), *(("baseline/train_loss",) if baseline else ()),
                *evaluation("eval"), *(evaluation("baseline") if baseline else ()),
                "counters/epoch", "time/epoch_s")

    METRICS = tuple(dict.fromkeys(metric_names("dbvae", "faces", True)
                                  + metric_names("dbvae", "bias_benchmark", True)))

    def __init__(self, cfg: DbvaeConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed
        self.gpus = enable_memory_growth()
        self.data, self.test_faces, self.test_negatives = load_data(cfg, seed)
        shape = tuple(self.data.image_shape)
        self.ppb = load_ppb(cfg.ppb_dir, size=shape[0]) if cfg.ppb_dir else None  # (photos, groups)
        if cfg.model == "dbvae":
            self.model = DbVae(cfg.latent_dim, cfg.n_filters, shape, seed)
        else:
            self.model = build_classifier(1, cfg.n_filters, shape, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
        self.optimizer.build(self.model.trainable_variables)
        self.baseline = self.baseline_optimizer = None  # the co-trained standard classifier
        if cfg.baseline:
            self.baseline = build_classifier(1, cfg.n_filters, shape, seed)
            self.baseline_optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
            self.baseline_optimizer.build(self.baseline.trainable_variables)
        self.epoch = 0  # finished epochs
        self._probs: tuple[int, np.ndarray] | None = None      # (epoch, face probabilities [F])
        self._eval: tuple[int, dict[str, float]] | None = None  # (epoch, evaluate())
        images = tf.TensorSpec([None, *shape], tf.float32)
        labels = tf.TensorSpec([None], tf.float32)
        # Closures rather than bound methods: Ray adds a keyword to actor methods.
        if cfg.model == "dbvae":
            noise = tf.TensorSpec([None, cfg.latent_dim], tf.float32)
            self._train_step = tf.function(lambda x, y, eps: self._dbvae_step(x, y, eps),
                                           input_signature=(images, labels, noise))
            self._means = tf.function(lambda x: self.model.encode(x)[1], input_signature=(images,))
        else:
            self._train_step = tf.function(
                lambda x, y: self._classifier_step(self.model, self.optimizer, x, y),
                input_signature=(images, labels))
        if self.baseline is not None:
            self._baseline_step = tf.function(
                lambda x, y: self._classifier_step(self.baseline, self.baseline_optimizer, x, y),
                input_signature=(images, labels))

    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs

    @property
    def steps_per_epoch(self) -> int:
        return self.cfg.steps_per_epoch or max(1, self.data.num_images // self.cfg.batch_size)

    # ------------------------------------------------------------------------------ training

    @staticmethod
    def _classifier_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, x: tf.Tensor,
                         y: tf.Tensor) -> tf.Tensor:
        """One step of a standard classifier; sums over the batch of [loss, classification
        loss (the same), correct]."""
        with tf.GradientTape() as tape:
            logits = model(x, training=True)[:, 0]                                    # [B]
            losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)  # [B]
            loss = tf.reduce_mean(losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.stack([tf.reduce_sum(losses), tf.reduce_sum(losses), _correct(y, logits)])

    def _dbvae_step(self, x: tf.Tensor, y: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        """One step of the DB-VAE; sums over the batch of [loss, classification loss, correct,
        faces' KL, faces' reconstruction loss, faces]."""
        with tf.GradientTape() as tape:
            y_logit, mu, logvar, x_hat = self.model((x, eps), training=True)
            total, classification = dbvae_loss(x, x_hat, y, y_logit, mu, logvar, self.cfg.kl_weight)
            loss = tf.reduce_mean(total)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        is_face = tf.cast(tf.equal(y, 1.0), tf.float32)                                # [B]
        return tf.stack([tf.reduce_sum(total), tf.reduce_sum(classification), _correct(y, y_logit),
                         tf.reduce_sum(is_face * kl_divergence(mu, logvar)),
                         tf.reduce_sum(is_face * reconstruction_loss(x, x_hat)), tf.reduce_sum(is_face)])

    def latent_means(self) -> np.ndarray:
        """The DB-VAE's latent means [F, L] of all training faces (inference mode, batched)."""
        idx, size = self.data.face_indices, self.cfg.eval_batch_size
        return np.concatenate([self._means(to_inputs(self.data.images(idx[lo:lo + size]))).numpy()
                               for lo in range(0, len(idx), size)])

    def sampling_probabilities(self) -> np.ndarray:
        """The probability [F] of drawing each training face, from the current model's latent
        space: what the next epoch draws with. Computed once per epoch (the runner's images()
        and the next train_epoch() share it)."""
        if self._probs is None or self._probs[0] != self.epoch:
            cfg = self.cfg
            self._probs = (self.epoch, sampling_probabilities(self.latent_means(), cfg.bins,
                                                              cfg.alpha, cfg.combine))
        return self._probs[1]

    def train_epoch(self) -> dict[str, float]:
        """(DB-VAE: new sampling probabilities of the faces), steps_per_epoch steps on batches
        of half faces and half non-faces drawn with a generator seeded by (seed, epoch), then
        evaluate(); METRICS. With ``baseline`` the standard classifier takes a step beside each
        of the DB-VAE's, on its own batch drawn as a 'standard' trial of this seed draws it."""
        start, cfg = time.perf_counter(), self.cfg
        rng = np.random.default_rng([self.seed, self.epoch])
        baseline_rng = np.random.default_rng([self.seed, self.epoch])   # a standard trial's draws
        dbvae = cfg.model == "dbvae"
        probs = self.sampling_probabilities() if dbvae else None
        totals, baseline_totals, n = None, None, 0
        for _ in range(self.steps_per_epoch):
            x, y = sample_batch(self.data, cfg.batch_size, rng, face_probs=probs)
            if dbvae:
                eps = rng.standard_normal((len(x), cfg.latent_dim), dtype=np.float32)
                stats = self._train_step(x, y, eps)
            else:
                stats = self._train_step(x, y)
            totals = stats if totals is None else totals + stats
            n += len(x)
            if self.baseline is not None:
                stats = self._baseline_step(*sample_batch(self.data, cfg.batch_size, baseline_rng))
                baseline_totals = stats if baseline_totals is None else baseline_totals + stats
        sums = totals.numpy().tolist()
        metrics = {"train/loss": sums[0] / n, "train/classification_loss": sums[1] / n,
                   "train/accuracy": sums[2] / n}
        if dbvae:
            faces = max(sums[5], 1.0)
            metrics |= {"train/kl": sums[3] / faces, "train/reconstruction": sums[4] / faces,
                        "sampling/max_over_uniform": float(probs.max() * len(probs))}
        if baseline_totals is not None:
            metrics["baseline/train_loss"] = float(baseline_totals[0].numpy()) / n
        self.epoch += 1
        evaluation = self.evaluate()
        self._eval = (self.epoch, evaluation)
        return {**metrics, **evaluation, "counters/epoch": float(self.epoch),
                "time/epoch_s": time.perf_counter() - start}

    def evaluate(self) -> dict[str, float]:
        """``group_metrics`` of the model on the test faces per group (and test non-faces);
        with ppb_dir, ``evaluate_ppb`` too; with ``baseline``, the standard classifier's
        ``group_metrics`` as baseline/."""
        size = self.cfg.eval_batch_size
        out = evaluate_groups(self.model, self.test_faces, self.test_negatives, size)
        if self.baseline is not None:
            theirs = evaluate_groups(self.baseline, self.test_faces, self.test_negatives, size)
            out |= {"baseline/" + k.removeprefix("eval/"): v for k, v in theirs.items()}
        if self.ppb is not None:
            out |= evaluate_ppb(self.model, *self.ppb, size=self.data.image_shape[0], batch_size=size)
        return out

    # ------------------------------------------------------------------------------- pictures

    def images(self) -> dict[str, np.ndarray]:
        """The mean face probability per group; for the DB-VAE also test faces above their
        reconstructions and the training faces the resampling favours most and least."""
        out = {"dbvae/group_face_prob": _to_rgb(render_group_plot(self._latest_evaluation(),
                                                                  MODEL_NAMES[self.cfg.model]))}
        if self.cfg.model != "dbvae":
            return out
        originals = np.concatenate([faces[:2] for faces in self.test_faces.values()])  # [n, H, W, 3]
        _, mu, _ = self.model.encode(to_inputs(originals))
        reconstructed = np.clip(self.model.decode(mu).numpy(), 0, 1)                    # z = mu
        out["dbvae/reconstructions"] = render_reconstructions(
            originals, np.rint(reconstructed * 255).astype(np.uint8))
        out["dbvae/resampling_extremes"] = render_extremes(self.data, self.sampling_probabilities())
        return out

    def save_group_plot(self, path: str | Path) -> Path:
        """The bar plot of mean face probability per group, as a PNG at ``path``."""
        return save_png(render_group_plot(self._latest_evaluation(), MODEL_NAMES[self.cfg.model]), path)

    def _latest_evaluation(self) -> dict[str, float]:
        """evaluate() of the current epoch, computed once (train_epoch's own, or after a restore)."""
        if self._eval is None or self._eval[0] != self.epoch:
            self._eval = (self.epoch, self.evaluate())
        return self._eval[1]

    def write_report(self, folder: str | Path) -> tuple[Path, Path]:
        """The latest evaluation per group into ``folder``: groups.csv (a row per model and
        group: accuracy, mean face probability; then E[A] and Var[A] per model) and groups.png
        (``save_group_plot``). Rewritten after every epoch of a trial."""
        metrics, folder = self._latest_evaluation(), Path(folder)
        models = [(p, n) for p, n in (("eval", MODEL_NAMES[self.cfg.model]),
                                      ("baseline", MODEL_NAMES["standard"])) if f"{p}/E_A" in metrics]
        rows = ["model,group,accuracy,mean_face_prob"]
        rows += [f"{name},{g},{metrics[f'{p}/accuracy_{g}']:.4f},{metrics[f'{p}/mean_face_prob_{g}']:.4f}"
                 for p, name in models for g in self.test_faces]
        rows += [f"{name},E[A] %,{metrics[f'{p}/E_A']:.4f}," for p, name in models]
        rows += [f"{name},Var[A] %^2,{metrics[f'{p}/Var_A']:.4f}," for p, name in models]
        table = folder / "groups.csv"
        table.write_text("\n".join(rows) + "\n")
        return table, self.save_group_plot(folder / "groups.png")

    # ---------------------------------------------------------------------------- checkpoints

    def save(self, folder: str | Path) -> None:
        save_training_state(folder, self.model, self.optimizer,
                            {"epoch": self.epoch, "model": self.cfg.model, "dataset": self.cfg.dataset,
                             "seed": self.seed})
        if self.baseline is not None:
            save_training_state(Path(folder) / "baseline", self.baseline, self.baseline_optimizer,
                                {"epoch": self.epoch})

    def restore(self, folder: str | Path) -> None:
        counters = load_training_state(folder, self.model, self.optimizer)
        if self.baseline is not None:
            load_training_state(Path(folder) / "baseline", self.baseline, self.baseline_optimizer)
        self.epoch, self._eval, self._probs = int(counters["epoch"]), None, None


def _correct(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """How many of the batch's labels (1 face, 0 not) the logits' signs get right."""
    return tf.reduce_sum(tf.cast(tf.equal(tf.cast(logits >= 0, tf.float32), y), tf.float32))


# ------------------------------------------------------------------------------------ rendering


def _to_rgb(fig: Figure) -> np.ndarray:
    """A figure drawn off-screen (Agg, no pyplot state) as uint8 RGB [H, W, 3]."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(fig: Figure, path: str | Path) -> Path:
    """The figure as a PNG file at ``path`` (its folder made if needed); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path


def render_group_plot(metrics: Mapping[str, float], label: str = "this model") -> Figure:
    """The course's bar plot: the mean face probability per group (eval/mean_face_prob_<group>),
    each bar topped with the group's accuracy; with baseline/ metrics (a co-trained standard
    classifier) its bars stand beside, as the course plots the standard CNN beside the DB-VAE.
    The legend holds each model's E[A] and Var[A]."""
    models = [(prefix, name) for prefix, name in (("baseline", "standard CNN"), ("eval", label))
              if f"{prefix}/E_A" in metrics]
    groups = [k.removeprefix("eval/mean_face_prob_") for k in metrics
              if k.startswith("eval/mean_face_prob_")]
    width = 0.8 / len(models)
    fig = Figure(figsize=(5.5, 3.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for m, (prefix, name) in enumerate(models):
        xs = np.arange(len(groups)) + (m - (len(models) - 1) / 2) * width
        heights = [metrics[f"{prefix}/mean_face_prob_{g}"] for g in groups]
        ax.bar(xs, heights, width, label=f"{name}: E[A] {metrics[f'{prefix}/E_A']:.1f}%, "
                                         f"Var[A] {metrics[f'{prefix}/Var_A']:.1f}")
        for x, h, g in zip(xs, heights, groups):
            ax.text(x, h + 0.02, f"{metrics.get(f'{prefix}/accuracy_{g}', np.nan):.2f}",
                    ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set(ylim=(0, 1.3), ylabel="mean face probability",
           title="face probability per group (bar tops: accuracy)")
    ax.legend(loc="upper center", fontsize=7, ncol=1)
    return fig


def render_reconstructions(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Originals (top row) above their reconstructions (bottom row), uint8 [n, H, W, 3] each."""
    n = len(originals)
    fig = Figure(figsize=(1.2 * n, 2.8), dpi=100, layout="constrained")
    fig.suptitle("test faces (top) and their DB-VAE reconstructions from the latent mean")
    for row, images in enumerate((originals, reconstructions)):
        for k, image in enumerate(images):
            ax = fig.add_subplot(2, n, row * n + k + 1)
            ax.imshow(image)
            ax.set_axis_off()
    return _to_rgb(fig)


def render_extremes(data: FaceData, probs: np.ndarray, k: int = 8) -> np.ndarray:
    """The k training faces with the highest sampling probability (top row) and the k with the
    lowest (bottom row), each titled with its probability relative to uniform (p * F)."""
    order = np.argsort(probs, kind="stable")
    k = min(k, len(probs))
    fig = Figure(figsize=(1.2 * k, 3.0), dpi=100, layout="constrained")
    fig.suptitle("faces the resampling favours most (top) and least (bottom), p x F")
    for row, picked in enumerate((order[::-1][:k], order[:k])):
        images = data.images(data.face_indices[picked])
        for j, (i, image) in enumerate(zip(picked, images)):
            ax = fig.add_subplot(2, k, row * k + j + 1)
            ax.imshow(image)
            ax.set_title(f"{probs[i] * len(probs):.2f}", fontsize=8)
            ax.set_axis_off()
    return _to_rgb(fig)
