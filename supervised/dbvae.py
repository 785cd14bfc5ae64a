"""DbvaeLab: the course's debiasing VAE (lab 2, part 2) as one trial.

Amini, Soleimany, Schwarting, Bhatia and Rus, "Uncovering and Mitigating Algorithmic Bias through
Learned Latent Structure" (AIES 2019). A face detector trained on data where some kinds of faces
are rare gets those faces wrong more often. The DB-VAE is a classifier whose encoder also outputs a
latent code (a VAE trained on the faces only); faces whose codes sit where the training faces'
codes are sparse are the rare ones, and each epoch draws them more often.

Read it top to bottom: the evaluation per group of faces (accuracy, its mean E[A] and variance
Var[A] over groups); the lab. The models, losses and resampling probabilities are in
``supervised/dbvae_model.py``, the pictures in ``supervised/render.py``. Data comes from
``supervised/faces.py`` and ``supervised/face_eval.py`` (the course's train_face.h5 and test
faces) or ``supervised/bias_data.py`` (an offline stand-in).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from supervised.bias_data import GROUPS as BENCHMARK_GROUPS
from supervised.bias_data import make_bias_benchmark
from supervised.config import DbvaeConfig
from supervised.dbvae_model import (
    DbVae,
    build_classifier,
    check_image_shape,
    dbvae_loss,
    face_logits,
    kl_divergence,
    reconstruction_loss,
    sampling_probabilities,
)
from supervised.face_eval import GROUPS as FACE_GROUPS
from supervised.face_eval import bias_summary, detect_faces, group_accuracy, load_ppb, load_test_faces
from supervised.faces import FACES_NAME, FaceData, load_face_data, sample_batch
from supervised.lab import Lab
from supervised.models import load_training_state, save_training_state, visible_gpus
from supervised.render import (
    figure_to_rgb,
    render_extremes,
    render_group_plot,
    render_reconstructions,
    save_png,
)

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
    check_image_shape(data.image_shape, str(getattr(data, "path", FACES_NAME)))  # before the rest
    return data, load_test_faces(cfg.eval_faces_dir, size=data.image_shape[0]), None


class DbvaeLab(Lab):
    """The ``Lab`` of the debiasing VAE: built, it has loaded the data and built the classifier or
    the DB-VAE; an epoch is (DB-VAE: new resampling probabilities) steps, then ``evaluate``; a
    checkpoint holds the weights, the optimizer's state and the epoch counter; ``images`` gives
    some of IMAGES; ``write_report`` leaves groups.csv and groups.png in the trial folder.

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
        self.gpus = visible_gpus()
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
        out = {"dbvae/group_face_prob": figure_to_rgb(render_group_plot(self._latest_evaluation(),
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
