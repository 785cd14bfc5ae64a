"""Rollout workers and the learner as Ray actors; dead workers are replaced.

``rl.rollout.RolloutWorker`` does not know it is remote: ``ray.remote`` is applied here.
"""

from __future__ import annotations

from typing import Any, Callable

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from cluster.devices import enable_memory_growth
from rl.rollout import RolloutWorker
from rl.trajectory import Trajectories

NAMESPACE = "labrun"


class WorkerGroup:
    """``num_workers`` rollout actors of one run. Call sequence: ``sample(weights_ref)`` each
    iteration, ``shutdown()`` at the end. Events (a worker lost and replaced) go to ``on_event``."""

    def __init__(self, run_id: str, num_workers: int, worker_args: tuple, seed: int,
                 cpus_per_worker: float, max_restarts: int, restarts_used: int = 0,
                 generation: int = 0, on_event: Callable[[str], None] = lambda message: None,
                 placement: str = "spread"):
        self.run_id = run_id
        self.worker_args = worker_args
        self.seed = seed
        self.max_restarts = max_restarts
        self.restarts = restarts_used  # over the whole run, resumes included
        self.on_event = on_event
        # SPREAD lays workers over the nodes, replacements included (onto the nodes left after
        # one is lost); not inside a placement group (a sweep trial's), which places them itself.
        self._strategy = ("SPREAD" if placement == "spread"
                          and ray.util.get_current_placement_group() is None else None)
        self._remote = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(RolloutWorker)
        self.generations = [generation] * num_workers
        self.actors = [self._start(i) for i in range(num_workers)]

    def _start(self, index: int) -> Any:
        name = f"{self.run_id}/rollout-{index}.{self.generations[index]}"
        options = {"scheduling_strategy": self._strategy} if self._strategy else {}
        return self._remote.options(name=name, namespace=NAMESPACE, **options).remote(
            *self.worker_args, seed=self.seed, worker_index=index,
            generation=self.generations[index])

    def _replace(self, index: int, err: Exception) -> None:
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise RuntimeError(f"rollout worker {index} died and the run has used all "
                               f"{self.max_restarts} worker restarts: {type(err).__name__}") from err
        self.generations[index] += 1
        self.actors[index] = self._start(index)
        self.on_event(f"rollout worker {index} was lost ({type(err).__name__}); started a "
                      f"replacement ({self.restarts}/{self.max_restarts} restarts used)")

    def sample(self, weights_ref: Any) -> list[Trajectories]:
        """One batch from every worker, in worker order; a lost worker is replaced and re-asked."""
        pending = {i: actor.sample.remote(weights_ref) for i, actor in enumerate(self.actors)}
        out: list[Trajectories | None] = [None] * len(self.actors)
        while pending:
            ready, _ = ray.wait(list(pending.values()), num_returns=1)
            index = next(i for i, ref in pending.items() if ref == ready[0])
            try:
                out[index] = ray.get(pending.pop(index))
            except (RayActorError, ActorUnavailableError) as err:
                self._replace(index, err)
                pending[index] = self.actors[index].sample.remote(weights_ref)
        return out  # type: ignore[return-value]

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


class _OnDevice:
    """Inside the learner's actor: TensorFlow's memory growth on, then the learner built."""

    def __init__(self, learner_cls: type, *args: Any, **kwargs: Any):
        enable_memory_growth()
        self._learner = learner_cls(*args, **kwargs)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._learner, name)(*args, **kwargs)


class RemoteLearner:
    """A learner in its own Ray actor (to hold GPUs); same methods as the local one, blocking."""

    def __init__(self, learner_cls: type, *args: Any, num_gpus: float, **kwargs: Any):
        self._learner_cls = learner_cls
        self._actor = ray.remote(num_cpus=0, num_gpus=num_gpus, max_restarts=0)(_OnDevice).remote(
            learner_cls, *args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or not callable(getattr(self._learner_cls, name, None)):
            raise AttributeError(f"{self._learner_cls.__name__} has no method {name!r}")
        return lambda *args, **kwargs: ray.get(self._actor.call.remote(name, *args, **kwargs))

    def shutdown(self) -> None:
        ray.kill(self._actor, no_restart=True)
