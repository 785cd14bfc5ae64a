import numpy as np
import pytest

from cluster.reinforce import checkpoint


def state(i):
    return {"weights": [np.full((2, 2), i, np.float32)], "optimizer": [np.array(i), np.ones(3)],
            "num_updates": i}


def test_round_trip_and_keep_last(tmp_path):
    root = tmp_path / "checkpoints"
    for i in range(1, 6):
        checkpoint.save(root, i, state(i), {"iteration": i, "env_steps": 10 * i}, keep=2)
    kept = checkpoint.list_checkpoints(root)
    assert [p.name for p in kept] == ["iter_000004", "iter_000005"]
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]
    learner, counters = checkpoint.load(checkpoint.latest(root))
    assert counters == {"iteration": 5, "env_steps": 50}
    assert learner["num_updates"] == 5
    np.testing.assert_array_equal(learner["weights"][0], np.full((2, 2), 5))
    assert len(learner["optimizer"]) == 2


def test_incomplete_checkpoints_are_ignored(tmp_path):
    root = tmp_path / "checkpoints"
    checkpoint.save(root, 1, state(1), {"iteration": 1}, keep=3)
    (root / "iter_000002").mkdir()                      # a folder without its state file
    (root / ".tmp-iter_000003-123").mkdir()             # a write that never finished
    assert checkpoint.latest(root).name == "iter_000001"
    assert checkpoint.latest(tmp_path / "nothing") is None


@pytest.mark.parametrize("keep", [1, 3])
def test_keep_sets_how_many_newest_checkpoints_stay(tmp_path, keep):
    root = tmp_path / "checkpoints"
    for i in range(1, 6):
        checkpoint.save(root, i, state(i), {"iteration": i}, keep=keep)
    assert [p.name for p in checkpoint.list_checkpoints(root)] == \
        [f"iter_{i:06d}" for i in range(6 - keep, 6)]


def test_every_array_round_trips_in_order_and_a_repeated_iteration_replaces_its_checkpoint(tmp_path):
    """Twelve weights (Pong's CNN: 4 convolutions and 2 Dense layers), so that a name-sorted
    'weights_10' before 'weights_2' would show; the final checkpoint rewrites its iteration's."""
    root = tmp_path / "checkpoints"
    weights = [np.full((i + 1,), i, np.float32) for i in range(12)]
    optimizer = [np.array(7, np.int64), np.array(0.01, np.float32)] + [w * 0.5 for w in weights]
    checkpoint.save(root, 3, state(1), {"iteration": 1}, keep=2)
    path = checkpoint.save(root, 3, {"weights": weights, "optimizer": optimizer, "num_updates": 9},
                           {"iteration": 3}, keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(root)] == ["iter_000003"]
    learner, counters = checkpoint.load(path)
    assert counters == {"iteration": 3} and learner["num_updates"] == 9
    assert len(learner["weights"]) == 12 and len(learner["optimizer"]) == 14
    for got, want in zip(learner["weights"] + learner["optimizer"], weights + optimizer):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
