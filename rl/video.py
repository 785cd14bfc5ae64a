"""Videos of a policy playing: ``rgb_array`` rendering (no display needed), MP4 and GIF files.

MP4 through imageio's ffmpeg plugin (imageio-ffmpeg ships an ffmpeg binary); GIF through Pillow,
at half the resolution and every second frame, small enough for TensorBoard and quick looks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rl.config import EnvConfig, PolicyConfig
from rl.envs import derive_seeds, frameskip, make_env
from rl.policy import NumpyPolicy


class VideoUnavailable(RuntimeError):
    """This environment cannot render frames here (e.g. CartPole without pygame)."""


@dataclass(frozen=True)
class Episode:
    frames: np.ndarray        # [N, H, W, 3] uint8: the screen at reset and after every step
    episode_return: float
    steps: int
    fps: float                # real-time playback rate


def record_episode(env_cfg: EnvConfig, policy_cfg: PolicyConfig, weights: Sequence[np.ndarray],
                   seed: int, greedy: bool = False, max_steps: int | None = None) -> Episode:
    """Plays one episode (at most ``max_steps`` steps) and keeps every rendered screen."""
    try:
        env = make_env(env_cfg, render_mode="rgb_array")
    except Exception as err:  # gymnasium raises DependencyNotInstalled for pygame-rendered envs
        raise VideoUnavailable(f"{env_cfg.id} cannot render here: {err}") from None
    policy = NumpyPolicy(policy_cfg)
    policy.set_weights(weights)
    env_seed, policy_seed = derive_seeds(seed, 20_000, n=2)
    rng = np.random.default_rng(policy_seed)
    try:
        obs, _ = env.reset(seed=env_seed)
        try:
            frames = [env.render()]
        except Exception as err:
            raise VideoUnavailable(f"{env_cfg.id} cannot render here: {err}") from None
        total, steps, done = 0.0, 0, False
        while not done and (max_steps is None or steps < max_steps):
            action = int(policy.act(np.asarray(obs)[None], rng, greedy=greedy)[0])
            obs, reward, terminated, truncated, _ = env.step(action)
            frames.append(env.render())
            total += float(reward)
            steps += 1
            done = terminated or truncated
        fps = env.metadata.get("render_fps") or 30
    finally:
        env.close()
    if env_cfg.is_atari:  # ALE's render_fps is the emulator's; the screen changes once a step
        fps = 60 / frameskip(env_cfg)
    return Episode(np.stack(frames).astype(np.uint8), total, steps, float(fps))


def write_mp4(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    """H.264 MP4 of [N, H, W, 3] uint8 frames (even sizes, as Atari's 210x160)."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1,
                            ffmpeg_log_level="error", output_params=["-pix_fmt", "yuv420p"]) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def gif_bytes(frames: np.ndarray, fps: float, stride: int = 2, scale: int = 2) -> bytes:
    """An endlessly looping GIF of every ``stride``-th frame, downsampled by ``scale``."""
    import imageio.v3 as iio

    small = frames[::stride, ::scale, ::scale]
    buffer = io.BytesIO()
    iio.imwrite(buffer, small, extension=".gif", duration=1000 * stride / fps, loop=0)
    return buffer.getvalue()


def write_gif(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gif_bytes(frames, fps))
    return path


def count_mp4_frames(path: str | Path) -> int:
    """Decodes an MP4 and counts its frames (what a player would show)."""
    import imageio.v2 as imageio

    with imageio.get_reader(path) as reader:
        return sum(1 for _ in reader)
