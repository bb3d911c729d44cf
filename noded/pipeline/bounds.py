"""Bounds on a pipeline file, checked before anything else (pure): its size, the length of
its name and description, its node count and the size and nesting depth of each node's
params. A pipeline is input from users and, through the control socket, from anyone in the
noded group: without bounds a 100,000-character name or a million nodes reach systemd,
the tables of nodectl and every event of the session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from noded.errors import PipelineError, Problem

MiB = 1024 * 1024


@dataclass(frozen=True)
class PipelineBounds:
    file_bytes: int = MiB  # the pipeline file (UTF-8)
    name_chars: int = 128  # the pipeline's name
    description_chars: int = 4096
    nodes: int = 256  # noded.toml max_pipeline_nodes
    params_bytes: int = 64 * 1024  # one node's params, as JSON
    params_depth: int = 16  # tables and arrays inside params


DEFAULT_BOUNDS = PipelineBounds()

BOUNDS_HINT = (
    "a pipeline is bounded (noded.pipeline(5), LIMITS): the file 1 MiB, the name 128 and the description "
    "4096 characters, params 64 KiB as JSON and 16 levels deep, the nodes max_pipeline_nodes of noded.toml"
)

# (node label or None, field, reason)
Bound = tuple[str | None, str, str]


def file_too_large(text: str, bounds: PipelineBounds) -> Bound | None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > bounds.file_bytes:
        return None, "file", f"the file is {size} bytes; a pipeline file may have at most {bounds.file_bytes}"
    return None


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of tables and arrays (a scalar: 0), counted up to ``limit + 1``."""
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in children), default=0)


def out_of_bounds(raw: dict[str, Any], bounds: PipelineBounds, label: Any) -> Iterator[Bound]:
    """The bounds the parsed document ``raw`` exceeds. ``label(item, index)`` names a node."""
    for key, limit in (("name", bounds.name_chars), ("description", bounds.description_chars)):
        value = raw.get(key)
        if isinstance(value, str) and len(value) > limit:
            yield None, key, f"the {key} has {len(value)} characters; at most {limit} are allowed"
    nodes = raw.get("nodes")
    if not isinstance(nodes, list):
        return
    if len(nodes) > bounds.nodes:
        yield None, "nodes", f"the pipeline has {len(nodes)} nodes; at most {bounds.nodes} are allowed"
        return
    for index, item in enumerate(nodes):
        params = item.get("params") if isinstance(item, dict) else None
        if params is None:
            continue
        node = label(item, index)
        depth = _depth(params, bounds.params_depth)
        if depth > bounds.params_depth:
            yield node, "params", f"params are nested more than {bounds.params_depth} tables or arrays deep"
            continue
        size = len(msgspec.json.encode(params))
        if size > bounds.params_bytes:
            yield node, "params", f"params take {size} bytes as JSON; at most {bounds.params_bytes} are allowed"


def refuse_too_large(text: str, filename: str, bounds: PipelineBounds = DEFAULT_BOUNDS) -> None:
    """Raise PipelineError (exit 4) if ``text`` is over the file bound: a client checks this
    before sending a pipeline, so that a huge file gets this error rather than the control
    socket's refusal of a long line."""
    too_large = file_too_large(text, bounds)
    if too_large is not None:
        raise PipelineError([Problem(filename, *too_large)], hint=BOUNDS_HINT)
