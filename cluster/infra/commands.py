"""The work of ``labrun submit``, ``jobs``, ``logs``, ``stop``, ``cluster`` and ``tensorboard``:
jobs through Ray's Jobs API, the local multi-node cluster, TensorBoard on 127.0.0.1. Each returns
the command's exit code."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cluster.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ClusterError, UsageError
from cluster.infra import jobs, local_cluster, upload
from cluster.infra.net import free_port
from cluster.infra.session import prepare_environment


def submit(command: str, config: str, sets: list[str], address: str | None, storage: str | None,
           install: bool | None, wait: bool, extra: list[Path] | None = None,
           stop_grace_s: int = jobs.STOP_GRACE_S, extras: Sequence[str] = ()) -> int:
    """Submits ``labrun COMMAND CONFIG`` as a job (its file checked by the caller first) and
    follows its logs unless ``wait`` is false. The upload is the project's allow-listed files
    (``upload.py``), with ``config`` and the ``extra`` files it needs (a sweep's experiment);
    ``extras``: the optional dependencies it needs installed (its trackers)."""
    with upload.staged(jobs.REPO, [Path(config), *(extra or [])]) as staged:
        print(f"uploading {staged.summary()} of {jobs.REPO} (code and configs only: "
              f"docs/security.md)", flush=True)
        client = jobs.connect(address)
        note = jobs.ray_version_note(client)
        if note:
            print(note, file=sys.stderr)
        job_id = jobs.submit(client, command, config, sets, storage, install, str(staged.folder),
                             stop_grace_s, extras=extras)
    print(f"submitted {job_id} to {client.labrun_address}", flush=True)
    if not wait:
        print(f"follow it with `labrun logs {job_id} --follow`; stop it with `labrun stop {job_id}`")
        return EXIT_OK
    try:
        status = jobs.follow(client, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; the job goes on: `labrun logs {job_id} --follow`, "
              f"`labrun stop {job_id}`", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"job {job_id}: {status}")
    return EXIT_OK if status == "SUCCEEDED" else EXIT_FAILED


def list_jobs(address: str | None) -> int:
    client = jobs.connect(address)
    table = Table(title=Text(f"jobs at {client.labrun_address}", style="table.title"),
                  title_justify="left")
    for column in ("job", "status", "started"):
        table.add_column(column, no_wrap=True)
    table.add_column("entrypoint", overflow="fold")
    for job in jobs.list_jobs(client):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.start_time / 1000)) \
            if job.start_time else ""
        # what the cluster says is data, printed as it is (Text), never as rich markup
        table.add_row(*map(Text, (job.submission_id or job.job_id or "", str(job.status.value),
                                  started, job.entrypoint or "")))
    Console().print(table)
    return EXIT_OK


def logs(job: str, follow: bool, address: str | None) -> int:
    client = jobs.connect(address)
    if not follow:
        print(jobs.logs(client, job), end="")
        return EXIT_OK
    status = jobs.follow(client, job)
    print(f"job {job}: {status}")
    return EXIT_OK if status == "SUCCEEDED" else EXIT_FAILED


def stop(job: str, address: str | None, wait: bool = True) -> int:
    """Asks the cluster to stop ``job`` (SIGTERM, then SIGKILL after the job's grace period);
    unless ``wait`` is false, waits until it has ended and says how."""
    client = jobs.connect(address)
    if not jobs.stop(client, job):
        print(f"job {job}: had already ended ({jobs.wait(client, job, timeout=0)})")
        return EXIT_OK
    grace = jobs.stop_grace_s(client, job)
    print(f"job {job}: stopping (SIGTERM; it has {grace} s to write its final checkpoint and "
          f"copy its results before SIGKILL)", flush=True)
    if not wait:
        return EXIT_OK
    status = jobs.wait(client, job, timeout=grace + 30)
    print(f"job {job}: {status}")
    if status not in jobs.TERMINAL:
        print(f"error: job {job} has not ended {grace + 30} s after the stop request; "
              f"`labrun jobs` shows its status", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cluster_up(workers: int, cpus_per_node: int | None, host: str, head_cpus: int | None) -> int:
    cluster = local_cluster.up(workers, cpus_per_node, host, head_cpus=head_cpus)
    mode = local_cluster.auth_in_force(cluster.dashboard_url)
    if mode == "none":
        local_cluster.down()
        raise ClusterError(f"the Jobs API at {cluster.dashboard_url} answered a request without "
                           f"the token: authentication was off, so the cluster was stopped")
    auth = {"token": "token authentication on (the Jobs API refuses a request without the token)",
            "unknown": "token authentication asked for (the Jobs API did not say whether it is "
                       "in force)"}[mode]
    head = "" if cluster.head_cpus is None else f" (the head {cluster.head_cpus})"
    print(f"Ray cluster up: a head and {cluster.workers} worker node(s), {cluster.cpus_per_node} "
          f"CPU(s) each{head}, {auth}\n"
          f"  join (drivers, --address):  {cluster.gcs_address}\n"
          f"  Jobs API and dashboard:     {cluster.dashboard_url}\n"
          f"  submit:  labrun submit configs/cartpole.yaml\n"
          f"  stop:    labrun cluster down")
    return EXIT_OK


def cluster_down() -> int:
    cluster, stopped, skipped = local_cluster.down()
    if cluster is None:
        print(f"no cluster recorded in {local_cluster.state_path()}; nothing to stop")
    elif stopped == 0 and not skipped:
        print(f"nothing of that cluster ({cluster.gcs_address}) is running; forgot it")
    else:
        print(f"stopped the cluster at {cluster.gcs_address} ({stopped} processes)")
    if skipped:
        print(f"skipped {len(skipped)} process(es) the system would not let labrun stop (another "
              f"user's): {', '.join(map(str, skipped))}", file=sys.stderr)
    return EXIT_OK


def cluster_status() -> int:
    cluster = local_cluster.LocalCluster.load()
    if cluster is None:
        print(f"no cluster recorded in {local_cluster.state_path()}")
        return EXIT_FAILED
    prepare_environment(cluster.gcs_address)   # RAY_AUTH_MODE=token: the token is sent
    running = len(cluster.processes())
    nodes, problem = local_cluster.node_report(cluster.dashboard_url)
    where = f"cluster at {cluster.gcs_address} (Jobs API {cluster.dashboard_url})"
    if problem is not None:
        print(f"{where}: {problem}; {running} of its processes running")
        return EXIT_FAILED
    print(f"{where}: {nodes} of {cluster.workers + 1} nodes alive, {running} processes")
    return EXIT_OK if nodes else EXIT_FAILED


def tensorboard(runs_dir: str, port: int | None) -> int:
    """TensorBoard on 127.0.0.1 over ``runs_dir`` until Ctrl-C."""
    logdir = Path(runs_dir)
    if not logdir.is_dir():
        raise UsageError(f"{logdir}: no such folder (train something first, or name the runs folder)")
    port = port or free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
           "--host", "127.0.0.1", "--port", str(port)]
    return _serve("TensorBoard", cmd, port,
                  f"TensorBoard for {logdir} at http://127.0.0.1:{port}/#custom_scalars  (each lab's "
                  f"main charts; every metric under Scalars; Ctrl-C to stop)")


def mlflow_ui(runs_dir: str, port: int | None) -> int:
    """MLflow's server and UI on 127.0.0.1 over the tracking store of ``runs_dir`` (what runs
    with ``output.loggers: [mlflow]`` wrote there) until Ctrl-C. Unlike TensorBoard, MLflow's
    server takes writes (new experiments whose artifacts it then reads from any local path), and
    every user of this machine reaches 127.0.0.1: so it runs behind MLflow's basic
    authentication, with a user ``labrun`` and a password made for this session only (its
    settings and user store in a private temporary folder, removed on exit), and without its
    artifact upload proxy."""
    import secrets

    from cluster.trackers import INSTALL, MLFLOW_DB, missing, shown_uri

    if missing(["mlflow"]) or importlib.util.find_spec("flask_wtf") is None:
        raise UsageError(f"labrun mlflow needs the mlflow package with its auth extra: {INSTALL['mlflow']}")
    db = Path(runs_dir).resolve() / MLFLOW_DB
    if not db.is_file():
        where = (f"runs with MLFLOW_TRACKING_URI set went to {shown_uri(os.environ['MLFLOW_TRACKING_URI'])}; "
                 if os.environ.get("MLFLOW_TRACKING_URI") else "")
        raise UsageError(f"{db}: no MLflow store ({where}train with `--set output.loggers=[mlflow]`, "
                         f"or name the runs folder)")
    port = port or free_port()
    password = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="labrun-mlflow-") as private:   # mode 0700
        auth = Path(private) / "auth.ini"
        auth.write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                        f"database_uri = sqlite:///{Path(private) / 'users.db'}\nadmin_username = labrun\n"
                        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(auth), "MLFLOW_AUTH_ADMIN_PASSWORD": password,
               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
        cmd = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
               "--backend-store-uri", f"sqlite:///{db}", "--no-serve-artifacts",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--uvicorn-opts", "--no-access-log"]
        return _serve("MLflow", cmd, port,
                      f"MLflow for {db.parent} at http://127.0.0.1:{port}  (user labrun, password "
                      f"{password}: this session only; Ctrl-C to stop)", env=env)


def _serve(name: str, cmd: list[str], port: int, ready: str, env: dict | None = None) -> int:
    """Runs a UI server in a process group of its own until Ctrl-C, SIGTERM, SIGHUP (the
    terminal closed) or its end; prints ``ready`` once it answers on ``port``. The group goes
    with this command however it ends (and the server with it if this process is killed)."""
    log = tempfile.TemporaryFile()   # not a pipe: a server that logs every request would fill it
    stop = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    proc = None
    try:   # any of those at any moment, while the server starts too, stops it and exits 0
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        if proc.poll() is not None or time.monotonic() >= deadline:
            log.seek(0)
            said = log.read().decode(errors="replace").strip()[-500:]
            print(f"error: {name} did not start: {said or 'no answer on the port in 60 s'}", file=sys.stderr)
            return EXIT_FAILED
        print(ready, flush=True)
        return EXIT_OK if proc.wait() == 0 else EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if proc is not None:
            _stop_group(proc)
        log.close()
        signal.signal(signal.SIGTERM, stop[0])
        signal.signal(signal.SIGHUP, stop[1])


def _die_with_parent() -> None:
    """In the server's process, before it runs: SIGTERM when labrun dies (even by SIGKILL)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # 1: PR_SET_PDEATHSIG (Linux)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group ``proc`` leads (ours: started with a new session, so its
    workers too, even after the leader ended), then SIGKILL if the leader is still there 10 s on."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)   # the unreaped leader still holds the group's id
        proc.wait()
