"""What the two DB-VAE labs share, framework-free: data, resampling, batches, evaluation per
group, metrics, pictures and the report.

Amini, Soleimany, Schwarting, Bhatia and Rus, "Uncovering and Mitigating Algorithmic Bias through
Learned Latent Structure" (AIES 2019). A face detector trained on data where some kinds of faces
are rare gets those faces wrong more often. The DB-VAE is a classifier whose encoder also outputs a
latent code (a VAE trained on the faces only); faces whose codes sit where the training faces'
codes are sparse are the rare ones, and each epoch draws them more often.

Read it top to bottom: the image checks and the resampling probabilities (pure functions); the
evaluation per group of faces (accuracy, its mean E[A] and variance Var[A] over groups); the
lab's shared half, ``DbvaeBase``. A subclass, ``DbvaeLab`` (TensorFlow, ``supervised/dbvae.py``)
or ``TorchDbvaeLab`` (PyTorch, ``supervised/dbvae_torch.py``), brings the models::

    fit(batches)                   -> (sums, baseline's summed loss)   # one step per batch
    face_probabilities(images, baseline=False) -> P(face) [n]
    latent_means(x)                -> the encoder's means [B, L] of images in [0, 1]
    reconstructions(x)             -> decoded means, [B, H, W, 3] in [0, 1]
    save(folder); restore(folder)

Data comes from ``supervised/faces.py`` and ``supervised/face_eval.py`` (the course's
train_face.h5 and test faces) or ``supervised/bias_data.py`` (an offline stand-in); the pictures
are drawn in ``supervised/render.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator, Literal, Mapping

import numpy as np

from supervised.bias_data import GROUPS as BENCHMARK_GROUPS
from supervised.bias_data import make_bias_benchmark
from supervised.config import DbvaeConfig
from supervised.face_eval import GROUPS as FACE_GROUPS
from supervised.face_eval import bias_summary, detect_faces, group_accuracy, load_ppb, load_test_faces
from supervised.faces import FACES_NAME, FaceData, load_face_data, sample_batch
from supervised.lab import Lab

MODEL_NAMES = {"dbvae": "DB-VAE", "standard": "standard CNN"}
Predict = Callable[[np.ndarray], np.ndarray]   # uint8 images [n, H, W, 3] -> P(face) [n]
# One step's inputs: images [B, H, W, 3] in [0, 1], labels [B] (1 face), the VAE's noise
# [B, L] (DB-VAE only, else None), and the co-trained standard classifier's own (images,
# labels) (with ``baseline`` only, else None)
Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]

# ------------------------------------------------------------------------ images and resampling


def check_image_shape(shape: tuple[int, ...], source: str = "images") -> None:
    """ValueError naming ``source`` unless ``shape`` is (S, S, 3) with S a positive multiple of
    16: the CNNs halve H and W four times and the decoder doubles them back four times (an S
    that is not a multiple of 16 would not come back to S), and the test faces and PPB windows
    are resized to S x S."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[2] != 3 or shape[0] != shape[1] or shape[0] <= 0 or shape[0] % 16:
        raise ValueError(f"{source}: the DB-VAE lab needs square RGB images whose side is a "
                         f"multiple of 16 (e.g. 64 x 64 x 3), got {' x '.join(map(str, shape))}")


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


def evaluate_groups(predict: Predict, groups: Mapping[str, np.ndarray],
                    negatives: np.ndarray | None = None) -> dict[str, float]:
    """``group_metrics`` of a model's ``predict`` on uint8 faces per group (e.g.
    load_test_faces()) and optional uint8 non-faces."""
    probs = {g: predict(images) for g, images in groups.items()}
    return group_metrics(probs, None if negatives is None else predict(negatives))


def evaluate_ppb(predict: Predict, photos: list[np.ndarray], groups: np.ndarray,
                 size: int = 64) -> dict[str, float]:
    """The Pilot Parliaments Benchmark as in the course: a photo (all are faces) counts as
    detected if any of its sliding windows has a face probability >= 0.5 (``detect_faces``);
    ppb/accuracy_<group> per group present, and their ppb/E_A and ppb/Var_A."""
    found = detect_faces(predict, photos, size=size)
    accuracy = group_accuracy({g: found[groups == g] for g in FACE_GROUPS if np.any(groups == g)})
    summary = bias_summary(accuracy)
    return {**{f"ppb/accuracy_{g}": a for g, a in accuracy.items()},
            "ppb/E_A": summary["E[A]"], "ppb/Var_A": summary["Var[A]"]}


# ------------------------------------------------------------------------------------------- lab


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


class DbvaeBase(Lab):
    """The ``Lab`` of the debiasing VAE, models left out: built, it has loaded the data; an
    epoch is (DB-VAE: new resampling probabilities) steps, then ``evaluate``; ``images`` gives
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
        self.data, self.test_faces, self.test_negatives = load_data(cfg, seed)
        self.image_shape = tuple(self.data.image_shape)
        self.ppb = load_ppb(cfg.ppb_dir, size=self.image_shape[0]) if cfg.ppb_dir else None  # (photos, groups)
        self.epoch = 0  # finished epochs
        self._probs: tuple[int, np.ndarray] | None = None      # (epoch, face probabilities [F])
        self._eval: tuple[int, dict[str, float]] | None = None  # (epoch, evaluate())

    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs

    @property
    def steps_per_epoch(self) -> int:
        return self.cfg.steps_per_epoch or max(1, self.data.num_images // self.cfg.batch_size)

    # ------------------------------------------------------------------- the subclass's part

    def fit(self, batches: Iterator[Batch]) -> tuple[list[float], float | None]:
        """One step per batch (and one of the baseline where the batch has its own); sums over
        the epoch's images of [loss, classification loss, correct] (DB-VAE: then the faces'
        KL, the faces' reconstruction loss, the number of faces), and the baseline's summed
        loss (None without a baseline)."""
        raise NotImplementedError

    def face_probabilities(self, images: np.ndarray, baseline: bool = False) -> np.ndarray:
        """P(face) [n] of the model (or the co-trained baseline) for uint8 images [n, H, W, 3]
        (or floats already in [0, 1]), in batches of eval_batch_size."""
        raise NotImplementedError

    def latent_means(self, x: np.ndarray) -> np.ndarray:
        """The DB-VAE's latent means [B, L] of images [B, H, W, 3] in [0, 1] (inference mode)."""
        raise NotImplementedError

    def reconstructions(self, x: np.ndarray) -> np.ndarray:
        """The DB-VAE's decoding of the latent means of images [B, H, W, 3] in [0, 1]."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ the epoch

    def face_means(self) -> np.ndarray:
        """The DB-VAE's latent means [F, L] of all training faces, batched."""
        idx, size = self.data.face_indices, self.cfg.eval_batch_size
        return np.concatenate([self.latent_means(to_inputs(self.data.images(idx[lo:lo + size])))
                               for lo in range(0, len(idx), size)])

    def sampling_probabilities(self) -> np.ndarray:
        """The probability [F] of drawing each training face, from the current model's latent
        space: what the next epoch draws with. Computed once per epoch (the runner's images()
        and the next train_epoch() share it)."""
        if self._probs is None or self._probs[0] != self.epoch:
            cfg = self.cfg
            self._probs = (self.epoch, sampling_probabilities(self.face_means(), cfg.bins,
                                                              cfg.alpha, cfg.combine))
        return self._probs[1]

    def batches(self, probs: np.ndarray | None) -> Iterator[Batch]:
        """This epoch's batches: half faces (drawn with ``probs``, uniform if None) and half
        non-faces, and the VAE's noise, from a generator seeded by (seed, epoch); with
        ``baseline``, the standard classifier's own batch as a 'standard' trial of this seed
        draws it, from a second generator of the same seed."""
        cfg = self.cfg
        rng = np.random.default_rng([self.seed, self.epoch])
        baseline_rng = np.random.default_rng([self.seed, self.epoch])   # a standard trial's draws
        for _ in range(self.steps_per_epoch):
            x, y = sample_batch(self.data, cfg.batch_size, rng, face_probs=probs)
            eps = (rng.standard_normal((len(x), cfg.latent_dim), dtype=np.float32)
                   if cfg.model == "dbvae" else None)
            base = sample_batch(self.data, cfg.batch_size, baseline_rng) if cfg.baseline else None
            yield x, y, eps, base

    def train_epoch(self) -> dict[str, float]:
        """(DB-VAE: new sampling probabilities of the faces), steps_per_epoch steps on
        ``batches``, then evaluate(); METRICS."""
        start, cfg = time.perf_counter(), self.cfg
        dbvae = cfg.model == "dbvae"
        probs = self.sampling_probabilities() if dbvae else None
        sums, baseline_loss = self.fit(self.batches(probs))
        n = self.steps_per_epoch * cfg.batch_size
        metrics = {"train/loss": sums[0] / n, "train/classification_loss": sums[1] / n,
                   "train/accuracy": sums[2] / n}
        if dbvae:
            faces = max(sums[5], 1.0)
            metrics |= {"train/kl": sums[3] / faces, "train/reconstruction": sums[4] / faces,
                        "sampling/max_over_uniform": float(probs.max() * len(probs))}
        if baseline_loss is not None:
            metrics["baseline/train_loss"] = baseline_loss / n
        self.epoch += 1
        evaluation = self.evaluate()
        self._eval = (self.epoch, evaluation)
        return {**metrics, **evaluation, "counters/epoch": float(self.epoch),
                "time/epoch_s": time.perf_counter() - start}

    def evaluate(self) -> dict[str, float]:
        """``group_metrics`` of the model on the test faces per group (and test non-faces);
        with ppb_dir, ``evaluate_ppb`` too; with ``baseline``, the standard classifier's
        ``group_metrics`` as baseline/."""
        out = evaluate_groups(self.face_probabilities, self.test_faces, self.test_negatives)
        if self.cfg.baseline:
            theirs = evaluate_groups(lambda images: self.face_probabilities(images, baseline=True),
                                     self.test_faces, self.test_negatives)
            out |= {"baseline/" + k.removeprefix("eval/"): v for k, v in theirs.items()}
        if self.ppb is not None:
            out |= evaluate_ppb(self.face_probabilities, *self.ppb, size=self.image_shape[0])
        return out

    # ------------------------------------------------------------------------------- pictures

    def images(self) -> dict[str, np.ndarray]:
        """The mean face probability per group; for the DB-VAE also test faces above their
        reconstructions and the training faces the resampling favours most and least."""
        from supervised.render import (
            figure_to_rgb,
            render_extremes,
            render_group_plot,
            render_reconstructions,
        )

        out = {"dbvae/group_face_prob": figure_to_rgb(render_group_plot(self._latest_evaluation(),
                                                                  MODEL_NAMES[self.cfg.model]))}
        if self.cfg.model != "dbvae":
            return out
        originals = np.concatenate([faces[:2] for faces in self.test_faces.values()])  # [n, H, W, 3]
        reconstructed = np.clip(self.reconstructions(to_inputs(originals)), 0, 1)        # z = mu
        out["dbvae/reconstructions"] = render_reconstructions(
            originals, np.rint(reconstructed * 255).astype(np.uint8))
        out["dbvae/resampling_extremes"] = render_extremes(self.data, self.sampling_probabilities())
        return out

    def save_group_plot(self, path: str | Path) -> Path:
        """The bar plot of mean face probability per group, as a PNG at ``path``."""
        from supervised.render import render_group_plot, save_png

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
