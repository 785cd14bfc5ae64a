"""Exit codes of ``labrun`` and the error of bad input that is not a config key.

Config errors are ``cluster.config.schema.ConfigError``; Ray or storage that cannot be reached
are ``ClusterError`` (also importable from ``cluster.infra.session``, where it is raised most). ``cluster/cli.py`` turns each into one line and an
exit code.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 143   # 128 + SIGTERM: stopped by request, like Ctrl-C (cluster/signals.py)


class UsageError(Exception):
    """Bad input that is not a config key: a missing run folder, no checkpoint to resume."""


class ClusterError(RuntimeError):
    """Ray could not be started or reached; the message says why and what to try."""
