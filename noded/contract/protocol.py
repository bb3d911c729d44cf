"""The control protocol: JSON lines over the Unix socket, typed with msgspec.

A client writes one ``Request`` per line. The daemon answers each with one
``Reply`` carrying the same ``id``; after a ``watch`` request it also streams
``Event`` lines for the watched session(s) until the client hangs up. A ``watch`` with
``stats`` (true, or a period in seconds) also gets each watched live session with its
figures (``SessionInfo.stats``, ``noded.daemon.stats``) once a period; ``show`` always has them.
"""

from __future__ import annotations

from typing import Any

import msgspec

PROTOCOL_VERSION = 1
MAX_LINE = 4 * 1024 * 1024  # a request may carry a whole pipeline file


class NodeInfo(msgspec.Struct, kw_only=True):
    id: str
    cls: str
    unit: str
    state: str
    since: float  # epoch seconds the node entered `state`
    progress: float | None = None
    status_text: str = ""
    main_pid: int | None = None
    init_started: float | None = None
    init_seconds: float | None = None
    error: str | None = None


class Failure(msgspec.Struct, kw_only=True):
    node: str
    reason: str
    result: str = ""
    exit_status: int | None = None
    signal: str | None = None
    status_text: str = ""
    journal: list[str] = []


class NodeStats(msgspec.Struct, kw_only=True):
    """A node's live figures (noded.daemon.stats): the unit's cgroup as systemd reports it,
    and the worker's counters (noded.contract.stats). None: not known (yet)."""

    id: str
    state: str  # as `nodectl session show` shows it: the worker's processing/idle when up
    state_seconds: float  # time in that state
    memory_bytes: int | None = None  # MemoryCurrent
    memory_limit: int | None = None  # MemoryMax / MemoryLimit (None: no limit)
    cpu_seconds: float | None = None  # CPUUsageNSec, or the cgroup's cpu.stat (cpu_source)
    cpu_source: str | None = None  # "systemd" or "cgroup2"
    tasks: int | None = None  # TasksCurrent
    messages_in: int | None = None
    messages_out: int | None = None
    errors: int | None = None  # process() failures
    rejected: int | None = None  # malformed messages dropped
    busy_seconds: float | None = None  # total time processing, less waits for credits
    blocked_on: list[str] = []  # output ports whose send waits for a consumer now


class ChannelStats(msgspec.Struct, kw_only=True):
    """One iceoryx2 publish-subscribe service: a producer's port and its consumers."""

    name: str  # "node.port" or "input.<name>"
    service: str
    producer: str
    consumers: list[str]
    depth: int  # messages in flight per consumer
    slice_bytes: int  # largest sample: header + max payload
    occupancy: list[int] = []  # per consumer: sent and not yet released
    full: bool = False  # some consumer holds `depth`: the producer cannot send
    publishers: int = 0
    subscribers: int = 0
    messages: int | None = None
    bytes: int | None = None
    blocked_seconds: float | None = None  # total time the producer waited on this port
    blocked_now_seconds: float = 0.0  # the wait in progress (0: not waiting)


class SessionStats(msgspec.Struct, kw_only=True):
    at: float  # epoch seconds of the reading
    nodes: list[NodeStats] = []
    channels: list[ChannelStats] = []


class SessionInfo(msgspec.Struct, kw_only=True):
    sid: str
    pipeline: str
    state: str
    created: float
    slice: str
    ready_seconds: float | None = None
    nodes: list[NodeInfo] = []
    failure: Failure | None = None
    stats: SessionStats | None = None  # with `show`, and `watch` with stats=true (noded.daemon.stats)


class ErrorInfo(msgspec.Struct, kw_only=True):
    code: str
    message: str
    hint: str | None = None


class Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    op: str
    id: int = 0
    args: dict[str, Any] = {}


class Reply(msgspec.Struct, kw_only=True, tag="reply", tag_field="type"):
    id: int
    ok: bool
    result: Any = None
    error: ErrorInfo | None = None


class Event(msgspec.Struct, kw_only=True, tag="event", tag_field="type"):
    session: SessionInfo


Message = Reply | Event

_encoder = msgspec.json.Encoder()
_message_decoder = msgspec.json.Decoder(Message)
_request_decoder = msgspec.json.Decoder(Request)


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj) + b"\n"


def decode_request(line: bytes) -> Request:
    return _request_decoder.decode(line)


def decode_message(line: bytes) -> Message:
    return _message_decoder.decode(line)


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
