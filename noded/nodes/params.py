"""Checking a built-in node's params: unknown names, types, choices and ranges, each a
``ParamError`` (the worker exits 2: a restart cannot help) that names the node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noded.errors import ParamError
from noded.node import Node

REQUIRED: Any = object()


def check_params(
    node: Node, spec: Mapping[str, tuple[type | tuple[type, ...], Any]], choices: Mapping[str, tuple[Any, ...]] = {}
) -> dict[str, Any]:
    """``node.params`` checked against ``{name: (type, default or REQUIRED)}``.

    An int is accepted for a float; a bool is not an int. A default of None makes the
    param optional (None is then allowed). ``choices[name]`` lists the allowed values.
    Numbers must be >= 0.
    """
    where = f"{type(node).__name__} ({node.node_id})"
    unknown = sorted(set(node.params) - set(spec))
    if unknown:
        raise ParamError(f"{where}: unknown params {unknown}", hint=f"known: {sorted(spec)}")
    out: dict[str, Any] = {}
    for name, (kind, default) in spec.items():
        value = node.params.get(name, default)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if value is REQUIRED:
            raise ParamError(f"{where}: param {name!r} is required", hint=f"a {kinds[0].__name__}")
        if value is None and default is None:
            out[name] = None
            continue
        if float in kinds and type(value) is int:
            value = float(value)
        if type(value) not in kinds:  # exact: a bool is not an int here
            raise ParamError(
                f"{where}: param {name!r} must be a {' or '.join(k.__name__ for k in kinds)}, got {value!r}"
            )
        allowed = choices.get(name)
        if allowed is not None and value not in allowed:
            raise ParamError(f"{where}: param {name!r} must be one of {allowed}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ParamError(f"{where}: param {name!r} must be >= 0, got {value!r}")
        out[name] = value
    return out


@dataclass(frozen=True)
class Param:
    """One param of a built-in node: what ``check_params`` checks and what
    noded.pipeline(5) shows (``noded.nodes.catalog`` writes that section from these)."""

    kind: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


def check_declared(node: Node, params: Mapping[str, Param]) -> dict[str, Any]:
    """``check_params`` with a node's declared ``PARAMS``."""
    return check_params(
        node,
        {name: (p.kind, p.default) for name, p in params.items()},
        {name: p.choices for name, p in params.items() if p.choices is not None},
    )
