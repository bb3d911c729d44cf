"""noded.dataplane.channels: event-id encoding, credit arithmetic, limits, and the removal of a
session's files, including those of a SIGKILLed node (real iceoryx2, real processes)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from noded.contract.spec import MAX_CONSUMERS, MAX_PORTS, InputSpec, OutputSpec, WorkerSpec, encode_spec
from noded.dataplane.channels import (
    CREDIT_BASE,
    CREDIT_WINDOW,
    EVENT_CONNECT,
    EVENT_DATA,
    MAX_DEPTH,
    ChannelError,
    Channels,
    InPort,
    LimitReached,
    OutPort,
    credit_event_id,
    decode_credit,
    inbox_event_id_max,
    remove_session_resources,
)  # fmt: skip
from tests.unit.dataplane_support import REPO, Session


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    s = Session(tmp_path)
    yield s
    s.close()
    assert s.leftovers() == []


def test_credit_ids_round_trip_and_fit_the_producers_inbox() -> None:
    assert decode_credit(EVENT_DATA) is None and decode_credit(EVENT_CONNECT) is None
    for port, consumer, released in itertools.product(range(MAX_PORTS), range(MAX_CONSUMERS), (0, 1, 63, 64, 1000)):
        event_id = credit_event_id(port, consumer, released)
        assert decode_credit(event_id) == (port, consumer, released % CREDIT_WINDOW)
        assert event_id <= inbox_event_id_max(port + 1)  # a producer sizes its inbox by its outputs
        # ... and by the consumers of its last output: every id of a consumer fits.
        assert event_id <= inbox_event_id_max(port + 1, consumer + 1)
        if port + 1 < MAX_PORTS:
            assert event_id <= inbox_event_id_max(port + 2, 1)


def test_an_inbox_with_one_output_and_one_consumer_is_small() -> None:
    # The listener scans every id on each wake-up: 16 control ids plus one credit window.
    assert inbox_event_id_max(1, 1) == CREDIT_BASE + CREDIT_WINDOW - 1
    assert inbox_event_id_max(0, 0) == CREDIT_BASE - 1
    assert inbox_event_id_max(2, 3) == CREDIT_BASE + (MAX_CONSUMERS + 3) * CREDIT_WINDOW - 1


def out_port(session: Session, depth: int = 4, consumers: int = 2) -> OutPort:
    chan = Channels("p", session.root, session.prefix)
    session.endpoints.append(chan)  # type: ignore[arg-type]  # closed by session.close()
    names = [f"c{i}" for i in range(consumers)]
    spec = OutputSpec(
        port="out", service="p/out", consumers=names, consumer_inboxes=[f"{n}/inbox" for n in names], depth=depth
    )
    return OutPort(chan, spec, 0, 1024)


def test_credits_are_cumulative_so_merged_and_reordered_events_do_no_harm(session: Session) -> None:
    port = out_port(session, depth=4)
    assert port.blocking() == [0, 1]  # no hello yet
    port.credit(0, 0)
    port.credit(1, 0)
    assert port.blocking() == []
    port.sent = [4, 4]
    assert port.blocking() == [0, 1]  # depth in flight
    port.credit(0, 3)  # events of 1, 2 and 3 released: only the latest arrived
    port.credit(0, 1)  # an older one, after it: ignored
    assert port.released[0] == 3 and port.blocking() == [1]
    port.sent = [4 + 200, 4]  # many messages later, counts wrap modulo CREDIT_WINDOW
    port.released[0] = 200
    port.credit(0, (200 + 4) % CREDIT_WINDOW)
    assert port.released[0] == 204
    port.credit(0, 5)  # out of range, e.g. a stale or foreign id: ignored
    assert port.released[0] == 204
    port.credit(7, 0)  # no such consumer
    assert port.close() is None


@pytest.mark.parametrize("depth", [0, MAX_DEPTH + 1])
def test_depth_must_fit_the_credit_window(session: Session, depth: int) -> None:
    with pytest.raises(ChannelError, match="depth"):
        out_port(session, depth=depth)


def test_a_root_too_long_for_iceoryx2s_sockets_is_a_clear_error() -> None:
    with pytest.raises(ChannelError, match="too long") as info:
        Channels("p", "/tmp/" + "x" * 80 + "/", "noded_ab12cd34_")
    assert "len(root) + len(prefix)" in info.value.hint


CHILD = """
import sys, time
from noded.contract.spec import decode_spec
from noded.dataplane.endpoint import Endpoint
spec = decode_spec(sys.argv[1])
ep = Endpoint(spec.dataplane, spec.node)
ep.loan("out", (1000,), "uint8")  # a sample held on loan when it dies
print("up", flush=True)
time.sleep(60)
"""


def test_removing_a_session_removes_what_a_sigkilled_node_left(session: Session) -> None:
    planes = session.plan([("a.out", "b"), ("b.out", "a")])
    children = []
    for name in ("a", "b"):
        spec = encode_spec(WorkerSpec(session="t", node=name, cls="-", dataplane=planes[name]))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, spec], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)}
        )
        children.append(child)
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
    other = Path("/dev/shm") / f"nwt{uuid.uuid4().hex[:10]}_keep"  # another session's
    other.write_bytes(b"x")
    try:
        for child in children:
            child.send_signal(signal.SIGKILL)
            child.wait()
        left = session.leftovers()
        assert any(p.startswith("/dev/shm/") and p.endswith(".data") for p in left)  # the data segments
        assert any(p.startswith(session.root) for p in left)
        removed = remove_session_resources(session.root, session.prefix)
        assert sorted(removed) == left
        assert session.leftovers() == [] and not os.path.exists(session.root) and other.exists()
    finally:
        other.unlink()
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
            assert child.stdout is not None
            child.stdout.close()


def test_removal_needs_a_prefix() -> None:
    with pytest.raises(ValueError):
        remove_session_resources(tempfile.gettempdir() + "/nonexistent-root", "")


def test_iceoryx2_limits_name_the_limit_the_endpoint_and_the_service(session: Session) -> None:
    """A port planned for one consumer, read by two: iceoryx2's per-service limits are
    reached, and the error says which, for which endpoint and service."""
    producer = out_port(session, consumers=1)  # service p/out: 1 publisher, 1 subscriber, 2 nodes
    spec = InputSpec(source="p.out", service="p/out", producer_inbox="p/inbox", port_index=0, consumer_index=0)
    first = Channels("c0", session.root, session.prefix)
    session.endpoints.append(first)  # type: ignore[arg-type]
    held = InPort(first, spec, 0)
    held.connect()
    assert held.subscriber is not None
    with pytest.raises(LimitReached) as same_node:  # a second subscriber of the same node
        InPort(first, spec, 1).connect()
    assert same_node.value.message == (
        "c0: cannot subscribe to 'p/out': iceoryx2's limit on subscribers per service is reached "
        "(ExceedsMaxSupportedSubscribers)"
    )
    other = Channels("intruder", session.root, session.prefix)
    session.endpoints.append(other)  # type: ignore[arg-type]
    with pytest.raises(LimitReached) as other_node:  # a third node on a service planned for two
        InPort(other, spec, 0).connect()
    assert other_node.value.message == (
        "intruder: cannot subscribe to 'p/out': iceoryx2's limit on nodes per service is reached "
        "(ExceedsMaxNumberOfNodes)"
    )
    assert other_node.value.hint and "another process" in other_node.value.hint
    with pytest.raises(LimitReached) as publisher:  # a second producer of the same port
        out_port(session, consumers=1)
    assert publisher.value.message.startswith("p: cannot publish on 'p/out': iceoryx2's limit on "), publisher.value
    assert ", 1, is reached" in publisher.value.message or ", 2, is reached" in publisher.value.message
    held.close()
    producer.close()
