"""``labrun cluster up|down|status``: a Ray cluster of several nodes on this one machine.

For trying cluster mode without a cluster: a head and N worker nodes, each a ``ray start`` of
its own (its own raylet and resources), all on 127.0.0.1 unless ``--host`` says otherwise, with
Ray's token authentication on. The head runs the dashboard and the Jobs API that ``labrun
submit`` talks to. Its description goes to a state file (``$LABRUN_HOME/cluster.json``, default
``~/.labrun/cluster.json``) that ``submit``, ``jobs``, ``logs``, ``stop`` and ``down`` read;
``down`` stops exactly the processes of that cluster: those ``up`` recorded (PID, creation time,
owner: the processes of its temp folder right after start) still running, and their descendants
of this user (Ray workers, job drivers), never another Ray or another user's process.

Security: the dashboard and the Jobs API bind to the same host as the nodes. ``up`` refuses any
``RAY_AUTH_MODE`` but ``token`` (labrun does not offer authentication off), makes the token file
0600 (``auth_token.secure_token``), and on a non-loopback host, reachable from the network, wants
a strong token (128 bits). Ray encrypts nothing unless its TLS is configured (``RAY_USE_TLS``):
the token protects against strangers, not eavesdroppers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cluster.errors import UsageError
from cluster.infra import processes as owned
from cluster.infra.auth_token import check_strength, ensure_token, refusal, secure_token
from cluster.infra.net import free_port, is_loopback
from cluster.infra.session import ClusterError, prepare_environment
from supervised.files import atomic_write

STATE_ENV = "LABRUN_HOME"
STATE_FILE = "cluster.json"


TEMP_PREFIX = "labrun-cluster-"


def state_path() -> Path:
    return Path(os.environ.get(STATE_ENV) or Path.home() / ".labrun") / STATE_FILE


def _ray_bin() -> str:
    """The ``ray`` command of this Python environment."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


@dataclass(frozen=True)
class LocalCluster:
    host: str
    port: int             # the GCS port: nodes and drivers join host:port
    dashboard_port: int   # the dashboard and the Jobs API: http://host:dashboard_port
    temp_dir: str         # the head's Ray temp folder, unique to this cluster
    workers: int
    cpus_per_node: int
    raylet_pids: tuple[int, ...] = ()   # each node's raylet, the head's first
    head_cpus: int | None = None        # the head's CPUs when not cpus_per_node
    recorded: tuple[owned.Record, ...] = ()   # what `up` started: (pid, create_time, uid)

    @property
    def gcs_address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.host}:{self.dashboard_port}"

    def save(self) -> Path:
        return atomic_write(state_path(), json.dumps(asdict(self)) + "\n")   # whole or not at all

    @staticmethod
    def load() -> "LocalCluster | None":
        """The recorded cluster, or None; ClusterError for a state file labrun did not write
        (unreadable, or a temp folder that is not one of ``up``'s)."""
        path = state_path()
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            cluster = LocalCluster(**{**data, "raylet_pids": tuple(data.get("raylet_pids", ())),
                                      "recorded": tuple(tuple(r) for r in data.get("recorded", ()))})
        except (ValueError, TypeError) as err:
            raise ClusterError(f"{path} is not a cluster record of labrun's ({err}); "
                               f"not touching anything: remove it if it is stale") from None
        temp = os.path.realpath(cluster.temp_dir)
        if (os.path.dirname(temp) != "/tmp" or not os.path.basename(temp).startswith(TEMP_PREFIX)
                or not cluster.recorded):
            raise ClusterError(f"{path} names {cluster.temp_dir!r}, not a cluster `labrun cluster "
                               f"up` recorded (a /tmp/{TEMP_PREFIX}* folder and its processes); "
                               f"not touching anything: remove it if it is stale")
        return cluster

    def processes(self) -> list:
        """This cluster's processes still running: those ``up`` recorded (PID, creation time and
        owner all match) and their descendants of this user (Ray workers, job drivers)."""
        return owned.with_descendants(owned.live(self.recorded))

    def forget(self) -> None:
        """The state file and the temp folder removed (nothing of the cluster runs)."""
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        state_path().unlink(missing_ok=True)


def processes_of(*markers: str) -> list:
    """Processes (psutil) whose command line names any of ``markers`` (a Ray temp folder, a GCS
    address), and all their descendants; never this process."""
    import psutil

    found = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if any(m in arg for arg in cmdline for m in markers):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


# A worker node of a cluster on 127.0.0.1. In Ray 2.60 `ray start` refuses a second node in the
# single-machine mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) that keeps Ray's servers on
# 127.0.0.1; outside it, it rewrites the head's 127.0.0.1 into the machine's outward address and
# its servers listen on every interface. So this node's `ray start` runs with several nodes
# allowed (the variable is 1 while Ray is imported), the head's address kept as given, and the
# mode set back for the processes it starts, which then listen on 127.0.0.1 only.
_LOOPBACK_WORKER_START = """
import os, sys
from ray._private import services
from ray.scripts.scripts import main
services.resolve_ip_for_localhost = lambda host: host
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
sys.argv[0] = "ray"
sys.exit(main())
"""


def _run_ray(args: list[str], what: str, cleanup: LocalCluster | None = None,
             loopback: bool = True) -> None:
    """``ray start ARGS``; ClusterError with its output's tail (after stopping ``cleanup``'s
    processes) if it fails."""
    worker = "--head" not in args
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1" if worker or not loopback else "0"}
    cmd = [sys.executable, "-c", _LOOPBACK_WORKER_START] if worker and loopback else [_ray_bin()]
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=180, env=env)
    if out.returncode != 0:
        if cleanup is not None:
            cleanup = _record(cleanup)
            owned.stop(cleanup.processes())
            cleanup.forget()
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-8:])
        raise ClusterError(f"`ray start` of the {what} failed (exit {out.returncode}):\n{tail}")


def up(workers: int = 1, cpus_per_node: int | None = None, host: str = "127.0.0.1",
       port: int | None = None, dashboard_port: int | None = None,
       head_cpus: int | None = None) -> LocalCluster:
    """Starts a head and ``workers`` worker nodes with ``ray start``; records them; returns them.
    ``head_cpus=0`` keeps tasks, actors and trials off the head, as Ray advises for large
    clusters (the head then only runs the GCS, the dashboard and the jobs' drivers)."""
    if os.environ.get("RAY_AUTH_MODE", "token") != "token":
        raise UsageError(f"authentication off is not offered by labrun: RAY_AUTH_MODE is "
                         f"{os.environ['RAY_AUTH_MODE']!r}; unset it (labrun keeps token "
                         f"authentication on)")
    existing = LocalCluster.load()
    if existing is not None and owned.live(existing.recorded):
        raise ClusterError(f"a cluster is already up at {existing.gcs_address} (state in "
                           f"{state_path()}); `labrun cluster down` stops it")
    if existing is not None:
        print(f"the cluster recorded at {existing.gcs_address} is gone (none of its processes "
              f"runs); forgot it", file=sys.stderr, flush=True)
        existing.forget()
    if workers < 0:
        raise ClusterError(f"--workers: expected 0 or more, got {workers}")
    if head_cpus is not None and head_cpus < 0:
        raise ClusterError(f"--head-cpus: expected 0 or more, got {head_cpus}")
    if head_cpus == 0 and workers == 0:
        raise ClusterError("--head-cpus 0 needs --workers 1 or more: nothing could run")
    prepare_environment(host)   # RAY_AUTH_MODE=token; on loopback, Ray keeps to 127.0.0.1
    secure_token()
    new_token = ensure_token()
    if not is_loopback(host):
        check_strength(host)
    if new_token is not None:
        print(f"made an authentication token for the cluster: {new_token} (clients and other "
              f"nodes need it: RAY_AUTH_TOKEN_PATH, or `ray get-auth-token` prints it)", flush=True)
    nodes_with_cpus = workers + (head_cpus is None)
    cpus = cpus_per_node or max(1, ((os.cpu_count() or 1) - (head_cpus or 0)) // max(1, nodes_with_cpus))
    port = port or free_port(host)
    dashboard_port = dashboard_port or free_port(host)
    temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp")  # short: Ray's socket paths
    cluster = LocalCluster(host, port, dashboard_port, temp_dir, workers, cpus, head_cpus=head_cpus)
    common = ["--node-ip-address", host, "--disable-usage-stats"]
    head_cpu_args = ["--num-cpus", str(cpus if head_cpus is None else head_cpus)]
    # Each node's dashboard agent gets a free HTTP port: the default (52365) may be another Ray's
    # on this machine, and an agent without one cannot take jobs ("No available agent").
    _run_ray(["start", "--head", "--port", str(port), "--temp-dir", temp_dir,
              "--include-dashboard", "true", "--dashboard-host", host,
              "--dashboard-port", str(dashboard_port),
              "--dashboard-agent-listen-port", str(free_port(host)),
              "--ray-client-server-port", str(free_port(host)), *head_cpu_args, *common], "head", cluster,
             is_loopback(host))
    cluster = _record(cluster)
    raylets = _raylets(cluster, [])
    for i in range(workers):
        # Each node its own temp folder, as on separate machines: nodes sharing one also share
        # its runtime_resources, and a node's agent then deletes a job's working directory
        # (the driver's current folder) when another node that used it goes away.
        _run_ray(["start", "--address", cluster.gcs_address,
                  "--temp-dir", os.path.join(temp_dir, f"node{i + 1}"),
                  "--dashboard-agent-listen-port", str(free_port(host)), "--num-cpus", str(cpus),
                  *common],
                 f"worker node {i + 1}", cluster, is_loopback(host))
        cluster = _record(cluster)
        raylets = _raylets(cluster, raylets)
    cluster = replace(cluster, raylet_pids=tuple(raylets))
    cluster.save()
    _wait_for_nodes(cluster, workers + 1)
    return cluster


def _record(cluster: LocalCluster) -> LocalCluster:
    """``cluster`` with the processes of its temp folder (this user's) added to its record, and
    saved: what `down` will stop, even if a later node fails to start."""
    found = processes_of(cluster.temp_dir, cluster.gcs_address)
    merged = {r[0]: r for r in (*cluster.recorded, *owned.record(found))}
    cluster = replace(cluster, recorded=tuple(merged[pid] for pid in sorted(merged)))
    cluster.save()
    return cluster


def _raylets(cluster: LocalCluster, known: list[int]) -> list[int]:
    """``known`` and the pid of the raylet that has just started (a node's own process)."""
    pids = sorted(p.pid for p in owned.live(cluster.recorded) if p.name() == "raylet")
    return known + [pid for pid in pids if pid not in known][:1]


def _wait_for_nodes(cluster: LocalCluster, nodes: int, timeout: float = 90) -> None:
    """Until the state API (through the dashboard) lists every node alive: ``ray start``
    returns before a node has joined. ClusterError if they do not within ``timeout``."""
    seen = alive_nodes(cluster.dashboard_url, wait=timeout, at_least=nodes)
    if seen < nodes:
        raise ClusterError(f"only {seen} of {nodes} nodes joined within {timeout:.0f} s; "
                           f"`labrun cluster status` shows the cluster, `labrun cluster down` stops it")


def alive_nodes(dashboard_url: str, wait: float = 0, at_least: int = 0) -> int:
    """How many nodes are alive, asked of the state API; with ``wait``, polls up to that many
    seconds until at least ``at_least`` are (0 while the dashboard cannot answer)."""
    deadline = time.monotonic() + wait
    while True:
        count, _ = node_report(dashboard_url)
        if (count or 0) >= at_least or time.monotonic() >= deadline:
            return count or 0
        time.sleep(1)


def node_report(dashboard_url: str) -> tuple[int | None, str | None]:
    """(nodes alive, None) as the state API says, or (None, why it could not say): the dashboard
    cannot be reached, or it refused the token."""
    from ray.util.state import list_nodes
    from ray.util.state.exception import ServerUnavailable

    try:
        return len(list_nodes(address=dashboard_url, filters=[("state", "=", "ALIVE")],
                              raise_on_missing_output=False)), None
    except ServerUnavailable:
        return None, f"the dashboard cannot be reached at {dashboard_url}"
    except Exception as err:   # Ray raises several types; the text says which failure
        why = refusal(err, dashboard_url)
        if why == "missing":
            return None, (f"authentication refused (token): the dashboard at {dashboard_url} "
                          f"needs the cluster's token and none was sent")
        if why == "invalid":
            return None, (f"authentication refused (token): the dashboard at {dashboard_url} does "
                          f"not take the token labrun sent (RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH / "
                          f"~/.ray/auth_token)")
        return None, f"the dashboard cannot be reached at {dashboard_url}"


def auth_in_force(dashboard_url: str) -> str:
    """'token' if the Jobs API refuses a request without a token, 'none' if it answers one,
    'unknown' if it cannot be asked."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{dashboard_url}/api/jobs/", timeout=10):
            return "none"
    except urllib.error.HTTPError as err:
        return "token" if err.code in (401, 403) else "unknown"
    except OSError:
        return "unknown"


def stop_processes(procs: list, timeout: float = 15) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; how many were signalled."""
    return owned.stop(procs, timeout)[0]


def down() -> tuple[LocalCluster | None, int, list[int]]:
    """Stops the recorded cluster's processes still running and forgets it: (the cluster or
    None, processes stopped, PIDs skipped because the system refused). Nothing recorded running:
    (the cluster, 0, [])."""
    cluster = LocalCluster.load()
    if cluster is None:
        return None, 0, []
    stopped, skipped = owned.stop(cluster.processes())
    cluster.forget()
    return cluster, stopped, skipped
