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
        "1k_steps_annealed": {0: result(3.0), 1: result(6.0), 2: result(9.0)},  # 6 ± 1.73
    })
    variant = summary["1k_steps_annealed"]
    assert variant["overrides"] == ["rollout.steps_per_env=250"]
    assert variant["greedy_minus_config"] == 5.0
    assert variant["greedy_minus_config_stderr"] == pytest.approx(2.45)        # hypot(1.73, 1.73)
    assert variant["sampled_over_seeds"]["mean"] == 1.0
    assert "greedy_minus_config" not in summary["config"]
    assert list(variant["seeds"]) == ["0", "1", "2"]


def test_variants_named_in_more_seeds_train_with_five_seeds_the_others_with_three(monkeypatch):
    monkeypatch.setattr(pong_seeds, "MORE_SEEDS", {"gamma_0.98": (3, 4)})
    assert pong_seeds.seeds_of("gamma_0.98") == (0, 1, 2, 3, 4)
    assert pong_seeds.seeds_of("config") == (0, 1, 2)


def test_more_seeds_name_known_variants_and_no_seed_twice():
    for variant in pong_seeds.MORE_SEEDS:
        assert variant in pong_seeds.VARIANTS
        seeds = pong_seeds.seeds_of(variant)
        assert len(set(seeds)) == len(seeds) > len(pong_seeds.SEEDS)


def test_an_evaluation_the_run_already_holds_is_read_not_played_again(tmp_path, monkeypatch):
    played = []
    monkeypatch.setattr(pong, "_labrun", lambda *args: played.append(args))
    for name in ("greedy", "sampled"):
        (tmp_path / f"eval_20M_{name}.json").write_text(json.dumps({"eval/episode_return_mean": 1.5}))
    evals = pong.evaluate_run(tmp_path, "20M", pong_seeds.SETTINGS)
    assert played == []
    assert evals == {"greedy": {"eval/episode_return_mean": 1.5},
                     "sampled": {"eval/episode_return_mean": 1.5}}


def fake_pong_runs(tmp_path, monkeypatch) -> list:
    """``labrun`` as the benchmark calls it, faked: train writes a new run folder; the commands
    called are returned. Every checkpoint reads as 10**9 steps (trained far enough)."""
    from types import SimpleNamespace

    from cluster.reinforce import checkpoint

    commands = []

    def labrun(command, *args):
        commands.append(command)
        (tmp_path / "pong_mlp__0__2").mkdir()
        saved_config(tmp_path / "pong_mlp__0__2")

    monkeypatch.setattr(pong, "_labrun", labrun)
    monkeypatch.setattr(pong, "_finish", lambda proc, what: None)
    monkeypatch.setattr(checkpoint, "newest_intact",
                        lambda root: SimpleNamespace(counters={"env_steps": 10**9}))
    return commands


def saved_config(run, *sets: str) -> None:
    """The config a run of CONFIG with ``sets`` saves, as `labrun train` writes it."""
    from cluster.config.rl_experiment import dump_experiment
    from cluster.reinforce.outputs import CONFIG_FILE

    dump_experiment(pong.load_config(pong.CONFIG, sets), run / CONFIG_FILE)


def a_run(tmp_path, checkpointed: bool, *sets: str):
    run = tmp_path / "pong_mlp__0__1"
    run.mkdir()
    saved_config(run, *sets)
    if checkpointed:
        (run / "checkpoints" / "iter_000020").mkdir(parents=True)
        (run / "checkpoints" / "iter_000020" / "state.json").write_text("{}")
    return run


def test_a_run_stopped_before_its_first_checkpoint_is_trained_again(tmp_path, monkeypatch):
    """A run killed within its first iterations holds nothing to resume from: the benchmark
    starts it over instead of stopping on `labrun resume`'s refusal."""
    commands = fake_pong_runs(tmp_path, monkeypatch)
    stale = a_run(tmp_path, checkpointed=False)
    assert pong.train_to(tmp_path, 1000) == tmp_path / "pong_mlp__0__2"
    assert commands == ["train"] and not stale.exists()


def test_a_run_with_a_checkpoint_is_kept_and_one_being_written_is_not_removed(tmp_path, monkeypatch):
    from cluster.errors import UsageError
    from cluster.folders import locked

    commands = fake_pong_runs(tmp_path, monkeypatch)
    run = a_run(tmp_path, checkpointed=True)
    assert pong.train_to(tmp_path, 1000) == run and commands == []     # far enough: kept as is
    (run / "checkpoints" / "iter_000020" / "state.json").unlink()
    with locked(run), pytest.raises(UsageError, match="another process"):  # a labrun writing it
        pong.train_to(tmp_path, 1000)
    assert run.exists() and commands == []


def test_a_run_trained_before_the_config_changed_is_refused_not_continued(tmp_path, monkeypatch):
    """Runs are kept between benchmarks by folder: one trained with other settings than the
    config and the variant's overrides now give must not be resumed or reported as theirs."""
    from types import SimpleNamespace

    from cluster.reinforce import checkpoint

    commands = fake_pong_runs(tmp_path, monkeypatch)
    monkeypatch.setattr(checkpoint, "newest_intact",      # short of the frames: would be resumed
                        lambda root: SimpleNamespace(counters={"env_steps": 0}))
    run = a_run(tmp_path, True, "learner.lr=0.5", "rollout.envs_per_worker=7")
    with pytest.raises(pong.RefusedRun, match=r"\(learner\.lr: 0\.5 in the run, 0\.001 now; "
                                           r"rollout\.envs_per_worker: 7 in the run, 2 now\): remove"):
        pong.train_to(tmp_path, 1000)
    with pytest.raises(pong.RefusedRun, match=r"\(seed: 0 in the run, 3 now\)"):
        pong.train_to(tmp_path, 1000, ("seed=3", "learner.lr=0.5", "rollout.envs_per_worker=7"))
    assert commands == [] and run.exists()
    assert pong.train_to(tmp_path, 1000, ("learner.lr=0.5", "rollout.envs_per_worker=7")) == run
    assert commands == ["resume"]                          # the same settings: continued


def test_a_run_whose_saved_config_no_longer_loads_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """A key renamed since the run was made: the benchmark names the run and the key, and
    `python -m benchmarks.run` prints it as one error line, not a traceback."""
    from benchmarks import run as bench_run
    from cluster.config.schema import ConfigError
    from cluster.reinforce.outputs import CONFIG_FILE

    commands = fake_pong_runs(tmp_path, monkeypatch)
    run = a_run(tmp_path, True)
    saved = run / CONFIG_FILE
    saved.write_text(saved.read_text().replace("lr_final:", "lr_last:"))
    with pytest.raises(pong.RefusedRun, match=r"pong_mlp__0__1: its saved config no longer loads "
                                              r"\(line \d+, learner\.lr_last: .*\), so it cannot "
                                              r"be checked against configs/pong_mlp\.yaml: remove"):
        pong.train_to(tmp_path, 1000)
    assert commands == [] and run.exists()
    with pytest.raises(ConfigError, match="learner.lr_first"):     # a bad override is not the run's
        pong.train_to(tmp_path, 1000, ("learner.lr_first=1",))
    monkeypatch.setitem(bench_run.BENCHMARKS, "refused",
                        (lambda: pong.train_to(tmp_path, 1000), "refused", lambda result: []))
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path / "results")
    assert bench_run.main(["refused"]) == 1
    lines = capsys.readouterr().out.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(lines) == 2 and "benchmark refused" in lines[0]   # its header, then one error line
    assert len(errors) == 1 and "lr_last" in errors[0] and errors[0].endswith("remove it to train again")
    assert not (tmp_path / "results" / "refused.json").exists()


def test_the_whole_games_variants_train_as_the_config_did_before_pieces_of_games():
    """WHOLE_GAMES stands for configs/pong_mlp.yaml before 2026-12-07 (4 whole games an update,
    a constant rate): the seed benchmark's whole-games runs were trained with that file."""
    cfg = pong.load_config(pong.CONFIG, pong_seeds.WHOLE_GAMES)
    assert cfg.rollout.steps_per_env is None and cfg.rollout.episodes_per_env == 1
    assert cfg.rollout.envs_per_worker == 2
    assert (cfg.learner.lr, cfg.learner.lr_final, cfg.learner.lr_decay_steps) == (1e-3, None, None)
    assert cfg.learner.baseline == "value" and cfg.policy.hidden_sizes == (200,)


@pytest.mark.parametrize("variant", list(pong_seeds.VARIANTS))
def test_every_variant_is_a_valid_config_trained_under_sticky_actions(variant):
    from cluster.config.rl_experiment import load_experiment

    # ConfigError on an unknown key or a bad value
    cfg = load_experiment(pong.REPO / pong.CONFIG, ("seed=2", *pong_seeds.VARIANTS[variant]))
    assert cfg.seed == 2 and cfg.env.repeat_action_probability == 0.25


@pytest.mark.parametrize("variants", [(), ("whole_games", "constant_rate"),
                                      ("whole_games", "constant_rate", "a", "b", "c")])
def test_the_plot_draws_one_panel_a_variant_each_run_up_to_its_evaluated_checkpoint(
        tmp_path, monkeypatch, variants):
    from cluster import figures

    per_variant = {}
    for name in ("config", *variants):
        for seed in (0, 1):
            run = tmp_path / name / str(seed)
            run.mkdir(parents=True)
            rows = [{"counters/env_steps": s, "rollout/episode_return_mean": -21.0 + s / 100}
                    for s in (100, 200, 300)]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            per_variant.setdefault(name, {})[seed] = {"run_dir": str(run), "frames": 200 * 5}
    seen, save = [], figures.save
    monkeypatch.setattr(figures, "save", lambda fig, path: (seen.append(
        [(ax.get_title(), [list(line.get_xdata()) for line in ax.get_lines()],
          [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")],
          ax.get_xlabel(), any(t.get_visible() for t in ax.get_xticklabels()))
         for ax in fig.axes if ax.get_visible()]), save(fig, path))[1])
    open_before = figures.pyplot().get_fignums()
    path = pong_seeds.plot(per_variant, tmp_path / "plots" / "seeds.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures.pyplot().get_fignums() == open_before
    panels = seen[0]
    assert [p[0] for p in panels] == (list(variants) or ["config"])      # one panel a variant
    cut = [0.0005, 0.001]   # each run cut at its 1,000 evaluated frames (steps 100, 200 at frameskip 5)
    for title, lines, _, _, _ in panels:
        runs = 2 if title == "config" else 4       # a variant's 2 runs over the config's 2
        assert lines == [cut] * runs + [[0, 1]]                # then the +18 line
    assert panels[0][2] == (["seed 0", "seed 1"] if not variants else ["config", "seed 0", "seed 1"])
    columns = min(len(panels), 4)   # the lowest panel of each column shows and names the frames
    lowest = {i % columns: p for i, p in enumerate(panels)}
    assert all(p[3] == "frames (millions)" and p[4] for p in lowest.values())
    assert not any(p[4] for p in panels if all(p is not q for q in lowest.values()))


def test_a_panel_with_seeds_the_first_panel_lacks_gets_its_own_legend(tmp_path, monkeypatch):
    from cluster import figures

    seeds = {"config": (0, 1, 2, 3), "a": (0, 1), "b": (0, 1, 2, 3), "c": (0, 1)}
    per_variant = {}
    for name, runs in seeds.items():
        for seed in runs:
            run = tmp_path / name / str(seed)
            run.mkdir(parents=True)
            row = {"counters/env_steps": 100, "rollout/episode_return_mean": -20.0}
            (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
            per_variant.setdefault(name, {})[seed] = {"run_dir": str(run), "frames": 1000}
    legends, save = {}, figures.save
    monkeypatch.setattr(figures, "save", lambda fig, path: (legends.update(
        {ax.get_title(): [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else None
         for ax in fig.axes if ax.get_visible()}), save(fig, path))[1])
    pong_seeds.plot(per_variant, tmp_path / "seeds.png")
    assert legends == {"a": ["config", "seed 0", "seed 1"], "c": None,
                       "b": ["config", "seed 0", "seed 1", "seed 2", "seed 3"]}


def test_a_second_benchmark_on_the_same_run_folder_is_refused_before_training(tmp_path, monkeypatch):
    from cluster.errors import UsageError
    from cluster.folders import locked

    monkeypatch.setattr(pong, "_labrun", lambda *args: pytest.fail("trained beside another"))
    with locked(tmp_path), pytest.raises(UsageError, match="another process"):
        pong.train_to(tmp_path, 1000)
