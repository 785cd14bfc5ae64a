"""Ray's authentication token as labrun finds, makes and guards it.

Where Ray reads it from (``token_source``), a new one when there is none (``ensure_token``), and
``secure_token``: a token file wider than 0600 is made 0600 (said once on stderr), and a token
path that is a symbolic link is refused, never followed. ``check_strength`` is the rule for a
cluster reachable beyond loopback: at least 32 hex characters (128 bits).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import sys
from pathlib import Path

from cluster.errors import ClusterError

MIN_HEX = 32   # 128 bits


def token_source() -> tuple[str, Path | None]:
    """Where Ray takes the authentication token from, in Ray's order: ('RAY_AUTH_TOKEN', None),
    or ('file', the file named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN", None
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return "file", Path(path).expanduser() if path else Path.home() / ".ray" / "auth_token"


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise ClusterError(f"the token file {path} is a symbolic link; labrun does not follow "
                           f"links to a secret: put the token file itself there")


def _open_token(path: Path, flags: int) -> int:
    _refuse_link(path)
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        if os.path.islink(path):   # made a link between the check and the open
            _refuse_link(path)
        raise ClusterError(f"cannot open the token file {path}: {err.strerror}") from None


def ensure_token() -> Path | None:
    """Makes a token file if Ray would find no token: ``ray start --head`` refuses to start
    without one (``ray.init`` makes ~/.ray/auth_token itself). A random 256-bit token, as Ray
    makes them, readable by this user only. The new file's path, or None if a token was there."""
    _, path = token_source()
    if path is None:
        return None
    _refuse_link(path)
    if path.is_file() and path.read_text().strip():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_token(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)   # an empty file that was there may have been wider
        f.write(secrets.token_hex(32))
    return path


def secure_token() -> Path | None:
    """The token file (if Ray reads one and it exists) made readable by this user only, said on
    stderr when it was wider; ClusterError if the path is a symbolic link. Returns the path of a
    file it narrowed, else None."""
    _, path = token_source()
    if path is None or not (path.is_symlink() or path.exists()):
        return None
    fd = _open_token(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        if not mode & 0o077 or info.st_uid != os.getuid():
            return None
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    print(f"made {path} readable by you only (it was {mode:04o})", file=sys.stderr, flush=True)
    return path


def token_value() -> str:
    """The token Ray will use ('' if none)."""
    source, path = token_source()
    if path is None:
        return os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not path.exists():
        return ""
    fd = _open_token(path, os.O_RDONLY)
    with os.fdopen(fd) as f:
        return f.read().strip()


def check_strength(host: str) -> None:
    """ClusterError unless the token is at least ``MIN_HEX`` hex characters: a cluster on
    ``host`` (beyond loopback) can be guessed at from the network."""
    source, path = token_source()
    token = token_value()
    if not re.fullmatch(rf"[0-9a-fA-F]{{{MIN_HEX},}}", token):
        where = "RAY_AUTH_TOKEN" if path is None else str(path)
        raise ClusterError(f"--host {host} exposes the cluster beyond this machine, which needs a "
                           f"strong token: at least {MIN_HEX} hex characters (128 bits); the one in "
                           f"{where} is not (make one with `python -c \"import secrets; "
                           f"print(secrets.token_hex(32))\"`)")


def refusal(err: Exception, address: str) -> str | None:
    """'missing' or 'invalid' when an error of Ray's clients (the Jobs API, the state API) says
    the token was not sent or not taken, else None. ``address`` is taken out of the text first:
    its port may read 401 or 403."""
    text = str(err).replace(address, "").replace(address.split("://")[-1], "")
    if "401" in text or "Missing authentication token" in text:
        return "missing"
    if any(s in text for s in ("403", "nvalid authentication token", "InvalidAuthToken")):
        return "invalid"
    return None
