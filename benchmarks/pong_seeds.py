"""``make bench-pong-seeds``: does a change to the Pong learning config beat the spread between
seeds?

The config (``configs/pong_mlp.yaml``) and each variant in VARIANTS train with each of its seeds
(``seeds_of``: SEEDS, and MORE_SEEDS where three left a comparison open) to 20 M emulator frames
under sticky actions (``make bench-pong``'s first leg, plus the run seed and the variant's
overrides); each final policy plays 20 games on seeds no rollout worker played,
greedy and sampled, sticky actions on. Per variant: each seed's score, and the mean over seeds
with its standard error, beside the config's. Into benchmarks/results/pong_seeds.json, with a
plot of every run's training curve.

A run takes 12-17 minutes on 2 quiet CPUs, 49 in all (about twelve hours). Each lives in
runs/bench-pong-seeds/<variant>/seed<N>/ and is trained and evaluated once: run again after an
interruption, the benchmark continues where it stopped. Remove a run's folder to redo it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import pong

# The config's settings before pieces of games: 4 whole games an update (2 workers x 2 games),
# a constant learning rate of 1e-3.
WHOLE_GAMES = ("rollout.steps_per_env=null", "learner.lr_final=null", "learner.lr_decay_steps=null")
VARIANTS: dict[str, tuple[str, ...]] = {
    "config": (),            # configs/pong_mlp.yaml as it is: pieces of 500 steps, rate annealed
    "whole_games": WHOLE_GAMES,
    "whole_games_2_an_update": (*WHOLE_GAMES, "rollout.envs_per_worker=1"),  # twice the updates
    "whole_games_entropy_0.01": (*WHOLE_GAMES, "learner.entropy_coef=0.01"),  # an entropy bonus
    "whole_games_hidden_400": (*WHOLE_GAMES, "policy.hidden_sizes=[400]"),    # twice the units
    "constant_rate": ("learner.lr_final=null", "learner.lr_decay_steps=null"),  # 1e-3 throughout
    # pieces half as long (at least 1,000 steps an update on 2 workers, 3,060 updates by 20 M)
    "1k_steps_annealed": ("rollout.steps_per_env=250",),
    # twice the games an update, in pieces a quarter as long (at least 1,000 steps an update)
    "8_games_125_steps": ("rollout.envs_per_worker=4", "rollout.steps_per_env=125"),
    "hidden_100": ("policy.hidden_sizes=[100]",),   # half the units (400 did worse than 200)
    # NOOP beside UP and DOWN, so the paddle can hold still (the course plays all 6 actions)
    "noop": ("env.action_subset=[0,2,3]",),
    # a shorter horizon: a point's reward reaches 50 steps back at 0.36 of itself (0.61 at 0.99)
    "gamma_0.98": ("learner.gamma=0.98",),
    # shorter still: a point's reward reaches 50 steps back at 0.08 of itself, 14 at 0.49
    "gamma_0.95": ("learner.gamma=0.95",),
    # the current frame beside the difference, two channels: a paddle standing still stays seen
    "frame_and_difference": ("env.observation=frame_and_difference",),
    # the same with an entropy bonus: its policy turned near-deterministic sooner than the config's
    "frame_and_difference_entropy_0.01": ("env.observation=frame_and_difference",
                                          "learner.entropy_coef=0.01"),
    # 9 more Adam steps of the value baseline alone on each batch: a closer fit (less variance?)
    "value_steps_10": ("learner.value_steps=10",),
}
SEEDS = (0, 1, 2)
# Two more seeds where three could not tell a variant from the config (discounting by 0.98:
# +4.42 ± 3.93 against +3.13 ± 0.58 on seeds 0-2; on 0-4, +2.90 ± 2.41 against +1.40 ± 1.84).
MORE_SEEDS: dict[str, tuple[int, ...]] = {"config": (3, 4), "gamma_0.98": (3, 4)}
RUNS = pong.REPO / "runs" / "bench-pong-seeds"
FRAMES = pong.FRAMES[0]
SETTINGS = {"greedy": pong.STICKY, "sampled": [*pong.STICKY, "--sample"]}


def run_seed(variant: str, seed: int) -> dict:
    """One run of ``variant`` with ``seed``, trained to FRAMES and evaluated (each step once)."""
    from cluster.reinforce.outputs import read_metrics

    skip = pong.config_frameskip()
    run_dir = pong.train_to(RUNS / variant / f"seed{seed}", FRAMES,
                            (f"seed={seed}", *VARIANTS[variant]))
    evals = pong.evaluate_run(run_dir, "20M", SETTINGS)
    at = evals["greedy"]["eval/checkpoint_env_steps"]
    rows = [r for r in read_metrics(run_dir) if r["counters/env_steps"] <= at]
    return {
        "run_dir": str(run_dir.relative_to(pong.REPO)),
        "greedy": round(evals["greedy"]["eval/episode_return_mean"], 2),
        "greedy_stderr": round(evals["greedy"]["eval/episode_return_stderr"], 2),
        "sampled": round(evals["sampled"]["eval/episode_return_mean"], 2),
        "sampled_stderr": round(evals["sampled"]["eval/episode_return_stderr"], 2),
        "frames": int(at * skip),
        "train_minutes": round(rows[-1]["time/train_s"] / 60, 1),
        "updates": int(rows[-1]["counters/iteration"]),
        "games": int(rows[-1]["counters/episodes"]),
    }


def seeds_of(variant: str) -> tuple[int, ...]:
    """The seeds ``variant`` trains with."""
    return SEEDS + MORE_SEEDS.get(variant, ())


def over_seeds(values: list[float]) -> dict:
    """Mean, standard deviation (n-1) and standard error of per-seed scores."""
    v = np.asarray(values, float)
    std = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    return {"mean": round(float(v.mean()), 2), "std": round(std, 2),
            "stderr": round(std / np.sqrt(len(v)), 2), "min": float(v.min()), "max": float(v.max())}


def summarize(per_variant: dict[str, dict[int, dict]]) -> dict:
    """The JSON's variants: each seed's result, the scores over seeds, and the difference of the
    greedy mean from the config's with the two standard errors combined."""
    out = {}
    base = over_seeds([r["greedy"] for r in per_variant["config"].values()])
    for name, seeds in per_variant.items():
        greedy = over_seeds([r["greedy"] for r in seeds.values()])
        out[name] = {
            "overrides": list(VARIANTS[name]),
            "seeds": {str(s): r for s, r in seeds.items()},
            "greedy_over_seeds": greedy,
            "sampled_over_seeds": over_seeds([r["sampled"] for r in seeds.values()]),
        }
        if name != "config":
            out[name]["greedy_minus_config"] = round(greedy["mean"] - base["mean"], 2)
            out[name]["greedy_minus_config_stderr"] = round(float(np.hypot(greedy["stderr"],
                                                                          base["stderr"])), 2)
    return out


def run() -> dict:
    """Every variant with every seed (continuing what an earlier call left), then the summary."""
    per_variant: dict[str, dict[int, dict]] = {}
    for name in VARIANTS:
        for seed in seeds_of(name):
            per_variant.setdefault(name, {})[seed] = result = run_seed(name, seed)
            print(f"{name} seed {seed}: {result['greedy']:+.2f} greedy, {result['sampled']:+.2f} "
                  f"sampled ({result['train_minutes']} min)", flush=True)
    curve = plot(per_variant, pong.RESULTS / "pong_seeds_curves.png")
    return {
        "config": pong.CONFIG,
        "setup": f"{pong.CONFIG} plus each variant's overrides, seeds {list(SEEDS)} (also "
                 f"{', '.join(f'{v} {list(s)}' for v, s in MORE_SEEDS.items())}), trained to "
                 f"{FRAMES:,} emulator frames under sticky actions (0.25); {pong.EVAL_GAMES} "
                 f"evaluation games from seed {pong.EVAL_SEED} (never used in training), sticky "
                 "actions on, greedy and sampled",
        "frames": FRAMES,
        "eval_games": pong.EVAL_GAMES,
        "variants": summarize(per_variant),
        "curve_png": str(curve.relative_to(pong.REPO)),
    }


def plot(per_variant: dict[str, dict[int, dict]], path: Path) -> Path:
    """Training return (last 20 games, sampled actions) against emulator frames, every run up
    to its evaluated checkpoint: one panel a variant, its seeds in colour over the config's in
    grey (the config's seeds in colour when it is alone)."""
    from cluster.figures import pyplot, save
    from cluster.reinforce.outputs import read_metrics, with_returns

    skip = pong.config_frameskip()

    def curve(result: dict) -> tuple[list[float], list[float]]:
        rows = [r for r in with_returns(read_metrics(pong.REPO / result["run_dir"]))
                if r["counters/env_steps"] * skip <= result["frames"]]
        return ([r["counters/env_steps"] * skip / 1e6 for r in rows],
                [r["rollout/episode_return_mean"] for r in rows])

    curves = {name: {seed: curve(r) for seed, r in seeds.items()} for name, seeds in per_variant.items()}
    panels = [name for name in curves if name != "config"] or ["config"]
    cols = min(len(panels), 4)
    fig_rows = -(-len(panels) // cols)
    plt = pyplot()
    fig, axes = plt.subplots(fig_rows, cols, figsize=(max(3.2 * cols, 6.4), 2.6 * fig_rows + 0.8),
                             dpi=100, sharex=True, sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, panels):
        if name != "config":
            for i, (x, y) in enumerate(curves.get("config", {}).values()):
                ax.plot(x, y, color="grey", alpha=0.7, linewidth=0.8, label="config" if i == 0 else None)
        for seed, (x, y) in curves[name].items():
            ax.plot(x, y, color=f"C{seed % 10}", linewidth=0.9, label=f"seed {seed}")
        ax.axhline(18, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for col in range(cols):        # the lowest panel of each column carries the frames axis
        lowest = axes[(len(panels) - 1 - col) // cols, col]
        lowest.xaxis.set_tick_params(labelbottom=True)
        lowest.set_xlabel("frames (millions)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("training return", fontsize=8)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    for ax, name in zip(axes.flat[1:], panels[1:]):    # a panel with seeds the first lacks
        if set(curves[name]) - set(curves[panels[0]]):
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Pong, sticky actions: training return (last 20 games) against frames"
                 + (f"\neach variant's seeds over {pong.CONFIG}'s (grey)" if panels != ["config"]
                    else f"\n{pong.CONFIG}") + "; dashed: solved (+18)", fontsize=9)
    return save(fig, path)


def table_rows(result: dict) -> list[tuple[str, str, str]]:
    rows = []
    for name, v in result["variants"].items():
        seeds = ", ".join(f"{r['greedy']:+.2f}" for r in v["seeds"].values())
        g, s = v["greedy_over_seeds"], v["sampled_over_seeds"]
        rows.append((f"{name}: greedy, mean over seeds ({seeds})",
                     f"{g['mean']:+.2f} ± {g['stderr']:.2f}", ""))
        rows.append((f"{name}: sampled, mean over seeds", f"{s['mean']:+.2f} ± {s['stderr']:.2f}", ""))
        if name != "config":
            rows.append((f"{name} minus config, greedy",
                         f"{v['greedy_minus_config']:+.2f} ± {v['greedy_minus_config_stderr']:.2f}", ""))
    return rows
