"""Settings of the RL components, one frozen dataclass each.

Plain data: the string under a field is its documentation, ``metadata`` bounds it, and
``cluster.config.schema`` validates YAML against these classes. Nothing here knows about files or Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class EnvConfig:
    id: str = "CartPole-v1"
    """Gymnasium environment id, a registered one (CartPole-v1, ALE/Pong-v5); 'module:Env', which
    makes Gymnasium import a module, is refused."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for gymnasium.make."""
    frameskip: int | None = field(default=None, metadata={"ge": 1})
    """Atari (ALE/ ids): emulator frames per agent step, the action repeated (null: the id's
    default, 4 for the v5 ids)."""
    repeat_action_probability: float | None = field(default=None, metadata={"ge": 0, "le": 1})
    """Atari: sticky actions, the chance that the emulator repeats the previous action instead
    (null: the id's default, 0.25 for the v5 ids)."""
    full_action_space: bool = False
    """Atari: all 18 joystick actions instead of the game's minimal set (6 for Pong)."""
    action_subset: tuple[int, ...] | None = field(default=None, metadata={"ge": 0, "min_len": 2})
    """Indices of the environment's actions the policy chooses among, e.g. Pong's NOOP, UP,
    DOWN = [0, 2, 3] (null: all of them)."""
    preprocess: Literal["none", "pong80", "pong40"] = "none"
    """Pong's frame preprocessing from the course, the policy seeing frame differences:
    'pong80' (2020, 80x80) or 'pong40' (2021, dilated, 40x40)."""
    observation: Literal["difference", "frame_and_difference"] = "difference"
    """With a preprocess: what the policy sees, the difference of the current and the previous
    frame (the course's), or 'frame_and_difference', the current frame beside it as a second
    channel (a paddle that stands still stays visible)."""

    @property
    def is_atari(self) -> bool:
        return self.id.startswith("ALE/")

    def __post_init__(self):
        if not self.is_atari:
            for name in ("frameskip", "repeat_action_probability"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only Atari environments (ALE/ ids) have it; "
                                     f"{self.id} does not")
            if self.full_action_space:
                raise ValueError(f"full_action_space: only Atari environments (ALE/ ids) have it; "
                                 f"{self.id} does not")
            if self.preprocess != "none":
                raise ValueError(f"preprocess: {self.preprocess!r} is for Atari frames; "
                                 f"{self.id} does not render them")
        if self.observation != "difference" and self.preprocess == "none":
            raise ValueError(f"observation: {self.observation!r} is of preprocessed frames; set "
                             "preprocess too (pong80 or pong40)")


@dataclass(frozen=True)
class ConvLayer:
    filters: int = field(default=32, metadata={"ge": 1})
    """Output channels."""
    kernel: int = field(default=3, metadata={"ge": 1})
    """Square kernel size."""
    stride: int = field(default=1, metadata={"ge": 1})
    """Stride in both directions ('same' padding, as Keras)."""


@dataclass(frozen=True)
class PolicyConfig:
    conv: tuple[ConvLayer, ...] = ()
    """Convolutional layers before the Dense ones, for image observations [H, W, C]
    (the course's Pong CNN: 32/5/2, 48/5/2, 64/3/2, 64/3/2); empty for an MLP."""
    hidden_sizes: tuple[int, ...] = field(default=(32,), metadata={"gt": 0})
    """Units of each hidden Dense layer (the course's policy is one layer of 32)."""
    activation: Literal["relu", "tanh"] = "relu"
    """Activation of the hidden layers."""


@dataclass(frozen=True)
class LearnerConfig:
    lr: float = field(default=1e-2, metadata={"gt": 0})
    """Adam learning rate (the first, with lr_final)."""
    lr_final: float | None = field(default=None, metadata={"gt": 0})
    """Anneal the learning rate linearly from lr to this over lr_decay_steps environment steps,
    then keep it (null: lr throughout)."""
    lr_decay_steps: int | None = field(default=None, metadata={"ge": 1})
    """Environment steps over which the learning rate goes from lr to lr_final (set both or
    neither). Counted from the run's start, so a resumed run goes on where it was."""
    gamma: float = field(default=0.99, metadata={"gt": 0, "le": 1})
    """Discount factor of the returns."""
    reset_on_reward: bool = False
    """Restart the discounting at every non-zero reward as well as at episode ends (Pong: each
    point is credited to the actions since the previous point, as in the course)."""
    normalize_returns: bool = True
    """Standardise the batch's returns to mean 0 and standard deviation 1 (as in the course)."""
    baseline: Literal["none", "mean", "time_mean", "value"] = "none"
    """Subtracted from the returns before normalising: 'mean' is the batch mean; 'time_mean' is
    the mean return at the same time step across the batch's episodes; 'value' is a learned
    state value V(s), a network of the policy's shape with its own weights and its own Adam,
    fitted to the returns by squared error in the same update (REINFORCE with baseline; the
    workers never see it)."""
    value_steps: int = field(default=1, metadata={"ge": 1})
    """Adam steps of the value baseline on each batch: the first beside the policy's, the rest on
    the value network alone after it (Spinning Up's VPG takes 80), so V(s) follows the returns
    more closely; the policy's steps stay as they are. The advantages always come from V(s) as
    it was before the batch, so the baseline never depends on the actions it weighs. Needs
    baseline: value."""
    entropy_coef: float = field(default=0.0, metadata={"ge": 0})
    """Weight of the entropy bonus in the loss (0 is plain REINFORCE)."""
    max_grad_norm: float | None = field(default=None, metadata={"gt": 0})
    """Clip the gradient to this global norm; null for no clipping."""
    chunk_steps: int = field(default=8192, metadata={"ge": 1})
    """The batch goes through the network this many steps at a time, gradients summed: the same
    single update, in bounded memory (long Pong batches)."""

    def __post_init__(self):
        if (self.lr_final is None) != (self.lr_decay_steps is None):
            missing = "lr_decay_steps" if self.lr_decay_steps is None else "lr_final"
            raise ValueError(f"{missing}: set lr_final and lr_decay_steps together (an annealed "
                             "learning rate needs both), or neither")
        if self.value_steps > 1 and self.baseline != "value":
            raise ValueError(f"value_steps: {self.value_steps} steps of a value baseline need "
                             f"baseline: value (it is {self.baseline!r})")


@dataclass(frozen=True)
class RolloutConfig:
    num_workers: int | Literal["auto"] = field(default="auto", metadata={"ge": 1})
    """Rollout workers (Ray actors); 'auto' starts one per CPU the cluster has for them."""
    envs_per_worker: int = field(default=8, metadata={"ge": 1})
    """Environments each worker steps together, with one batched policy call per step."""
    episodes_per_env: int = field(default=1, metadata={"ge": 1})
    """Whole episodes per environment per sample, on average (an environment that finishes early
    starts the next one); a batch holds num_workers x envs_per_worker x episodes_per_env episodes.
    Not used with steps_per_env."""
    steps_per_env: int | None = field(default=None, metadata={"ge": 1})
    """For games scored in points (Pong), instead of whole episodes: each environment plays at
    least this many steps a sample, then stops at its next point (a nonzero reward) or episode
    end, and the game goes on in the next sample; a batch holds num_workers x envs_per_worker x
    steps_per_env steps plus the rest of a point each, however long the games grow (Pong's grow
    6x as the policy learns). Needs learner.reset_on_reward, so the returns of a piece that ends
    at a point are exact (null: whole episodes)."""
    pipeline: bool = False
    """Overlap acting with learning: workers play the next batch with the weights they have while
    the learner updates on the last one, so the policy that acted lags by one update; the loss
    corrects with importance weights min(1, pi/mu). Pays when learning takes a large share of an
    iteration (the course's CNN, a GPU learner with many workers); see docs/benchmarks.md."""
