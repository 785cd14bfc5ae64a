"""Console lines for a Tune sweep: a trial started, its progress, finished or failed.

Its own module because it subclasses Tune's ``Callback``: importing it imports Ray, which must
wait until ``cluster.infra.session`` has set Ray's environment up.
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback
from rich.text import Text


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress(Callback):
    """One console line per trial event: started, a result (at most every ``every_s`` per trial,
    and always its first), finished, failed. Picklable (Tune keeps its callbacks in tuner.pkl,
    so a resumed sweep reports the same way)."""

    def __init__(self, metric: str, every_s: float = 10.0):
        self.metric, self.every_s = metric, every_s
        self._last: dict[str, float] = {}
        self._console = None

    def __getstate__(self) -> dict[str, Any]:
        return {"metric": self.metric, "every_s": self.every_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def _print(self, trial, text: str) -> None:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False)
        # names, values and paths are data: Text prints them as they are, never as rich markup
        self._console.print(Text(f"[{time.strftime('%H:%M:%S')}] trial {trial.trial_id}: {text}"))

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        overrides = (trial.config or {}).get("overrides") or {}
        self._print(trial, "started " + (", ".join(f"{k}={_fmt(v)}" for k, v in overrides.items())))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        now = time.monotonic()
        if now - self._last.get(trial.trial_id, -1e9) < self.every_s:
            return
        self._last[trial.trial_id] = now
        value = result.get(self.metric)
        self._print(trial, f"iteration {result.get('training_iteration')}, {self.metric} "
                           f"{_fmt(value) if value is not None else '-'}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        if "training_iteration" not in result:   # ended before its first epoch: failed at once
            self._print(trial, "failed at once, not restarted (no retry would help); the reason "
                               "follows the results")
            return
        self._print(trial, f"finished after {result.get('training_iteration')} iteration(s), "
                           f"{self.metric} {_fmt(result.get(self.metric))}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._print(trial, f"failed (restarts from its last checkpoint while "
                           f"max_failures allows); see {trial.path}")
