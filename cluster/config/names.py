"""What a run or a sweep may be called. Its name starts its folder's name
(``<name>__<seed>__<time>``, ``<name>__<time>``), so it must name one new folder inside the runs
folder, wherever that is (a local path, a storage URI, a shared file system): the one rule for
every experiment and sweep name, applied by ``cluster.config.schema`` to fields marked
``metadata={"folder_name": True}``."""

from __future__ import annotations

MAX_BYTES = 200     # room for `__<seed>__<YYYYmmdd-HHMMSS>-N` within a file name's 255 bytes


def folder_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as the start of a folder's name, or None. Refused: '/' and
    '\\\\' (another folder), '.', '..' and hidden names (a leading '.'), what a shell or Windows
    reads as a path (a leading '~', a drive 'C:'), characters that do not print (NUL, newlines,
    terminal escapes), and names too long for a file name."""
    if "/" in name or "\\" in name or not name.isprintable():
        return f"expected a name without '/', '\\' or unprintable characters (NUL, newline), got {name!r}"
    if name.startswith((".", "~")) or (name[1:2] == ":" and name[:1].isascii() and name[:1].isalpha()):
        return f"expected a name, not a path (no leading '.', '~' or drive 'C:'), got {name!r}"
    if len(name.encode()) > MAX_BYTES:
        return f"expected a name of at most {MAX_BYTES} bytes in UTF-8, got {len(name.encode())}"
    return None
