"""The scaling benchmark's model (benchmarks/scaling.py) against values worked out by hand: no Ray,
no TensorFlow, no timing."""

import numpy as np
import pytest

from benchmarks.scaling import (
    PartCosts,
    cluster_estimates,
    efficiency,
    fit_line,
    iteration_s,
    learn_s,
    scaling_limit,
)
from benchmarks.scaling_learner import fake_batches

COSTS = PartCosts(sample_s=2.0, steps_per_worker=1000, learn_fixed_s=0.1, learn_per_step_s=1e-3,
                  host_per_step_s=1e-4, overhead_fixed_s=0.01, overhead_per_worker_s=0.002,
                  bytes_per_step=1000, gpu_step_s=9e-5)
CPU = dict(gpu=False, ingress_bytes_per_s=1e30)   # the measured costs alone: a CPU learner, no network


def test_sync_is_the_sum_and_pipelined_the_max():
    # 4 workers: 4,000 steps; learn = 0.1 + 4000 x 1e-3 = 4.1; overhead = 0.01 + 4 x 0.002 = 0.018
    assert iteration_s(COSTS, 4, pipelined=False, **CPU) == pytest.approx(2.0 + 4.1 + 0.018)
    assert iteration_s(COSTS, 4, pipelined=True, **CPU) == pytest.approx(4.1 + 0.018)


def test_a_gpu_learner_keeps_the_host_part_and_the_batches_cross_the_network():
    # per step: host 1e-4 + GPU 9e-5 = 1.9e-4; learn(4000) = 0.1 + 0.005 + 0.76 = 0.865
    assert learn_s(COSTS, 4000, gpu=True, gpu_update_s=0.005) == pytest.approx(0.865)
    assert learn_s(COSTS, 4000, gpu=False) == pytest.approx(4.1)
    # overhead: 0.018 + 4,000 steps x 1,000 bytes at 1e6 bytes/s = 4.018
    model = dict(gpu=True, gpu_update_s=0.005, ingress_bytes_per_s=1e6)
    assert iteration_s(COSTS, 4, pipelined=False, **model) == pytest.approx(2.0 + 0.865 + 4.018)
    assert iteration_s(COSTS, 4, pipelined=True, **model) == pytest.approx(0.865 + 4.018)


def test_pipelined_is_bound_by_sampling_while_learning_keeps_up():
    # 1 worker, GPU: learn = 0.105 + 1000 x 1.9e-4 = 0.295; overhead 0.012; max(2, 0.307) = 2
    model = dict(gpu=True, gpu_update_s=0.005, ingress_bytes_per_s=1e30)
    assert iteration_s(COSTS, 1, pipelined=True, **model) == pytest.approx(2.0)
    assert efficiency(COSTS, 1, pipelined=True, **model) == pytest.approx(1.0)
    assert efficiency(COSTS, 1, pipelined=False, **model) == pytest.approx(2.0 / 2.307)


def test_scaling_limit_is_where_efficiency_falls_below_a_half():
    # learn + overhead = 0.11 + 1.002 W. Sync: below a half once that passes sample (2 s), W > 1.89;
    # pipelined: once it passes 2 x sample (4 s), W > 3.88.
    assert scaling_limit(COSTS, pipelined=False, **CPU) == 2
    assert scaling_limit(COSTS, pipelined=True, **CPU) == 4
    free = PartCosts(2.0, 1000, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)   # nothing but sampling costs anything
    assert scaling_limit(free, pipelined=False, **CPU) is None


def test_cluster_estimates_keep_a_core_for_the_driver():
    out = cluster_estimates(COSTS, frameskip=4, cores=(2, 16))
    one = out["pipelined"]["cores"]["2"]
    assert one["workers"] == 1
    assert one["frames_per_s"] == pytest.approx(4 * one["steps_per_s"], abs=4)
    assert out["sync"]["cores"]["16"]["workers"] == 15
    assert out["sync"]["cores"]["16"]["efficiency"] < out["pipelined"]["cores"]["16"]["efficiency"]
    # the CPU learner's limits are the hand-worked ones above (the network adds 1e6 bytes per 800 s)
    assert out["sync"]["cpu_learner_workers_at_half_efficiency"] == 2


def test_fit_line():
    assert fit_line([1, 2, 3], [3, 5, 7]) == pytest.approx((1.0, 2.0))
    assert fit_line([1, 2], [1, 3]) == pytest.approx((0.0, 1.4))   # intercept -1: through the origin
    assert fit_line([1, 2], [3, 1]) == pytest.approx((2.0, 0.0))   # falling: a constant, the mean


def test_fake_batches_have_the_workers_shapes():
    cnn = fake_batches((40, 40, 1), 3, 2500, np.random.default_rng(0))
    assert [b.num_steps for b in cnn] == [1250, 1250]
    assert cnn[0].obs.dtype == np.int8 and cnn[0].obs.shape == (1250, 40, 40, 1)
    assert cnn[0].episode_lengths.tolist() == [1000, 250]
    assert np.count_nonzero(cnn[0].rewards) == 25   # a point every 50 steps
    mlp = fake_batches((4,), 2, 300, np.random.default_rng(0), parts=1)[0]
    assert mlp.obs.dtype == np.float32 and mlp.episode_lengths.tolist() == [200, 100]
