import numpy as np

from cluster import checkpoint


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
