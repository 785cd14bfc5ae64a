"""Reading YAML config text: the one loader behind ``cluster.config.schema`` (files and ``--set``).

It reads plain data (mappings, lists, scalars), numbers written ``1e6`` included (YAML 1.1 reads
them as strings), and the line of every key. It refuses, each as one ``Refused`` with the line,
what a config file never needs and what would mislead or exhaust it:

- a file over ``MAX_BYTES``, or one that is not UTF-8;
- a key written twice in one mapping, at any depth (PyYAML keeps the last silently: a second
  ``learner:`` section would wipe the first);
- anchors and aliases (``&name``, ``*name``): a few lines of nested aliases expand to billions of
  values (the "billion laughs");
- nesting deeper than ``MAX_DEPTH`` (PyYAML composes recursively).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_BYTES", "MAX_DEPTH", "Refused", "parse", "read"]

MAX_BYTES = 1 << 20     # labrun's configs are a few kB
MAX_DEPTH = 64          # labrun's configs nest 3 levels


class Refused(ValueError):
    """Config text the loader will not read: what was expected, and where when known."""

    def __init__(self, message: str, line: int | None = None, key: str | None = None):
        super().__init__(message)
        self.message, self.line, self.key = message, line, key


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's numbers (``1e6`` is 1000000.0), no anchors or aliases, and a
    bound on nesting."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise Refused("YAML anchors and aliases (&name, *name) are not accepted in labrun's "
                          "files; write the value out", event.start_mark.line + 1)
        if self._depth >= MAX_DEPTH:
            raise Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark.line + 1)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "?"


def _walk(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    """Records the line of every key path under ``node``; Refused on a key given twice in one
    mapping. The tree has no aliases, so this visits each node of the text once."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            path = f"{prefix}.{_key_text(key_node)}" if prefix else _key_text(key_node)
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise Refused(f"key given twice in one mapping (first on line {seen[key]}); "
                                  f"expected each key once", line, path)
                seen[key] = line
            lines[path] = line
            _walk(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, f"{prefix}[{i}]", lines)


def parse(text: str) -> tuple[Any, dict[str, int]]:
    """YAML text -> (data, line of each key path: ``learner.lr``, ``policy.conv[0].filters``);
    Refused if it is not YAML or holds what the loader refuses."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        if node is not None:
            _walk(node, "", lines)
        return (loader.construct_document(node) if node is not None else None), lines
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise Refused(f"not valid YAML ({problem})", mark.line + 1 if mark else None) from None
    except Refused:
        raise
    except ValueError as err:  # a scalar PyYAML cannot make: a date 2024-13-45, a 5,000-digit integer
        raise Refused(f"not valid YAML ({str(err).partition(';')[0]})") from None
    finally:
        loader.dispose()


def read(path: Path) -> tuple[Any, dict[str, int]]:
    """A file's YAML as ``parse`` reads it; Refused if it is too large, unreadable or not UTF-8."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise Refused(f"cannot read it ({err.strerror or err})") from None
    if len(raw) > MAX_BYTES:
        raise Refused(f"larger than {MAX_BYTES // 1024} KiB; expected a config file of a few kB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Refused(f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                      f"expected a file saved as UTF-8", raw.count(b"\n", 0, err.start) + 1) from None
    return parse(text)
