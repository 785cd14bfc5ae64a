"""JSON Schemas of experiment and sweep files, from the config classes themselves, for editors
that check YAML as it is typed (the YAML language server reads the ``# yaml-language-server:
$schema=...`` comment at the top of each shipped config).

``labrun keys --json-schema DIR`` writes ``DIR/experiment.schema.json`` (every lab: the file's
``lab`` key picks the lab's keys, ``rl`` when absent) and ``DIR/sweep.schema.json``; the
copies in ``configs/schema/`` are what the shipped configs point at, and a test keeps them equal
to what this module generates. The schema says what the loader (``schema.py``) accepts: types,
bounds, choices, unknown keys refused; the loader's checks across fields (``__post_init__``),
folder-name rules and an environment's existence stay the loader's (``labrun train --dry-run``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Mapping

from cluster.config.schema import field_docs, plain_default

DRAFT = "https://json-schema.org/draft/2020-12/schema"
FILES = {"experiment": "experiment.schema.json", "sweep": "sweep.schema.json"}
_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def type_schema(tp: Any, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of one field's type, with its bounds (``meta``)."""
    meta = meta or {}
    origin = typing.get_origin(tp)
    bounds = {_BOUNDS[k]: meta[k] for k in _BOUNDS if k in meta}
    if dataclasses.is_dataclass(tp):
        return class_schema(tp)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [type_schema(option, meta) for option in typing.get_args(tp)]}
    if tp is Any:
        return {}
    if tp is type(None):
        return {"type": "null"}
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer", **bounds}
    if tp is float:
        return {"type": "number", **bounds}
    if tp is str:
        return {"type": "string", **({"minLength": meta["min_len"]} if "min_len" in meta else {})}
    if origin is tuple:
        item = type_schema(typing.get_args(tp)[0], {k: v for k, v in meta.items() if k in _BOUNDS})
        return {"type": "array", "items": item, **({"minItems": meta["min_len"]} if "min_len" in meta else {})}
    if origin is dict:
        return {"type": "object"}
    raise TypeError(f"no JSON Schema for config type {tp!r}")


def class_schema(cls: type) -> dict[str, Any]:
    """A config dataclass as a JSON object: its fields (documented, with their defaults), the
    ones without a default required, no other keys."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    properties, required = {}, []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        prop = type_schema(hints[f.name], f.metadata)
        if f.name in docs:
            prop["description"] = docs[f.name]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if not dataclasses.is_dataclass(default):       # a section's defaults are its fields'
                prop["default"] = plain_default(default)
        properties[f.name] = prop
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def experiment_schema(experiments: Mapping[str, type]) -> dict[str, Any]:
    """One schema for every lab's experiment file (``experiments``: lab name -> config class):
    the ``lab`` key chooses which lab's keys apply; without it, ``rl``'s."""
    labs = list(experiments)
    branches = [{"if": {"required": ["lab"], "properties": {"lab": {"const": name}}},
                 "then": class_schema(cls)} for name, cls in experiments.items()]
    if "rl" in experiments:
        branches.append({"if": {"not": {"required": ["lab"]}}, "then": class_schema(experiments["rl"])})
    return {"$schema": DRAFT, "title": "labrun experiment file",
            "description": "An experiment file of labrun (`labrun keys LAB` lists each lab's keys).",
            "type": "object", "properties": {"lab": {"enum": labs, "default": "rl"}},
            "allOf": branches}


def sweep_schema(sweep_cls: type) -> dict[str, Any]:
    return {"$schema": DRAFT, "title": "labrun sweep file",
            "description": "A sweep file of labrun (`labrun keys sweep` lists its keys).",
            **class_schema(sweep_cls)}
