"""Typed, frozen configs loaded from YAML and validated before anything starts.

Components declare their settings as frozen dataclasses in their own package, with nothing but the
standard library: a field's type is its type, ``field(metadata={"gt": 0})`` bounds it, and the
string literal under a field is its documentation (the CleanRL habit). This module turns a YAML
mapping plus ``--set key=value`` overrides into such a dataclass, or raises one ``ConfigError``
naming the file, the line, the key path and what was expected.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``Literal[...]``, ``X | None``,
unions of those (``int | Literal["auto"]``), ``tuple[T, ...]``, ``dict[str, Any]`` and nested
config dataclasses. Bounds in metadata: ``gt``, ``ge``, ``lt``, ``le``, ``min_len``, and
``folder_name`` (the string starts a folder's name: ``cluster/config/names.py``). Numbers
must be finite everywhere.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import yaml

from cluster.config import yaml_file
from cluster.config.names import folder_name_problem

__all__ = ["ConfigError", "from_dict", "load_config", "load_yaml", "parse_overrides", "to_dict",
           "field_docs"]


class ConfigError(ValueError):
    """A config that cannot run: says where (file, line, key path) and what was expected."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None,
                 line: int | None = None):
        self.message, self.source, self.key, self.line = message, source, key, line
        where = source or ""
        if line is not None:
            where += f", line {line}"
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join(parts + [message]))


# ----------------------------------------------------------------------------------- YAML reading


def load_yaml(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Reads a YAML mapping and the line of each key path (``cluster/config/yaml_file.py`` says
    what it refuses); ConfigError if it cannot."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such file" if not path.exists() else "not a file", source=str(path))
    try:
        data, lines = yaml_file.read(path)
    except yaml_file.Refused as err:
        raise ConfigError(err.message, source=str(path), key=err.key, line=err.line) from None
    if data is None:  # nothing, only comments, or `null`: not the defaults trained by mistake
        raise ConfigError("empty file: expected a mapping of keys", source=str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of keys at the top, got {_kind(data)}",
                          source=str(path), line=1)
    return data, lines


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["learner.lr=0.01", "policy.hidden_sizes=[64, 64]"]`` -> nested dict, values as YAML."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"expected key.path=value, got {pair!r}", source="--set")
        try:
            value = yaml_file.parse(raw)[0] if raw.strip() else ""
        except yaml_file.Refused:  # not YAML labrun reads: the text itself
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key!r} sets a key inside a value set earlier", source="--set")
        node[parts[-1]] = value
    return out


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path, overrides: Sequence[str],
                config_class: type | Callable[[Mapping[str, Any], Mapping[str, int]], type],
                ) -> tuple[Any, dict[str, int]]:
    """The one YAML pipeline of every config file: read ``path``, apply the ``--set`` overrides,
    choose the class (``config_class``, or a function of the merged data and the key lines that
    returns it), validate. Returns (config, line of each key path); ConfigError says what is wrong."""
    data, lines = load_yaml(path)
    extra = parse_overrides(overrides)
    merged = merge(data, extra)
    cls = config_class if isinstance(config_class, type) else config_class(merged, lines)
    return from_dict(cls, merged, source=str(path), lines=lines,
                     override_keys=flat_keys(extra)), lines


# ------------------------------------------------------------------------------------ validation


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The string literal written under each field of a dataclass (or of the dataclass it
    extends): its documentation."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            docs.update(field_docs(base))
    return docs | _own_field_docs(cls)


def _own_field_docs(cls: type) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, (list, tuple)):
        return f"a list ({list(value)!r})"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _bounds_text(meta: Mapping[str, Any]) -> str:
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return " and ".join(f"{words[k]} {meta[k]}" for k in ("gt", "ge", "lt", "le") if k in meta)


def _describe(tp: Any, meta: Mapping[str, Any] | None = None) -> str:
    """Words for what a field of type ``tp`` (with bounds ``meta``) accepts."""
    origin = typing.get_origin(tp)
    bounds = f" {_bounds_text(meta)}" if meta and _bounds_text(meta) else ""
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer" + bounds
    if tp is float:
        return "a number" + bounds
    if tp is str:
        return "a string"
    if tp is Any:
        return "any value"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, meta) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is tuple:
        item = _describe(typing.get_args(tp)[0]).removeprefix("a ").removeprefix("an ")
        return f"a list of {item}s{bounds}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


class _Invalid(Exception):
    """Raised inside conversion; carries the key path, which ``from_dict`` turns into a line."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


class _NotFinite(_Invalid):
    """``.inf``, ``.nan`` or ``1e999`` where a number is expected: never a valid setting (a NaN
    compares false with everything, so ``stop.mean_return: .nan`` would silently never stop)."""

    def __init__(self, key: str, value: int | float):
        shown = repr(value) if isinstance(value, float) else "an integer beyond a float's range"
        super().__init__(key, f"expected a finite number, got {shown}")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _Invalid(key, f"expected a mapping of {tp.__name__} keys, got {_kind(value)}")
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, key)
            except _NotFinite:
                raise
            except _Invalid:
                continue
        raise _Invalid(key, f"expected {_describe(tp)}, got {_kind(value)}")
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
    elif origin is Literal:
        if value in typing.get_args(tp) and isinstance(value, str) == isinstance(typing.get_args(tp)[0], str):
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise _NotFinite(key, value)
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)  # 1e6 in YAML is a float; it still means a whole number
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond a float's range
                number = math.inf
            if not math.isfinite(number):
                raise _NotFinite(key, value)
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        item_type = typing.get_args(tp)[0]
        if isinstance(value, (list, tuple)):
            return tuple(_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    elif origin is dict:
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return dict(value)
    else:  # pragma: no cover - a config class used a type this module does not know
        raise TypeError(f"unsupported config type {tp!r} at {key}")
    raise _Invalid(key, f"expected {_describe(tp)}, got {_kind(value)}")


def _check_bounds(value: Any, meta: Mapping[str, Any], tp: Any, key: str) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ok = all((
            "gt" not in meta or value > meta["gt"], "ge" not in meta or value >= meta["ge"],
            "lt" not in meta or value < meta["lt"], "le" not in meta or value <= meta["le"],
        ))
        if not ok:
            noun = "an integer" if isinstance(value, int) else "a number"
            raise _Invalid(key, f"expected {noun} {_bounds_text(meta)}, got {value!r}")
    if isinstance(value, (tuple, str)) and "min_len" in meta and len(value) < meta["min_len"]:
        raise _Invalid(key, f"expected at least {meta['min_len']} item(s), got {len(value)}")
    problem = folder_name_problem(value) if meta.get("folder_name") and isinstance(value, str) else None
    if problem:
        raise _Invalid(key, problem)
    if isinstance(value, tuple) and any(k in meta for k in ("gt", "ge", "lt", "le")):
        for i, item in enumerate(value):
            _check_bounds(item, meta, tp, f"{key}[{i}]")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in data:
        if name not in fields:
            path = f"{prefix}.{name}" if prefix else str(name)
            raise _Invalid(path, f"unknown key; expected one of: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Invalid(path, f"missing; expected {_describe(hints[name])}")
            continue
        try:
            value = _convert(data[name], hints[name], path)
        except _Invalid as err:
            if err.key == path and _bounds_text(f.metadata) and not isinstance(err, _NotFinite):  # bounds too
                expected = _describe(hints[name], f.metadata)
                raise _Invalid(path, f"expected {expected}, got {_kind(data[name])}") from None
            raise
        _check_bounds(value, f.metadata, hints[name], path)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as err:  # cross-field checks in __post_init__ name their own field
        key, _, message = str(err).partition(": ")
        path = f"{prefix}.{key}" if prefix else key
        raise _Invalid(path, message or str(err)) from None


def from_dict(cls: type, data: Mapping[str, Any], *, source: str | None = None,
              lines: Mapping[str, int] | None = None, override_keys: frozenset[str] = frozenset()) -> Any:
    """Builds config ``cls`` from ``data``; any problem is one ConfigError that says where.

    ``override_keys`` are key paths that came from ``--set`` rather than the file, so an error on
    them points at ``--set`` rather than at a line of the file.
    """
    try:
        return _build(cls, data, "")
    except _Invalid as err:
        key_root = err.key.split("[")[0]
        if key_root in override_keys or any(key_root.startswith(k + ".") for k in override_keys):
            raise ConfigError(err.message, source="--set", key=err.key) from None
        line = None
        probe = key_root
        while lines and probe and line is None:
            line = lines.get(probe)
            probe = probe.rpartition(".")[0]
        raise ConfigError(err.message, source=source, key=err.key, line=line) from None


def flat_keys(data: Mapping[str, Any], prefix: str = "") -> frozenset[str]:
    """Every leaf key path of a nested mapping."""
    out: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out |= flat_keys(value, path)
        else:
            out.add(path)
    return frozenset(out)


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain YAML-friendly data (tuples become lists)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(config)


def describe_fields(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key path, expected, default, doc) for every leaf field: the reference behind ``labrun keys``."""
    rows = []
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe_fields(tp, path)
            continue
        expected = _describe(tp, f.metadata)
        if f.default is not dataclasses.MISSING:
            default = yaml.safe_dump(plain_default(f.default), default_flow_style=True).strip()
            default = default.removesuffix("\n...").removesuffix("...").strip()
        elif f.default_factory is not dataclasses.MISSING:
            default = yaml.safe_dump(plain_default(f.default_factory()), default_flow_style=True).strip()
        else:
            default = "(required)"
        rows.append((path, expected, default, docs.get(f.name, "")))
    return rows


def plain_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
