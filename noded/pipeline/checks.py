"""Load a pipeline file and check it, reporting every problem at once.

msgspec checks the structure against ``noded.pipeline.schema``; this module adds what
a schema cannot say: ids, node classes, resource and data-plane values, external inputs
and outputs, and the graph (upstream nodes and external inputs exist, no cycles, fan-out
within ``noded.contract.spec``'s limits). Each problem becomes a ``Problem`` in one
``PipelineError``; nothing else escapes for any input text.

Node classes are checked without running user code (``noded.pipeline.classes``): a
module is looked up through the import system's finders (never imported, not even its
parent packages) and the class name is looked for in the module's source.

An external input that no node consumes is an error: data a client feeds must go
somewhere, and such an input is a leftover or the other half of a misspelt
``input.<name>``. So that one mistake is reported once, it is not reported for the
input suggested for a misspelt one, nor at all when some node's inputs could not be read.
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
from msgspec import UNSET

from noded.contract.registry import BUILTINS, NODES, resolve_class_name
from noded.contract.spec import DEFAULT_DEPTH, MAX_CONSUMERS, MAX_PORTS, reader_consumer
from noded.errors import PipelineError, Problem
from noded.pipeline.bounds import BOUNDS_HINT as _BOUNDS_HINT
from noded.pipeline.bounds import DEFAULT_BOUNDS, PipelineBounds, file_too_large, out_of_bounds
from noded.pipeline.classes import file_names, module_names
from noded.pipeline.devices import check_device, device_groups, expand_gpu, parse_cpus
from noded.pipeline.grants import NodeGrants, check_read_only_path
from noded.pipeline.runtime import check_env, check_python
from noded.pipeline.schema import (
    CLIENT,
    EXTERNAL_INPUT,
    MAX_DEPTH,
    MIN_DEPTH,
    NAME_PATTERN,
    NAME_RE,
    OVERFLOW_BLOCK,
    PORT_REF_RE,
    RESERVED_IDS,
    DataplaneDoc,
    DataplaneSettings,
    DefaultsDoc,
    EdgeDoc,
    InputRef,
    LimitsDoc,
    NodeDoc,
    NodeSpec,
    Pipeline,
    PipelineDoc,
    PortRef,
    Resources,
    parse_depth,
    parse_max_clients,
    parse_overflow,
    parse_payload,
    parse_quota,
    parse_size,
    parse_spin,
    parse_tasks,
    parse_watchdog,
)
from noded.pipeline.usercode import check_class_file, check_code_dir, is_file_class

__all__ = [
    "DataplaneSettings",
    "InputRef",
    "NodeSpec",
    "Pipeline",
    "PipelineError",
    "PortRef",
    "Problem",
    "Resources",
    "load_pipeline",
    "parse_depth",
    "parse_overflow",
    "parse_payload",
    "parse_pipeline",
    "parse_quota",
    "parse_size",
    "parse_tasks",
]

T = TypeVar("T")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_Report = Callable[[str | None, str, str | None], None]  # (field, reason, hint)

_RESOURCE_PARSERS: dict[str, Callable[[Any], int | float | None]] = {
    "memory_max": parse_size,
    "cpu_quota": parse_quota,
    "tasks_max": parse_tasks,
    "watchdog": parse_watchdog,
}
_KEY_HINTS = {**dict.fromkeys(_RESOURCE_PARSERS, "resources"), "depth": "depth", "max_payload": "payload"}
_LISTS = ("nodes", "inputs", "outputs")  # top-level arrays whose entries are checked one by one
_HINTS = {
    "toml": "fix the TOML syntax at the given line and column",
    "id": f"node ids and port names are a letter, then up to 47 letters, digits or underscores ({NAME_PATTERN})",
    "reserved": (
        f"the ids {EXTERNAL_INPUT!r} and {CLIENT!r} are reserved: '{EXTERNAL_INPUT}.<name>' is an external "
        f"input and {CLIENT!r} the session's client"
    ),
    "class": (
        f"use a built-in node ({', '.join(sorted(NODES))}) or 'package.module:Class' "
        "for a module the daemon's Python can import"
    ),
    "inputs": (
        "an input is 'node.port' (the id of another node and the name of its output port) or "
        "'input.<name>' (an external input); { from = 'node.port', depth = 8, overflow = 'drop_oldest', "
        "spin_us = 200 } also sets the edge's depth, overflow and spin"
    ),
    "external": "declare external inputs at the top level, inputs = ['audio'], and consume them as 'input.audio'",
    "unconsumed": "consume each external input as 'input.<name>' in a node's inputs, or remove it from inputs",
    "outputs": "an external output is 'node.port': the id of a node and the name of its output port",
    "fan_out": (
        f"an output port feeds at most {MAX_CONSUMERS} consumers and at most {MAX_PORTS} output ports of "
        "an endpoint are consumed; put a 'passthrough' node in between to feed more"
    ),
    "cycle": "a pipeline must not have cycles: remove one of the inputs named",
    "resources": (
        "memory_max: bytes or a K/M/G/T size such as '512M'; cpu_quota: a percentage such as "
        "'150%'; tasks_max: a positive integer; watchdog: a time span such as '30s' (at least 1 s); "
        "each may also be 'infinity'"
    ),
    "depth": (
        f"depth is how many messages may be in flight on an edge: an integer from {MIN_DEPTH} to "
        f"{MAX_DEPTH} (default {DEFAULT_DEPTH})"
    ),
    "spin_us": (
        "spin_us is how long (microseconds, 0 to 100000) the consumer polls for this edge's next message "
        "before it sleeps: lower latency for a latency-critical edge, paid in CPU (default 0: sleep at once)"
    ),
    "overflow": (
        "overflow is what a full edge does: 'block' (the default: the producer waits, nothing is lost) or "
        "'drop_oldest' (the producer never waits for this consumer; its oldest unread message is dropped)"
    ),
    "max_clients": (
        "max_clients is how many clients may read an external output at once: an integer from 1 to 8 (default 2)"
    ),
    "payload": "max_payload is the largest payload a node sends: bytes or a K/M/G size from 1K to 1G, such as '10M'",
    "empty": "add at least one [[nodes]] table",
    "python": (
        "python is the absolute path of a venv's bin/python with noded installed (packaging/models-env "
        "makes one); outside /root and /home, readable and executable by all: nodes run as a dynamic user"
    ),
    "env": "env = { OMP_NUM_THREADS = '1' }: names of letters, digits and '_', string values, passed as written",
    "code": (
        "a node's own code: class = 'nodes/asr.py:Class' (a file) or code = ['./nodes'] with "
        "class = 'module:Class'; relative paths start at the pipeline file's folder"
    ),
    "devices": (
        "devices lists device nodes below /dev (such as '/dev/dri/renderD128'); gpu is 'nvidia' or "
        "'nvidia:0,1'; cpus is a CPU list such as '2-3' or '0,2'"
    ),
    "user": (
        "user names a static service account the nodes run as (useradd --system); only root may "
        "use it: other users' sessions run as themselves"
    ),
    "read_only": (
        "read_only_paths lists existing absolute paths (model files or directories) a node may read; "
        "/usr, /opt, /etc and /var are readable already; network = true grants a node the network"
    ),
}


def load_pipeline(path: str | os.PathLike[str], bounds: PipelineBounds = DEFAULT_BOUNDS) -> Pipeline:
    """Read and check a pipeline file; raises PipelineError."""
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as f:  # read at most one byte more than allowed
            data = f.read(bounds.file_bytes + 1)
        if len(data) > bounds.file_bytes:
            reason = f"the file is larger than {bounds.file_bytes} bytes, the most a pipeline file may have"
            raise PipelineError([Problem(filename, None, "file", reason)], hint=_BOUNDS_HINT)
        directory = os.path.dirname(os.path.abspath(filename))
        return parse_pipeline(data.decode("utf-8"), filename, bounds=bounds, directory=directory)
    except OSError as exc:
        reason = f"cannot read the file: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start} cannot be decoded)"
    raise PipelineError([Problem(filename, None, None, reason)])


def parse_pipeline(
    text: str,
    filename: str,
    defaults: Resources = Resources(),
    bounds: PipelineBounds = DEFAULT_BOUNDS,
    directory: str | None = None,
) -> Pipeline:
    """Check a pipeline given as TOML text; ``filename`` names it in problems and gives
    the default pipeline name (its stem); ``defaults`` are the limits of nodes for which
    neither ``[limits]`` nor the node sets a value (the daemon's ``node_limits``);
    ``bounds`` are checked first (noded.pipeline.bounds); ``directory`` is what relative
    code paths are resolved against (the client's). Raises PipelineError."""
    checker = _Checker(filename, defaults)
    checker.directory = directory
    too_large = file_too_large(text, bounds)
    if too_large is not None:
        checker.report(*too_large, hint=_BOUNDS_HINT)
        raise checker.error()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        checker.report(None, None, _toml_reason(exc), "toml")
    except RecursionError:
        checker.report(None, None, "TOML syntax error: arrays or tables nested too deeply", "toml")
    else:
        for problem in out_of_bounds(raw, bounds, _label):
            checker.report(*problem, hint=_BOUNDS_HINT)
        if checker.problems:
            raise checker.error()
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

    def __init__(self, filename: str, defaults: Resources = Resources()) -> None:
        self.filename = filename
        self.defaults = defaults
        self.problems: list[Problem] = []
        self.hints: dict[str, None] = {}  # ordered set
        self.modules: dict[tuple[str, tuple[str, ...]], set[str] | ValueError | None] = {}
        self.directory: str | None = None  # relative code paths are resolved against it
        self.unread_inputs = False  # some node's inputs (or the node) could not be read
        self.max_clients = 1  # [dataplane] max_clients, once checked
        self.suggested: set[str] = set()  # external inputs offered for a misspelt one

    def report(self, node: str | None, field: str | None, reason: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.filename, node, field, reason))
        if hint is not None:
            self.hints[_HINTS.get(hint, hint)] = None

    def reporter(self, node: str | None) -> _Report:
        return lambda field, reason, hint: self.report(node, field, reason, hint)

    def error(self) -> PipelineError:
        return PipelineError(self.problems, hint="\n".join(self.hints) or None)

    def check(self, raw: dict[str, Any], source: str) -> Pipeline | None:
        # Arrays are converted entry by entry so that a problem in one hides none in
        # another; one that is not an array is left to msgspec to report, and skipped.
        lists: dict[str, list[Any]] = {key: raw[key] for key in _LISTS if isinstance(raw.get(key), list)}
        doc = _convert({**raw, **{key: [] for key in lists}}, PipelineDoc, self.reporter(None))
        raw_nodes = lists.get("nodes", [])
        if not raw.get("nodes"):
            self.report(None, "nodes", "the pipeline has no nodes", "empty")
        limits = replace(self.defaults, **self.check_resources(doc.limits if doc else LimitsDoc(), None, "limits."))
        dataplane = self.check_dataplane(doc.dataplane if doc else DataplaneDoc())
        self.max_clients = dataplane.max_clients
        name = Path(self.filename).stem
        if doc is not None and isinstance(doc.name, str):
            name = doc.name.strip()
            if not name:
                self.report(None, "name", "the name must not be empty")
        externals = self.check_external_inputs(lists.get("inputs", []))
        runtime = self.check_runtime(None, "defaults.", doc.defaults if doc else DefaultsDoc(), (None, {}))

        labels = [_label(item, index) for index, item in enumerate(raw_nodes)]
        nodes: dict[str, NodeSpec] = {}  # by label
        for index, (label, item) in enumerate(zip(labels, raw_nodes)):
            edges: list[Any] = []
            if isinstance(item, dict) and isinstance(item.get("inputs"), list):
                item, edges = {**item, "inputs": []}, item["inputs"]
            elif isinstance(item, dict) and "inputs" in item:  # not an array: msgspec reports it
                self.unread_inputs = True
            node_doc = _convert(item, NodeDoc, self.reporter(label))
            if node_doc is None:
                self.unread_inputs = True
                continue
            duplicate_of = labels.index(label)
            spec = self.check_node(
                label, node_doc, edges, limits, dataplane, None if duplicate_of == index else duplicate_of, runtime
            )
            nodes.setdefault(label, spec)
        outputs = self.check_external_outputs(lists.get("outputs", []), known=set(labels))
        self.check_graph(nodes, known=set(labels), externals=externals)
        self.check_consumers(nodes, known=set(labels), externals=externals, outputs=outputs)
        user = self.check_user(doc.user) if doc is not None else None
        if self.problems or doc is None:
            return None
        return Pipeline(
            name=name,
            description=doc.description,
            nodes=tuple(nodes.values()),
            source=source,
            inputs=tuple(externals),
            outputs=tuple(outputs),
            dataplane=dataplane,
            user=user,
        )

    def check_user(self, user: str | msgspec.UnsetType) -> str | None:
        """The pipeline's ``user``: a user name (whether it exists, and whether the
        client may use it, the daemon decides at create)."""
        if user is UNSET:
            return None
        assert isinstance(user, str)
        if _USER_RE.fullmatch(user) is None:
            self.report(None, "user", f"{user!r} is not a user name", "user")
            return None
        return user

    def entries(
        self,
        node: str | None,
        field: str,
        items: list[Any],
        typ: Callable[[Any], Any],
    ) -> list[tuple[int, Any]]:
        """(index, value) of each entry of an array that converts to ``typ(entry)``; the
        others are reported."""
        converted = []
        for index, item in enumerate(items):
            where = f"{field}[{index}]"

            def report(f: str | None, r: str, h: str | None, w: str = where) -> None:
                self.report(node, f"{w}.{f}" if f else w, r, h)

            value = _convert(item, typ(item), report)
            if value is not None:
                converted.append((index, value))
        return converted

    def parsed(self, node: str | None, field: str, value: Any, parse: Callable[[Any], T], default: T, hint: str) -> T:
        """``parse(value)``, or ``default`` when unset or after reporting why not."""
        if value is UNSET:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            self.report(node, field, str(exc), hint)
            return default

    def check_dataplane(self, doc: DataplaneDoc) -> DataplaneSettings:
        default = DataplaneSettings()
        return DataplaneSettings(
            depth=self.parsed(None, "dataplane.depth", doc.depth, parse_depth, default.depth, "depth"),
            max_payload=self.parsed(
                None, "dataplane.max_payload", doc.max_payload, parse_payload, default.max_payload, "payload"
            ),
            verify_payload=doc.verify_payload,
            max_clients=self.parsed(
                None, "dataplane.max_clients", doc.max_clients, parse_max_clients, default.max_clients, "max_clients"
            ),
        )

    def check_external_inputs(self, items: list[Any]) -> list[str]:
        names: list[str] = []
        for _, name in self.entries(None, "inputs", items, lambda _: str):
            if NAME_RE.fullmatch(name) is None:
                self.report(None, "inputs", f"{name!r} is not a valid input name", "id")
            elif name in names:
                self.report(None, "inputs", f"external input {name!r} is listed twice", "external")
            else:
                names.append(name)
        if len(names) > MAX_PORTS:
            reason = f"{len(names)} external inputs are declared; a client feeds at most {MAX_PORTS}"
            self.report(None, "inputs", reason, "fan_out")
        return names

    def check_external_outputs(self, items: list[Any], known: Collection[str]) -> list[PortRef]:
        outputs: list[PortRef] = []
        for _, text in self.entries(None, "outputs", items, lambda _: str):
            match = PORT_REF_RE.fullmatch(text)
            if match is None:
                self.report(None, "outputs", f"{text!r} is not of the form 'node.port'", "outputs")
            elif (ref := PortRef(match[1], match[2])).is_external:
                self.report(None, "outputs", f"{text!r} is an external input, not a node's output port", "outputs")
            elif ref.node not in known:
                self.report(
                    None, "outputs", f"node {ref.node!r} does not exist{_did_you_mean(ref.node, known)}", "outputs"
                )
            elif ref in outputs:
                self.report(None, "outputs", f"external output {text!r} is listed twice", "outputs")
            else:
                outputs.append(ref)
        return outputs

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

    def check_node(
        self,
        label: str,
        doc: NodeDoc,
        edges: list[Any],
        limits: Resources,
        dataplane: DataplaneSettings,
        duplicate_of: int | None,
        runtime: tuple[str | None, dict[str, str]] = (None, {}),
    ) -> NodeSpec:
        """The node's spec; when it has problems (reported), the spec is only good for
        checking the graph."""
        if NAME_RE.fullmatch(doc.id) is None:
            self.report(label, "id", f"{doc.id!r} is not a valid node id", "id")
        elif doc.id in RESERVED_IDS:
            self.report(label, "id", f"{doc.id!r} is reserved and cannot name a node", "reserved")
        elif duplicate_of is not None:
            self.report(label, "id", f"duplicate node id: node #{duplicate_of + 1} has the same id", "id")
        code = self.check_code(label, doc)
        resolved, binds, sys_path = self.check_user_class(label, doc.cls, code)
        return NodeSpec(
            id=doc.id,
            cls=doc.cls,
            resolved_cls=resolved or "",
            params=doc.params,
            inputs=self.check_inputs(label, edges, dataplane.depth),
            resources=replace(limits, **self.check_resources(doc, label, "")),
            max_payload=self.parsed(
                label, "max_payload", doc.max_payload, parse_payload, dataplane.max_payload, "payload"
            ),
            sandbox=NodeGrants(
                network=doc.network,
                read_only_paths=self.check_read_only_paths(label, doc),
                code=binds,
                **self.check_devices(label, doc),
                jit=doc.jit,
            ),
            sys_path=sys_path,
            **self.node_runtime(label, doc, runtime),
        )

    def check_devices(self, label: str, doc: NodeDoc) -> dict[str, Any]:
        """The node's ``devices``, ``gpu`` and ``cpus``, as NodeGrants fields."""
        devices: list[str] = []
        environment: list[str] = []
        for index, text in enumerate(doc.devices):
            try:
                devices.append(check_device(text))
            except ValueError as exc:
                self.report(label, f"devices[{index}]", str(exc), "devices")
        if isinstance(doc.gpu, str):
            try:
                gpu_devices, env = expand_gpu(doc.gpu)
                devices += gpu_devices
                environment += [f"{k}={v}" for k, v in env.items()]
            except ValueError as exc:
                self.report(label, "gpu", str(exc), "devices")
        cpus: tuple[int, ...] = ()
        if isinstance(doc.cpus, str):
            try:
                cpus = parse_cpus(doc.cpus)
            except ValueError as exc:
                self.report(label, "cpus", str(exc), "devices")
        devices = list(dict.fromkeys(devices))
        return {
            "devices": tuple(devices),
            "device_groups": device_groups(devices),
            "environment": tuple(environment),
            "cpus": cpus,
        }

    def check_code(self, label: str, doc: NodeDoc) -> tuple[str, ...]:
        """The node's ``code`` folders, resolved against the client's folder."""
        paths: list[str] = []
        for index, text in enumerate(doc.code):
            try:
                path = check_code_dir(text, self.directory)
            except ValueError as exc:
                self.report(label, f"code[{index}]", str(exc), "code")
                continue
            if path not in paths:
                paths.append(path)
        return tuple(paths)

    def check_user_class(
        self, label: str, name: str, code: tuple[str, ...]
    ) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        """The node's class, resolved; the files and folders to bind; its sys.path."""
        if not is_file_class(name):
            return self.check_class(label, name, code), code, code
        path_text, _, cls = name.rpartition(":")
        try:
            path = check_class_file(path_text, self.directory)
            if not all(part.isidentifier() for part in cls.split(".")):
                raise ValueError(f"{cls!r} is not a class name")
            names = file_names(path)
            top = cls.split(".")[0]
            if names is not None and top not in names:
                raise ValueError(f"{path} has no top-level class {top!r}{_did_you_mean(top, names)}")
        except ValueError as exc:
            self.report(label, "class", str(exc), "code")
            return None, code, code
        folder, module = os.path.split(path)
        return f"{module.removesuffix('.py')}:{cls}", (path, *code), (folder, *code)

    def check_runtime(
        self, node: str | None, prefix: str, doc: NodeDoc | DefaultsDoc, default: tuple[str | None, dict[str, str]]
    ) -> tuple[str | None, dict[str, str]]:
        """``python`` and ``env`` of a node or ``[defaults]``, over ``default``; bad ones reported."""
        python = self.parsed(node, prefix + "python", doc.python, check_python, default[0], "python")
        env = dict(default[1])
        for name, value in doc.env.items():
            try:
                check_env(name, value)
            except ValueError as exc:
                self.report(node, f"{prefix}env.{name}", str(exc), "env")
            else:
                env[name] = value
        return python, env

    def node_runtime(self, label: str, doc: NodeDoc, default: tuple[str | None, dict[str, str]]) -> dict[str, Any]:
        python, env = self.check_runtime(label, "", doc, default)
        return {"python": python, "env": tuple(env.items())}

    def check_read_only_paths(self, label: str, doc: NodeDoc) -> tuple[str, ...]:
        """The node's read_only_paths: absolute, normalised, existing, not kernel or noded's own."""
        paths: list[str] = []
        for index, text in enumerate(doc.read_only_paths):
            try:
                path = check_read_only_path(text)
                if not os.path.exists(path):
                    raise ValueError(f"{path!r} does not exist")
            except ValueError as exc:
                self.report(label, f"read_only_paths[{index}]", str(exc), "read_only")
                continue
            if path not in paths:
                paths.append(path)
        return tuple(paths)

    def check_inputs(self, label: str, edges: list[Any], default_depth: int) -> tuple[InputRef, ...]:
        """A node's ``inputs`` entries, "node.port" or { from = "node.port", depth = N, overflow = "..." }."""
        inputs: list[InputRef] = []
        converted = self.entries(label, "inputs", edges, lambda e: EdgeDoc if isinstance(e, dict) else str | EdgeDoc)
        self.unread_inputs |= len(converted) < len(edges)
        for index, entry in converted:
            edge = EdgeDoc(source=entry) if isinstance(entry, str) else entry
            match = PORT_REF_RE.fullmatch(edge.source)
            if match is None:
                self.report(label, "inputs", f"{edge.source!r} is not of the form 'node.port'", "inputs")
                self.unread_inputs = True
            elif (ref := PortRef(match[1], match[2])) in (i.ref for i in inputs):
                self.report(label, "inputs", f"{edge.source!r} is listed twice", "inputs")
            else:
                depth = self.parsed(label, f"inputs[{index}].depth", edge.depth, parse_depth, default_depth, "depth")
                overflow = self.parsed(
                    label, f"inputs[{index}].overflow", edge.overflow, parse_overflow, OVERFLOW_BLOCK, "overflow"
                )
                spin = self.parsed(label, f"inputs[{index}].spin_us", edge.spin_us, parse_spin, 0, "spin_us")
                inputs.append(InputRef(ref, depth, overflow, spin))
        return tuple(inputs)

    def check_class(self, node: str, name: str, code: tuple[str, ...] = ()) -> str | None:
        """The "module:Class" a node class name stands for, or None after reporting why not."""
        try:
            resolved = resolve_class_name(name)
        except ValueError as exc:
            self.report(node, "class", f"{exc}{_did_you_mean(name, NODES)}", "class")
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
            names = self.module_names(module, code)
            if names is not None and top not in names:
                raise ValueError(f"module {module!r} has no top-level class {top!r}{_did_you_mean(top, names)}")
        except ValueError as exc:
            self.report(node, "class", str(exc), "class")
            return None
        return resolved

    def module_names(self, module: str, code: tuple[str, ...] = ()) -> set[str] | None:
        """``module_names``, looked up once per module (and code folders) and file."""
        key = (module, code)
        if key not in self.modules:
            try:
                self.modules[key] = module_names(module, code)
            except ValueError as exc:
                self.modules[key] = exc
        names = self.modules[key]
        if isinstance(names, ValueError):
            raise names
        return names

    def check_graph(self, nodes: Mapping[str, NodeSpec], known: Collection[str], externals: Collection[str]) -> None:
        """Upstream nodes are ``known`` (those with problems of their own too) and
        external inputs declared; no cycles."""
        upstream: dict[str, set[str]] = {}
        for label, node in nodes.items():
            upstream[label] = set()
            for ref in (i.ref for i in node.inputs):
                if ref.is_external:
                    if ref.port not in externals:
                        close = difflib.get_close_matches(ref.port, externals, n=1)
                        self.suggested.update(close)
                        reason = f"external input {ref.port!r} is not declared{_did_you_mean(ref.port, close)}"
                        self.report(label, "inputs", reason, "external")
                elif ref.node in known:
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

    def check_consumers(
        self,
        nodes: Mapping[str, NodeSpec],
        known: Collection[str],
        externals: list[str],
        outputs: list[PortRef],
    ) -> None:
        """Every external input is consumed; fan-out within noded.contract.spec's limits."""
        consumers: dict[PortRef, list[str]] = {PortRef(EXTERNAL_INPUT, name): [] for name in externals}
        for label, node in nodes.items():
            for ref in (i.ref for i in node.inputs):
                if ref.node in known or ref in consumers:  # not unknown (reported already)
                    consumers.setdefault(ref, []).append(label)
        for ref in outputs:  # each reader slot of an external output is a consumer
            consumers.setdefault(ref, []).extend(reader_consumer(k, str(ref)) for k in range(self.max_clients))
        ports: dict[str, list[str]] = {}  # consumed output ports by node
        for ref, who in consumers.items():
            what = f"external input {ref.port!r}" if ref.is_external else f"output port {ref.port!r}"
            where: tuple[str | None, str | None] = (None, "inputs") if ref.is_external else (ref.node, None)
            if not who and not self.unread_inputs and ref.port not in self.suggested:
                self.report(*where, f"{what} is not consumed by any node", "unconsumed")
            if len(who) > MAX_CONSUMERS:
                reason = f"{what} has {len(who)} consumers ({', '.join(who)}); at most {MAX_CONSUMERS} are allowed"
                self.report(*where, reason, "fan_out")
            if not ref.is_external:
                ports.setdefault(ref.node, []).append(ref.port)
        for node_id, names in ports.items():
            if len(names) > MAX_PORTS:
                reason = f"{len(names)} of its output ports are consumed ({', '.join(names)}); at most {MAX_PORTS}"
                self.report(node_id, None, reason, "fan_out")


# -- msgspec errors as problems -----------------------------------------------------

_MSGSPEC_ERROR_RE = re.compile(r"(?P<reason>.*?)(?: - at `(?:key` in `)?\$(?P<path>[^`]*)`)?", re.S)
_TABLE_NAMES = {
    PipelineDoc: "at the top level",
    LimitsDoc: "in [limits]",
    DataplaneDoc: "in [dataplane]",
    NodeDoc: "in [[nodes]]",
    EdgeDoc: "in an inputs table",
}
_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a float",
    "bool": "a boolean",
    "object": "a table",
    "array": "an array",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}


def _convert(raw: object, typ: Any, report: _Report) -> Any:
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
                hint = _KEY_HINTS.get(keys[-1]) if keys else None
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
