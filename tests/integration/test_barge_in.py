"""Barge-in in real units, without models: a flush raised by the client (noded.connect's
``Session.interrupt``) goes through a node that ignores flushes (passthrough) to one that
is writing a long reply (drip), which stops; what was queued behind that reply is
dropped, and the flush comes back to the client as an "interrupted" event."""

from __future__ import annotations

import time
from typing import Any

import noded
from noded.contract.flush import decode_flush

from .conftest import noded_units

PIPELINE = """
inputs = ["x"]
outputs = ["drip.out"]

[dataplane]
depth = 8

[[nodes]]
id = "pass"
class = "passthrough"
inputs = ["input.x"]

[[nodes]]
id = "drip"
class = "drip"
params = { count = 100, interval = 0.05 }
inputs = ["pass.out"]
"""


def test_a_flush_from_the_client_interrupts_the_reply_and_comes_back_as_an_event() -> None:
    with noded.connect() as nd:
        with nd.create(PIPELINE, timeout=60) as session:
            sid = session.sid
            session.feed("x", {"label": "A"})
            outputs = session.outputs(timeout=30)
            first = next(outputs)
            assert first.json == {"label": "A", "i": 0}  # drip is writing A: 100 x 50 ms
            del first
            session.feed("x", {"label": "B"})  # queued behind A: stale once the flush comes
            session.feed("x", {"label": "C"})
            sent_ns = time.monotonic_ns()
            session.interrupt("x", reason="test")
            session.feed("x", {"label": "D"}, end=True)  # after the flush: answered in full
            got: list[Any] = [{"label": "A", "i": 0}]
            for msg in outputs:
                if msg.flush:
                    flush = decode_flush(msg.data)
                    got.append(("interrupted", msg.source, flush.origin, flush.reason, msg.timestamp_ns))
                else:
                    got.append(msg.json)
                del msg
            assert session.all_ended
        assert noded_units(f"noded-{sid}*") == []
    events = [g for g in got if isinstance(g, tuple)]
    assert len(events) == 1, events
    _, source, origin, reason, stamp = events[0]
    assert (source, origin, reason) == ("drip.out", "client", "test") and stamp >= sent_ns
    i = got.index({"flushed": "A"})  # drip's on_flush output, right before the flush
    assert got[i + 1] == events[0]
    a = [g["i"] for g in got[:i]]
    assert a == list(range(len(a))) and len(a) < 99, "A was not interrupted"
    assert not [g for g in got if isinstance(g, dict) and g.get("label") in ("B", "C")], "stale messages went on"
    assert got[i + 2 :] == [{"label": "D", "i": k} for k in range(100)]
