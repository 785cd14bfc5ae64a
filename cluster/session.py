"""Ray, started or joined: the only module that calls ``ray.init``.

Embedded local Ray binds to 127.0.0.1 only and keeps Ray's token authentication on (Ray 2.60 turns
it on for local clusters and keeps the token in ~/.ray/auth_token). ``--address`` joins a running
cluster instead; that cluster decides its own addresses and authentication.
"""

from __future__ import annotations

import logging
import os
from typing import Any


class ClusterError(RuntimeError):
    """Ray could not be started or reached; the message says why and what to try."""


def _prepare_environment(local: bool) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "token")        # never turn authentication off
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry leaves the machine
    if local:
        # Ray advertises the machine's outward address unless told that this is a single-node
        # cluster; with this set, every Ray process of the embedded cluster uses 127.0.0.1.
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
        _prepare_environment(local=self.address is None)
        import ray

        kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING,
                                      namespace="labrun")
        try:
            if self.address is None:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except ConnectionError as err:
            raise ClusterError(f"cannot reach the Ray cluster at {self.address}: {err}") from None
        except Exception as err:  # Ray raises several types; auth failures name the token
            hint = (" (token authentication failed: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, "
                    "see `ray get-auth-token`)") if "auth" in str(err).lower() else ""
            raise ClusterError(f"cannot start or join Ray: {err}{hint}") from None
        self.started = True
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
