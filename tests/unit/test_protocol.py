"""The control protocol's requests: one struct per operation, a tagged union on "op"."""

from __future__ import annotations

import json

import msgspec
import pytest

from noded.contract.protocol import (
    OPERATIONS,
    PROTOCOL_VERSION,
    Attach,
    BadRequest,
    Create,
    Event,
    List,
    NodeInfo,
    Reply,
    Request,
    SessionInfo,
    Show,
    Status,
    Stop,
    Watch,
    decode_message,
    decode_request,
    encode,
    request,
    request_id,
)
from noded.contract.states import NodeState, SessionState

EXAMPLES: list[Request] = [
    Status(id=1),
    Create(id=2, text='[[nodes]]\nid = "a"\nclass = "passthrough"\n', filename="p.toml", watch=True),
    List(id=3),
    Show(id=4, sid="3f2a9c1d"),
    Stop(id=5, sid="3f2a9c1d", wait=True),
    Watch(id=6),
    Watch(id=7, sid="3f2a9c1d", stats=0.5),
    Watch(id=8, stats=True),
    Attach(id=9, sid="3f2a9c1d"),
]


@pytest.mark.parametrize("req", EXAMPLES, ids=lambda r: type(r).__name__)
def test_every_request_round_trips_through_its_line(req: Request) -> None:
    line = encode(req)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_request(line) == req
    wire = json.loads(line)
    assert wire["op"] == type(req).__struct_config__.tag and wire["id"] == req.id
    assert "args" not in wire  # the fields are the request's own (protocol 2)


def test_every_operation_has_one_struct() -> None:
    assert set(OPERATIONS) == {"status", "create", "list", "show", "stop", "watch", "attach"}
    assert {type(r) for r in EXAMPLES} == set(OPERATIONS.values())
    assert PROTOCOL_VERSION == 2


def test_request_by_name_is_the_typed_struct() -> None:
    assert request("show", sid="ab") == Show(sid="ab")
    assert request("stop", 4, sid="ab", wait=True) == Stop(id=4, sid="ab", wait=True)
    assert request("watch", stats=2) == Watch(stats=2.0)


def _refused(line: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        decode_request(line)
    assert caught.value.code == "bad_request"
    return caught.value


def test_an_unknown_operation_is_a_bad_request_naming_it_and_the_known_ones() -> None:
    exc = _refused(b'{"op": "reboot", "id": 1}')
    assert exc.message == "unknown operation 'reboot'"
    assert exc.hint is not None and all(op in exc.hint for op in OPERATIONS)
    with pytest.raises(BadRequest, match="unknown operation 'launch'"):
        request("launch", sid="x")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b'{"op": "show", "id": 1}', "missing required field `sid`"),
        (b'{"op": "show", "id": 1, "sid": 7}', "Expected `str`"),
        (b'{"op": "show", "id": 1, "args": {"sid": "ab"}}', "unknown field `args`"),  # protocol 1
        (b'{"op": "create", "text": "x", "filename": "y", "watch": "yes"}', "Expected `bool`"),
        (b'{"id": 1}', "op"),
        (b'{"op": 5}', "op"),
        (b"[1, 2]", "Expected `object`"),
        (b"not json", "malformed"),
        (b'{"a":' * 100_000, "malformed"),  # msgspec recurses looking for "op"
        (b'{"op": "show", "sid": "\xff"}', "malformed"),
    ],
)
def test_a_malformed_request_is_a_bad_request_saying_what_is_wrong(line: bytes, says: str) -> None:
    exc = _refused(line)
    assert says in exc.message, exc.message
    assert exc.hint is not None and '"op"' in exc.hint


def test_states_are_the_enums_on_both_sides() -> None:
    info = SessionInfo(
        sid="3f2a9c1d",
        pipeline="p",
        state=SessionState.READY,
        created=1.0,
        slice="noded-3f2a9c1d.slice",
        nodes=[NodeInfo(id="a", cls="passthrough", unit="u", state=NodeState.PROCESSING, since=1.0)],
    )
    line = encode(Event(session=info))
    assert json.loads(line)["session"]["state"] == "ready"  # the wire keeps the plain values
    got = decode_message(line)
    assert isinstance(got, Event)
    assert got.session.state is SessionState.READY and got.session.nodes[0].state is NodeState.PROCESSING
    with pytest.raises(msgspec.ValidationError):
        decode_message(line.replace(b'"ready"', b'"sleepy"'))
    reply = decode_message(encode(Reply(id=3, ok=True, result={"x": 1})))
    assert isinstance(reply, Reply) and reply.result == {"x": 1}


def test_the_error_reply_of_a_malformed_request_carries_its_id_when_it_has_one() -> None:
    assert request_id(b'{"op": "reboot", "id": 12}') == 12
    assert request_id(b'{"op": "show", "id": 5, "sid": 7}') == 5
    assert request_id(b'{"id": "5"}') == 0
    assert request_id(b'{"id": true}') == 0
    assert request_id(b'{"id": 99999999999999999999}') == 0
    assert request_id(b"[" * 100_000) == 0
    assert request_id(b"\xff") == 0
