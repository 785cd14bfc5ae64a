"""The debiasing VAE lab: models, losses and resampling by hand, DbvaeLab in-process, the 20 real
test faces, and a tiny trial through the real ``labrun`` command line.

The course's train_face.h5 is not to be had offline: the lab trains on the bias benchmark here,
and the evaluation on the real test faces ($LABRUN_DATA_DIR/faces) is tested on its own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cluster.config.schema import ConfigError
from cluster.labs import LABS, load, load_sweep
from helpers import REPO, run_cli
from supervised.bias_data import GROUPS as BENCHMARK_GROUPS
from supervised.config import DbvaeConfig
from supervised.dbvae import DbvaeLab, face_probabilities
from supervised.dbvae_base import evaluate_groups, evaluate_ppb, sampling_probabilities
from supervised.dbvae_model import (
    DbVae,
    build_classifier,
    build_decoder,
    dbvae_loss,
    kl_divergence,
    reconstruction_loss,
    vae_loss,
)
from supervised.render import render_group_plot, save_png

TINY = dict(dataset="bias_benchmark", image_size=32, num_train=400, num_test_per_group=20,
            latent_dim=8, n_filters=4, epochs=2, steps_per_epoch=3, batch_size=16, eval_batch_size=64)

# ---------------------------------------------------------------------------------- models


@pytest.mark.parametrize("side", [32, 64])
def test_models_fit_both_image_sizes(side):
    shape = (side, side, 3)
    x = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    classifier = build_classifier(1, 12, shape, seed=0)
    assert tuple(classifier(x).shape) == (3, 1)
    assert [tuple(layer.output.shape)[1:] for layer in classifier.layers if "conv" in layer.name] == [
        (side // 2, side // 2, 12), (side // 4, side // 4, 24), (side // 8, side // 8, 48),
        (side // 16, side // 16, 72)]                                     # the course's 12-24-48-72
    if side == 64:  # conv 912 + 7,224 + 10,416 + 31,176, BN 624, Dense 4*4*72*512 + 512, out 513
        assert classifier.count_params() == 641_201
    decoder = build_decoder(10, 12, shape, seed=0)
    assert tuple(decoder(np.zeros((3, 10), np.float32)).shape) == (3, *shape)
    vae = DbVae(latent_dim=10, n_filters=4, image_shape=shape, seed=0)
    assert tuple(vae.encoder(x).shape) == (3, 21)                         # logit, 10 means, 10 log-vars
    y_logit, mu, logvar, x_hat = vae((x, np.zeros((3, 10), np.float32)))
    assert (tuple(y_logit.shape), tuple(mu.shape), tuple(logvar.shape)) == ((3,), (3, 10), (3, 10))
    assert tuple(x_hat.shape) == (3, *shape) and np.all(x_hat.numpy() >= 0)   # relu output
    again, other = DbVae(10, 4, shape, seed=0), DbVae(10, 4, shape, seed=1)
    for w, w_again, w_other in zip(vae.get_weights(), again.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(w, w_again)
        assert w.ndim == 1 or not np.array_equal(w, w_other)


# ---------------------------------------------------------------------------------- losses


def test_kl_divergence_by_hand():
    zeros = np.zeros((2, 5), np.float32)                                  # the standard normal
    np.testing.assert_allclose(kl_divergence(zeros, zeros), 0)
    mu, logvar = np.array([[1.0, 0.0]]), np.array([[0.0, math.log(2.0)]])
    # 0.5 * ((1 + 1 - 1 - 0) + (2 + 0 - 1 - ln 2)) = 1 - ln(2) / 2
    np.testing.assert_allclose(kl_divergence(mu, logvar), [1 - math.log(2) / 2], rtol=1e-6)


def test_reconstruction_and_vae_loss_by_hand():
    x = np.zeros((1, 2, 2, 1))
    x_hat = np.array([[[[1.0], [-1.0]], [[0.5], [0.0]]]])
    np.testing.assert_allclose(reconstruction_loss(x, x_hat), [0.625])  # (1 + 1 + 0.5 + 0) / 4
    mu, logvar = np.array([[1.0, 0.0]]), np.array([[0.0, math.log(2.0)]])
    np.testing.assert_allclose(vae_loss(x, x_hat, mu, logvar, kl_weight=0.1),
                               [0.1 * (1 - math.log(2) / 2) + 0.625], rtol=1e-6)


def test_non_faces_add_no_vae_loss():
    x = np.zeros((2, 2, 2, 1))
    x_hat = np.full((2, 2, 2, 1), 0.5)
    mu, logvar = np.ones((2, 3)), np.zeros((2, 3))                         # KL 1.5 each
    y, logits = np.array([0.0, 1.0]), np.array([0.0, 2.0])
    total, classification = dbvae_loss(x, x_hat, y, logits, mu, logvar, kl_weight=0.5)
    ce = [math.log(2), math.log(1 + math.exp(-2))]                        # -log sigmoid(+-logit)
    np.testing.assert_allclose(classification, ce, rtol=1e-6)
    np.testing.assert_allclose(total, [ce[0], ce[1] + 0.5 * 1.5 + 0.5], rtol=1e-6)


# ------------------------------------------------------------------------------ resampling


def test_sampling_probabilities_by_hand():
    # bins=2 over [0, 1]: densities 3 / (4 * 0.5) = 1.5 and 0.5; alpha 0.5: weights 1/2, 1/2, 1/2, 1.
    mu = np.array([[0.0], [0.0], [0.0], [1.0]])
    np.testing.assert_allclose(sampling_probabilities(mu, bins=2, alpha=0.5), [0.2, 0.2, 0.2, 0.4])
    # The same rare face in two dimensions: per dimension [.2, .2, .2, .4]; the maximum keeps that,
    # the product squares it: [.04, .04, .04, .16] / 0.28.
    both = np.repeat(mu, 2, axis=1)
    np.testing.assert_allclose(sampling_probabilities(both, 2, 0.5, "max"), [0.2, 0.2, 0.2, 0.4])
    np.testing.assert_allclose(sampling_probabilities(both, 2, 0.5, "product"), [1 / 7] * 3 + [4 / 7])
    # Rare in different dimensions: the maximum takes each face's rarest dimension.
    mixed = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(sampling_probabilities(mixed, 2, 0.5, "max"),
                               [1 / 3, 1 / 6, 1 / 6, 1 / 3])


@pytest.mark.parametrize("combine", ["max", "product"])
def test_sampling_probabilities_properties(combine):
    rng = np.random.default_rng(0)
    # Codes spread evenly (100 per bin in every dimension, in different orders): uniform.
    even = np.stack([rng.permutation(np.linspace(-2, 2, 1000)) for _ in range(5)], axis=1)
    np.testing.assert_allclose(sampling_probabilities(even, combine=combine), 1 / 1000, rtol=1e-9)
    # 99 codes in [0, 1) and one at 10: bins of width 1, densities 0.99 and 0.01.
    rare = np.append(np.linspace(0, 0.99, 99), 10.0)[:, None]
    p = sampling_probabilities(rare, bins=10, alpha=0.001, combine=combine)
    np.testing.assert_allclose(p[-1] / p[0], 0.991 / 0.011, rtol=1e-9)
    assert np.argmax(p) == 99 and np.allclose(p[:99], p[0])
    # Large alpha flattens towards uniform; smaller alpha favours the rare face more.
    normal = rng.normal(size=(500, 4))
    flat = sampling_probabilities(normal, alpha=1e6, combine=combine)
    assert np.abs(flat * 500 - 1).max() < 1e-5
    ratios = [sampling_probabilities(rare, alpha=a, combine=combine)[-1] * 100 for a in (0.001, 0.1, 10)]
    assert ratios[0] > ratios[1] > ratios[2] > 1
    # Many dimensions: the product of 100 small factors does not underflow; always a distribution.
    many = rng.normal(size=(2000, 100))
    for mu in (normal, many, rare):
        p = sampling_probabilities(mu, combine=combine)
        assert p.shape == (len(mu),) and np.all(p >= 0) and np.all(np.isfinite(p))
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert sampling_probabilities(many, combine=combine).max() > 1.5 / 2000
    with pytest.raises(ValueError, match="latent means"):
        sampling_probabilities(np.zeros(5), combine=combine)


# -------------------------------------------------------------------------------- the lab


@pytest.fixture(scope="module")
def trained_lab():
    lab = DbvaeLab(DbvaeConfig(**TINY), seed=0)
    first = lab.train_epoch()
    return lab, first


def test_tiny_dbvae_lab_trains_and_reports_every_metric(trained_lab):
    lab, metrics = trained_lab
    assert tuple(metrics) == DbvaeLab.metric_names("dbvae", "bias_benchmark")
    assert set(metrics) < set(DbvaeLab.METRICS)
    assert all(type(v) is float and math.isfinite(v) for v in metrics.values()), metrics
    assert metrics["counters/epoch"] == 1.0 and lab.epoch == 1 and lab.total_epochs == 2
    for g in BENCHMARK_GROUPS:                                            # NT, NK, IT, IK
        assert 0 <= metrics[f"eval/accuracy_{g}"] <= 1 and 0 < metrics[f"eval/mean_face_prob_{g}"] < 1
    assert 0 <= metrics["eval/negative_accuracy"] <= 1
    accuracy = np.array([metrics[f"eval/accuracy_{g}"] for g in BENCHMARK_GROUPS]) * 100
    assert metrics["eval/E_A"] == pytest.approx(accuracy.mean())
    assert metrics["eval/Var_A"] == pytest.approx(accuracy.var())
    assert metrics["train/loss"] > metrics["train/classification_loss"] > 0   # faces add the VAE loss
    assert metrics["train/kl"] > 0 and metrics["train/reconstruction"] > 0
    faces = len(lab.data.face_indices)
    assert 1 <= metrics["sampling/max_over_uniform"] <= faces


def test_tiny_dbvae_lab_images(trained_lab):
    lab, _ = trained_lab
    images = lab.images()
    assert tuple(images) == DbvaeLab.IMAGES
    for name, image in images.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 10, name


def test_tiny_dbvae_lab_save_restore_continues_identically(trained_lab, tmp_path):
    lab, _ = trained_lab
    lab.save(tmp_path)
    fresh = DbvaeLab(lab.cfg, seed=0)
    fresh.restore(tmp_path)
    assert fresh.epoch == lab.epoch == 1
    for a, b in zip(lab.model.get_weights() + [v.numpy() for v in lab.optimizer.variables],
                    fresh.model.get_weights() + [v.numpy() for v in fresh.optimizer.variables]):
        np.testing.assert_array_equal(a, b)
    second, again = lab.train_epoch(), fresh.train_epoch()                # same batches and noise
    assert lab.epoch == fresh.epoch == lab.total_epochs == 2
    for key in ("train/loss", "train/kl", "sampling/max_over_uniform", "eval/E_A"):
        assert second[key] == pytest.approx(again[key], rel=1e-5), key


def test_standard_classifier_lab(tmp_path):
    lab = DbvaeLab(DbvaeConfig(**{**TINY, "model": "standard", "epochs": 1}), seed=3)
    metrics = lab.train_epoch()
    assert tuple(metrics) == DbvaeLab.metric_names("standard", "bias_benchmark")
    assert not {"train/kl", "train/reconstruction", "sampling/max_over_uniform"} & set(metrics)
    assert metrics["train/loss"] == pytest.approx(metrics["train/classification_loss"])
    assert tuple(lab.images()) == ("dbvae/group_face_prob",)
    assert lab.save_group_plot(tmp_path / "groups.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_baseline_trains_beside_the_dbvae_as_a_standard_trial_would(tmp_path):
    """baseline: true co-trains the standard classifier on the batches a 'standard' trial of the
    same seed draws: its results match that trial's; the plot and table hold both models."""
    cfg = DbvaeConfig(**{**TINY, "epochs": 1, "baseline": True})
    lab = DbvaeLab(cfg, seed=3)
    metrics = lab.train_epoch()
    assert tuple(metrics) == DbvaeLab.metric_names("dbvae", "bias_benchmark", baseline=True)
    assert set(metrics) <= set(DbvaeLab.METRICS)
    alone = DbvaeLab(DbvaeConfig(**{**TINY, "epochs": 1, "model": "standard"}), seed=3).train_epoch()
    assert metrics["baseline/train_loss"] == pytest.approx(alone["train/loss"], rel=1e-4)
    for g in BENCHMARK_GROUPS:
        assert metrics[f"baseline/mean_face_prob_{g}"] == pytest.approx(
            alone[f"eval/mean_face_prob_{g}"], abs=1e-4)
    assert metrics["baseline/Var_A"] == pytest.approx(alone["eval/Var_A"], abs=1e-6)
    table, plot = lab.write_report(tmp_path)
    rows = table.read_text().splitlines()
    assert rows[0] == "model,group,accuracy,mean_face_prob" and len(rows) == 1 + 2 * 4 + 2 + 2
    assert rows[1].startswith("DB-VAE,NT,") and rows[5].startswith("standard CNN,NT,")
    assert f"standard CNN,Var[A] %^2,{metrics['baseline/Var_A']:.4f}," in rows
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lab.save(tmp_path / "ckpt")                                            # both models restore
    fresh = DbvaeLab(cfg, seed=3)
    fresh.restore(tmp_path / "ckpt")
    for a, b in zip(lab.baseline.get_weights(), fresh.baseline.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="baseline: the standard classifier is the baseline"):
        DbvaeConfig(**{**TINY, "model": "standard", "baseline": True})


# ------------------------------------------------------------------- the real test faces


def test_group_evaluation_on_the_course_test_faces(tmp_path):
    from supervised.face_eval import GROUPS, load_test_faces

    faces = load_test_faces()
    assert set(faces) == set(GROUPS) and all(f.shape == (5, 64, 64, 3) for f in faces.values())
    model = DbVae(latent_dim=8, n_filters=4, image_shape=(64, 64, 3), seed=0)  # untrained
    metrics = evaluate_groups(lambda images: face_probabilities(model, images), faces)
    accuracy = np.array([metrics[f"eval/accuracy_{g}"] for g in GROUPS])
    assert np.all(np.isin(accuracy, [0, 0.2, 0.4, 0.6, 0.8, 1.0]))        # 5 faces per group
    assert metrics["eval/E_A"] == pytest.approx(100 * accuracy.mean())
    assert metrics["eval/Var_A"] == pytest.approx(np.var(100 * accuracy))
    assert "eval/negative_accuracy" not in metrics                         # no non-faces given
    path = save_png(render_group_plot(metrics), tmp_path / "plot" / "groups.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def write_face_files(folder: Path, n: int = 24) -> tuple[Path, Path]:
    """A tiny train_face.h5 in the course's layout (BGR images, labels [N, 1]) and a tiny PPB
    folder in the published layout (two photos per group), with random pixels."""
    import h5py
    from PIL import Image

    rng = np.random.default_rng(0)
    h5 = folder / "train_face.h5"
    with h5py.File(h5, "w") as f:
        f["images"] = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        f["labels"] = (np.arange(n) % 2).astype(np.float32)[:, None]
    ppb = folder / "PPB-2017"
    (ppb / "imgs").mkdir(parents=True)
    rows = ["id,filename,gender,Fitzpatrick,lighter/darker,country"]
    people = [(g, s) for g in ("female", "male") for s in ("lighter", "darker")] * 2
    for i, (gender, skin) in enumerate(people):
        photo = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(photo).save(ppb / "imgs" / f"{i}.jpg")
        rows.append(f"{i},{i}.jpg,{gender},3,{skin},x")
    (ppb / "PPB-2017-metadata.csv").write_text("\n".join(rows) + "\n")
    return h5, ppb


def test_faces_dataset_lab_with_ppb(tmp_path):
    """The course's path: train_face.h5 (here a tiny one), the 20 real test faces, and PPB."""
    from supervised.face_eval import load_ppb

    h5, ppb = write_face_files(tmp_path)
    cfg = DbvaeConfig(dataset="faces", data_path=str(h5), ppb_dir=str(ppb), latent_dim=8, n_filters=4,
                      epochs=1, steps_per_epoch=2, batch_size=8)
    lab = DbvaeLab(cfg, seed=0)
    assert lab.steps_per_epoch == 2 and lab.data.image_shape == (64, 64, 3)
    metrics = lab.train_epoch()
    expected = DbvaeLab.metric_names("dbvae", "faces")
    assert tuple(k for k in metrics if not k.startswith("ppb/")) == expected
    assert "eval/negative_accuracy" not in metrics                        # no test non-faces
    ppb_keys = {f"ppb/accuracy_{g}" for g in ("LF", "LM", "DF", "DM")} | {"ppb/E_A", "ppb/Var_A"}
    assert ppb_keys <= set(metrics)
    assert all(type(v) is float and math.isfinite(v) for v in metrics.values()), metrics
    one_pass = DbvaeConfig(dataset="faces", data_path=str(h5), steps_per_epoch=None, batch_size=8,
                           latent_dim=2, n_filters=1)
    assert DbvaeLab(one_pass, 0).steps_per_epoch == 3                     # 24 images // 8
    # An untrained model that calls everything a face detects every PPB photo.
    photos, groups = load_ppb(ppb)
    always = build_classifier(1, 1, (64, 64, 3), seed=0)
    always.layers[-1].bias.assign([50.0])
    always.layers[-1].kernel.assign(np.zeros_like(always.layers[-1].kernel.numpy()))
    result = evaluate_ppb(lambda images: face_probabilities(always, images), photos, groups)
    assert result == {"ppb/accuracy_LF": 1.0, "ppb/accuracy_LM": 1.0, "ppb/accuracy_DF": 1.0,
                      "ppb/accuracy_DM": 1.0, "ppb/E_A": 100.0, "ppb/Var_A": 0.0}


# ------------------------------------------------------------------------- the configs


def test_configs_load_and_bad_values_are_refused(tmp_path):
    lab, cfg = load(REPO / "configs" / "dbvae.yaml")
    assert lab.name == "dbvae" and cfg.dbvae == DbvaeConfig(baseline=True)    # the course's defaults
    course = (cfg.dbvae.latent_dim, cfg.dbvae.kl_weight, cfg.dbvae.lr, cfg.dbvae.batch_size)
    assert course == (100, 5e-4, 5e-4, 32)
    lab, cfg = load(REPO / "configs" / "dbvae_bias.yaml")
    assert lab.name == "dbvae" and cfg.dbvae.dataset == "bias_benchmark"
    sweep = load_sweep(REPO / "configs" / "dbvae_sweep.yaml")
    assert sweep.cfg.metric == "eval/Var_A" and sweep.cfg.mode == "min"
    assert LABS["dbvae"].metric in DbvaeLab.METRICS and LABS["dbvae"].mode == "max"
    for override, message in [("dbvae.image_size=40", "dbvae.image_size: expected a multiple of 16"),
                              ("dbvae.alpha=0", "dbvae.alpha: expected a number > 0"),
                              ("dbvae.combine=mean", "dbvae.combine: expected one of")]:
        with pytest.raises(ConfigError, match=message):
            load(REPO / "configs" / "dbvae_bias.yaml", [override])


@pytest.mark.slow
def test_a_tiny_dbvae_trial_through_the_cli(ray_address, tmp_path):
    """configs/dbvae.yaml, the course's path, on a tiny train_face.h5 in the course's layout:
    the DB-VAE beside the standard CNN, evaluated on the 20 real test faces
    ($LABRUN_DATA_DIR/faces), writes its per-group table and bar plot."""
    h5, _ = write_face_files(tmp_path, n=40)
    sets = ["dbvae.epochs=1", "dbvae.steps_per_epoch=2", "dbvae.batch_size=8", "dbvae.latent_dim=8",
            "dbvae.n_filters=4", f"dbvae.data_path={h5}"]
    out = run_cli("train", "configs/dbvae.yaml", "--address", ray_address,
                  "--runs-dir", str(tmp_path / "runs"), *[a for s in sets for a in ("--set", s)])
    assert out.returncode == 0, out.stdout + out.stderr
    folder = next((tmp_path / "runs").iterdir())
    (trial,) = [p for p in folder.iterdir() if p.is_dir() and (p / "result.json").exists()]
    (row,) = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line]
    assert row["counters/epoch"] == 1
    assert set(DbvaeLab.metric_names("dbvae", "faces", baseline=True)) <= set(row)
    for prefix in ("eval", "baseline"):                                   # 5 faces per group
        assert all(row[f"{prefix}/accuracy_{g}"] in (0, 0.2, 0.4, 0.6, 0.8, 1)
                   for g in ("LF", "LM", "DF", "DM"))
    assert list(trial.glob("checkpoint_*")) and "eval/E_A" in out.stdout
    rows = (trial / "groups.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:9]] == [[m, g] for m in ("DB-VAE", "standard CNN")
                                                     for g in ("LF", "LM", "DF", "DM")]
    assert rows[9] == f"DB-VAE,E[A] %,{row['eval/E_A']:.4f},"
    assert (trial / "groups.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images = EventAccumulator(str(trial / "images"), size_guidance={"images": 0})
    images.Reload()
    assert set(DbvaeLab.IMAGES) <= set(images.Tags()["images"])
