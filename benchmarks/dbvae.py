"""DB-VAE benchmark: does resampling by latent density remove the bias of the offline benchmark?

``configs/dbvae_bias.yaml`` (the bias benchmark of ``supervised/bias_data.py``: MNIST digits as
"faces", a rare inverted-polarity group among them) trained as Ray Tune trials through the CLI,
two sweeps over seeds:

- the standard classifier (``dbvae.model=standard``), seeds 0..SEEDS-1;
- the DB-VAE at each smoothing ``alpha`` in ALPHAS, the same seeds.

A seed fixes the benchmark's data, the weights and the batches, so the standard classifier and
the DB-VAE of one seed see the same images. Each trial's last epoch gives the accuracy per test
group, their mean E[A] and variance Var[A] (in percent and percent squared, as the paper's
Table 1); the table holds the means over seeds. The best alpha is the one of lowest mean Var[A],
the sweep's own metric, and:

- ``var_reduction_pct``: 100 x (1 - Var[A] of the DB-VAE at the best alpha / Var[A] standard);
- ``mean_accuracy_change_pct``: E[A] of the DB-VAE at the best alpha minus E[A] standard, in
  percentage points.

Target (the paper: 28.84 -> 9.43 at +2.2 points): Var[A] cut by at least half at an E[A] that is
equal or better.

The same two sweeps run again with ``framework: torch`` (``supervised/dbvae_torch.py``) on seeds
0..TORCH_SEEDS-1: the ``torch_`` keys (``torch_var_reduction_pct``,
``torch_mean_accuracy_change_pct``, ``torch_table``...); ``python -m benchmarks.run dbvae-torch``
runs only them.

Data: ``$LABRUN_DATA_DIR`` (default ``../shared/data`` beside the checkout) must hold mnist.npz;
the benchmark's negatives are photographs inside scikit-image's wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks.mnist import data_env

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "dbvae_bias.yaml"
ALPHAS = (0.001, 0.01, 0.1)
SEEDS = 5
TORCH_SEEDS = 3   # the PyTorch lab's sweeps (the issue asks for at least 3)
TARGET_VAR_REDUCTION_PCT = 50.0
RESULTS_PLOT = REPO / "benchmarks" / "results" / "dbvae_groups.png"


def _sweep(folder: Path, name: str, space: dict, fixed: dict) -> list[dict]:
    """``labrun tune`` of configs/dbvae_bias.yaml over ``space``; the last result of each trial."""
    sweep = folder / f"{name}.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": name, "experiment": str(CONFIG), "fixed": fixed, "search_space": space,
        "metric": "eval/Var_A", "mode": "min", "max_concurrent_trials": 2}, sort_keys=False))
    env = data_env()
    labrun = str(Path(sys.executable).with_name("labrun"))
    out = subprocess.run([labrun, "tune", str(sweep), "--runs-dir", str(folder / "runs")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"labrun tune ({name}) failed:\n{out.stdout}\n{out.stderr}")
    trials = []
    for result in sorted((folder / "runs").glob(f"{name}__*/*/result.json")):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line]
        last = rows[-1]
        trials.append({"overrides": last["config"]["overrides"], "epochs": len(rows),
                       **{k: v for k, v in last.items() if k.startswith(("eval/", "time/"))}})
    return trials


def _condition(trials: list[dict]) -> dict:
    """Means over seeds of one model (and alpha), and the per-seed values."""
    keys = [k for k in trials[0] if k.startswith("eval/")]
    by_seed = sorted(trials, key=lambda t: t["overrides"]["seed"])
    return {"seeds": [t["overrides"]["seed"] for t in by_seed],
            **{k.removeprefix("eval/"): round(float(np.mean([t[k] for t in by_seed])), 4)
               for k in keys},
            "per_seed": {k.removeprefix("eval/"): [round(t[k], 4) for t in by_seed]
                         for k in ("eval/E_A", "eval/Var_A")},
            "epoch_s": round(float(np.mean([t["time/epoch_s"] for t in by_seed])), 1)}


def measure(framework: str, seeds: list[int], plot: Path | None = None) -> dict:
    """Both sweeps in ``framework`` over ``seeds``: the table of means per condition, the best
    alpha (lowest mean Var[A]), the Var[A] reduction and E[A] change there, the wall time."""
    start = time.monotonic()
    fixed = {"framework": framework}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        standard = _sweep(folder, "dbvae_bench_standard", {"seed": {"grid": seeds}},
                          {**fixed, "dbvae.model": "standard"})
        dbvae = _sweep(folder, "dbvae_bench_dbvae",
                       {"dbvae.alpha": {"grid": list(ALPHAS)}, "seed": {"grid": seeds}},
                       {**fixed, "dbvae.model": "dbvae"})
    wall = time.monotonic() - start
    if len(standard) != len(seeds) or len(dbvae) != len(seeds) * len(ALPHAS):
        raise RuntimeError(f"expected {len(seeds)} standard and {len(seeds) * len(ALPHAS)} DB-VAE "
                           f"trials ({framework}), got {len(standard)} and {len(dbvae)}")
    table = {"standard": _condition(standard)}
    for alpha in ALPHAS:
        table[f"dbvae_alpha_{alpha:g}"] = _condition(
            [t for t in dbvae if np.isclose(t["overrides"]["dbvae.alpha"], alpha)])
    base = table["standard"]
    best = min((f"dbvae_alpha_{a:g}" for a in ALPHAS), key=lambda k: table[k]["Var_A"])
    var_reduction = 100.0 * (1.0 - table[best]["Var_A"] / base["Var_A"]) if base["Var_A"] else 0.0
    if plot is not None:
        _plot(table, best, plot)
    return {"seeds": seeds, "table": table, "best_alpha": float(best.removeprefix("dbvae_alpha_")),
            "var_reduction_pct": round(var_reduction, 1),
            "mean_accuracy_change_pct": round(table[best]["E_A"] - base["E_A"], 2),
            "process_s": round(wall, 1)}


def run() -> dict:
    cfg = yaml.safe_load(CONFIG.read_text())["dbvae"]
    result = measure("tensorflow", list(range(SEEDS)), RESULTS_PLOT)
    torch = run_torch()
    return {
        "config": "configs/dbvae_bias.yaml",
        "setup": {k: cfg[k] for k in ("num_train", "minority_share", "latent_dim", "epochs",
                                      "steps_per_epoch", "batch_size", "kl_weight", "bins", "combine")},
        "alphas": list(ALPHAS), **result, **torch,
        "targets": {"var_reduction_pct": f">= {TARGET_VAR_REDUCTION_PCT}",
                    "mean_accuracy_change_pct": ">= 0", **torch["targets"]},
        "met": {"var_reduction_pct": result["var_reduction_pct"] >= TARGET_VAR_REDUCTION_PCT,
                "mean_accuracy_change_pct": result["mean_accuracy_change_pct"] >= 0, **torch["met"]},
    }


def run_torch() -> dict:
    """``dbvae-torch``: the same two sweeps with ``framework: torch``, seeds 0..TORCH_SEEDS-1;
    its keys are the TensorFlow ones prefixed torch_."""
    result = {f"torch_{k}": v for k, v in measure("torch", list(range(TORCH_SEEDS))).items()}
    return {**result,
            "targets": {"torch_var_reduction_pct": f">= {TARGET_VAR_REDUCTION_PCT}",
                        "torch_mean_accuracy_change_pct": ">= 0"},
            "met": {"torch_var_reduction_pct": result["torch_var_reduction_pct"] >= TARGET_VAR_REDUCTION_PCT,
                    "torch_mean_accuracy_change_pct": result["torch_mean_accuracy_change_pct"] >= 0}}


def _plot(table: dict, best: str, path: Path) -> None:
    """The course's bar plot of the means over seeds: the standard CNN beside the DB-VAE at the
    best alpha, per group."""
    from supervised.render import render_group_plot, save_png

    metrics = {}
    for prefix, name in (("eval", best), ("baseline", "standard")):
        metrics |= {f"{prefix}/{k}": v for k, v in table[name].items()
                    if k.startswith(("accuracy_", "mean_face_prob_")) or k in ("E_A", "Var_A")}
    alpha = best.removeprefix("dbvae_alpha_")
    save_png(render_group_plot(metrics, f"DB-VAE (alpha {alpha})"), path)


def table_rows(r: dict) -> list[tuple[str, str, str]]:
    rows = []
    for prefix, framework in (("", "TensorFlow"), ("torch_", "PyTorch")):
        if f"{prefix}table" not in r:
            continue
        for name, c in r[f"{prefix}table"].items():
            groups = " ".join(f"{k.removeprefix('accuracy_')} {v:.3f}" for k, v in c.items()
                              if k.startswith("accuracy_"))
            rows.append((f"{framework} {name}: E[A] / Var[A] (mean of {len(c['seeds'])} seeds)",
                         f"{c['E_A']:.2f} / {c['Var_A']:.2f}  ({groups})", ""))
        rows += [
            (f"{framework}: Var[A] reduction at best alpha {r[f'{prefix}best_alpha']:g}",
             f"{r[f'{prefix}var_reduction_pct']:.1f} %", f">= {TARGET_VAR_REDUCTION_PCT:.0f} %"),
            (f"{framework}: E[A] change at best alpha", f"{r[f'{prefix}mean_accuracy_change_pct']:+.2f} points",
             ">= 0"),
            (f"{framework}: both sweeps", f"{r[f'{prefix}process_s']:.0f} s", ""),
        ]
    return rows
