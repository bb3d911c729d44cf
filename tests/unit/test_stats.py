"""Live counters (noded.contract.stats): the block's layout, and what real endpoints and a real
worker process write into it while data moves and waits."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from noded.contract.stats import (
    H_BUSY_NS,
    H_PROCESSED,
    H_STATE,
    H_STATE_SINCE,
    HOP_BUCKETS,
    HOP_SUM_NS,
    I_RECEIVED,
    O_BLOCKED_SINCE,
    O_SENT,
    State,
    StatsBlock,
    StatsFormatError,
    decode,
    read_stats,
    stats_path,
)  # fmt: skip
from tests.unit.dataplane_support import Session, receive


def test_a_block_reads_back_as_written(tmp_path: Path) -> None:
    path = stats_path(str(tmp_path), "n1")
    block = StatsBlock(2, 2, path)
    s = block.slots
    s[block.in_base(1) + I_RECEIVED] = 4
    s[block.hop_base(1)], s[block.hop_base(1) + HOP_BUCKETS - 1], s[block.hop_base(1) + HOP_SUM_NS] = 3, 1, 77
    s[block.out_base(1) + O_SENT] = 7
    s[H_PROCESSED] = 3
    s[H_BUSY_NS] = 1_000
    s[H_STATE_SINCE], s[H_STATE] = 5_000, State.PROCESSING
    s[block.out_base(0) + O_BLOCKED_SINCE] = 9_000
    snap = decode(path.read_bytes(), now_ns=10_000)
    assert snap.state == "processing" and snap.state_for_ns == 5_000
    assert snap.busy_ns == 6_000  # the stretch in progress counts
    assert snap.processed == 3
    assert [o.sent for o in snap.outputs] == [0, 7]
    assert snap.outputs[0].blocked_for_ns == 1_000 and snap.outputs[0].blocked_ns == 1_000
    assert snap.outputs[1].blocked_for_ns == 0
    assert len(snap.inputs) == 2 and snap.inputs[1].received == 4
    assert snap.inputs[0].hop_buckets == (0,) * HOP_BUCKETS and snap.inputs[0].hop_sum_ns == 0
    assert snap.inputs[1].hop_buckets == (3,) + (0,) * (HOP_BUCKETS - 2) + (1,)
    assert snap.inputs[1].hop_count == 4 and snap.inputs[1].hop_sum_ns == 77
    assert not list(tmp_path.glob("*.new"))
    block.remove()
    assert not path.exists() and read_stats(path) is None


def test_remove_leaves_a_newer_block_of_the_same_name(tmp_path: Path) -> None:
    path = stats_path(str(tmp_path), "client")
    old, new = StatsBlock(1, 0, path), StatsBlock(1, 0, path)
    old.remove()
    assert read_stats(path) is not None
    new.remove()
    assert not path.exists()


@pytest.mark.parametrize("data", [b"", b"\0" * 200, b"x" * 128])
def test_other_bytes_are_not_a_block(data: bytes) -> None:
    with pytest.raises(StatsFormatError):
        decode(data)


def test_a_truncated_block_is_refused(tmp_path: Path) -> None:
    path = stats_path(str(tmp_path), "n")
    block = StatsBlock(3, 3, path)
    with pytest.raises(StatsFormatError):
        decode(path.read_bytes()[:-8])
    block.remove()


def test_endpoints_count_messages_bytes_and_the_time_a_send_waits(session: Session) -> None:
    planes = session.plan([("a.out", "b")], depth=2)
    a = session.endpoint("a", planes["a"])
    b = session.endpoint("b", planes["b"])
    payload = np.zeros(1000, np.uint8)
    a.send("out", a.loan("out", (1000,), "uint8"))  # in place (the template path)
    a.send("out", payload)  # copied
    held = [receive(b), receive(b)]  # both credits are held: the next send must wait
    with pytest.raises(TimeoutError):
        a.send("out", payload, timeout=0.3)
    out = decode(bytes(a.block.slots.cast("B"))).outputs[0]
    assert out.sent == 2 and out.bytes == 2000
    assert out.blocked_ns >= 0.25e9 and out.blocked_for_ns == 0  # the wait ended
    inp = decode(bytes(b.block.slots.cast("B"))).inputs[0]
    assert (inp.received, inp.bytes, inp.released, inp.subscribed) == (2, 2000, 0, True)
    del held
    b.receive()  # flushes the releases
    assert decode(bytes(b.block.slots.cast("B"))).inputs[0].released == 2
    assert a.stats["sent"] == 2 and b.stats["received"] == 2


def test_a_worker_publishes_its_state_and_counters_and_removes_them(session: Session) -> None:
    planes = session.plan([("src.out", "slow"), ("slow.out", "sink")], depth=2)
    worker = session.worker("slow", "slow_sink", planes["slow"], {"ms": 600.0, "forward": True})
    worker.wait_ready()
    path = stats_path(session.root, "slow")
    snap = read_stats(path)
    assert snap is not None and snap.state == "ready" and snap.pid == worker.proc.pid
    assert snap.inputs[0].subscribed or snap.inputs[0].received == 0
    src, sink = session.endpoint("src", planes["src"]), session.endpoint("sink", planes["sink"])
    src.send("out", np.arange(10, dtype=np.int32))
    snap = _until(path, lambda s: s.state == "processing")
    assert snap.inputs[0].received == 1 and snap.inputs[0].bytes == 40
    msg = receive(sink)
    snap = _until(path, lambda s: s.state == "idle")
    assert snap.processed == 1 and snap.errors == 0
    assert snap.busy_ns >= 0.5e9  # it slept 600 ms on the message
    assert snap.outputs[0].sent == 1 and snap.outputs[0].bytes == 40
    del msg
    session.stop(worker)
    assert not path.exists()


def _until(path: Path, predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    """Read the block until predicate holds (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        snap = read_stats(path)
        if snap is not None and predicate(snap):
            return snap
        assert time.monotonic() < deadline, f"stats never matched: {snap}"
        time.sleep(0.01)
