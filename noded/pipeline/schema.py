"""What a pipeline file looks like, and the typed values it is parsed into.

The ``*Doc`` structs are the file format: msgspec checks structure and types against
them (unknown keys are errors). ``noded.pipeline.checks`` turns a checked document into the
frozen ``Pipeline``/``NodeSpec``/``Resources`` values the rest of the daemon uses.

Adding a key to the format is adding a field to a ``*Doc`` struct, then carrying it
over in ``noded.pipeline.checks``.

Data-plane terms: a node's ``inputs`` are edges from an output port ("node.port") or
from an external input ("input.<name>", fed by the session's client); the top-level
``outputs`` are node output ports the client reads. The ids ``input`` and ``client``
are reserved for those two pseudo-endpoints and may not name a node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from noded.contract.paths import CLIENT, UINT64_MAX
from noded.contract.spec import DEFAULT_DEPTH, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_PAYLOAD, MAX_CLIENTS, MAX_DEPTH
from noded.pipeline.grants import NodeGrants

# Node ids and port names end up in systemd unit names and iceoryx2 service names.
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_]{0,47}"
NAME_RE = re.compile(NAME_PATTERN)
PORT_REF_RE = re.compile(rf"({NAME_PATTERN})\.({NAME_PATTERN})")

EXTERNAL_INPUT = "input"  # the pseudo-node of external inputs: "input.<name>"
RESERVED_IDS = (EXTERNAL_INPUT, CLIENT)

MIN_DEPTH = 1  # messages in flight per edge, up to noded.contract.spec.MAX_DEPTH
# An edge's overflow: "block" (the producer waits for the consumer; nothing is lost) or
# "drop_oldest" (the producer never waits; a full buffer loses its oldest message).
OVERFLOW_BLOCK, OVERFLOW_DROP_OLDEST = "block", "drop_oldest"
OVERFLOWS = (OVERFLOW_BLOCK, OVERFLOW_DROP_OLDEST)
MAX_SPIN_US = 100_000  # an edge's spin_us: how long its consumer polls before it sleeps
MIN_PAYLOAD, MAX_PAYLOAD = 1024, 1024**3  # bytes per message payload

INFINITY = "infinity"
_USEC_PER_SEC = 1_000_000
_SIZE_RE = re.compile(r"\s*([+-]?\d+(?:\.\d+)?)\s*([KMGT]?)\s*", re.IGNORECASE)
_QUOTA_RE = re.compile(r"\s*([+-]?\d+(?:\.\d+)?)\s*%\s*")
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SPAN_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|)\s*", re.IGNORECASE)
_SPAN_UNITS = {
    "ms": Decimal("0.001"),
    "": Decimal(1),
    "s": Decimal(1),
    "sec": Decimal(1),
    "m": Decimal(60),
    "min": Decimal(60),
    "h": Decimal(3600),
}
MIN_WATCHDOG = 1.0  # seconds


# -- the file format ----------------------------------------------------------------


class LimitsDoc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[limits]``: the resource limits of every node that does not set its own."""

    memory_max: int | str | UnsetType = UNSET
    cpu_quota: str | UnsetType = UNSET
    tasks_max: int | str | UnsetType = UNSET
    watchdog: int | float | str | UnsetType = UNSET


class DataplaneDoc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[dataplane]``: defaults for every edge and node of the pipeline."""

    depth: int | UnsetType = UNSET  # messages in flight per edge
    max_payload: int | str | UnsetType = UNSET  # largest payload a node output sends
    verify_payload: bool = False  # checksum every payload (for debugging)
    max_clients: int | UnsetType = UNSET  # readers of an external output attached at once


class EdgeDoc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An ``inputs`` entry written as a table: ``{ from = "node.port", depth = 8 }``."""

    source: str = msgspec.field(name="from")
    depth: int | UnsetType = UNSET
    overflow: str | UnsetType = UNSET  # "block" (default) or "drop_oldest"
    spin_us: int | UnsetType = UNSET  # poll this long for the next message before sleeping


class NodeDoc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[nodes]]`` table; its resource keys override ``[limits]``, its
    ``max_payload`` overrides ``[dataplane]`` for this node's outputs."""

    id: str
    cls: str = msgspec.field(name="class")
    params: dict[str, Any] = {}
    inputs: list[str | EdgeDoc] = []
    memory_max: int | str | UnsetType = UNSET
    cpu_quota: str | UnsetType = UNSET
    tasks_max: int | str | UnsetType = UNSET
    watchdog: int | float | str | UnsetType = UNSET
    max_payload: int | str | UnsetType = UNSET
    # The node's sandbox (noded.daemon.sandbox): the network, and read-only paths for models.
    network: bool = False
    read_only_paths: list[str] = []
    # The node's own code (noded.pipeline.usercode): folders put on its sys.path.
    code: list[str] = []
    # Devices and CPUs (noded.pipeline.devices): device nodes, a GPU, a CPU set.
    devices: list[str] = []
    gpu: str | UnsetType = UNSET
    cpus: str | UnsetType = UNSET
    # Its runtime (noded.pipeline.runtime): the interpreter, extra environment, JIT allowed.
    python: str | UnsetType = UNSET
    env: dict[str, str] = {}
    jit: bool = False


class DefaultsDoc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[defaults]``: the runtime of every node that does not set its own."""

    python: str | UnsetType = UNSET
    env: dict[str, str] = {}


class PipelineDoc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    description: str = ""
    limits: LimitsDoc = LimitsDoc()
    nodes: list[NodeDoc] = []
    dataplane: DataplaneDoc = DataplaneDoc()
    inputs: list[str] = []  # external input names, consumed as "input.<name>"
    outputs: list[str] = []  # "node.port" the client reads
    defaults: DefaultsDoc = DefaultsDoc()  # python and env of every node that sets none
    user: str | UnsetType = UNSET  # a static account the nodes run as (root's sessions only)


# -- what a pipeline is parsed into ------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortRef:
    """An output port of a node, written ``node.port``."""

    node: str  # EXTERNAL_INPUT for an external input
    port: str

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"

    @property
    def is_external(self) -> bool:
        """An external input ("input.<name>"), fed by the client rather than a node."""
        return self.node == EXTERNAL_INPUT


@dataclass(frozen=True, slots=True)
class InputRef:
    """One of a node's inputs: the port it reads, the edge's depth (messages in
    flight), as written or from ``[dataplane]``, and its overflow (OVERFLOWS)."""

    ref: PortRef
    depth: int = DEFAULT_DEPTH
    overflow: str = OVERFLOW_BLOCK
    spin_us: int = 0

    def __str__(self) -> str:
        return str(self.ref)


@dataclass(frozen=True, slots=True)
class DataplaneSettings:
    """``[dataplane]`` with its defaults filled in."""

    depth: int = DEFAULT_DEPTH
    max_payload: int = DEFAULT_MAX_PAYLOAD
    verify_payload: bool = False
    max_clients: int = DEFAULT_MAX_CLIENTS


@dataclass(frozen=True, slots=True)
class Resources:
    """A node's limits; None means no limit (unset, or "infinity")."""

    memory_max: int | None = None  # bytes
    cpu_quota: float | None = None  # 1.0 == one full CPU
    tasks_max: int | None = None
    watchdog: float | None = None  # seconds a node may go without feeding its watchdog


@dataclass(frozen=True, slots=True)
class NodeSpec:
    id: str
    cls: str  # as written in the file
    resolved_cls: str  # "package.module:Class"
    params: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[InputRef, ...] = ()  # in the order written
    resources: Resources = Resources()
    max_payload: int = DEFAULT_MAX_PAYLOAD  # of each of its outputs, bytes
    sandbox: NodeGrants = NodeGrants()  # what it is granted beyond the default sandbox
    python: str | None = None  # the interpreter of its worker; None: the daemon's worker_python
    env: tuple[tuple[str, str], ...] = ()  # extra environment, after (so over) noded's own
    sys_path: tuple[str, ...] = ()  # the node's own code folders, first on its sys.path


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    description: str
    nodes: tuple[NodeSpec, ...]  # in file order
    source: str  # the TOML text it was parsed from
    inputs: tuple[str, ...] = ()  # external input names, in the order written
    outputs: tuple[PortRef, ...] = ()  # external outputs, in the order written
    dataplane: DataplaneSettings = DataplaneSettings()
    user: str | None = None  # the account its nodes run as, if the pipeline names one

    def node(self, node_id: str) -> NodeSpec:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def topological_order(self) -> tuple[NodeSpec, ...]:
        """Every node after its upstream nodes; ties keep file order."""
        placed: dict[str, NodeSpec] = {}
        while len(placed) < len(self.nodes):
            node = next(
                (
                    n
                    for n in self.nodes
                    if n.id not in placed and all(i.ref.is_external or i.ref.node in placed for i in n.inputs)
                ),
                None,
            )
            if node is None:
                raise ValueError(f"pipeline {self.name!r} has a cycle")
            placed[node.id] = node
        return tuple(placed.values())


# -- resource values ----------------------------------------------------------------


def parse_size(value: int | str) -> int | None:
    """Bytes from an int or a string like "512M" (K/M/G/T, 1024-based); None for "infinity".

    Raises ValueError with a reason a user can act on.
    """
    if isinstance(value, str):
        if value == INFINITY:
            return None
        match = _SIZE_RE.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is not a size: use bytes, or a number with a K, M, G or T suffix")
        number, unit = match[1], match[2].upper()
        if "." in number and not unit:
            raise ValueError(f"{value!r} is not a whole number of bytes")
        size = int(Decimal(number) * _SIZE_UNITS[unit])
    elif isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        raise ValueError(f"expected a size in bytes or a string such as '512M', got {type(value).__name__}")
    if size <= 0:
        raise ValueError(f"{value!r} is not a positive size")
    if size >= UINT64_MAX:
        raise ValueError(f"{value!r} is too large")
    return size


def parse_quota(value: str) -> float | None:
    """CPUs from a percentage ("150%" -> 1.5); None for "infinity"."""
    if not isinstance(value, str):
        raise ValueError(f"expected a percentage string such as '50%', got {type(value).__name__}")
    if value == INFINITY:
        return None
    match = _QUOTA_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a CPU quota: use a percentage such as '50%' (one CPU is '100%')")
    cpus = Decimal(match[1]) / 100
    if cpus <= 0:
        raise ValueError(f"{value!r} is not more than 0%")
    if cpus * _USEC_PER_SEC < 1:
        raise ValueError(f"{value!r} is too small (the smallest quota is 0.0001%)")
    if cpus * _USEC_PER_SEC >= UINT64_MAX:
        raise ValueError(f"{value!r} is too large")
    return float(cpus)


def parse_tasks(value: int | str) -> int | None:
    """A positive task (process/thread) count; None for "infinity"."""
    if value == INFINITY:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a positive integer or 'infinity'")
    if value <= 0:
        raise ValueError(f"{value!r} is not a positive number of tasks")
    if value >= UINT64_MAX:
        raise ValueError(f"{value!r} is too large")
    return value


def parse_watchdog(value: int | float | str) -> float | None:
    """Seconds from a number or a time span ("30s", "500ms", "2min", "1h"); None for
    "infinity" or "off" (no watchdog). At least MIN_WATCHDOG: a shorter one would end a
    node that is merely scheduled late on a busy machine."""
    if isinstance(value, str):
        if value.strip().lower() in (INFINITY, "off"):
            return None
        match = _SPAN_RE.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is not a time span: use a number and a unit, such as '30s', '500ms' or '2min'")
        seconds = float(Decimal(match[1]) * _SPAN_UNITS[match[2].lower()])
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"expected a time span such as '30s', got {type(value).__name__}")
    if not seconds >= MIN_WATCHDOG:  # also NaN
        shortest = f"the shortest watchdog, {MIN_WATCHDOG:g} s ('infinity' turns it off)"
        raise ValueError(f"{value!r} is shorter than {shortest}")
    if seconds * _USEC_PER_SEC >= UINT64_MAX:
        raise ValueError(f"{value!r} is too long")
    return seconds


def _int_between(value: int, low: int, high: int) -> int:
    """``value`` if it is an integer (not a bool) from ``low`` to ``high``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{value} is not between {low} and {high}")
    return value


def parse_depth(value: int) -> int:
    """Messages in flight on an edge: an integer from MIN_DEPTH to MAX_DEPTH."""
    return _int_between(value, MIN_DEPTH, MAX_DEPTH)


def parse_overflow(value: str) -> str:
    """What a full edge does: one of OVERFLOWS."""
    if not isinstance(value, str) or value not in OVERFLOWS:
        raise ValueError(f"{value!r} is not one of {', '.join(repr(o) for o in OVERFLOWS)}")
    return value


def parse_spin(value: int) -> int:
    """Microseconds a consumer polls before it sleeps: 0 (the default) to MAX_SPIN_US."""
    return _int_between(value, 0, MAX_SPIN_US)


def parse_max_clients(value: int) -> int:
    """Readers of an external output attached at once: an integer from 1 to MAX_CLIENTS."""
    return _int_between(value, 1, MAX_CLIENTS)


def parse_payload(value: int | str) -> int:
    """Payload bytes, written like a size ("10M"), from MIN_PAYLOAD to MAX_PAYLOAD."""
    size = parse_size(value)
    if size is None:
        raise ValueError(f"{value!r} is not allowed: payload memory is set aside up front, give a size")
    if size < MIN_PAYLOAD:
        raise ValueError(f"{value!r} is less than the smallest max_payload, 1K")
    if size > MAX_PAYLOAD:
        raise ValueError(f"{value!r} is more than the largest max_payload, 1G")
    return size
