"""Hop latency, end to end in one process: Endpoint.send stamps sent_ns on every path,
Endpoint._accept counts each received message in its input's histogram in the stats
block, and the daemon's reader (noded.contract.stats, noded.daemon.stats) and the metrics see it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from noded.contract.protocol import NodeInfo, SessionInfo
from noded.contract.stats import HOP_BOUNDS_NS, HOP_SUM_NS, read_stats, stats_path
from noded.contract.stats import HOP_BUCKETS as SLOT_BUCKETS
from noded.contract.wire import Kind
from noded.daemon.metrics import HOP_BUCKETS, Metrics, hop_latency_from_edges
from noded.daemon.stats import channel_hops
from tests.unit.dataplane_support import Session, receive


def send_every_way(src, port: str) -> int:
    """Sends on ``port`` through the template, patched and general paths; returns how many."""
    arr = src.loan(port, (2, 3), np.float32, kind=Kind.AUDIO)  # template path
    arr[...] = 1
    src.send(port, arr)
    src.send(port, np.arange(4, dtype=np.int16))  # copied: the patched path
    src.send(port, "text")
    loaned = src.loan(port, 4, np.uint8, seq=100)
    loaned[:] = 9
    src.send(port, loaned, channels=2)  # fields at send: the general path
    return 4


@pytest.mark.parametrize("verify", [False, True])
def test_each_received_message_is_one_sample_of_its_inputs_histogram(
    session: Session, tmp_path: Path, verify: bool
) -> None:
    planes = session.plan([("src.out", "sink"), ("src.aux", "sink")], depth=8, verify=verify)
    src = session.endpoint("src", planes["src"])
    path = stats_path(str(tmp_path), "sink")
    sink = session.endpoint("sink", planes["sink"], stats_path=path)
    before = time.monotonic_ns()
    n_out = send_every_way(src, "out")
    src.send("aux", "one")
    msgs = [receive(sink) for _ in range(n_out + 1)]
    after = time.monotonic_ns()
    assert all(before <= m.header.sent_ns <= after for m in msgs)
    snap = read_stats(path)
    assert snap is not None
    out, aux = snap.inputs
    assert len(out.hop_buckets) == len(aux.hop_buckets) == SLOT_BUCKETS == len(HOP_BOUNDS_NS) + 1
    assert (out.hop_count, aux.hop_count) == (n_out, 1) == (out.received, aux.received)
    assert out.hop_sum_ns > 0 and aux.hop_sum_ns > 0
    # Each hop is at most the whole exchange: the sum is bounded by what the clock saw.
    assert out.hop_sum_ns <= n_out * (after - before)
    del msgs


def test_the_daemon_sums_a_channels_consumers_and_the_metrics_export_it(session: Session, tmp_path: Path) -> None:
    planes = session.plan([("src.out", "a"), ("src.out", "b"), ("a.out", "b")], depth=8)
    paths = {name: stats_path(str(tmp_path), name) for name in planes}
    src = session.endpoint("src", planes["src"], stats_path=paths["src"])
    a = session.endpoint("a", planes["a"], stats_path=paths["a"])
    b = session.endpoint("b", planes["b"], stats_path=paths["b"])
    for i in range(3):
        src.send("out", f"m{i}")
    got = [receive(a) for _ in range(3)] + [receive(b) for _ in range(3)]
    del got
    snaps = {name: read_stats(p) for name, p in paths.items()}
    hops = {e.edge: e for e in channel_hops(planes, snaps)}
    assert set(hops) == {"src.out", "a.out"}
    assert hops["src.out"].count == 6  # three messages, two consumers
    assert hops["src.out"].sum_ns == sum(snaps[n].inputs[0].hop_sum_ns for n in ("a", "b")) > 0
    assert hops["a.out"].count == 0 and hops["a.out"].sum_ns == 0  # nothing sent on it

    m = Metrics(per_session=True)
    m.on_session(
        SessionInfo(
            sid="s1",
            pipeline="p",
            state="ready",
            created=0.0,
            slice="s",
            nodes=[NodeInfo(id="a", cls="passthrough", unit="u", state="ready", since=0.0)],
        )
    )
    m.update_hop_latency("s1", hop_latency_from_edges(hops.values()))
    text = m.text().decode()
    assert 'noded_hop_latency_seconds_count{edge="src.out",pipeline="p",session="s1"} 6.0' in text
    assert 'noded_hop_latency_seconds_bucket{edge="src.out",le="+Inf",pipeline="p",session="s1"} 6.0' in text
    assert 'noded_hop_latency_seconds_count{edge="a.out",pipeline="p",session="s1"} 0.0' in text
    assert len(HOP_BUCKETS) == SLOT_BUCKETS


def test_hops_of_a_foreign_clock_neither_break_nor_wrap_the_histogram(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from noded.dataplane import endpoint as dataplane

    planes = session.plan([("src.out", "sink")], depth=8)
    src = session.endpoint("src", planes["src"])
    path = stats_path(str(tmp_path), "sink")
    sink = session.endpoint("sink", planes["sink"], stats_path=path)
    real = time.monotonic_ns
    for stamp in (1, real() + 10**15):  # long ago (+Inf), in the future (counted as 0)
        monkeypatch.setattr(dataplane, "_monotonic_ns", lambda stamp=stamp: stamp)
        src.send("out", "x")
        monkeypatch.setattr(dataplane, "_monotonic_ns", real)
        assert receive(sink).header.sent_ns == stamp
    hop = read_stats(path).inputs[0]
    assert hop.hop_buckets[0] == 1 and hop.hop_buckets[-1] == 1 and hop.hop_count == 2
    # A sum that would pass int64 stays full instead of raising in the receive path.
    sink.block.slots[sink.block.hop_base(0) + HOP_SUM_NS] = (1 << 63) - 10
    src.send("out", "y")
    assert receive(sink).text == "y"
    hop = read_stats(path).inputs[0]
    assert hop.hop_sum_ns == (1 << 63) - 1 and hop.hop_count == 3
