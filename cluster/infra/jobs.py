"""``labrun submit``, ``jobs``, ``logs``, ``stop``: experiments as Ray jobs, through Ray's Jobs API.

A submission uploads the project's code and configs, from an allow-list (``upload.py``), as the
job's working directory and runs ``python -m cluster.cli train CONFIG --address auto``
(``tune`` for a sweep) on the cluster's head, so the cluster runs exactly the code and config of
this checkout. Where the job's Python gets its packages from:

- a cluster on this machine (a loopback address, e.g. ``labrun cluster up``): this environment's
  Python, which has them all;
- any other cluster: ``python`` on the head, with the project's dependencies (``pyproject.toml``)
  in the job's runtime environment (``pip``), which Ray installs once per node and caches;
  ``--no-install`` skips that for images that already hold them. Ray's own entry is unpinned,
  ``ray[default,tune]``: the cluster's Ray satisfies it and stays (Ray refuses a runtime
  environment that changes its own version, and one that matches would reinstall it for
  nothing), while its extras' packages (Tune's pandas, fsspec...) are installed where missing. ``submit`` says so when the cluster's Ray differs from
  the one pinned here (``ray_version_note``).

``labrun stop`` is Ray's: SIGTERM to the job's processes, SIGKILL after a grace period. labrun
ends a run on SIGTERM like on Ctrl-C (final checkpoint, storage push, exit 143), and asks for a
grace period that leaves time for it (``--stop-grace``, default ``STOP_GRACE_S``; Ray's own is 3 s).

Results go to ``--storage`` (a folder every node can reach, a shared file system; default: this
checkout's ``runs/`` for a cluster on this machine). The Jobs API sits behind the dashboard's
token authentication: the token comes from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token`` (``ray get-auth-token`` on the head prints it).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Callable, Sequence

from cluster.infra.auth_token import refusal
from cluster.infra.local_cluster import LocalCluster
from cluster.infra.net import is_loopback
from cluster.infra.session import ClusterError, prepare_environment
from cluster.storage import is_uri
from cluster.trackers import shown_uri

REPO = Path(__file__).resolve().parents[2]   # the project folder
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Passed on to the job (never credentials: a job's environment is visible on the dashboard).
FORWARDED_ENV = ("LABRUN_DATA_DIR", "LABRUN_DEBUG", "MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_PROJECT")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
STOP_GRACE_S = 60
STOP_GRACE_VAR = "RAY_JOB_STOP_WAIT_TIME_S"   # read by Ray's job supervisor, in the job's env


def resolve_address(address: str | None) -> str:
    """The Jobs API's address: ``address``; else the cluster ``labrun cluster up`` recorded;
    else ``RAY_API_SERVER_ADDRESS``; else http://127.0.0.1:8265. A bare host:port gets http://."""
    if address is None:

        recorded = LocalCluster.load()
        address = (recorded.dashboard_url if recorded else None) or \
            os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS
    return address if "://" in address else f"http://{address}"


def _auth_message(err: Exception, address: str) -> str | None:
    why = refusal(err, address)
    if why == "missing":
        return (f"the Ray cluster at {address} requires its authentication token and none was "
                f"sent: set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to the token file (on the "
                f"head, `ray get-auth-token` prints it), and keep RAY_AUTH_MODE=token")
    if why == "invalid":
        return (f"the Ray cluster at {address} refused the authentication token: it is not the "
                f"cluster's (RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH / ~/.ray/auth_token; on the head, "
                f"`ray get-auth-token` prints the right one)")
    return None


def _call(what: str, address: str, function: Callable[[], Any]) -> Any:
    """``function()``, its failures as ClusterErrors that say what to do."""
    try:
        return function()
    except ClusterError:
        raise
    except Exception as err:
        message = _auth_message(err, address)
        if message is None and ("Connection" in type(err).__name__ or "connect" in str(err).lower()):
            message = (f"cannot reach the Ray Jobs API at {address}: is a cluster up there "
                       f"(`labrun cluster up`, or `ray start --head` with its dashboard)?")
        raise ClusterError(message or f"{what} at {address} failed: {err}") from None


def connect(address: str | None = None):
    """A JobSubmissionClient of the cluster at ``address`` (see ``resolve_address``)."""
    address = resolve_address(address)
    prepare_environment(address)   # RAY_AUTH_MODE=token: the client sends the token
    from ray.job_submission import JobSubmissionClient

    client = _call("connecting to the Jobs API", address, lambda: JobSubmissionClient(address))
    client.labrun_address = address
    return client


def _project() -> dict[str, Any]:
    """pyproject.toml's [project] table."""
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def project_dependencies() -> list[str]:
    """The pinned dependencies of pyproject.toml."""
    return list(_project()["dependencies"])


def _name(spec: str) -> str:
    return re.split(r"[\[=<>~! ;]", spec, maxsplit=1)[0].strip().lower()


def job_dependencies(extras: Sequence[str] = ()) -> list[str]:
    """A job's pip runtime environment: the project's dependencies, Ray's unpinned (its extras'
    packages are installed where missing; the cluster's Ray itself already satisfies it and
    stays), and the pins of the optional ``extras`` the run needs (its trackers: mlflow, wandb)."""
    project = _project()
    return [spec.split("==")[0].split(";")[0].strip() if _name(spec) == "ray" else spec
            for spec in project["dependencies"]] + \
        [spec for extra in extras for spec in project["optional-dependencies"][extra]]


def pinned_ray_version() -> str | None:
    """The Ray version pyproject.toml pins (``ray[...]==X``), if it pins one."""
    for spec in project_dependencies():
        if _name(spec) == "ray" and "==" in spec:
            return spec.split("==", 1)[1].split(";")[0].strip()
    return None


def ray_version_note(client) -> str | None:
    """A line saying that the cluster's Ray differs from the one pinned here, or None. The
    version is the one the Jobs API reported when the client connected."""
    theirs, ours = getattr(client, "_server_ray_version", None), pinned_ray_version()
    if theirs is None or ours is None or theirs == ours:
        return None
    return (f"warning: the cluster at {client.labrun_address} runs Ray {theirs}; labrun is tested "
            f"with Ray {ours} (pyproject.toml). The job uses the cluster's Ray; if it fails, run a "
            f"cluster with Ray {ours}")


def job_spec(command: str, config: str, sets: list[str], address: str, storage: str | None,
             install: bool | None, working_dir: str,
             stop_grace_s: int = STOP_GRACE_S, extras: Sequence[str] = ()) -> tuple[str, dict]:
    """(entrypoint, runtime_env) of a submission: see the module's docstring. ``working_dir``
    is the staged upload (``upload.staged``), which holds ``config`` at its path in the project."""
    path = Path(config).resolve()
    try:
        relative = path.relative_to(REPO)
    except ValueError:
        raise ClusterError(f"{config}: a submitted experiment file must be inside the project "
                           f"folder {REPO}, whose code and configs are uploaded to the cluster") from None
    local = is_loopback(address)
    python = sys.executable if local else "python"
    argv = [python, "-m", "cluster.cli", command, str(relative), "--address", "auto"]
    if local and not is_uri(storage):   # this machine's paths: relative ones are from here
        storage = str(Path(storage).resolve()) if storage is not None else str(REPO / "runs")
    if storage is not None:
        argv += ["--runs-dir", storage]
    for s in sets:
        argv += ["--set", s]
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    if shown_uri(env.get("MLFLOW_TRACKING_URI", "")) != env.get("MLFLOW_TRACKING_URI", ""):
        del env["MLFLOW_TRACKING_URI"]   # it holds credentials: set it on the cluster instead
        print("warning: MLFLOW_TRACKING_URI holds credentials, so it is not passed to the job "
              "(a job's environment shows on the dashboard); set it on the cluster", file=sys.stderr)
    env |= {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
            "RAY_JOB_STOP_SIGNAL": "SIGTERM", STOP_GRACE_VAR: str(stop_grace_s)}
    runtime_env: dict[str, Any] = {"working_dir": working_dir, "env_vars": env}
    if install if install is not None else not local:
        runtime_env["pip"] = job_dependencies(extras)
    return shlex.join(argv), runtime_env


def submit(client, command: str, config: str, sets: list[str], storage: str | None,
           install: bool | None, working_dir: str, stop_grace_s: int = STOP_GRACE_S,
           agent_wait_s: float = 180, extras: Sequence[str] = ()) -> str:
    """Submits the job; its id. A cluster that has just started may not have its job agent yet
    (HTTP 500, 'No available agent'): that is retried for up to ``agent_wait_s`` seconds."""
    entrypoint, runtime_env = job_spec(command, config, sets, client.labrun_address, storage, install,
                                     working_dir, stop_grace_s, extras)
    deadline = time.monotonic() + agent_wait_s
    while True:
        try:
            return _call("submitting the job", client.labrun_address,
                         lambda: client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env,
                                                   metadata={"labrun_config": config}))
        except ClusterError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def follow(client, job_id: str, out=sys.stdout) -> str:
    """Prints the job's logs as they come until it ends; its final status."""
    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    try:
        asyncio.run(tail())
    except Exception:   # the log stream broke (the head went away?): ask for the status
        pass
    return wait(client, job_id)


def wait(client, job_id: str, timeout: float | None = None) -> str:
    """Polls until the job ends (or ``timeout`` seconds pass); its status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = str(_call("asking the job's status", client.labrun_address,
                           lambda: client.get_job_status(job_id)).value)
        if status in TERMINAL or (deadline is not None and time.monotonic() > deadline):
            return status
        time.sleep(1)


def list_jobs(client) -> list[Any]:
    jobs = _call("listing the jobs", client.labrun_address, client.list_jobs)
    return sorted(jobs, key=lambda j: j.start_time or 0)


def logs(client, job_id: str) -> str:
    return _call(f"reading the logs of {job_id}", client.labrun_address,
                 lambda: client.get_job_logs(job_id))


def stop(client, job_id: str) -> bool:
    return _call(f"stopping {job_id}", client.labrun_address, lambda: client.stop_job(job_id))


def stop_grace_s(client, job_id: str) -> int:
    """The grace period the job was submitted with (Ray's 3 s for one labrun did not submit)."""
    info = _call(f"reading {job_id}", client.labrun_address, lambda: client.get_job_info(job_id))
    env = (info.runtime_env or {}).get("env_vars") or {}
    try:
        return int(env.get(STOP_GRACE_VAR, 3))
    except ValueError:
        return 3
