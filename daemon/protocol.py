"""The control protocol: JSON lines over the Unix socket, typed with msgspec.

A client writes one ``Request`` per line. The daemon answers each with one
``Reply`` carrying the same ``id``; after a ``watch`` request it also streams
``Event`` lines for the watched session(s) until the client hangs up.
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


class SessionInfo(msgspec.Struct, kw_only=True):
    sid: str
    pipeline: str
    state: str
    created: float
    slice: str
    ready_seconds: float | None = None
    nodes: list[NodeInfo] = []
    failure: Failure | None = None


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
