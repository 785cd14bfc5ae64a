"""Shared fixtures: one Ray head on 127.0.0.1 for the whole test session, and the environment
every test runs in (loopback Ray, a token of the session's own, the shared data). Helpers the
tests import are in helpers.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cluster.infra.local_cluster import ensure_token, processes_of, stop_processes
from helpers import REPO, free_port

# Every Ray process the tests start (and the CLI runs they launch) inherits these: loopback only,
# token authentication on, no usage statistics sent anywhere.
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(RAY_ENV)

# No test sees a GPU unless it asks for one: on a GPU machine TensorFlow and PyTorch would
# otherwise pick it up (TF32 maths, cuDNN's non-determinism, kernels the CPU asserts do not
# have), and the Ray head started here would offer it to trials. LABRUN_TEST_GPUS=1 lets them see it.
if os.environ.get("LABRUN_TEST_GPUS") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

# Started in the background (`make test &`), this process would ignore SIGINT and so would every
# process it starts: the tests that stop a run with Ctrl-C need it to be Ctrl-C's.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The session's own authentication token, so that the tests neither need nor touch
# ~/.ray/auth_token (a fresh machine has none, and `ray start --head` refuses to start without).
os.environ.pop("RAY_AUTH_TOKEN", None)
os.environ["RAY_AUTH_TOKEN_PATH"] = os.path.join(tempfile.mkdtemp(prefix="lr-token-"), "auth_token")
ensure_token()  # what `labrun cluster up` does on a machine without a token

# Real data for the supervised labs (../shared/data: MNIST, the course's ABC corpus and faces);
# tests never download. An explicit LABRUN_DATA_DIR wins.
SHARED_DATA = REPO.parent / "shared" / "data"
if SHARED_DATA.is_dir():
    os.environ.setdefault("LABRUN_DATA_DIR", str(SHARED_DATA))


def pytest_collection_modifyitems(items):
    """A test that needs the session's Ray is an integration test: marked slow, so that
    `make test-fast` (``-m "not slow"``) leaves it out."""
    for item in items:
        if {"ray_address", "ray_client"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_address():
    """Address of a Ray head started for this test session (``ray start`` on 127.0.0.1)."""
    temp_dir = tempfile.mkdtemp(prefix="lr-ray-", dir="/tmp")  # short: Ray's socket paths
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head",
           "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
           "--ray-client-server-port", str(free_port()), "--dashboard-port", str(free_port()),
           "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp_dir]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        stop_processes(processes_of(temp_dir, f"127.0.0.1:{port}"))
        pytest.fail(f"ray start failed:\n{out.stdout}\n{out.stderr}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        stop_processes(processes_of(temp_dir, f"127.0.0.1:{port}"))
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_client(ray_address):
    """This test process connected, as a driver, to the session's Ray head."""
    import ray

    ray.init(address=ray_address, namespace="labrun-tests", log_to_driver=False)
    yield ray
    ray.shutdown()
