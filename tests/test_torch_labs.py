"""The PyTorch labs beside the TensorFlow ones: the course's PyTorch models, the labs in-process
(learning, checkpoints that continue identically, weights-only loading), the registry's
``framework`` key, and where a trial trains. The same labs through the CLI: test_tune.py."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_music import TINY as MUSIC_TINY
from test_music import real_irish
from test_supervised import real_mnist

from cluster import devices
from cluster.config.schema import ConfigError
from cluster.labs import LABS, check_framework, job_extras, load, load_sweep, require_installed
from helpers import REPO, write_sweep
from supervised.config import DbvaeConfig, IntroConfig, MnistConfig, MusicConfig
from supervised.dbvae import DbvaeLab
from supervised.dbvae_torch import DbVae as build_torch_dbvae
from supervised.dbvae_torch import TorchDbvaeLab
from supervised.dbvae_torch import dbvae_loss as torch_dbvae_loss
from supervised.intro import IntroLab
from supervised.intro_base import make_line
from supervised.intro_torch import TorchIntroLab
from supervised.intro_torch import build_line_model as build_torch_line
from supervised.mnist import MnistLab
from supervised.mnist_base import cosine_lr
from supervised.mnist_torch import TorchMnistLab, build_mnist_net
from supervised.models import build_mnist_model
from supervised.music import MusicLab
from supervised.music_generation import CharRNN, find_checkpoint, generate_text, load_generator
from supervised.music_torch import MusicLSTM, TorchMusicLab
from supervised.torch_state import TORCH_WEIGHTS_FILE, load_torch_state


def parameters(model: torch.nn.Module) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in model.parameters()]


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------------ models


@pytest.mark.parametrize("kind", ["dense", "cnn"])
def test_torch_mnist_models_have_the_keras_models_shapes_and_sizes(kind):
    net, keras_model = build_mnist_net(kind, seed=0), build_mnist_model(kind, seed=0)
    x = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    assert tuple(net(torch.from_numpy(x)[:, None]).shape) == (3, 10)
    assert tuple(keras_model(x[..., None]).shape) == (3, 10)
    assert sum(p.numel() for p in net.parameters()) == keras_model.count_params()
    assert_same(parameters(net), parameters(build_mnist_net(kind, seed=0)))     # a function of the seed
    assert not np.array_equal(parameters(net)[0], parameters(build_mnist_net(kind, seed=1))[0])


def test_building_a_model_leaves_torchs_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_mnist_net("cnn", seed=7)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_cosine_lr_by_hand():
    assert cosine_lr(1e-3, 0, 20) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 10, 20) == pytest.approx(0.5e-3)
    assert cosine_lr(1e-3, 20, 20) == pytest.approx(0.0) and cosine_lr(1e-3, 25, 20) == pytest.approx(0.0)


# --------------------------------------------------------------------------------- the labs


def test_torch_and_tensorflow_mnist_reach_comparable_accuracy_on_a_short_budget():
    # 6,000 images: seeds 0 and 1 reach 0.904 and 0.891 in PyTorch (its own initialisation, as
    # the course's notebook), 0.930 and 0.927 in TensorFlow (Glorot)
    cfg = MnistConfig(model="cnn", epochs=1, train_limit=6_000, data_path=str(real_mnist()))
    torch_metrics, tf_metrics = TorchMnistLab(cfg, seed=0).train_epoch(), MnistLab(cfg, seed=0).train_epoch()
    assert tuple(torch_metrics) == tuple(tf_metrics) == MnistLab.METRICS == TorchMnistLab.METRICS
    assert all(type(v) is float for v in torch_metrics.values()), torch_metrics
    assert torch_metrics["test/accuracy"] > 0.85 and tf_metrics["test/accuracy"] > 0.85
    assert abs(torch_metrics["test/accuracy"] - tf_metrics["test/accuracy"]) < 0.06, (torch_metrics, tf_metrics)


def test_torch_mnist_save_restore_continues_identically_with_the_schedule(tmp_path):
    cfg = MnistConfig(model="cnn", epochs=2, batch_size=64, train_limit=640, lr_schedule="cosine",
                      data_path=str(real_mnist()))
    lab = TorchMnistLab(cfg, seed=0, device="cpu")
    lab.train_epoch()                                        # 10 of the 20 steps: half the rate
    assert lab.step == 10 and lab.learning_rate() == pytest.approx(0.5e-3)
    lab.save(tmp_path)
    fresh = TorchMnistLab(cfg, seed=0, device="cpu")
    fresh.restore(tmp_path)
    assert (fresh.epoch, fresh.step) == (1, 10) and fresh.learning_rate() == pytest.approx(0.5e-3)
    assert_same(parameters(lab.model), parameters(fresh.model))
    fresh_images = fresh.images()   # a fresh evaluation, against the one of lab's last epoch
    for name, image in lab.images().items():
        np.testing.assert_array_equal(image, fresh_images[name], err_msg=name)
    first, second = lab.train_epoch(), fresh.train_epoch()
    assert_same(parameters(lab.model), parameters(fresh.model))
    for key in ("train/loss", "test/loss", "test/accuracy"):
        assert first[key] == second[key], key


def test_a_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    lab = TorchIntroLab(IntroConfig(epochs=1, steps_per_epoch=2), seed=0)
    lab.save(tmp_path)
    torch.save({"model": lab.model, "optimizer": {}}, tmp_path / TORCH_WEIGHTS_FILE)  # a whole module
    with pytest.raises(ValueError, match=f"{TORCH_WEIGHTS_FILE}: refused, it holds more than tensors") as err:
        load_torch_state(tmp_path, lab.model, lab.optimizer)
    message = str(err.value)                           # one line, the reason, no terminal colours
    assert "Unsupported global: GLOBAL supervised.intro_torch.LineModel" in message
    assert "\n" not in message and "\x1b" not in message
    (tmp_path / TORCH_WEIGHTS_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_torch_state(tmp_path, lab.model, lab.optimizer)


def test_a_checkpoint_of_the_other_framework_or_model_is_named(tmp_path):
    IntroLab(IntroConfig(epochs=1, steps_per_epoch=2), seed=0).save(tmp_path / "tf")
    lab = TorchIntroLab(IntroConfig(epochs=1, steps_per_epoch=2), seed=0)
    with pytest.raises(FileNotFoundError, match=f"not a PyTorch checkpoint \\(no {TORCH_WEIGHTS_FILE}\\)"):
        lab.restore(tmp_path / "tf")
    cfg = MnistConfig(model="dense", epochs=1, train_limit=64, data_path=str(real_mnist()))
    TorchMnistLab(cfg, seed=0).save(tmp_path / "dense")
    with pytest.raises(ValueError, match="does not fit this model"):
        lab.restore(tmp_path / "dense")


@pytest.mark.parametrize("kind", ["subclassed", "sequential"])
def test_torch_intro_fits_the_same_line_as_the_tensorflow_lab(kind):
    cfg = IntroConfig(model=kind)
    torch_lab, tf_lab = TorchIntroLab(cfg, seed=0), IntroLab(cfg, seed=0)
    np.testing.assert_array_equal(torch_lab.x, tf_lab.x.numpy())           # the same data
    x, y = make_line(4, 0.1, 0)                                     # NumPy's, from the seed alone
    np.testing.assert_allclose(x[:, 0], [0.82177013, -1.3812797, -2.754159, -2.9008341], rtol=1e-6)
    np.testing.assert_allclose(y[:, 0], [1.4117434, -5.1076794, -9.132077, -9.607794], rtol=1e-6)
    history = [torch_lab.train_epoch() for _ in range(cfg.epochs)]
    last = history[-1]
    assert all(tuple(m) == IntroLab.METRICS for m in history)
    assert abs(last["fit/slope"] - 3) < 0.1 and abs(last["fit/intercept"] + 1) < 0.1
    assert last["fit/loss"] < history[0]["fit/loss"] / 10
    for _ in range(cfg.epochs):
        tf_last = tf_lab.train_epoch()
    assert last["fit/slope"] == pytest.approx(tf_last["fit/slope"], abs=1e-3)
    assert last["fit/loss"] == pytest.approx(tf_last["fit/loss"], rel=1e-3)


def test_torch_intro_models_agree_and_restore_keeps_the_configs_lr(tmp_path):
    assert_same(parameters(build_torch_line("sequential", 4)), parameters(build_torch_line("subclassed", 4)))
    lab = TorchIntroLab(IntroConfig(epochs=3, steps_per_epoch=10), seed=2)
    lab.train_epoch()
    lab.save(tmp_path)
    fresh = TorchIntroLab(IntroConfig(epochs=3, steps_per_epoch=10, lr=0.02), seed=2)
    fresh.restore(tmp_path)
    assert fresh.epoch == 1 and fresh.optimizer.param_groups[0]["lr"] == 0.02
    assert_same(parameters(lab.model), parameters(fresh.model))


# ----------------------------------------------------------------------------- the registry


def test_every_lab_reports_the_same_metrics_in_every_framework():
    for lab in LABS.values():
        for framework in getattr(lab, "runners", {}):
            assert tuple(lab.runner_class(framework).METRICS) == lab.metrics(), (lab.name, framework)
    for name in ("intro", "mnist", "music", "dbvae"):
        assert set(LABS[name].runners) == {"tensorflow", "torch"}, name


def test_framework_is_a_key_of_every_supervised_experiment():
    lab, cfg = load(REPO / "configs" / "mnist.yaml", ["framework=torch"])
    assert cfg.framework == "torch" and lab.name == "mnist"
    with pytest.raises(ConfigError, match="framework: expected one of 'tensorflow', 'torch'"):
        load(REPO / "configs" / "intro.yaml", ["framework=jax"])
    tf_only = dataclasses.replace(LABS["mnist"], runners={"tensorflow": LABS["mnist"].runners["tensorflow"]})
    with pytest.raises(ConfigError, match="framework: the mnist lab has no PyTorch version yet; "
                                          "expected one of 'tensorflow'"):
        check_framework(tf_only, "torch", "x.yaml")      # a lab without one: refused before it starts


def test_a_framework_not_installed_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        require_installed(load(REPO / "configs" / "mnist.yaml", ["framework=torch"]), "configs/mnist.yaml")
    message = str(err.value)
    assert message.startswith("configs/mnist.yaml: framework: PyTorch is not installed")
    assert message.endswith("install it with: pip install -e '.[torch]'") and "\n" not in message


def test_a_sweep_over_the_framework_is_checked_and_a_job_gets_the_extras_it_needs(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, {"framework": {"grid": ["tensorflow", "torch"]}}))
    assert job_extras(sweep) == ["torch"]
    mnist = REPO / "configs" / "mnist.yaml"
    assert job_extras(load(mnist)) == []                                 # gpus: auto asks for none
    assert job_extras(load(mnist, ["trial.gpus=1"])) == ["cuda"]          # TensorFlow's CUDA libraries
    assert job_extras(load(mnist, ["trial.gpus=0.5", "framework=torch"])) == ["torch"]
    assert job_extras(load(REPO / "configs" / "pong.yaml", ["resources.learner_gpus=1"])) == ["cuda"]
    gpu_sweep = load_sweep(write_sweep(tmp_path, {"trial.gpus": {"grid": [0, 1]}}))
    assert job_extras(gpu_sweep) == ["cuda"]
    with pytest.raises(ConfigError, match="search_space.framework: grid value 'jax' does not fit "
                                          "the experiment: framework: expected one of"):
        load_sweep(write_sweep(tmp_path, {"framework": {"grid": ["torch", "jax"]}}))


# ------------------------------------------------------------------------------- devices


@pytest.fixture
def restore_process_state(monkeypatch):
    """place_trial changes the process's environment and torch's thread count: put them back."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_auto_is_one_gpu_when_the_cluster_has_one_alive():
    assert devices.gpus_for("auto", 0) == 0.0 and devices.gpus_for("auto", 0.5) == 0.0
    assert devices.gpus_for("auto", 4) == 1.0 and devices.gpus_for(0.25, 0) == 0.25


def test_a_trial_given_no_gpu_hides_them_and_uses_its_cpus(restore_process_state):
    assert devices.place_trial("torch", gpus=0, cpus=1) == "cpu (1 thread)"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "" and torch.get_num_threads() == 1


def test_a_trial_given_a_gpu_keeps_it_and_a_share_caps_pytorchs_memory(restore_process_state, monkeypatch):
    """PyTorch's CUDA calls stood in for (no GPU here): what place_trial asks of them."""
    capped = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda fraction, device=None: capped.append((fraction, device)))
    assert devices.place_trial("torch", gpus=1, cpus=2, gpu_share=0.5) == "cuda:0 (Test GPU, 0.5 of it)"
    assert capped == [(0.5, 0)] and torch.get_num_threads() == 2
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"                    # Ray's choice, kept
    assert devices.place_trial("torch", gpus=1, cpus=1, gpu_share=1.0) == "cuda:0 (Test GPU)"
    assert capped == [(0.5, 0)]                                           # a whole GPU: no cap


def test_a_tensorflow_trial_sharing_a_gpu_gets_a_logical_device_of_its_share(restore_process_state, monkeypatch):
    """TensorFlow's GPU calls and nvidia-smi stood in for (no GPU here): what place_trial asks."""
    import shutil

    import tensorflow as tf

    if shutil.which("nvidia-smi") is None:
        assert devices.gpu_memory_mib() is None                          # unknown: no cap, said so
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    limits, grown = [], []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config, "set_logical_device_configuration",
                        lambda device, configs: limits.append((device.name, configs[0].memory_limit)))
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda device, on: grown.append(on))
    monkeypatch.setattr(devices, "gpu_memory_mib", lambda: 81_920)
    assert devices.place_trial("tensorflow", gpus=1, cpus=1, gpu_share=0.25) == \
        "/physical_device:GPU:0, 0.25 of it, 20480 of 81920 MiB"
    assert limits == [("/physical_device:GPU:0", 20_480)] and grown == []   # no growth beside a limit
    assert devices.place_trial("tensorflow", gpus=1, cpus=1, gpu_share=1.0) == "/physical_device:GPU:0"
    assert grown == [True] and len(limits) == 1                           # a whole GPU: growth
    monkeypatch.setattr(devices, "gpu_memory_mib", lambda: None)
    assert devices.place_trial("tensorflow", gpus=1, cpus=1, gpu_share=0.5).endswith(
        "0.5 of it, memory uncapped (its size unknown)")


def test_a_trial_given_a_gpu_its_framework_cannot_use_fails_clearly(restore_process_state):
    if torch.cuda.is_available():
        pytest.skip("this machine has a usable GPU")
    with pytest.raises(devices.GpuUnusable, match="given 1 GPU\\(s\\) but PyTorch .* cannot use CUDA"):
        devices.place_trial("torch", gpus=1, cpus=1)
    with pytest.raises(devices.GpuUnusable, match="given 1 GPU\\(s\\) but TensorFlow sees none"):
        devices.place_trial("tensorflow", gpus=1, cpus=1)


def test_pytorch_missing_is_refused_in_one_line_before_anything_starts(tmp_path):
    """Run the CLI with PyTorch made unimportable (a None entry in sys.modules fails its import;
    find_spec on it raises ValueError, so the check is made to see it as absent)."""
    code = ("import sys, importlib.util\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda name, *a: None if name == 'torch' else real(name, *a)\n"
            "from cluster.cli import main\n"
            f"sys.exit(main(['train', 'configs/dbvae_bias.yaml', '--set', 'framework=torch', "
            f"'--runs-dir', {str(tmp_path)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: configs/dbvae_bias.yaml: framework: PyTorch is not installed")
    assert out.stderr.endswith("install it with: pip install -e '.[torch]'\n") and out.stderr.count("\n") == 1
    assert not any(tmp_path.iterdir())                                 # no run folder, no Ray


# ---------------------------------------------------------------------------- the GPU check


def test_the_gpu_check_runs_on_the_cpu_with_nothing_but_pytorch_and_numpy(tmp_path):
    """What the GPU machine has: PyTorch and NumPy, none of labrun's other dependencies. Here
    every module of those (pyproject.toml's dependencies, as installed) is made unimportable in
    the check's process, and it still runs and checks."""
    import importlib.metadata as md
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.sub(r"[-_.]+", "-", re.split(r"[ ;<>=!~\[]", spec)[0]).lower()
                for spec in project["dependencies"]} - {"numpy"}
    blocked = sorted({module for module, dists in md.packages_distributions().items()
                      if any(re.sub(r"[-_.]+", "-", d).lower() in declared for d in dists)
                      and not module.startswith("_")})
    assert {"ray", "tensorflow", "matplotlib", "yaml", "PIL", "h5py", "music21", "skimage"} <= set(blocked)
    code = (f"import sys\nsys.modules.update(dict.fromkeys({blocked!r}))\n"   # None: ImportError
            "from benchmarks import gpu_check\n"
            f"sys.exit(gpu_check.main(['--device', 'cpu', '--steps', '8', '--out', {str(tmp_path / 'gpu.json')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    names = ["mnist_cnn", "music_lstm", "dbvae"]
    assert [line.split(":")[0] for line in lines[:3]] == [f"ok   {n}" for n in names], out.stdout
    assert all("steps/s on cpu" in line for line in lines[:3]), out.stdout
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["passed"] and result["device"] == "cpu" and result["torch"] == torch.__version__
    for name in names:
        lab = result["labs"][name]
        assert lab["steps"] == 8 and lab["on_device"] and lab["device_steps_per_s"] > 0, name
        assert len(lab["chunk_losses"]) == 4 and lab["loss_fell"], (name, lab["chunk_losses"])


def test_the_gpu_check_refuses_a_device_it_does_not_have(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a usable GPU")
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path / "g.json")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("error: --device cuda: PyTorch "), out.stderr
    assert not (tmp_path / "g.json").exists()


# -------------------------------------------------------------------------------------- music


def test_the_numpy_sampler_steps_the_pytorch_lstm_exactly():
    """CharRNN.from_torch_state maps PyTorch's LSTM (transposed matrices, two biases) onto the
    sampler's: reading the same characters, it gives the model's logits at every step."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MusicLSTM(vocab_size=12, embedding_dim=5, hidden_size=7)
    rnn = CharRNN.from_torch_state({k: v.numpy() for k, v in model.state_dict().items()})
    chars = [3, 5, 7, 11, 2, 0]
    with torch.no_grad():
        logits, _ = model(torch.tensor([chars]))                                  # [1, T, V]
    h = c = np.zeros(rnn.units, np.float32)
    for t, char in enumerate(chars):
        step_logits, h, c = rnn.step(char, h, c)
        np.testing.assert_allclose(step_logits, logits[0, t].numpy(), atol=1e-5)


def test_torch_music_lab_learns_restores_identically_and_generates_from_its_checkpoint(tmp_path):
    real_irish()
    cfg = MusicConfig(corpus="irish", epochs=3, steps_per_epoch=40, lr=1e-2, **MUSIC_TINY)
    lab = TorchMusicLab(cfg, seed=0, device="cpu")
    history = [lab.train_epoch() for _ in range(2)]
    assert all(tuple(m) == MusicLab.METRICS for m in history)
    assert history[1]["train/loss"] < history[0]["train/loss"] < np.log(len(lab.vocab)) + 0.5
    lab.save(tmp_path)
    fresh = TorchMusicLab(cfg, seed=0, device="cpu")
    fresh.restore(tmp_path)
    assert fresh.epoch == 2 and fresh.sample == lab.sample and fresh.texts() == lab.texts()
    assert_same(parameters(lab.model), parameters(fresh.model))
    first, second = lab.train_epoch(), fresh.train_epoch()
    assert first["train/loss"] == second["train/loss"] and fresh.sample == lab.sample
    assert_same(parameters(lab.model), parameters(fresh.model))
    # `labrun generate` reads a PyTorch checkpoint too: the same sampler, the same text
    assert find_checkpoint(tmp_path) == tmp_path
    rnn, vocab, counters = load_generator(tmp_path)
    assert vocab == lab.vocab and counters["epoch"] == 2 and counters["framework"] == "torch"
    lab_at_2 = TorchMusicLab(cfg, seed=0, device="cpu")
    lab_at_2.restore(tmp_path)
    assert generate_text(rnn, vocab, "X", 200, seed=1) == generate_text(lab_at_2.char_rnn(), vocab, "X", 200, seed=1)


# -------------------------------------------------------------------------------------- DB-VAE

DBVAE_TINY = dict(dataset="bias_benchmark", image_size=32, num_train=400, num_test_per_group=20,
                  latent_dim=8, n_filters=4, epochs=2, steps_per_epoch=5, batch_size=16)


@pytest.mark.parametrize("size", [32, 64])
def test_torch_dbvae_networks_keep_the_image_size_and_the_losses_match_tensorflows(size):
    import tensorflow as tf

    from supervised import dbvae_model as tf_model

    model = build_torch_dbvae(latent_dim=6, n_filters=2, image_size=size)
    x = torch.rand(3, 3, size, size)
    y_logit, mu, logvar, x_hat = model(x, torch.randn(3, 6))
    assert y_logit.shape == (3,) and mu.shape == logvar.shape == (3, 6) and x_hat.shape == x.shape
    rng = np.random.default_rng(0)
    xs, x_hats = rng.random((4, 8, 8, 3), np.float32), rng.random((4, 8, 8, 3), np.float32)
    mus, logvars = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    ys, logits = np.array([1, 0, 1, 0], np.float32), rng.normal(size=4).astype(np.float32)
    ours = torch_dbvae_loss(*(torch.from_numpy(a) for a in (xs, x_hats, ys, logits, mus, logvars)), 0.3)
    theirs = tf_model.dbvae_loss(*(tf.constant(a) for a in (xs, x_hats, ys, logits, mus, logvars)), 0.3)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)


def test_torch_dbvae_lab_reports_the_tensorflow_metrics_and_its_baseline_is_a_standard_trial():
    cfg = DbvaeConfig(**{**DBVAE_TINY, "baseline": True})
    metrics = TorchDbvaeLab(cfg, seed=3, device="cpu").train_epoch()
    assert tuple(metrics) == DbvaeLab.metric_names("dbvae", "bias_benchmark", baseline=True)
    assert all(type(v) is float and np.isfinite(v) for v in metrics.values()), metrics
    standard = TorchDbvaeLab(DbvaeConfig(**{**DBVAE_TINY, "model": "standard"}), seed=3,
                             device="cpu").train_epoch()
    assert tuple(standard) == DbvaeLab.metric_names("standard", "bias_benchmark")
    for key in ("eval/E_A", "eval/Var_A", "eval/mean_face_prob_NT"):   # the same weights, batches
        assert metrics["baseline/" + key.removeprefix("eval/")] == pytest.approx(standard[key], abs=1e-6)
    assert metrics["baseline/train_loss"] == pytest.approx(standard["train/loss"], rel=1e-5)


def test_torch_dbvae_restores_identically_with_its_baseline(tmp_path):
    cfg = DbvaeConfig(**{**DBVAE_TINY, "baseline": True, "epochs": 3})
    lab = TorchDbvaeLab(cfg, seed=0, device="cpu")
    lab.train_epoch()
    lab.save(tmp_path)
    assert (tmp_path / "baseline" / TORCH_WEIGHTS_FILE).is_file()
    fresh = TorchDbvaeLab(cfg, seed=0, device="cpu")
    fresh.restore(tmp_path)
    assert fresh.epoch == 1
    np.testing.assert_array_equal(fresh.sampling_probabilities(), lab.sampling_probabilities())
    first, second = lab.train_epoch(), fresh.train_epoch()
    assert first == {**second, "time/epoch_s": first["time/epoch_s"]}
    assert_same(parameters(lab.model) + parameters(lab.baseline), parameters(fresh.model) + parameters(fresh.baseline))
    images = fresh.images()
    assert tuple(images) == DbvaeLab.IMAGES and all(i.dtype == np.uint8 for i in images.values())


def test_a_gpu_learner_that_tensorflow_cannot_use_fails_clearly():
    """The learner's actor checks that TensorFlow sees the GPU it was given; here none is seen
    (this machine has none, or the suite hides it), so building it fails with what to do, not
    with a learner that trains on the CPU while Ray holds the GPU for it."""
    from cluster.reinforce.workers import _OnDevice
    from rl.config import LearnerConfig, PolicyConfig
    from rl.learner import ReinforceLearner

    if os.environ.get("CUDA_VISIBLE_DEVICES") != "":
        pytest.skip("GPUs may be visible here (LABRUN_TEST_GPUS=1)")
    args = ((4,), 2, PolicyConfig(), LearnerConfig())
    with pytest.raises(devices.GpuUnusable, match="the learner's actor was given a GPU but TensorFlow "
                                                  "sees none .*or set resources.learner_gpus: 0"):
        _OnDevice(ReinforceLearner, 1, *args, seed=0)
    assert _OnDevice(ReinforceLearner, 0, *args, seed=0).where() == "the CPU"


def test_a_learner_actor_that_cannot_be_built_says_why_in_one_line(ray_client):
    from cluster.reinforce.workers import LearnerDidNotStart, RemoteLearner
    from rl.config import LearnerConfig
    from rl.learner import ReinforceLearner

    with pytest.raises(LearnerDidNotStart) as err:   # no policy config: its constructor fails
        RemoteLearner(ReinforceLearner, (4,), 2, None, LearnerConfig(), seed=0, num_gpus=0, num_cpus=0)
    message = str(err.value)
    assert message.startswith("the learner's actor did not start: ") and "\n" not in message
    assert message.endswith("AttributeError: 'NoneType' object has no attribute 'conv'"), message

@pytest.mark.slow   # TensorFlow's start-up and three labs' tracing: half a minute
def test_the_tensorflow_gpu_check_runs_on_the_cpu(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check_tf", "--device", "cpu", "--steps", "8",
                          "--out", str(tmp_path / "gpu_tf.json")], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    names = ["mnist_cnn", "music_lstm", "dbvae"]
    assert [line.split(":")[0] for line in out.stdout.splitlines()[:3]] == [f"ok   {n}" for n in names]
    result = json.loads((tmp_path / "gpu_tf.json").read_text())
    assert result["passed"] and result["device"] == "cpu" and result["labs"]["music_lstm"]["note_kernel"] == "fused"
    for name in names:
        lab = result["labs"][name]
        assert lab["steps"] == 8 and lab["on_device"] and lab["loss_fell"], (name, lab)
    refused = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check_tf", "--out", str(tmp_path / "g.json")],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    if refused.returncode != 0:                                        # this machine has no GPU
        assert refused.returncode == 2 and "error: --device gpu: TensorFlow" in refused.stderr
        assert not (tmp_path / "g.json").exists()

