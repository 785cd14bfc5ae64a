"""Acting beside learning (``rollout.pipeline``): training throughput and learning, with and
without, in one run. Writes into benchmarks/results/pong.json.

- ``pipeline_speedup``: training frames/s of configs/pong.yaml (the course's CNN) with the
  pipeline over without, 1 rollout worker and the learner in the driver (the issue's setting:
  the learner's update takes ~45% of a synchronous iteration), iterations 2 to the end of each
  run (the first includes start-up), summed over 3 seeds run alternately.
- ``pipeline_return_ratio``: the mean return of the last 20 games after the same step budget,
  with over without, over the same 3 seeds. Pong's returns lie in [-21, 21], so the ratio is
  taken on ``return + 21`` (0 for losing every point); at this short budget both policies are
  near random play, which is why CartPole is measured too:
- ``pipeline_cartpole_return_ratio``: configs/cartpole.yaml, every CPU, the mean return of the
  last 100 episodes after the same step budget (before the run solves it), 3 seeds.
- ``pipeline_speedup_bound``: the most any overlap could give with the synchronous run's split,
  (sample + learn) / max(sample, learn) = 1 / max(learn share, 1 - learn share): the update
  hides behind sampling at best. The issue's 1.5x assumed the ~45% learn share of the first
  round; with a learn share s below 1/3 the bound is under 1.5 (and on 2 cores the overlapped
  parts also share the CPUs, so the bound is optimistic).
"""

from __future__ import annotations

import statistics

from benchmarks.pong import CNN_CONFIG, frames_per_s, train_rows

SEEDS = (0, 1, 2)
PONG_STEPS = 20_000          # agent steps per run: ~6 iterations of 4 games (80k frames)
CARTPOLE_STEPS = 60_000      # before configs/cartpole.yaml solves (~150-200k steps)
TARGET_SPEEDUP = 1.5


def run() -> dict:
    pong: dict[str, list[list[dict]]] = {"sync": [], "pipeline": []}
    cartpole: dict[str, list[float]] = {"sync": [], "pipeline": []}
    for seed in SEEDS:                  # alternately, so that the machine's drift hits both
        for mode in ("sync", "pipeline"):
            common = [f"seed={seed}", f"rollout.pipeline={str(mode == 'pipeline').lower()}",
                      "stop.mean_return=null"]
            pong[mode].append(train_rows(CNN_CONFIG, [
                *common, "rollout.num_workers=1", "resources.learner_gpus=0",
                f"stop.env_steps={PONG_STEPS}", "output.checkpoint_every=1000"]))
            cartpole[mode].append(train_rows("configs/cartpole.yaml", [
                *common, f"stop.env_steps={CARTPOLE_STEPS}"])[-1]["rollout/episode_return_mean"])
    fps = {m: sum(frames_per_s(r) for r in runs) / len(runs) for m, runs in pong.items()}
    ret = {m: [r[-1]["rollout/episode_return_mean"] for r in runs] for m, runs in pong.items()}
    share = {m: statistics.mean(sum(x["time/learn_s"] for x in r[1:]) / sum(x["time/iteration_s"] for x in r[1:])
                                for r in runs) for m, runs in pong.items()}
    speedup = fps["pipeline"] / fps["sync"]
    bound = 1.0 / max(share["sync"], 1.0 - share["sync"])
    pong_ratio = (statistics.mean(ret["pipeline"]) + 21) / (statistics.mean(ret["sync"]) + 21)
    cart_ratio = statistics.mean(cartpole["pipeline"]) / statistics.mean(cartpole["sync"])
    lag = statistics.mean(x["learner/policy_lag"] for r in pong["pipeline"] for x in r[1:])
    return {
        "pipeline_speedup": round(speedup, 3),
        "pipeline_training_frames_per_s": {m: round(v) for m, v in fps.items()},
        "pipeline_learn_share": {m: round(v, 3) for m, v in share.items()},
        "pipeline_speedup_bound": round(bound, 3),
        "pipeline_policy_lag_mean": round(lag, 3),
        "pipeline_return_ratio": round(pong_ratio, 3),
        "pipeline_returns": {m: [round(v, 2) for v in r] for m, r in ret.items()},
        "pipeline_cartpole_return_ratio": round(cart_ratio, 3),
        "pipeline_cartpole_returns": {m: [round(v, 1) for v in r] for m, r in cartpole.items()},
        "pipeline_setup": f"{CNN_CONFIG} with 1 rollout worker x 4 envs, learner in the driver, "
                          f"{PONG_STEPS:,} agent steps per run, seeds {list(SEEDS)}; CartPole: "
                          f"configs/cartpole.yaml, every CPU, {CARTPOLE_STEPS:,} steps; Pong's "
                          "return ratio on return + 21",
        "targets": {"pipeline_speedup": f">= {TARGET_SPEEDUP}",
                    "pipeline_return_ratio": ">= 1 (not worse), within seed noise"},
        "met": {"pipeline_speedup": speedup >= TARGET_SPEEDUP},
    }


def table_rows(result: dict) -> list[tuple[str, str, str]]:
    r = result
    return [
        ("course CNN, 1 worker: frames/s sync", f"{r['pipeline_training_frames_per_s']['sync']:,}", ""),
        ("course CNN, 1 worker: frames/s pipeline", f"{r['pipeline_training_frames_per_s']['pipeline']:,}", ""),
        ("pipeline_speedup", f"{r['pipeline_speedup']:.2f}", f">= {TARGET_SPEEDUP}"),
        ("  bound: 1 / max(learn share, 1 - learn share) of sync",
         f"{r['pipeline_speedup_bound']:.2f}" if "pipeline_speedup_bound" in r else "-", ""),
        ("mean policy lag (updates)", f"{r['pipeline_policy_lag_mean']:.2f}", ""),
        ("pipeline_return_ratio (Pong, return + 21)", f"{r['pipeline_return_ratio']:.3f}", ">= 1"),
        ("pipeline_cartpole_return_ratio", f"{r['pipeline_cartpole_return_ratio']:.3f}", ">= 1"),
    ]
