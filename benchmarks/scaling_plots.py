"""The scaling benchmark's plots (matplotlib, Agg), one per curve family: scaling_sampling.png,
scaling_learner.png, scaling_driver.png and scaling_model.png."""

from __future__ import annotations

from pathlib import Path

from cluster.figures import pyplot, save


def plot_sampling(by_workers: dict, by_envs: dict, cores: int, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=100)
    for row, (name, unit, label) in enumerate((("cartpole", "steps_per_s", "env steps/s"),
                                               ("pong_mlp", "frames_per_s", "emulator frames/s"))):
        ax = axes[row][0]
        points = by_workers[name]
        xs = [p["workers"] for p in points]
        ax.plot(xs, [p[unit] for p in points], "o-", label="measured")
        ax.plot(xs, [points[0][unit] * x for x in xs], ":", color="grey", label="1 worker x workers")
        ax.axvline(cores + 0.5, color="red", alpha=0.3, label=f"{cores} cores (right: oversubscribed)")
        ax.set(xlabel="rollout workers", ylabel=label, title=f"{name}: by workers", xticks=xs)
        ax.legend(fontsize=8)
        ax = axes[row][1]
        points = by_envs[name]
        xs = [p["envs_per_worker"] for p in points]
        ax.plot(xs, [p[unit] for p in points], "o-")
        ax.set(xlabel="environments per worker (1 worker)", ylabel=label, xscale="log",
               title=f"{name}: by environments per worker")
        ax.set_xticks(xs, [str(x) for x in xs])
        for ax in axes[row]:
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    return save(fig, path)


def plot_learner(learner: dict, path: Path) -> Path:
    plt = pyplot()
    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    for family, points in learner.items():
        xs = [p["steps"] for p in points]
        time_ax.plot(xs, [p["update_s"] for p in points], "o-", label=family)
        mem_ax.plot(xs, [p["peak_rss_growth_mb"] for p in points], "o-", label=family)
    time_ax.set(xlabel="batch steps", ylabel="update seconds (median)", xscale="log", yscale="log",
                title="learner update time (this machine's CPU)")
    mem_ax.set(xlabel="batch steps", ylabel="peak RSS growth over one update (MB)", xscale="log",
               yscale="log", title="learner peak memory")
    for ax in (time_ax, mem_ax):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_driver(driver: list[dict], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    xs = [d["workers"] for d in driver]
    ax.plot(xs, [d["small_ms"] for d in driver], "o-", label="CartPole-sized batches (7 KB each)")
    ax.plot(xs, [d["pong_ms"] for d in driver], "o-", label="Pong-sized batches (5.8 MB each)")
    ax.set(xlabel="simulated workers (0-CPU actors)", ylabel="ms per iteration (median)",
           title="driver: ray.put(CNN weights) + WorkerGroup.sample", xscale="log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_model(curves: dict, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.2), dpi=100)
    for ax, (name, curve) in zip(axes, curves.items()):
        ax.plot(curve["cores"], curve["ideal"], ":", color="grey", label="every worker always sampling")
        ax.plot(curve["cores"], curve["sync"], label="synchronous")
        ax.plot(curve["cores"], curve["pipelined"], label="pipelined")
        for n in (16, 64, 256):
            ax.axvline(n, color="red", alpha=0.15)
        ax.set(xscale="log", yscale="log", xlabel="cluster cores (one for the driver)",
               ylabel=curve["unit"], title=f"{name}: modelled, GPU learner")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_all(by_workers: dict, by_envs: dict, learner: dict, driver: list[dict], curves: dict,
             cores: int, out_dir: Path) -> list[Path]:
    return [plot_sampling(by_workers, by_envs, cores, out_dir / "scaling_sampling.png"),
            plot_learner(learner, out_dir / "scaling_learner.png"),
            plot_driver(driver, out_dir / "scaling_driver.png"),
            plot_model(curves, out_dir / "scaling_model.png")]
