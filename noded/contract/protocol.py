"""The control protocol: JSON lines over the Unix socket, typed with msgspec.

A client writes one request per line: a JSON object whose ``op`` names the operation,
with an ``id`` and the operation's own fields, e.g. ``{"op": "show", "id": 3, "sid":
"3f2a9c1d"}`` (``Request`` is the tagged union of one struct per operation; unknown
fields are refused). The daemon answers each with one ``Reply`` carrying the same
``id``; after a ``watch`` request it also streams ``Event`` lines for the watched
session(s) until the client hangs up. A ``watch`` with ``stats`` (true, or a period in
seconds) also gets each watched live session with its figures (``SessionInfo.stats``,
``noded.daemon.stats``) once a period; ``show`` always has them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from noded.contract.states import NodeState, SessionState
from noded.errors import NodedError

PROTOCOL_VERSION = 2  # 2: each operation's fields at the top level, no "args" object
MAX_LINE = 4 * 1024 * 1024  # a request may carry a whole pipeline file


class NodeInfo(msgspec.Struct, kw_only=True):
    id: str
    cls: str
    unit: str
    state: NodeState
    since: float  # epoch seconds the node entered `state`
    progress: float | None = None
    status_text: str = ""
    main_pid: int | None = None
    init_started: float | None = None
    init_seconds: float | None = None
    error: str | None = None
    grants: list[str] = []  # beyond the default sandbox: "device=/dev/...", "cpus=2-3" (nodectl session show)


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
    # Per consumer, for a port with a lossy edge (overflow = "drop_oldest"); empty when
    # every edge blocks: whether the edge is lossy, and the messages it dropped.
    drop_oldest: list[bool] = []
    dropped: list[int] = []
    waiting_for: str = ""  # while waiting: who holds the edge full, or who is not connected


class ClientStats(msgspec.Struct, kw_only=True):
    """A client attached to the session's data plane now."""

    pid: int
    feeds: str = ""  # the external input it feeds, or ""
    reader_slot: int = -1  # its reader slot of the external outputs, or -1


class SessionStats(msgspec.Struct, kw_only=True):
    at: float  # epoch seconds of the reading
    nodes: list[NodeStats] = []
    channels: list[ChannelStats] = []
    clients: list[ClientStats] = []


class SessionInfo(msgspec.Struct, kw_only=True):
    sid: str
    pipeline: str
    state: SessionState
    created: float
    slice: str
    ready_seconds: float | None = None
    nodes: list[NodeInfo] = []
    failure: Failure | None = None
    stats: SessionStats | None = None  # with `show`, and `watch` with stats=true (noded.daemon.stats)
    owner: str = ""  # the user who created it: only they (and root) may stop, feed or read it
    run_as: str = ""  # the user its nodes run as


class ErrorInfo(msgspec.Struct, kw_only=True):
    code: str
    message: str
    hint: str | None = None


# -- requests: one struct per operation ------------------------------------------------


class _Op(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="op"):
    id: int = 0


class Status(_Op, tag="status"):
    """The daemon's version, protocol, live sessions, limits and configuration."""


class Create(_Op, tag="create"):
    """Start a session of the pipeline in ``text`` (``filename`` names it in messages);
    ``watch``: this connection then gets the session's events."""

    text: str
    filename: str
    watch: bool = False
    # What relative code paths in ``text`` start at: the pipeline file's folder, or the
    # client's current directory for a pipeline from standard input (absolute).
    directory: str | None = None


class List(_Op, tag="list"):
    """Every session: live, and recently ended."""


class Show(_Op, tag="show"):
    """One session, with its figures."""

    sid: str


class Stop(_Op, tag="stop"):
    """Stop a session; ``wait``: answer once every unit is gone."""

    sid: str
    wait: bool = False


class Watch(_Op, tag="watch"):
    """Events of session ``sid`` (None: of every session) on this connection; ``stats``:
    with its figures once a period (true: every second, or 0.2 to 60 seconds)."""

    sid: str | None = None
    stats: bool | float | None = None


class Attach(_Op, tag="attach"):
    """The client's side of the session's data plane (its external inputs and outputs)."""

    sid: str


Request = Status | Create | List | Show | Stop | Watch | Attach
OPERATIONS: dict[str, type[_Op]] = {
    str(t.__struct_config__.tag): t for t in (Status, Create, List, Show, Stop, Watch, Attach)
}


class BadRequest(NodedError):
    """A request the daemon cannot carry out as written."""

    code = "bad_request"


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
_REQUEST_HINT = 'one JSON object per line: {"op": OPERATION, "id": N, ...its fields}; operations: ' + ", ".join(
    OPERATIONS
)


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj) + b"\n"


def request(op: str, id: int = 0, **fields: Any) -> Request:
    """The request of operation ``op`` with ``fields``; BadRequest if that is not one."""
    return _checked(lambda: msgspec.convert({"op": op, "id": id, **fields}, Request), {"op": op})


def decode_request(line: bytes) -> Request:
    """One request line; BadRequest saying what is wrong with it."""
    return _checked(lambda: _request_decoder.decode(line), line)


def _checked(decode: Any, raw: Any) -> Request:
    try:
        return decode()
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
        # msgspec lets invalid UTF-8 inside a string through as UnicodeDecodeError, and
        # nesting too deep while it looks for "op" as RecursionError.
        op = _op_of(raw)
        if isinstance(op, str) and op not in OPERATIONS:
            raise BadRequest(f"unknown operation {op!r}", hint=f"operations: {', '.join(OPERATIONS)}") from None
        what = f"{op!r} request" if isinstance(op, str) else "request"
        raise BadRequest(f"malformed {what}: {exc}", hint=_REQUEST_HINT) from exc


def _op_of(raw: Any) -> Any:
    return _field_of(raw, "op")


def request_id(line: bytes) -> int:
    """The ``id`` of a request line that may be malformed (0 if it has none), so that
    its error reply reaches the client that waits for it."""
    value = _field_of(line, "id")
    return value if type(value) is int and -(2**63) <= value < 2**63 else 0


def _field_of(raw: Any, name: str) -> Any:
    if isinstance(raw, bytes):
        try:
            raw = msgspec.json.decode(raw)
        except Exception:  # anything at all: malformed, too deep, bad UTF-8
            return None
    return raw.get(name) if isinstance(raw, dict) else None


def decode_message(line: bytes) -> Message:
    return _message_decoder.decode(line)


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
