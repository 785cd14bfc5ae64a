"""Rollout workers and the learner as Ray actors; dead workers are replaced, and nothing waits
on a worker forever.

``rl.rollout.RolloutWorker`` does not know it is remote: ``ray.remote`` is applied here.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from cluster.devices import LEARNER_CPUS, GpuUnusable, enable_memory_growth
from cluster.errors import ClusterError
from rl.rollout import RolloutWorker
from rl.trajectory import Trajectories

NAMESPACE = "labrun"
POLL_S = 1.0   # how often a wait on workers looks at its deadlines (and lets Ctrl-C in)


class WorkersLost(RuntimeError):
    """No rollout worker is left (none could be placed), or the run used all its restarts."""


class DeadlinePassed(Exception):
    """The caller's deadline (a wall-time budget) passed while waiting for samples."""


class WorkerGroup:
    """The rollout actors of one run. Call sequence: ``sample(weights_ref)`` each iteration (or
    ``submit(weights_ref)``, other work, then ``collect()``: acting beside learning),
    ``shutdown()`` at the end. Events (a worker lost, replaced, dropped) go to ``on_event``.

    Deadlines: a worker that Ray has not placed ``placement_timeout_s`` after it was started (no
    free CPUs, e.g. after its node was lost) is dropped and the group goes on smaller; one that
    has not answered a sample ``sample_timeout_s`` after being asked (hung) is killed and
    replaced like a dead one. With no worker left, ``sample`` raises ``WorkersLost``."""

    def __init__(self, run_id: str, num_workers: int, worker_args: tuple, seed: int,
                 cpus_per_worker: float, max_restarts: int, restarts_used: int = 0,
                 generation: int = 0, on_event: Callable[[str], None] = lambda message: None,
                 placement: str = "spread", placement_timeout_s: float = 120.0,
                 sample_timeout_s: float = 600.0):
        self.run_id = run_id
        self.worker_args = worker_args
        self.seed = seed
        self.cpus_per_worker = cpus_per_worker
        self.max_restarts = max_restarts
        self.restarts = restarts_used  # over the whole run, resumes included
        self.dropped = 0
        self.on_event = on_event
        self.placement_timeout_s = placement_timeout_s
        self.sample_timeout_s = sample_timeout_s
        # SPREAD lays workers over the nodes, replacements included (onto the nodes left after
        # one is lost); not inside a placement group (a sweep trial's), which places them itself.
        self._strategy = ("SPREAD" if placement == "spread"
                          and ray.util.get_current_placement_group() is None else None)
        self._remote = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(RolloutWorker)
        self.generations = {i: generation for i in range(num_workers)}
        self.actors: dict[int, Any] = {}      # worker index -> actor; dropped ones are gone
        self._ready: dict[int, Any] = {}      # index -> ref that resolves once Ray placed it
        self._started: dict[int, float] = {}  # index -> when it was (re)started
        self._pending: dict[int, Any] = {}    # index -> its sample's ref, submitted, not collected
        self._collected: dict[int, Trajectories] = {}
        self._weights_ref: Any = None
        for i in range(num_workers):
            self._start(i)

    def _start(self, index: int) -> None:
        name = f"{self.run_id}/rollout-{index}.{self.generations[index]}"
        options = {"scheduling_strategy": self._strategy} if self._strategy else {}
        actor = self._remote.options(name=name, namespace=NAMESPACE, **options).remote(
            *self.worker_args, seed=self.seed, worker_index=index,
            generation=self.generations[index])
        self.actors[index] = actor
        self._ready[index] = actor.__ray_ready__.remote()
        self._started[index] = time.monotonic()

    def _placed(self, index: int) -> bool:
        """Whether Ray has placed worker ``index`` (a dead one counts: its sample will say so)."""
        ref = self._ready.get(index)
        if ref is not None and ray.wait([ref], timeout=0)[0]:
            del self._ready[index]
            self._started[index] = time.monotonic()   # its sample's clock starts now
        return ref is None or index not in self._ready

    def _replace(self, index: int, why: str) -> None:
        ray.kill(self.actors[index], no_restart=True)
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise WorkersLost(f"rollout worker {index} {why} and the run has used all "
                              f"{self.max_restarts} worker restarts")
        self.generations[index] += 1
        self._start(index)
        self.on_event(f"rollout worker {index} {why}; started a replacement "
                      f"({self.restarts}/{self.max_restarts} restarts used)")

    def _drop(self, index: int) -> None:
        ray.kill(self.actors.pop(index), no_restart=True)
        self._ready.pop(index, None)
        self.dropped += 1
        free = ray.available_resources().get("CPU", 0.0)
        self.on_event(f"rollout worker {index} could not be placed within "
                      f"{self.placement_timeout_s:g} s (it needs {self.cpus_per_worker:g} CPU; the "
                      f"cluster has {free:g} free); going on with {len(self.actors)} worker(s)")
        if not self.actors:
            raise WorkersLost("no rollout worker is left: none could be placed within "
                              f"{self.placement_timeout_s:g} s (resources.placement_timeout_s)")

    def _expired(self, pending: dict[int, Any], now: float) -> list[tuple[int, str | None]]:
        """Pending workers past a deadline: (index, None) to drop, (index, why) to replace."""
        out: list[tuple[int, str | None]] = []
        for index in pending:
            placed = self._placed(index)     # (once placed, its clock restarts)
            waited = now - self._started[index]
            if not placed:
                if waited > self.placement_timeout_s:
                    out.append((index, None))
            elif waited > self.sample_timeout_s:
                out.append((index, f"gave no sample within {self.sample_timeout_s:g} s "
                                   f"(resources.sample_timeout_s)"))
        return out

    def sample(self, weights_ref: Any, deadline: float | None = None) -> list[Trajectories]:
        """One batch from every worker, in worker order: ``submit`` then ``collect``."""
        self.submit(weights_ref)
        return self.collect(deadline)

    def submit(self, weights_ref: Any) -> None:
        """Asks every worker for a batch played with ``weights_ref``; returns at once."""
        if self._pending:
            raise RuntimeError("submit: the previous batch was not collected")
        self._weights_ref = weights_ref
        self._pending = {i: actor.sample.remote(weights_ref) for i, actor in self.actors.items()}
        for i in self._pending:
            if i not in self._ready:
                self._started[i] = time.monotonic()

    def collect(self, deadline: float | None = None) -> list[Trajectories]:
        """The batches asked for by ``submit``, in worker order; a lost or hung worker is
        replaced and re-asked, one that cannot be placed is dropped. ``deadline``
        (``time.monotonic()``): ``DeadlinePassed`` once it passes with samples still missing
        (the batch stays asked for: a later ``collect`` goes on waiting)."""
        pending, weights_ref = self._pending, self._weights_ref
        out = self._collected
        while pending:
            wait_s = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
            ready, _ = ray.wait(list(pending.values()), num_returns=1, timeout=wait_s)
            if ready:
                index = next(i for i, ref in pending.items() if ref == ready[0])
                try:
                    out[index] = ray.get(pending.pop(index))
                except (RayActorError, ActorUnavailableError) as err:
                    self._replace(index, f"was lost ({type(err).__name__})")
                    pending[index] = self.actors[index].sample.remote(weights_ref)
                continue
            for index, why in self._expired(pending, time.monotonic()):
                del pending[index]
                if why is None:
                    self._drop(index)
                else:
                    self._replace(index, why)
                    pending[index] = self.actors[index].sample.remote(weights_ref)
            if deadline is not None and time.monotonic() >= deadline and pending:
                raise DeadlinePassed
        self._collected = {}
        return [out[i] for i in sorted(out)]

    def shutdown(self) -> None:
        for actor in self.actors.values():
            ray.kill(actor, no_restart=True)
        self.actors = {}


class _OnDevice:
    """Inside the learner's actor: TensorFlow's memory growth on and, when Ray gave it ``gpus``,
    a GPU checked (GpuUnusable if TensorFlow sees none: it would train on the CPU while holding
    the GPU), then the learner built."""

    def __init__(self, learner_cls: type, gpus: float, *args: Any, **kwargs: Any):
        seen = enable_memory_growth()
        if gpus and not seen:
            raise GpuUnusable("the learner's actor was given a GPU but TensorFlow sees none (no "
                              "CUDA libraries?); install them with: pip install -e '.[cuda]', or "
                              "set resources.learner_gpus: 0")
        self.device = seen[0] if gpus else "the CPU"
        self._learner = learner_cls(*args, **kwargs)

    def where(self) -> str:
        return self.device

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._learner, name)(*args, **kwargs)


class LearnerDidNotStart(ClusterError):
    """The learner's actor failed while being built (a GPU it cannot use, a bad argument)."""


class RemoteLearner:
    """A learner in its own Ray actor (to hold GPUs); same methods as the local one, blocking.
    Built, it has checked that TensorFlow uses the actor's GPU: ``device`` names it;
    LearnerDidNotStart, in one line, if the actor could not be built."""

    def __init__(self, learner_cls: type, *args: Any, num_gpus: float, num_cpus: float = LEARNER_CPUS,
                 **kwargs: Any):
        self._learner_cls = learner_cls
        # a CPU of its own besides the GPU: the host side of each update (batches in, the
        # optimizer's bookkeeping) competes with no rollout worker for it
        self._actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(_OnDevice).remote(
            learner_cls, num_gpus, *args, **kwargs)
        try:
            self.device: str = ray.get(self._actor.where.remote())
        except RayActorError as err:   # its constructor failed: say why, in one line
            raise LearnerDidNotStart(f"the learner's actor did not start: {_last_line(err)}") from None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or not callable(getattr(self._learner_cls, name, None)):
            raise AttributeError(f"{self._learner_cls.__name__} has no method {name!r}")
        return lambda *args, **kwargs: ray.get(self._actor.call.remote(name, *args, **kwargs))

    def shutdown(self) -> None:
        ray.kill(self._actor, no_restart=True)


def _last_line(err: Exception) -> str:
    """The last non-empty line of an error's text (a remote traceback's message)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
