"""Checkpoints: learner state and run counters, written atomically, the last few kept.

Layout: ``RUN_DIR/checkpoints/iter_000042/{learner.npz, state.json}``. A checkpoint is written
into a hidden temporary folder (``.tmp-iter_000042-PID``) and renamed into place, so a run killed
mid-write leaves either the whole checkpoint or none; the temporary folders such a kill leaves
are removed by the next checkpoint written there (those whose process is gone, never a live
writer's). ``save`` refuses weights or optimizer state holding NaN or inf (``NonFinite``), so
the newest checkpoint kept is always a finite one. ``newest_intact`` is what ``labrun resume``
and ``eval`` read: the newest checkpoint that loads whole, and why each newer one did not.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rl.config import PolicyConfig
from rl.policy import weight_shapes

PREFIX = "iter_"
_TEMP = re.compile(rf"^\.tmp-{PREFIX}\d+-(\d+)$")


class NonFinite(ValueError):
    """Weights, optimizer state or a loss holding NaN or inf; ``what`` names which."""

    def __init__(self, what: str, message: str | None = None):
        self.what = what
        super().__init__(message or f"{what} holds NaN or inf")


class BadCheckpoint(ValueError):
    """A checkpoint folder that does not load whole; the message says which file and why."""


def folder_name(iteration: int) -> str:
    return f"{PREFIX}{iteration:06d}"


def iteration_of(path: Path) -> int | None:
    """The iteration a checkpoint folder's name carries (``iter_000042`` -> 42), else None."""
    digits = path.name.removeprefix(PREFIX)
    return int(digits) if path.name.startswith(PREFIX) and digits.isdigit() else None


def save(ckpt_root: Path, iteration: int, learner_state: dict[str, Any], counters: dict[str, Any],
         keep: int) -> Path:
    """Writes checkpoint ``iteration`` and deletes all but the newest ``keep``. NonFinite (and
    nothing written, nothing deleted) if an array of the learner's state holds NaN or inf."""
    arrays = {f"weights_{i}": w for i, w in enumerate(learner_state["weights"])}
    arrays |= {f"value_weights_{i}": w for i, w in enumerate(learner_state.get("value_weights", []))}
    arrays |= {f"optimizer_{i}": v for i, v in enumerate(learner_state["optimizer"])}
    for name, value in arrays.items():
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all():
            raise NonFinite(name, f"checkpoint {folder_name(iteration)} not written: {name} of "
                                  f"the learner's state holds NaN or inf")
    ckpt_root.mkdir(parents=True, exist_ok=True)
    remove_orphaned_temps(ckpt_root)
    final = ckpt_root / folder_name(iteration)
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with open(tmp / "learner.npz", "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        state = {"num_updates": int(learner_state["num_updates"]), **counters}
        (tmp / "state.json").write_text(json.dumps(state))
        if final.exists():  # a checkpoint of the same iteration (e.g. the final one): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:   # a full disk, say: no half-written folder left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_orphaned_temps(ckpt_root: Path) -> list[Path]:
    """Removes the temporary folders of writers that died mid-write (``.tmp-iter_N-PID`` whose
    process is not alive on this machine); a live writer's, this process's included, stay.
    Returns the folders removed."""
    removed = []
    for path in ckpt_root.iterdir():
        match = _TEMP.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints (their state file written), oldest first: by iteration number, so
    ``iter_1000000`` comes after ``iter_999999``."""
    if not ckpt_root.is_dir():
        return []
    found = [p for p in ckpt_root.iterdir()
             if iteration_of(p) is not None and (p / "state.json").is_file()]
    return sorted(found, key=iteration_of)


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(learner state, counters) of one checkpoint folder; BadCheckpoint if it does not load
    whole (a truncated or empty file, a missing array)."""
    try:
        text = (path / "state.json").read_text()
        if not text.strip():
            raise BadCheckpoint("state.json is empty")
        state = json.loads(text)
        if not isinstance(state, dict) or not {"num_updates", "iteration"} <= state.keys():
            raise BadCheckpoint("state.json lacks num_updates or iteration")
    except (OSError, ValueError) as err:
        raise _bad("state.json", err) from None
    try:
        with np.load(path / "learner.npz") as data:
            n_w = sum(k.startswith("weights_") for k in data.files)
            n_o = sum(k.startswith("optimizer_") for k in data.files)
            n_v = sum(k.startswith("value_weights_") for k in data.files)
            learner = {
                "weights": [data[f"weights_{i}"] for i in range(n_w)],   # reads (and CRC-checks)
                "value_weights": [data[f"value_weights_{i}"] for i in range(n_v)],
                "optimizer": [data[f"optimizer_{i}"] for i in range(n_o)],
                "num_updates": state.pop("num_updates"),
            }
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise _bad("learner.npz", err) from None
    if not n_w:
        raise BadCheckpoint("learner.npz holds no weights")
    return learner, state


def _bad(name: str, err: Exception) -> BadCheckpoint:
    return err if isinstance(err, BadCheckpoint) else BadCheckpoint(f"{name}: {type(err).__name__}: {err}")


@dataclass
class Found:
    """What ``newest_intact`` found: the checkpoint (None if none loads), its contents, and the
    newer ones skipped as (folder, why)."""

    path: Path | None = None
    learner: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def newest_intact(ckpt_root: Path) -> Found:
    """The newest checkpoint that loads whole, and the newer ones that did not, with why."""
    found = Found()
    for path in reversed(list_checkpoints(ckpt_root)):
        try:
            found.learner, found.counters = load(path)
        except BadCheckpoint as err:
            found.skipped.append((path, str(err)))
            continue
        found.path = path
        break
    return found


def misfit(learner_state: dict[str, Any], obs_shape: tuple[int, ...], num_actions: int,
           policy: PolicyConfig, value: bool = False) -> tuple[str, str] | None:
    """None if the learner state fits the policy (its value baseline network if ``value``, and
    their Adam) that ``policy`` builds for these observations and actions, else (the part of the
    config at fault, why): the arrays' shapes compared with ``rl.policy.weight_shapes``, no
    TensorFlow. The part: ``policy.conv``, ``policy.hidden_sizes``, ``env`` (the observations'
    shape, the number of actions) or ``learner.baseline``."""
    want = weight_shapes(obs_shape, num_actions, policy)
    got = [tuple(np.shape(w)) for w in learner_state["weights"]]
    if got != want:
        return _part_at_fault(got, want, len(policy.conv)), \
            f"its policy weights are {_shapes(got)}, this config's {_shapes(want)}"
    saved_value = bool(learner_state.get("value_weights"))
    if saved_value != value:
        return "learner.baseline", ("it has a learned value baseline, this config's baseline is "
                                    "not 'value'" if saved_value else
                                    "it has no learned value baseline to continue")
    want_value = weight_shapes(obs_shape, 1, policy) if value else []
    # Adam: step, rate, then m and v of each array: the policy's, then the value network's
    want_opt = [(), ()] + [shape for shape in want + want_value for _ in "mv"]
    got_opt = [tuple(np.shape(v)) for v in learner_state["optimizer"]]
    if got_opt != want_opt:
        return "learner", f"its optimizer state is {_shapes(got_opt)}, Adam's {_shapes(want_opt)}"
    return None


def _part_at_fault(got: list[tuple[int, ...]], want: list[tuple[int, ...]], n_conv: int) -> str:
    """Which part of the config makes ``want`` differ from ``got``, judged at the first array
    that differs: [kernel, bias] per convolution, then per Dense layer, the last one's units
    being the actions."""
    if sum(len(g) == 4 for g in got) != n_conv:
        return "policy.conv"
    if len(got) != len(want):
        return "policy.hidden_sizes"
    i = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
    if i < 2 * n_conv:                        # a convolution; the first one's input channels
        return "env" if i == 0 and got[0][2] != want[0][2] else "policy.conv"
    if i == 2 * n_conv and got[i][0] != want[i][0]:          # the first Dense layer's inputs
        return "policy.conv" if n_conv else "env"
    if i >= len(want) - 2 and got[i][-1] != want[i][-1]:     # the logits: one per action
        return "env"
    return "policy.hidden_sizes"


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    return " ".join("[" + ", ".join(map(str, s)) + "]" for s in shapes)


def latest(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint (not checked: ``newest_intact`` loads and checks)."""
    found = list_checkpoints(ckpt_root)
    return found[-1] if found else None


def check_finite(metrics: dict[str, float], weights: list[np.ndarray]) -> None:
    """NonFinite if the learner's loss or the weights it just made hold NaN or inf."""
    loss = metrics.get("learner/loss")
    if loss is not None and not math.isfinite(loss):
        raise NonFinite(f"learner/loss ({loss})")
    for i, w in enumerate(weights):
        if not np.isfinite(w).all():
            raise NonFinite(f"policy weights_{i}")
