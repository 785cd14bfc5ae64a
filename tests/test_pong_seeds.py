"""The Pong seed benchmark's bookkeeping (benchmarks/pong_seeds.py, benchmarks/pong.py) against
values worked out by hand: no training, no Ray, no TensorFlow."""

import json

import pytest

from benchmarks import pong, pong_seeds


def test_scores_over_seeds_are_the_mean_and_its_standard_error():
    # mean 1; deviations -3, 0, +3: variance (9 + 0 + 9) / 2 = 9, std 3, stderr 3 / sqrt(3)
    s = pong_seeds.over_seeds([-2.0, 1.0, 4.0])
    assert s == {"mean": 1.0, "std": 3.0, "stderr": pytest.approx(1.73), "min": -2.0, "max": 4.0}


def test_a_variant_is_compared_with_the_config_by_the_difference_of_means():
    result = lambda greedy: {"greedy": greedy, "sampled": greedy - 5}
    summary = pong_seeds.summarize({
        "config": {0: result(-2.0), 1: result(1.0), 2: result(4.0)},            # 1 ± 1.73
        "entropy_0.01": {0: result(3.0), 1: result(6.0), 2: result(9.0)},       # 6 ± 1.73
    })
    variant = summary["entropy_0.01"]
    assert variant["overrides"] == ["learner.entropy_coef=0.01"]
    assert variant["greedy_minus_config"] == 5.0
    assert variant["greedy_minus_config_stderr"] == pytest.approx(2.45)        # hypot(1.73, 1.73)
    assert variant["sampled_over_seeds"]["mean"] == 1.0
    assert "greedy_minus_config" not in summary["config"]
    assert list(variant["seeds"]) == ["0", "1", "2"]


def test_an_evaluation_the_run_already_holds_is_read_not_played_again(tmp_path, monkeypatch):
    played = []
    monkeypatch.setattr(pong, "_labrun", lambda *args: played.append(args))
    for name in ("greedy", "sampled"):
        (tmp_path / f"eval_20M_{name}.json").write_text(json.dumps({"eval/episode_return_mean": 1.5}))
    evals = pong.evaluate_run(tmp_path, "20M", pong_seeds.SETTINGS)
    assert played == []
    assert evals == {"greedy": {"eval/episode_return_mean": 1.5},
                     "sampled": {"eval/episode_return_mean": 1.5}}


@pytest.mark.parametrize("variant", list(pong_seeds.VARIANTS))
def test_every_variant_is_a_valid_config_trained_under_sticky_actions(variant):
    from cluster.config.rl_experiment import load_experiment

    # ConfigError on an unknown key or a bad value
    cfg = load_experiment(pong.REPO / pong.CONFIG, ("seed=2", *pong_seeds.VARIANTS[variant]))
    assert cfg.seed == 2 and cfg.env.repeat_action_probability == 0.25
