"""The credit bookkeeping of an output with clients' reader slots (noded.dataplane.channels.OutPort).

Pure logic: the port is made without its iceoryx2 service, and its counts are driven the
way the endpoint drives them (sends, credits, joins and leaves).
"""

from __future__ import annotations

from noded.contract.spec import OutputSpec
from noded.dataplane.channels import CREDIT_WINDOW, OutPort

DEPTH = 4


def port(nodes: int = 1, readers: int = 2) -> OutPort:
    consumers = [f"n{i}" for i in range(nodes)] + [f"client{k or ''}.p.out" for k in range(readers)]
    spec = OutputSpec("out", "p/out", consumers, [f"{c}/inbox" for c in consumers], DEPTH, readers=readers)
    out = OutPort.__new__(OutPort)  # no iceoryx2 service: only the bookkeeping
    n = len(consumers)
    out.spec, out.depth, out.limit = spec, DEPTH, [DEPTH] * n  # every edge blocks (no drop_oldest)
    out.hello, out.sent, out.released = [False] * n, [0] * n, [0] * n
    out.readers, out.first_reader, out.extra, out.joining_since = readers, n - readers, 0, 0.0
    return out


def send(out: OutPort) -> None:
    assert out.blocking() == []
    for i in out.targets():
        out.sent[i] += 1


def test_a_send_waits_for_the_node_consumers_and_at_least_one_reader() -> None:
    out = port()
    assert out.blocking() == [0, 1]  # node n0 not connected, no reader attached
    out.credit(0, 0)  # n0's hello
    assert out.blocking() == [1]
    out.credit(2, 0)  # a credit for a slot nobody joined: ignored
    assert out.blocking() == [1]
    assert out.join(1, True)  # reader slot 1 joins
    assert out.blocking() == [] and out.targets() == [0, 2]


def test_every_attached_reader_counts_and_a_full_one_blocks() -> None:
    out = port()
    out.credit(0, 0)
    out.join(0, True)
    out.join(1, True)
    for _ in range(DEPTH):
        send(out)
    assert out.blocking() == [0, 1, 2]
    out.credit(0, DEPTH)
    out.credit(1, DEPTH)
    assert out.blocking() == [2]  # the second reader holds every message
    out.join(1, False)  # it leaves: its credits are free at once
    assert out.blocking() == [] and out.targets() == [0, 1]
    out.credit(2, DEPTH)  # its last credit, late: ignored
    assert out.sent[2] == out.released[2] == 0


def test_a_reader_after_one_that_left_is_counted_from_zero() -> None:
    """The stall this fixes: the earlier reader's count had reached 10; the new reader's
    began at 0, so its credits were taken as stale and it stalled after `depth` messages."""
    out = port(nodes=0, readers=1)
    out.join(0, True)
    for released in range(1, 11):
        send(out)
        out.credit(0, released % CREDIT_WINDOW)
    out.join(0, False)
    out.join(0, True)  # another reader in the same slot
    for released in range(1, 3 * DEPTH):
        send(out)
        out.credit(0, released % CREDIT_WINDOW)
        assert out.blocking() == [], released


def test_what_a_joining_reader_got_before_its_join_is_in_flight_to_it() -> None:
    out = port(nodes=0, readers=2)
    out.join(0, True)
    send(out)
    out.extra += 1  # the send reached one more subscriber: a reader joining now
    out.join(1, True)
    assert (out.sent[1], out.released[1], out.extra) == (1, 0, 0)
    out.credit(1, 1)  # it releases that message: counted, not stale
    assert out.sent[1] - out.released[1] == 0
