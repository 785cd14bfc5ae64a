"""Ray, started or joined: the only module that calls ``ray.init``.

Embedded local Ray binds to 127.0.0.1 only and keeps Ray's token authentication on (Ray 2.60 turns
it on for local clusters and keeps the token in ~/.ray/auth_token, which it writes 0644: the
session makes it 0600 once Ray is up, and refuses a token path that is a symbolic link). ``--address`` joins a running
cluster instead; that cluster decides its own addresses and authentication.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from cluster.errors import ClusterError
from cluster.infra.auth_token import secure_token
from cluster.infra.net import is_loopback

FORWARDED_ENV = ("LABRUN_DATA_DIR",)


def prepare_environment(address: str | None) -> None:
    """Environment every Ray process of ours inherits; call before ``import ray``."""
    # Token authentication stays on: with RAY_AUTH_MODE unset, a driver joining a cluster does
    # not send the token that `ray start` made, and is refused with InvalidAuthToken.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry leaves the machine
    if is_loopback(address):
        # Ray rewrites 127.0.0.1 into the machine's outward address unless told that this is a
        # single-machine cluster; with this set, it binds and connects on 127.0.0.1 only.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


class RaySession:
    """``with RaySession(address=None, num_cpus=None) as session:`` -- Ray for one run.

    address None starts an embedded local Ray (all CPUs unless ``num_cpus``) and stops it on exit;
    an address joins that cluster and only disconnects on exit.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.address = address
        self.num_cpus = num_cpus
        self.started = False

    def __enter__(self) -> "RaySession":
        prepare_environment(self.address)
        secure_token()   # before: a token path that is a link is refused, not written through
        import ray

        kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING,
                                      namespace="labrun")
        forwarded = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        # The data folder reaches trials on every node, not just this process; a submitted job
        # (`labrun submit`) has it in the job's runtime env already, which Ray will not merge.
        if forwarded and "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
            kwargs["runtime_env"] = {"env_vars": forwarded}
        try:
            if self.address is None:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except ConnectionError as err:
            raise ClusterError(f"cannot reach the Ray cluster at {self.address}: {err}") from None
        except Exception as err:  # Ray raises several types; auth failures name the token
            auth = "InvalidAuthToken" in str(err) or "authentication token" in str(err).lower()
            hint = (" (token authentication failed: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, "
                    "see `ray get-auth-token`)") if auth else ""
            raise ClusterError(f"cannot start or join Ray: {err}{hint}") from None
        self.started = True
        try:
            secure_token()   # ray.init writes ~/.ray/auth_token 0644
        except ClusterError:
            ray.shutdown()
            self.started = False
            raise
        return self

    def __exit__(self, *exc) -> None:
        import ray

        if self.started:
            ray.shutdown()
            self.started = False

    @staticmethod
    def resources() -> dict[str, float]:
        import ray

        return dict(ray.cluster_resources())
