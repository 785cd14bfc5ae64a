"""Pong through the real ``labrun`` command line, on the session's Ray head (127.0.0.1)."""

from __future__ import annotations

import pytest

from cluster.labs import LABS
from cluster.reinforce import checkpoint
from cluster.reinforce.outputs import read_metrics
from helpers import REPO, only_run_dir, run_cli
from rl.video import count_mp4_frames

pytestmark = pytest.mark.slow

PONG_SCALARS = ["rollout/points_won_mean", "rollout/points_lost_mean", "rollout/win_rate",
                "time/frames_per_s", "rollout/episode_return_mean", "rollout/episode_length_mean",
                "time/sample_s", "time/learn_s", "learner/loss"]


@pytest.fixture(scope="module")
def pong_run(ray_address, tmp_path_factory):
    """configs/pong_mlp.yaml for 2 iterations of 2 rollout workers x 1 whole game (not the
    config's pieces of games, so that every iteration ends games), with a video."""
    runs = tmp_path_factory.mktemp("pong")
    out = run_cli("train", "configs/pong_mlp.yaml", "--address", ray_address, "--runs-dir", str(runs),
                  "--set", "rollout.num_workers=2", "--set", "rollout.envs_per_worker=1",
                  "--set", "rollout.steps_per_env=null",
                  "--set", "stop.iterations=2", "--set", "output.checkpoint_every=1",
                  "--set", "output.video_every=2", "--set", "output.video_max_steps=40")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "points" in out.stdout and "frames/s" in out.stdout      # the console's game line
    return only_run_dir(runs)


def test_pong_run_writes_game_metrics_checkpoints_and_tensorboard(pong_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = read_metrics(pong_run)
    assert [r["counters/iteration"] for r in rows] == [1, 2]
    assert rows[-1]["counters/episodes"] == 4                      # 2 workers x 1 game, twice
    for row in rows:
        # a game ends when a side has 21 points; the return is the points' difference
        assert 0 <= row["rollout/points_won_mean"] <= 21 and 0 <= row["rollout/points_lost_mean"] <= 21
        assert row["rollout/episode_return_mean"] == pytest.approx(
            row["rollout/points_won_mean"] - row["rollout/points_lost_mean"])
        assert 0 <= row["rollout/win_rate"] <= 1
        assert row["time/frames_per_s"] == pytest.approx(5 * row["time/env_steps_per_s"])
        assert row["rollout/episode_length_mean"] > 21              # at least a step a point
    assert checkpoint.latest(pong_run / "checkpoints").name == "iter_000002"
    acc = EventAccumulator(str(pong_run / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert set(PONG_SCALARS) <= set(acc.Tags()["scalars"])
    assert acc.Scalars("rollout/win_rate")[-1].step == rows[-1]["step"]
    gif = acc.Images("video/policy")[-1]                           # the training video, as a GIF
    assert gif.step == rows[-1]["step"] and gif.encoded_image_string[:6] == b"GIF89a"
    # 40 steps + the first screen, every second frame in the GIF; the MP4 has them all
    assert count_mp4_frames(pong_run / "videos" / "iter000002.mp4") == 41


def test_a_pong_run_reports_exactly_the_metrics_sweeps_accept(pong_run):
    """An Atari run reports every REINFORCE metric: a new one must be added to what sweeps may
    rank by (cluster/reinforce/trainer.py METRICS), and a listed one must still be reported."""
    reported = set(read_metrics(pong_run)[-1]) - {"timestamp", "step"}
    accepted = set(LABS["rl"].metrics())
    assert reported == accepted, (f"reported, not accepted: {sorted(reported - accepted)}; "
                                  f"accepted, not reported: {sorted(accepted - reported)}")


def test_the_learning_config_as_shipped_trains_on_pieces_of_games_at_its_scheduled_rate(
        ray_address, tmp_path):
    """configs/pong_mlp.yaml with nothing but a short stop: every update holds at least 2 workers
    x its games a worker x its steps a piece (each piece runs on to its point), at the rate its
    schedule gives for the steps trained before it, and the step counter adds the pieces up."""
    from cluster.config.rl_experiment import load_experiment
    from rl.schedules import learning_rate

    out = run_cli("train", "configs/pong_mlp.yaml", "--address", ray_address, "--runs-dir",
                  str(tmp_path), "--set", "rollout.num_workers=2", "--set", "stop.iterations=3",
                  "--set", "output.video_every=null")
    assert out.returncode == 0, out.stdout + out.stderr
    cfg = load_experiment(REPO / "configs" / "pong_mlp.yaml")
    assert cfg.rollout.steps_per_env is not None and cfg.learner.lr_final is not None
    rows = read_metrics(only_run_dir(tmp_path))
    assert [r["counters/iteration"] for r in rows] == [1, 2, 3]
    before = 0
    for row in rows:
        assert row["learner/batch_steps"] >= 2 * cfg.rollout.envs_per_worker * cfg.rollout.steps_per_env
        assert row["learner/lr"] == pytest.approx(learning_rate(cfg.learner, before))
        before += row["learner/batch_steps"]
        assert row["counters/env_steps"] == before


def test_eval_video_writes_an_mp4_with_every_step_and_a_gif(pong_run):
    import imageio.v3 as iio

    out = run_cli("eval", str(pong_run), "--episodes", "1", "--video", "--video-steps", "30")
    assert out.returncode == 0, out.stdout + out.stderr
    mp4 = pong_run / "videos" / "eval_iter000002.mp4"
    assert "video (mp4)" in out.stdout and "video (gif)" in out.stdout
    assert count_mp4_frames(mp4) == 31                             # the first screen + 30 steps
    gif = iio.imread(mp4.with_suffix(".gif"), index=None)
    assert gif.shape[1:3] == (105, 80) and gif.std() > 0           # half size, not blank
    # every 2nd of the 31 screens at 60 / frameskip 5 = 12 fps: 16 frames of 167 ms, kept by
    # GIF as 16 centiseconds; identical consecutive ones merged by Pillow into longer frames
    from PIL import Image, ImageSequence

    with Image.open(mp4.with_suffix(".gif")) as image:
        total_ms = sum(frame.info["duration"] for frame in ImageSequence.Iterator(image))
    assert 1 < len(gif) <= 16 and total_ms == 16 * 160


def test_eval_turns_sticky_actions_off_for_one_evaluation(pong_run, tmp_path):
    """Trained under the course's sticky actions (0.25); evaluated deterministically on request,
    the run's own config unchanged."""
    import json

    from cluster.config.rl_experiment import load_experiment

    out = run_cli("eval", str(pong_run), "--episodes", "1", "--sample", "--seed", "99",
                  "--set", "env.repeat_action_probability=0", "--out", str(tmp_path / "det.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "det.json").read_text())
    assert record["settings"]["env"]["repeat_action_probability"] == 0
    assert record["settings"]["actions"] == "sampled" and record["settings"]["seed"] == 99
    # a game ends at 21 points: the return is the difference, at least a step a point
    assert -21 <= record["eval/episode_return_mean"] <= 21 and record["eval/episode_length_mean"] > 21
    assert load_experiment(pong_run / "config.yaml").env.repeat_action_probability == 0.25


def test_a_cnn_policy_on_a_vector_environment_is_bad_input():
    out = run_cli("train", "configs/cartpole.yaml", "--set", "policy.conv=[{filters: 8}]")
    assert out.returncode == 2
    assert "policy.conv: convolutions need image observations [H, W, C]; CartPole-v1's are [4]" in out.stderr
    assert "Traceback" not in out.stderr
