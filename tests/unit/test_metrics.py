"""noded.daemon.metrics from session infos and edge statistics (pure: no daemon, no HTTP)."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from noded.contract.protocol import Failure, NodeInfo, SessionInfo
from noded.daemon.metrics import (
    HOP_BUCKETS,
    EdgeStats,
    HopLatency,
    Metrics,
    NodeFigures,
    crash_reason,
    hop_latency_from_edges,
    refresh_from,
)


def node(nid: str, state: str, init: float | None = None) -> NodeInfo:
    return NodeInfo(id=nid, cls="passthrough", unit=f"u-{nid}", state=state, since=0.0, init_seconds=init)


def session(
    sid: str, state: str, *nodes: NodeInfo, ready: float | None = None, failure: Failure | None = None
) -> SessionInfo:
    return SessionInfo(
        sid=sid,
        pipeline="p",
        state=state,
        created=0.0,
        slice="s",
        nodes=list(nodes),
        ready_seconds=ready,
        failure=failure,
    )


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.text().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float:
    return samples(m)[(name, tuple(sorted(labels.items())))]


def test_sessions_and_nodes_by_state_init_and_ready_durations() -> None:
    m = Metrics(max_session_processes=4)
    m.on_session(session("a", "creating", node("x", "initializing"), node("y", "idle")))
    assert value(m, "noded_sessions", pipeline="p", state="creating") == 1
    assert (
        value(m, "noded_nodes", pipeline="p", state="initializing") == 1
        and value(m, "noded_nodes", pipeline="p", state="idle") == 1
    )
    m.on_session(session("a", "ready", node("x", "ready", 0.5), node("y", "ready", 2.0), ready=2.1))
    m.on_session(session("a", "ready", node("x", "processing", 0.5), node("y", "ready", 2.0), ready=2.1))
    assert (
        value(m, "noded_sessions", pipeline="p", state="creating") == 0
        and value(m, "noded_sessions", pipeline="p", state="ready") == 1
    )
    assert (
        value(m, "noded_nodes", pipeline="p", state="processing") == 1
        and value(m, "noded_nodes", pipeline="p", state="ready") == 1
    )
    assert value(m, "noded_node_init_seconds_count", pipeline="p") == 2  # each node once, however often published
    assert value(m, "noded_node_init_seconds_sum", pipeline="p") == 2.5
    assert value(m, "noded_node_init_seconds_bucket", pipeline="p", le="1.0") == 1
    assert value(m, "noded_session_ready_seconds_count", pipeline="p") == 1
    assert value(m, "noded_sessions_started_total", pipeline="p") == 1
    assert value(m, "noded_max_session_processes") == 4

    m.on_session(session("a", "stopping", node("x", "stopping", 0.5), node("y", "stopped", 2.0), ready=2.1))
    m.on_session(session("a", "stopped", node("x", "stopped", 0.5), node("y", "stopped", 2.0), ready=2.1))
    m.on_session(session("a", "stopped", node("x", "stopped", 0.5), node("y", "stopped", 2.0), ready=2.1))
    assert (
        value(m, "noded_sessions", pipeline="p", state="ready") == 0
        and value(m, "noded_nodes", pipeline="p", state="stopped") == 0
    )
    assert value(m, "noded_sessions_ended_total", pipeline="p", state="stopped") == 1
    assert value(m, "noded_sessions_started_total", pipeline="p") == 1


def test_crashes_by_reason_counted_once_per_session() -> None:
    m = Metrics()
    oom = Failure(node="x", reason="ran out of memory (memory_max 64 MiB): ... [Result=signal]", result="signal")
    m.on_session(session("a", "creating", node("x", "initializing")))
    for state in ("stopping", "stopping", "failed", "failed"):
        m.on_session(session("a", state, node("x", "error"), failure=oom))
    m.on_session(session("b", "creating", node("x", "initializing")))
    m.on_session(
        session(
            "b",
            "failed",
            node("x", "error"),
            failure=Failure(node="x", reason="exited with status 3", result="exit-code", exit_status=3),
        )
    )
    assert value(m, "noded_node_crashes_total", pipeline="p", reason="oom-kill") == 1
    assert value(m, "noded_node_crashes_total", pipeline="p", reason="exit-code") == 1
    assert value(m, "noded_node_crashes_total", pipeline="p", reason="signal") == 0
    assert value(m, "noded_sessions_ended_total", pipeline="p", state="failed") == 2
    assert crash_reason(Failure(node="x", reason="?", result="weird")) == "other"


def test_edge_counters_and_hop_latency_of_live_sessions_only() -> None:
    m = Metrics(per_session=True)
    m.on_session(session("a", "ready", node("x", "ready")))
    m.update_edges("a", [EdgeStats(edge="x.out", messages=10, bytes=10240, blocked_seconds=0.25)])
    m.update_hop_latency(
        "a", [HopLatency(edge="x.out", sum_seconds=0.004, buckets=((250e-6, 4), (1e-3, 9), (float("inf"), 10)))]
    )
    m.update_edges("zzz", [EdgeStats(edge="q.out", messages=1, bytes=1, blocked_seconds=0)])
    labels = {"pipeline": "p", "session": "a", "edge": "x.out"}
    assert value(m, "noded_edge_messages_total", **labels) == 10
    assert value(m, "noded_edge_bytes_total", **labels) == 10240
    assert value(m, "noded_edge_blocked_seconds_total", **labels) == 0.25
    assert value(m, "noded_hop_latency_seconds_bucket", le="0.001", **labels) == 9
    assert value(m, "noded_hop_latency_seconds_count", **labels) == 10
    assert not any(dict(k[1]).get("session") == "zzz" for k in samples(m))
    m.on_session(session("a", "stopped", node("x", "stopped")))
    assert not any(dict(k[1]).get("session") == "a" for k in samples(m))


@dataclass
class Channel:  # the fields of noded.contract.protocol.ChannelStats the metrics read
    name: str
    messages: int | None
    bytes: int | None
    blocked_seconds: float | None


@dataclass
class NodeFig:  # the fields of noded.contract.protocol.NodeStats the metrics read
    id: str
    memory_bytes: int | None
    cpu_seconds: float | None
    messages_in: int | None
    messages_out: int | None
    errors: int | None


@dataclass
class Figures:
    nodes: list[NodeFig]
    channels: list[Channel]


def test_a_scrape_refreshes_figures_on_the_daemon_loop_first() -> None:
    m = Metrics(per_session=True)
    m.on_session(session("a", "ready", node("x", "ready")))
    m.on_session(session("b", "ready", node("x", "ready")))
    m.on_session(session("b", "stopped", node("x", "stopped")))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    calls: list[str] = []

    def read_hops(sess: str) -> list[Hops]:
        return [Hops("x.out", (len(calls), 0), 1000 * len(calls), (1_000_000,))]

    def read(sess: str) -> Figures:
        calls.append(threading.current_thread().name)
        return Figures(
            nodes=[
                NodeFig("x", 2**20, 1.5, 5 * len(calls), 5 * len(calls), 1),
                NodeFig("y", None, None, None, None, None),
            ],
            channels=[Channel("x.out", 5 * len(calls), 500, 0.5), Channel("input.audio", None, None, None)],
        )

    try:
        m.set_refresh(loop, lambda: refresh_from(m, {"a": "a", "b": "b"}, read, read_hops))
        assert value(m, "noded_edge_messages_total", pipeline="p", session="a", edge="x.out") == 5
        assert value(m, "noded_edge_messages_total", pipeline="p", session="a", edge="x.out") == 10
        assert calls == [thread.name, thread.name]  # on the loop's thread, live sessions only, once per scrape
        got = samples(m)
        assert not any(dict(k[1]).get("edge") == "input.audio" for k in got)
        assert value(m, "noded_node_memory_bytes", pipeline="p", session="a", node="x") == 2**20
        assert value(m, "noded_node_cpu_seconds_total", pipeline="p", session="a", node="x") == 1.5
        assert value(m, "noded_node_errors_total", pipeline="p", session="a", node="x") == 1
        assert not any(dict(k[1]).get("node") == "y" for k in got)  # unknown figures are left out
        assert got[("noded_hop_latency_seconds_count", (("edge", "x.out"), ("pipeline", "p"), ("session", "a")))] == 3
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@dataclass
class Hops:  # the fields of noded.daemon.stats.EdgeHops the metrics read
    edge: str
    buckets: tuple[int, ...]
    sum_ns: int
    bounds_ns: tuple[int, ...]


def test_hop_histograms_are_exported_cumulative_in_seconds() -> None:
    (h,) = hop_latency_from_edges([Hops("x.out", (1, 0, 2, 3), 7_500_000, (50_000, 100_000, 1_000_000))])
    assert h.edge == "x.out" and h.sum_seconds == 0.0075
    assert h.buckets == ((50e-6, 1), (100e-6, 1), (1e-3, 3), (float("inf"), 6))
    m = Metrics(per_session=True)
    m.on_session(session("a", "ready", node("x", "ready")))
    m.update_hop_latency("a", [h])
    labels = {"pipeline": "p", "session": "a", "edge": "x.out"}
    assert value(m, "noded_hop_latency_seconds_bucket", le="5e-05", **labels) == 1
    assert value(m, "noded_hop_latency_seconds_bucket", le="0.001", **labels) == 3
    assert value(m, "noded_hop_latency_seconds_bucket", le="+Inf", **labels) == 6
    assert value(m, "noded_hop_latency_seconds_count", **labels) == 6
    assert value(m, "noded_hop_latency_seconds_sum", **labels) == 0.0075
    assert HOP_BUCKETS[-1] == float("inf") and list(HOP_BUCKETS) == sorted(HOP_BUCKETS)


def test_an_unset_limit_is_left_out_not_zero() -> None:
    m = Metrics()
    assert not any(name == "noded_max_session_processes" for name, _ in samples(m))
    m.set_limit(6)
    assert value(m, "noded_max_session_processes") == 6
    m.set_limit(None)
    assert not any(name == "noded_max_session_processes" for name, _ in samples(m))


def exposition(m: Metrics) -> list:
    return list(text_string_to_metric_families(m.text().decode()))


def test_the_exposition_follows_prometheus_conventions() -> None:
    """Names, types and labels as Prometheus's naming guide has them; checked on a scrape
    with every family fed, so a new family that breaks them fails here."""
    m = Metrics(max_session_processes=3, per_session=True)
    m.on_session(session("a", "ready", node("x", "ready", 0.5), ready=0.6))
    m.update_edges("a", [EdgeStats(edge="x.out", messages=1, bytes=2, blocked_seconds=0.0)])
    m.update_hop_latency("a", [HopLatency(edge="x.out", sum_seconds=0.001, buckets=((float("inf"), 1),))])
    m.update_nodes(
        "a", [NodeFigures(node="x", memory_bytes=1, cpu_seconds=1.0, messages_in=1, messages_out=1, errors=0)]
    )
    families = {f.name: f for f in exposition(m)}
    names = {s.name for f in families.values() for s in f.samples}
    assert not [n for n in names if n.endswith("_created")]  # no _created series
    assert "noded_sessions_started_total" in names and not any("sessions_created" in n for n in names)
    info = families["noded_build_info"]
    assert info.type == "gauge" and info.samples[0].value == 1 and "version" in info.samples[0].labels
    for name, family in families.items():
        if not name.startswith("noded_"):
            continue
        assert re.fullmatch(r"noded_[a-z0-9_]+", name), name
        for s in family.samples:
            if family.type == "counter":
                assert s.name == name + "_total", s.name  # counters end in _total
            if family.type in ("counter", "gauge"):
                assert not s.name.endswith("_count"), s.name
        if name.endswith(("_seconds", "_bytes")) or family.type == "histogram":
            assert family.type != "histogram" or name.endswith("_seconds"), name
    # Session and node families carry the pipeline; per-session ones the session too.
    for name in ("noded_sessions", "noded_nodes", "noded_sessions_started", "noded_node_init_seconds"):
        assert all(s.labels.get("pipeline") == "p" for s in families[name].samples), name
    for name in ("noded_edge_messages", "noded_hop_latency_seconds", "noded_node_memory_bytes"):
        assert all(s.labels.get("session") == "a" and s.labels.get("pipeline") == "p" for s in families[name].samples)


def test_per_session_series_are_opt_in() -> None:
    m = Metrics()
    for sid in ("a", "b", "c"):
        m.on_session(session(sid, "ready", node("x", "ready", 0.5)))
        m.update_edges(sid, [EdgeStats(edge="x.out", messages=1, bytes=2, blocked_seconds=0.0)])
    labels = {k for f in exposition(m) for s in f.samples for k in s.labels}
    assert "session" not in labels  # the series do not grow with the sessions
    assert value(m, "noded_sessions", pipeline="p", state="ready") == 3
    m.set_per_session(True)
    assert value(m, "noded_edge_messages_total", pipeline="p", session="b", edge="x.out") == 1
