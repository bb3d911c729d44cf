"""Load a pipeline file and check it, reporting every problem at once.

msgspec checks the structure against ``daemon.pipeline_schema``; this module adds what
a schema cannot say: ids, node classes, resource values and the graph (upstream nodes
exist, no cycles). Each problem becomes a ``Problem`` in one ``PipelineError``; nothing
else escapes for any input text.

Node classes are checked without running user code (``daemon.pipeline_classes``): a
module is looked up through the import system's finders (never imported, not even its
parent packages) and the class name is looked for in the module's source.
"""

from __future__ import annotations

import difflib
import graphlib
import os
import re
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from daemon.errors import PipelineError, Problem
from daemon.pipeline_classes import module_names
from daemon.pipeline_schema import (
    NAME_PATTERN,
    NAME_RE,
    PORT_REF_RE,
    LimitsDoc,
    NodeDoc,
    NodeSpec,
    Pipeline,
    PipelineDoc,
    PortRef,
    Resources,
    parse_quota,
    parse_size,
    parse_tasks,
)
from nodeworker.registry import BUILTINS, resolve_class_name

__all__ = [
    "NodeSpec", "Pipeline", "PipelineError", "PortRef", "Problem", "Resources",
    "load_pipeline", "parse_pipeline", "parse_quota", "parse_size", "parse_tasks",
]

T = TypeVar("T", bound=msgspec.Struct)
_Report = Callable[[str | None, str, str | None], None]  # (field, reason, hint)

_RESOURCE_PARSERS: dict[str, Callable[[Any], int | float | None]] = {
    "memory_max": parse_size, "cpu_quota": parse_quota, "tasks_max": parse_tasks,
}
_HINTS = {
    "toml": "fix the TOML syntax at the given line and column",
    "id": f"node ids and port names are a letter, then up to 47 letters, digits or underscores ({NAME_PATTERN})",
    "class": (f"use a built-in node ({', '.join(sorted(BUILTINS))}) or 'package.module:Class' "
              "for a module the daemon's Python can import"),
    "inputs": "an input is 'node.port': the id of another node and the name of its output port",
    "cycle": "a pipeline must not have cycles: remove one of the inputs named",
    "resources": ("memory_max: bytes or a K/M/G/T size such as '512M'; cpu_quota: a percentage such as "
                  "'150%'; tasks_max: a positive integer; each may also be 'infinity'"),
    "empty": "add at least one [[nodes]] table",
}


def load_pipeline(path: str | os.PathLike[str]) -> Pipeline:
    """Read and check a pipeline file; raises PipelineError."""
    filename = os.fspath(path)
    try:
        return parse_pipeline(Path(filename).read_bytes().decode("utf-8"), filename)
    except OSError as exc:
        reason = f"cannot read the file: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start} cannot be decoded)"
    raise PipelineError([Problem(filename, None, None, reason)])


def parse_pipeline(text: str, filename: str) -> Pipeline:
    """Check a pipeline given as TOML text; ``filename`` names it in problems and gives
    the default pipeline name (its stem). Raises PipelineError."""
    checker = _Checker(filename)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        checker.report(None, None, _toml_reason(exc), "toml")
    except RecursionError:
        checker.report(None, None, "TOML syntax error: arrays or tables nested too deeply", "toml")
    else:
        pipeline = checker.check(raw, text)
        if pipeline is not None:
            return pipeline
    raise checker.error()


def _toml_reason(exc: tomllib.TOMLDecodeError) -> str:
    match = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", str(exc), re.S)
    if match is None:
        return f"TOML syntax error: {exc}"
    return f"TOML syntax error at {match[2]}: {match[1]}"


class _Checker:
    """Collects the problems of one pipeline file while building its Pipeline."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.hints: dict[str, None] = {}  # ordered set
        self.modules: dict[str, set[str] | ValueError | None] = {}

    def report(self, node: str | None, field: str | None, reason: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.filename, node, field, reason))
        if hint is not None:
            self.hints[_HINTS.get(hint, hint)] = None

    def reporter(self, node: str | None) -> _Report:
        return lambda field, reason, hint: self.report(node, field, reason, hint)

    def error(self) -> PipelineError:
        return PipelineError(self.problems, hint="\n".join(self.hints) or None)

    def check(self, raw: dict[str, Any], source: str) -> Pipeline | None:
        # Nodes are converted one by one so that a problem in one hides none in another.
        raw_nodes = raw.get("nodes", [])
        if isinstance(raw_nodes, list):
            doc = _convert({**raw, "nodes": []}, PipelineDoc, self.reporter(None))
        else:  # let msgspec report the type, and go on without nodes
            doc, raw_nodes = _convert(raw, PipelineDoc, self.reporter(None)), []
        if not raw.get("nodes"):
            self.report(None, "nodes", "the pipeline has no nodes", "empty")
        limits = replace(Resources(), **self.check_resources(doc.limits if doc else LimitsDoc(), None, "limits."))
        name = Path(self.filename).stem
        if doc is not None and isinstance(doc.name, str):
            name = doc.name.strip()
            if not name:
                self.report(None, "name", "the name must not be empty")

        labels = [_label(item, index) for index, item in enumerate(raw_nodes)]
        nodes: dict[str, NodeSpec] = {}  # by label
        for index, (label, item) in enumerate(zip(labels, raw_nodes)):
            node_doc = _convert(item, NodeDoc, self.reporter(label))
            if node_doc is not None:
                duplicate_of = labels.index(label)
                spec = self.check_node(label, node_doc, limits, None if duplicate_of == index else duplicate_of)
                nodes.setdefault(label, spec)
        self.check_graph(nodes, known=set(labels))
        if self.problems or doc is None:
            return None
        return Pipeline(name=name, description=doc.description, nodes=tuple(nodes.values()), source=source)

    def check_resources(self, doc: LimitsDoc | NodeDoc, node: str | None, prefix: str) -> dict[str, Any]:
        """The resource values ``doc`` sets, parsed; bad ones are reported and left out."""
        values: dict[str, Any] = {}
        for key, parse in _RESOURCE_PARSERS.items():
            written = getattr(doc, key)
            if written is msgspec.UNSET:
                continue
            try:
                values[key] = parse(written)
            except ValueError as exc:
                self.report(node, prefix + key, str(exc), "resources")
        return values

    def check_node(self, label: str, doc: NodeDoc, limits: Resources, duplicate_of: int | None) -> NodeSpec:
        """The node's spec; when it has problems (reported), the spec is only good for
        checking the graph."""
        if NAME_RE.fullmatch(doc.id) is None:
            self.report(label, "id", f"{doc.id!r} is not a valid node id", "id")
        elif duplicate_of is not None:
            self.report(label, "id", f"duplicate node id: node #{duplicate_of + 1} has the same id", "id")
        inputs: list[PortRef] = []
        for text in doc.inputs:
            match = PORT_REF_RE.fullmatch(text)
            if match is None:
                self.report(label, "inputs", f"{text!r} is not of the form 'node.port'", "inputs")
            elif (ref := PortRef(match[1], match[2])) in inputs:
                self.report(label, "inputs", f"{text!r} is listed twice", "inputs")
            else:
                inputs.append(ref)
        return NodeSpec(
            id=doc.id,
            cls=doc.cls,
            resolved_cls=self.check_class(label, doc.cls) or "",
            params=doc.params,
            inputs=tuple(inputs),
            resources=replace(limits, **self.check_resources(doc, label, "")),
        )

    def check_class(self, node: str, name: str) -> str | None:
        """The "module:Class" a node class name stands for, or None after reporting why not."""
        try:
            resolved = resolve_class_name(name)
        except ValueError as exc:
            self.report(node, "class", f"{exc}{_did_you_mean(name, BUILTINS)}", "class")
            return None
        if resolved in BUILTINS.values():
            return resolved
        module, _, cls = resolved.partition(":")
        top = cls.split(".")[0]
        try:
            if not all(part.isidentifier() for part in module.split(".")):
                raise ValueError(f"{module!r} is not a module name")
            if not all(part.isidentifier() for part in cls.split(".")):
                raise ValueError(f"{cls!r} is not a class name")
            names = self.module_names(module)
            if names is not None and top not in names:
                raise ValueError(f"module {module!r} has no top-level class {top!r}{_did_you_mean(top, names)}")
        except ValueError as exc:
            self.report(node, "class", str(exc), "class")
            return None
        return resolved

    def module_names(self, module: str) -> set[str] | None:
        """``module_names``, looked up once per module and file."""
        if module not in self.modules:
            try:
                self.modules[module] = module_names(module)
            except ValueError as exc:
                self.modules[module] = exc
        names = self.modules[module]
        if isinstance(names, ValueError):
            raise names
        return names

    def check_graph(self, nodes: Mapping[str, NodeSpec], known: Collection[str]) -> None:
        """Upstream nodes are ``known`` (those with problems of their own too); no cycles."""
        upstream: dict[str, set[str]] = {}
        for label, node in nodes.items():
            upstream[label] = set()
            for ref in node.inputs:
                if ref.node in known:
                    upstream[label].add(ref.node)
                else:
                    reason = f"upstream node {ref.node!r} does not exist{_did_you_mean(ref.node, known)}"
                    self.report(label, "inputs", reason, "inputs")
        order = {label: index for index, label in enumerate(nodes)}
        while True:  # report every cycle: drop the nodes of each one found, then look again
            try:
                graphlib.TopologicalSorter(upstream).prepare()
                return
            except graphlib.CycleError as exc:
                cycle: list[str] = exc.args[1][:-1]  # data-flow order, first node repeated at the end
            start = min(range(len(cycle)), key=lambda i: order.get(cycle[i], len(order)))
            cycle = cycle[start:] + cycle[:start]
            self.report(cycle[0], "inputs", "inputs form a cycle: " + " -> ".join([*cycle, cycle[0]]), "cycle")
            for node_id in cycle:
                upstream.pop(node_id, None)


# -- msgspec errors as problems -----------------------------------------------------

_MSGSPEC_ERROR_RE = re.compile(r"(?P<reason>.*?)(?: - at `(?:key` in `)?\$(?P<path>[^`]*)`)?", re.S)
_TABLE_NAMES = {PipelineDoc: "at the top level", LimitsDoc: "in [limits]", NodeDoc: "in [[nodes]]"}
_TYPE_NAMES = {
    "str": "a string", "int": "an integer", "float": "a float", "bool": "a boolean", "object": "a table",
    "array": "an array", "datetime": "a date-time", "date": "a date", "time": "a time",
}


def _convert(raw: object, typ: type[T], report: _Report) -> T | None:
    """msgspec.convert that reports every problem instead of the first.

    After each error the offending key is dropped and conversion retried, until it
    succeeds or an error cannot be dropped (a missing required key, a wrong root type).
    """
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()} if isinstance(raw, dict) else raw
    while True:
        try:
            return msgspec.convert(doc, typ)
        except msgspec.ValidationError as exc:
            match = _MSGSPEC_ERROR_RE.fullmatch(str(exc))
            assert match is not None  # the pattern matches any text
            reason, path = match["reason"], match["path"] or ""
            keys = path.split("[")[0].split(".")[1:]  # the tables down to the first array
            field = path.removeprefix(".") or None
            if unknown := re.fullmatch(r"Object contains unknown field `(.*)`", reason, re.S):
                table = _struct_at(typ, keys)
                allowed = list(table.__struct_encode_fields__) if table else []
                reason = f"unknown key {unknown[1]!r}{_did_you_mean(unknown[1], allowed)}"
                where = _TABLE_NAMES.get(table, "here") if table else "here"
                report(f"{path}.{unknown[1]}".removeprefix("."), reason, f"keys allowed {where}: {', '.join(allowed)}")
                keys.append(unknown[1])
            elif missing := re.fullmatch(r"Object missing required field `(.*)`", reason, re.S):
                report(".".join([*keys, missing[1]]), f"required key {missing[1]!r} is missing", None)
                return None
            elif expected := re.fullmatch(r"Expected `(.*)`, got `(.*)`", reason, re.S):
                wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in expected[1].split(" | "))
                hint = "resources" if keys and keys[-1] in _RESOURCE_PARSERS else None
                report(field, f"expected {wanted}, got {_TYPE_NAMES.get(expected[2], expected[2])}", hint)
            else:
                report(field, reason[:1].lower() + reason[1:], None)
            if not _drop(doc, keys[:2]):
                return None


def _drop(doc: object, keys: list[str]) -> bool:
    for key in keys[:-1]:
        doc = doc.get(key) if isinstance(doc, dict) else None
    if keys and isinstance(doc, dict) and keys[-1] in doc:
        del doc[keys[-1]]
        return True
    return False


def _struct_at(typ: type[msgspec.Struct], keys: list[str]) -> type[msgspec.Struct] | None:
    """The struct describing the table at ``keys`` inside ``typ``."""
    for key in keys:
        inner = {f.encode_name: f.type for f in msgspec.structs.fields(typ)}.get(key)
        if not (isinstance(inner, type) and issubclass(inner, msgspec.Struct)):
            return None
        typ = inner
    return typ


def _label(item: object, index: int) -> str:
    """How problems name a node: its id, or #N when it has none."""
    node_id = item.get("id") if isinstance(item, dict) else None
    return node_id if isinstance(node_id, str) and node_id else f"#{index + 1}"


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
