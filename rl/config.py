"""Settings of the RL components, one frozen dataclass each.

Plain data: the string under a field is its documentation, ``metadata`` bounds it, and
``cluster.schema`` validates YAML against these classes. Nothing here knows about files or Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class EnvConfig:
    id: str = "CartPole-v1"
    """Gymnasium environment id."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for gymnasium.make."""


@dataclass(frozen=True)
class PolicyConfig:
    hidden_sizes: tuple[int, ...] = field(default=(32,), metadata={"gt": 0})
    """Units of each hidden Dense layer (the course's policy is one layer of 32)."""
    activation: Literal["relu", "tanh"] = "relu"
    """Activation of the hidden layers."""


@dataclass(frozen=True)
class LearnerConfig:
    lr: float = field(default=1e-2, metadata={"gt": 0})
    """Adam learning rate."""
    gamma: float = field(default=0.99, metadata={"gt": 0, "le": 1})
    """Discount factor of the returns."""
    normalize_returns: bool = True
    """Standardise the batch's returns to mean 0 and standard deviation 1 (as in the course)."""
    baseline: Literal["none", "mean", "time_mean"] = "none"
    """Subtracted from the returns before normalising: 'mean' is the batch mean; 'time_mean' is
    the mean return at the same time step across the batch's episodes."""
    entropy_coef: float = field(default=0.0, metadata={"ge": 0})
    """Weight of the entropy bonus in the loss (0 is plain REINFORCE)."""
    max_grad_norm: float | None = field(default=None, metadata={"gt": 0})
    """Clip the gradient to this global norm; null for no clipping."""


@dataclass(frozen=True)
class RolloutConfig:
    num_workers: int | Literal["auto"] = field(default="auto", metadata={"ge": 1})
    """Rollout workers (Ray actors); 'auto' starts one per CPU the cluster has for them."""
    envs_per_worker: int = field(default=8, metadata={"ge": 1})
    """Environments each worker steps together, with one batched policy call per step."""
    episodes_per_env: int = field(default=1, metadata={"ge": 1})
    """Whole episodes each environment plays per sample; a batch holds
    num_workers x envs_per_worker x episodes_per_env episodes."""
