"""Checkpoints: learner state and run counters, written atomically, the last few kept.

Layout: ``RUN_DIR/checkpoints/iter_000042/{learner.npz, state.json}``. A checkpoint is written
into a hidden temporary folder and renamed into place, so a run killed mid-write leaves either the
whole checkpoint or none.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

PREFIX = "iter_"


def save(ckpt_root: Path, iteration: int, learner_state: dict[str, Any], counters: dict[str, Any],
         keep: int) -> Path:
    """Writes checkpoint ``iteration`` and deletes all but the newest ``keep``."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{iteration:06d}"
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    arrays = {f"weights_{i}": w for i, w in enumerate(learner_state["weights"])}
    arrays |= {f"optimizer_{i}": v for i, v in enumerate(learner_state["optimizer"])}
    with open(tmp / "learner.npz", "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    state = {"num_updates": int(learner_state["num_updates"]), **counters}
    (tmp / "state.json").write_text(json.dumps(state))
    if final.exists():  # a checkpoint of the same iteration (e.g. the final one): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not ckpt_root.is_dir():
        return []
    return sorted(p for p in ckpt_root.iterdir()
                  if p.name.startswith(PREFIX) and (p / "state.json").is_file())


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(learner state, counters) of one checkpoint folder."""
    state = json.loads((path / "state.json").read_text())
    with np.load(path / "learner.npz") as data:
        n_w = sum(k.startswith("weights_") for k in data.files)
        n_o = sum(k.startswith("optimizer_") for k in data.files)
        learner = {
            "weights": [data[f"weights_{i}"] for i in range(n_w)],
            "optimizer": [data[f"optimizer_{i}"] for i in range(n_o)],
            "num_updates": state.pop("num_updates"),
        }
    return learner, state


def latest(ckpt_root: Path) -> Path | None:
    found = list_checkpoints(ckpt_root)
    return found[-1] if found else None
