"""Trust in the local cluster (#14): token files kept to their owner and never followed through a
link, authentication that cannot be turned off, and ``cluster down`` stopping what ``up`` started
and nothing else (processes known by PID, creation time and owner, not by command line)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pytest

from cluster.errors import ClusterError
from cluster.infra import auth_token, local_cluster
from cluster.infra import processes as owned
from cluster.infra.session import RaySession
from helpers import free_port, run_cli, wait_for

SLEEP = "import time; time.sleep(300)"
PARENT = ("import subprocess, sys, time; "
          f"subprocess.Popen([sys.executable, '-c', {SLEEP!r}]); time.sleep(300)")


@pytest.fixture
def started():
    """Processes a test starts (Popen); each stopped by its PID at the end, with its children."""
    procs: list[subprocess.Popen] = []
    yield procs
    for popen in procs:
        try:
            proc = psutil.Process(popen.pid)
            victims = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for victim in victims:
            try:
                victim.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=10)


def start(procs: list, code: str, *args: str) -> psutil.Process:
    popen = subprocess.Popen([sys.executable, "-c", code, *args])
    procs.append(popen)
    threading.Thread(target=popen.wait, daemon=True).start()   # reaped as soon as it ends, as
    # the Ray processes `ray start` leaves are (their parent is init), so no zombie lingers
    return psutil.Process(popen.pid)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A $LABRUN_HOME of the test's own, here and in the `labrun` runs it starts."""
    monkeypatch.setenv("LABRUN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def recorded_cluster(recorded, temp_dir=None) -> local_cluster.LocalCluster:
    temp_dir = temp_dir or tempfile.mkdtemp(prefix="labrun-cluster-", dir="/tmp")
    cluster = local_cluster.LocalCluster("127.0.0.1", free_port(), free_port(), temp_dir, 0, 1,
                                         recorded=tuple(recorded))
    cluster.save()
    return cluster


# -- tokens -----------------------------------------------------------------------------------

def test_a_token_file_wider_than_0600_is_narrowed_and_said_once(tmp_path, monkeypatch, capsys):
    token = tmp_path / "auth_token"
    token.write_text("ab" * 32)
    token.chmod(0o644)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert auth_token.secure_token() == token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert capsys.readouterr().err == f"made {token} readable by you only (it was 0644)\n"
    assert auth_token.secure_token() is None and capsys.readouterr().err == ""   # once


def test_a_token_path_that_is_a_link_is_refused_and_not_followed(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere"
    target.write_text("ab" * 32)
    target.chmod(0o644)
    link = tmp_path / "auth_token"
    link.symlink_to(target)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(link))
    for guard in (auth_token.secure_token, auth_token.ensure_token):
        with pytest.raises(ClusterError, match="is a symbolic link"):
            guard()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 and target.read_text() == "ab" * 32
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nothing-yet")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(dangling))
    with pytest.raises(ClusterError, match="is a symbolic link"):
        auth_token.ensure_token()                                  # no file made through it
    assert not (tmp_path / "nothing-yet").exists()
    with pytest.raises(ClusterError, match="is a symbolic link"):  # before ray.init writes
        RaySession().__enter__()


def test_a_new_token_is_0600_and_strong(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    made = auth_token.ensure_token()
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    auth_token.check_strength("10.0.0.5")                          # 64 hex characters


def test_a_weak_token_is_refused_beyond_loopback(home):
    env = {**os.environ, "RAY_AUTH_TOKEN": "abc123"}
    out = run_cli("cluster", "up", "--host", "10.0.0.5", env=env, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "needs a strong token: at least 32 hex characters (128 bits)" in out.stderr, out.stderr
    assert not (home / "cluster.json").exists()


def test_cluster_up_refuses_authentication_off(home):
    out = run_cli("cluster", "up", env={**os.environ, "RAY_AUTH_MODE": "disabled"}, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("error: authentication off is not offered by labrun")
    assert len(out.stderr.strip().splitlines()) == 1 and "token authentication on" not in out.stdout


# -- processes known by identity --------------------------------------------------------------

def test_a_recorded_process_is_live_only_if_pid_creation_time_and_owner_match(started):
    proc = start(started, SLEEP)
    (rec,) = owned.record([proc])
    assert rec == (proc.pid, proc.create_time(), os.getuid())
    assert [p.pid for p in owned.live([rec])] == [proc.pid]
    assert owned.live([(proc.pid, rec[1] - 100, rec[2])]) == []    # the PID reused since
    assert owned.live([(proc.pid, rec[1], rec[2] + 1)]) == []      # another user's


def test_a_process_the_system_will_not_let_us_stop_is_skipped_not_fatal(started):
    class OtherUsers:   # what psutil gives for another user's process
        pid = 1

        def send_signal(self, sig):
            raise psutil.AccessDenied(self.pid)

    ours = start(started, SLEEP)
    assert owned.stop([OtherUsers(), ours], timeout=10) == (1, [1])
    wait_for(lambda: not psutil.pid_exists(ours.pid), 10, what="our process's end")


def test_cluster_down_stops_the_recorded_processes_and_their_children_only(home, started):
    member = start(started, PARENT)
    child = wait_for(lambda: member.children(), 30, what="the member's child")[0]
    cluster = recorded_cluster(owned.record([member]))
    # what the old matcher (command line naming the temp folder or the GCS address) would take
    bystander = start(started, SLEEP, cluster.temp_dir, cluster.gcs_address)
    out = run_cli("cluster", "down", timeout=120)
    assert out.returncode == 0 and "(2 processes)" in out.stdout, out.stdout + out.stderr
    assert not member.is_running() and not child.is_running()
    assert bystander.is_running() and bystander.status() != psutil.STATUS_ZOMBIE
    assert not (home / "cluster.json").exists() and not os.path.exists(cluster.temp_dir)


def test_a_stale_record_is_forgotten(home, started):
    gone = start(started, "import time; time.sleep(1)")
    rec = owned.record([gone])
    wait_for(lambda: not psutil.pid_exists(gone.pid), 30, what="the process's end")
    cluster = recorded_cluster(rec)
    out = run_cli("cluster", "down", timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"nothing of that cluster ({cluster.gcs_address}) is running; forgot it" in out.stdout
    assert not (home / "cluster.json").exists()


def test_up_tells_a_stale_record_from_a_live_cluster(home, started, capsys):
    live = recorded_cluster(owned.record([start(started, SLEEP)]))
    with pytest.raises(ClusterError, match="already up"):
        local_cluster.up(workers=-1)
    assert (home / "cluster.json").exists()
    live.forget()
    gone = start(started, "import time; time.sleep(1)")
    rec = owned.record([gone])
    wait_for(lambda: not psutil.pid_exists(gone.pid), 30, what="the process's end")
    recorded_cluster(rec)
    with pytest.raises(ClusterError, match="--workers"):     # got past the record: forgotten
        local_cluster.up(workers=-1)
    assert "is gone (none of its processes runs); forgot it" in capsys.readouterr().err
    assert not (home / "cluster.json").exists()


@pytest.mark.parametrize("state", [{"temp_dir": "/home"}, {"recorded": []}, "not json"])
def test_a_foreign_state_file_is_refused_and_kept(home, started, state):
    base = recorded_cluster(owned.record([start(started, SLEEP)]))
    path = home / "cluster.json"
    if isinstance(state, dict):
        path.write_text(json.dumps({**json.loads(path.read_text()), **state}))
    else:
        path.write_text(state)
    out = run_cli("cluster", "down", timeout=120)
    assert out.returncode == 1 and "not touching anything" in out.stderr, out.stderr
    assert path.exists() and psutil.pid_exists(started[0].pid)
    base.forget()


def test_status_says_when_the_dashboard_cannot_be_reached(home, started):
    recorded_cluster(owned.record([start(started, SLEEP)]))
    out = run_cli("cluster", "status", timeout=120)
    assert out.returncode == 1 and "the dashboard cannot be reached at http://127.0.0.1:" in out.stdout
    assert "nodes alive" not in out.stdout, out.stdout
    local_cluster.LocalCluster.load().forget()


# -- a real cluster ---------------------------------------------------------------------------

def test_a_real_cluster_keeps_its_token_private_and_down_spares_the_unrelated(
        tmp_path, home, started, ray_address):
    token = tmp_path / "auth_token"
    token.write_text(open(os.environ["RAY_AUTH_TOKEN_PATH"]).read())   # the session's token
    token.chmod(0o644)
    env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(token)}
    up = run_cli("cluster", "up", "--workers", "0", "--cpus-per-node", "1", env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"made {token} readable by you only (it was 0644)" in up.stderr
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert "token authentication on (the Jobs API refuses a request without the token)" in up.stdout
        cluster = local_cluster.LocalCluster.load()
        bystander = start(started, SLEEP, cluster.temp_dir, cluster.gcs_address)
        status = run_cli("cluster", "status", env=env, timeout=120)
        assert status.returncode == 0 and "1 of 1 nodes alive" in status.stdout, status.stdout
        wrong = run_cli("cluster", "status", env={**env, "RAY_AUTH_TOKEN": "f" * 32}, timeout=120)
        assert wrong.returncode == 1 and "authentication refused (token)" in wrong.stdout
    finally:
        down = run_cli("cluster", "down", env=env, timeout=120)
    assert down.returncode == 0 and "stopped the cluster at" in down.stdout, down.stdout + down.stderr
    assert not owned.live(cluster.recorded)
    time.sleep(0.5)
    assert bystander.is_running() and bystander.status() != psutil.STATUS_ZOMBIE


def test_a_refused_token_is_told_apart_from_an_address_whose_port_reads_401_or_403():
    """One reading of Ray's errors for the Jobs API and the state API (jobs.py, local_cluster.py)."""
    from cluster.infra.auth_token import refusal

    url = "http://127.0.0.1:40391"
    assert refusal(ConnectionError(f"Failed to connect to {url}"), url) is None
    assert refusal(ConnectionError("cannot reach 127.0.0.1:44031"), "http://127.0.0.1:44031") is None
    assert refusal(RuntimeError("HTTP 401: Missing authentication token"), url) == "missing"
    assert refusal(RuntimeError("Request failed with status code 403"), url) == "invalid"
    assert refusal(RuntimeError("InvalidAuthToken: ..."), url) == "invalid"
