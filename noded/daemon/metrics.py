"""Prometheus metrics of the daemon, served at http://<metrics_address>/metrics (opt-in).

What the daemon knows first-hand is fed by ``Metrics.on_session``, a listener of the
session manager (every published ``SessionInfo``): sessions and nodes by state, node
crashes by reason, init and ready durations. Per-edge traffic and hop latency come from
the nodes' own counters: whoever reads them calls ``update_edges(sid, [EdgeStats])``
and ``update_hop_latency(sid, [HopLatency])`` with cumulative values; the families are
defined (and documented in noded(8)) even while nothing feeds them. ``set_refresh``
registers a function the scrape runs on the daemon's loop first, so that such values
are read fresh at each scrape instead of on a timer (``edge_stats_from_channels`` turns
per-channel figures into ``EdgeStats``, ``hop_latency_from_edges`` the consumers'
histograms of ``noded.daemon.stats.session_hops`` into ``HopLatency``).

prometheus-client serves the endpoint from its own thread; the asyncio loop only sets
values, which the library guards with locks, and replaces whole per-session tuples of
edge values, which the scrape thread reads as a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from noded import __version__
from noded.contract.protocol import Failure, SessionInfo
from noded.contract.states import NodeState, SessionState
from noded.contract.stats import HOP_BOUNDS_NS
from noded.daemon.stats import session_hops
from noded.errors import NodedError

log = logging.getLogger("noded.metrics")

# Prometheus's own conventions have no `<counter>_created` series: with them on, the
# client also exported `noded_sessions_created_created`. Process-wide, and the daemon is
# the only process that imports this module.
disable_created_metrics()

ENDED = (str(SessionState.STOPPED), str(SessionState.FAILED))
INIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, float("inf"))
REFRESH_TIMEOUT = 5.0  # seconds a scrape waits for the loop to read edge figures
# The bounds (seconds) a feeder of update_hop_latency should count in, so that every
# session's histograms can be summed; 150 us is the p95 target of one hop. The workers
# count in these (noded.contract.stats.HOP_BOUNDS_NS).
HOP_BUCKETS = (*(b / 1e9 for b in HOP_BOUNDS_NS), float("inf"))


class MetricsError(NodedError):
    code = "metrics_unavailable"


@dataclass(frozen=True)
class EdgeStats:
    """Cumulative traffic of one edge of a session: a producer's output port ("node.port",
    or "input.<name>" for an external input) with all its consumers."""

    edge: str
    messages: int
    bytes: int
    blocked_seconds: float  # the producer's time waiting for credits (backpressure)
    dropped: int = 0  # messages its lossy edges (overflow = "drop_oldest") dropped, all consumers


@dataclass(frozen=True)
class HopLatency:
    """A cumulative histogram of one edge's hop latency (the producer's send to the consumer accepting it)."""

    edge: str
    buckets: tuple[tuple[float, int], ...]  # (upper bound in seconds, cumulative count), ending with +Inf;
    # the bounds of HOP_BUCKETS
    sum_seconds: float


def crash_reason(failure: Failure) -> str:
    """A small fixed set of label values: systemd's Result=, with OOM named even under
    cgroup v1 (where systemd sees a plain SIGKILL and the daemon finds the OOM itself)."""
    if "ran out of memory" in failure.reason or failure.result == "oom-kill":
        return "oom-kill"
    if failure.result in ("exit-code", "signal", "core-dump", "timeout", "watchdog", "start-limit-hit", "resources"):
        return failure.result
    return "other"


@dataclass(frozen=True)
class NodeFigures:
    """One node's figures: its unit's cgroup and its worker's counters (None: unknown)."""

    node: str
    memory_bytes: int | None = None
    cpu_seconds: float | None = None
    messages_in: int | None = None
    messages_out: int | None = None
    errors: int | None = None  # messages whose process() raised (the node goes on)


def node_figures_from_stats(nodes: Iterable[Any]) -> list[NodeFigures]:
    """NodeFigures from per-node figures (objects with ``id``, ``memory_bytes``,
    ``cpu_seconds``, ``messages_in``, ``messages_out`` and ``errors``)."""
    return [
        NodeFigures(
            node=n.id,
            memory_bytes=n.memory_bytes,
            cpu_seconds=n.cpu_seconds,
            messages_in=n.messages_in,
            messages_out=n.messages_out,
            errors=n.errors,
        )
        for n in nodes
    ]


def refresh_from(
    metrics: Metrics,
    sessions: Mapping[str, Any],
    read: Callable[[Any], Any],
    read_hops: Callable[[Any], Iterable[Any]] = session_hops,
) -> None:
    """For ``set_refresh``: read each live session's figures with ``read(session)`` (an object
    with ``nodes`` and ``channels`` as ``node_figures_from_stats`` and
    ``edge_stats_from_channels`` take them) and its hop histograms with
    ``read_hops(session)`` (as ``hop_latency_from_edges`` takes them; default
    ``noded.daemon.stats.session_hops``), and update the metrics."""
    for sid in metrics.live_sessions():
        session = sessions.get(sid)
        if session is None:
            continue
        figures = read(session)
        metrics.update_edges(sid, edge_stats_from_channels(figures.channels))
        metrics.update_nodes(sid, node_figures_from_stats(figures.nodes))
        metrics.update_hop_latency(sid, hop_latency_from_edges(read_hops(session)))


def hop_latency_from_edges(edges: Iterable[Any]) -> list[HopLatency]:
    """HopLatency from per-edge histograms (objects with ``edge``, ``buckets``: counts per
    bucket, not cumulative, the last one +Inf; ``bounds_ns``: the finite bounds; ``sum_ns``),
    as ``noded.daemon.stats.EdgeHops``."""
    hops = []
    for e in edges:
        bounds = (*(b / 1e9 for b in e.bounds_ns), float("inf"))
        total, cumulative = 0, []
        for bound, n in zip(bounds, e.buckets, strict=True):
            total += n
            cumulative.append((bound, total))
        hops.append(HopLatency(edge=e.edge, buckets=tuple(cumulative), sum_seconds=e.sum_ns / 1e9))
    return hops


def edge_stats_from_channels(channels: Iterable[Any]) -> list[EdgeStats]:
    """EdgeStats from per-channel figures (objects with ``name``, ``messages``, ``bytes``
    and ``blocked_seconds``, None where unknown); channels without counters are left out."""
    return [
        EdgeStats(
            edge=c.name,
            messages=c.messages,
            bytes=c.bytes or 0,
            blocked_seconds=c.blocked_seconds or 0.0,
            dropped=sum(getattr(c, "dropped", None) or ()),
        )
        for c in channels
        if c.messages is not None
    ]


class _LimitCollector(Collector):
    """The configured limits; a limit that is not set (unlimited) is left out, as
    Prometheus's conventions ask, rather than exported as a magic 0."""

    def __init__(self, max_session_processes: int | None) -> None:
        self.max_session_processes = max_session_processes

    def collect(self) -> Iterator[Metric]:
        if self.max_session_processes is not None:
            yield GaugeMetricFamily(
                "noded_max_session_processes",
                "Node processes a session may have (absent: no limit).",
                value=self.max_session_processes,
            )


class _EdgeCollector(Collector):
    def __init__(self) -> None:
        self.edges: dict[str, tuple[EdgeStats, ...]] = {}
        self.hops: dict[str, tuple[HopLatency, ...]] = {}
        self.nodes: dict[str, tuple[NodeFigures, ...]] = {}
        self.pipeline_of: dict[str, str] = {}  # sid -> its pipeline's name
        # Per-session series grow with every session: only with metrics_per_session.
        self.per_session = False
        self.refresh: tuple[asyncio.AbstractEventLoop, Callable[[], None]] | None = None

    def _refresh(self) -> None:
        if self.refresh is None:
            return
        loop, func = self.refresh

        async def call() -> None:
            func()

        try:
            asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=REFRESH_TIMEOUT)
        except Exception as exc:  # a scrape still gets the last values
            log.warning("refreshing the edge metrics failed: %s", exc)

    def collect(self) -> Iterator[Metric]:
        if not self.per_session:
            return
        self._refresh()
        labels = ["pipeline", "session", "edge"]
        messages = CounterMetricFamily("noded_edge_messages", "Messages sent over an edge.", labels=labels)
        sizes = CounterMetricFamily("noded_edge_bytes", "Payload bytes sent over an edge.", labels=labels)
        blocked = CounterMetricFamily(
            "noded_edge_blocked_seconds", "Time the producer waited for the consumer (backpressure).", labels=labels
        )
        dropped = CounterMetricFamily(
            "noded_edge_dropped",
            'Messages an edge dropped: its consumers\' lossy edges (overflow = "drop_oldest") lost them unread.',
            labels=labels,
        )
        for sid, stats in list(self.edges.items()):
            for s in stats:
                values = [self.pipeline_of.get(sid, ""), sid, s.edge]
                messages.add_metric(values, s.messages)
                sizes.add_metric(values, s.bytes)
                blocked.add_metric(values, s.blocked_seconds)
                dropped.add_metric(values, s.dropped)
        hop = HistogramMetricFamily(
            "noded_hop_latency_seconds",
            "One hop: from the producer's send to the consumer accepting the message.",
            labels=labels,
        )
        for sid, hops in list(self.hops.items()):
            for h in hops:
                buckets = [(_le(bound), count) for bound, count in h.buckets]
                hop.add_metric([self.pipeline_of.get(sid, ""), sid, h.edge], buckets, h.sum_seconds)
        yield from (messages, sizes, blocked, dropped, hop)
        yield from self._node_families()

    def _node_families(self) -> Iterator[Metric]:
        labels = ["pipeline", "session", "node"]
        memory = GaugeMetricFamily(
            "noded_node_memory_bytes", "A node's memory (its unit's MemoryCurrent).", labels=labels
        )
        cpu = CounterMetricFamily("noded_node_cpu_seconds", "A node's CPU time.", labels=labels)
        received = CounterMetricFamily("noded_node_messages_in", "Messages a node received.", labels=labels)
        sent = CounterMetricFamily("noded_node_messages_out", "Messages a node sent.", labels=labels)
        errors = CounterMetricFamily(
            "noded_node_errors", "Messages whose processing raised (the node went on).", labels=labels
        )
        for sid, figures in list(self.nodes.items()):
            for f in figures:
                for family, value in (
                    (memory, f.memory_bytes),
                    (cpu, f.cpu_seconds),
                    (received, f.messages_in),
                    (sent, f.messages_out),
                    (errors, f.errors),
                ):
                    if value is not None:
                        family.add_metric([self.pipeline_of.get(sid, ""), sid, f.node], value)
        yield from (memory, cpu, received, sent, errors)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Metrics:
    def __init__(self, max_session_processes: int | None = None, per_session: bool = False) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        Gauge("noded_build_info", "The daemon's version (always 1).", ["version", "python"], registry=r).labels(
            __version__, platform.python_version()
        ).set(1)
        self._limits = _LimitCollector(max_session_processes)
        r.register(self._limits)
        self.sessions = Gauge(
            "noded_sessions",
            "Live sessions by pipeline and state (ended ones: see noded_sessions_ended_total).",
            ["pipeline", "state"],
            registry=r,
        )
        self.started = Counter("noded_sessions_started", "Sessions created, by pipeline.", ["pipeline"], registry=r)
        self.ended = Counter(
            "noded_sessions_ended", "Sessions ended, by pipeline and how.", ["pipeline", "state"], registry=r
        )
        self.nodes = Gauge(
            "noded_nodes", "Nodes of live sessions by pipeline and state.", ["pipeline", "state"], registry=r
        )
        self.crashes = Counter(
            "noded_node_crashes",
            "Node processes that failed, ending their session, by pipeline and reason.",
            ["pipeline", "reason"],
            registry=r,
        )
        self.init = Histogram(
            "noded_node_init_seconds",
            "Node start-up: from activating to READY=1.",
            ["pipeline"],
            buckets=INIT_BUCKETS,
            registry=r,
        )
        self.ready = Histogram(
            "noded_session_ready_seconds",
            "Session start-up: from create to every node ready.",
            ["pipeline"],
            buckets=INIT_BUCKETS,
            registry=r,
        )
        self._edges = _EdgeCollector()
        self._edges.per_session = per_session
        r.register(self._edges)
        self._pipelines: set[str] = set()
        self._live: dict[str, SessionInfo] = {}
        self._seen_init: set[tuple[str, str]] = set()
        self._seen_ready: set[str] = set()
        self._seen_failure: set[str] = set()
        self._server: Any = None

    # -- fed by the daemon ------------------------------------------------------------

    def _known(self, pipeline: str) -> None:
        """A pipeline's series, all at 0, from its first session on (so a rate() sees the
        first crash). They are as many as the pipelines, not the sessions."""
        if pipeline in self._pipelines:
            return
        self._pipelines.add(pipeline)
        for state in SessionState:
            if str(state) not in ENDED:
                self.sessions.labels(pipeline, str(state))
        for node_state in NodeState:
            self.nodes.labels(pipeline, str(node_state))
        for reason in ("exit-code", "signal", "core-dump", "oom-kill", "timeout"):
            self.crashes.labels(pipeline, reason)
        for ended in ENDED:
            self.ended.labels(pipeline, ended)
        self.init.labels(pipeline)
        self.ready.labels(pipeline)

    def set_per_session(self, on: bool) -> None:
        """Export the per-session families (edges, hops, node figures) or not (after a reload)."""
        self._edges.per_session = on

    def set_limit(self, max_session_processes: int | None) -> None:
        """The limit after a reload (None: no limit, and no series)."""
        self._limits.max_session_processes = max_session_processes

    def on_session(self, info: SessionInfo) -> None:
        """A session manager listener: called with every published SessionInfo."""
        pipeline = info.pipeline
        if info.sid not in self._live:
            if info.state in ENDED:
                return  # a late echo of a session that has ended (e.g. a stop request)
            self._known(pipeline)
            self.started.labels(pipeline).inc()
        for node in info.nodes:
            key = (info.sid, node.id)
            if node.init_seconds is not None and key not in self._seen_init:
                self._seen_init.add(key)
                self.init.labels(pipeline).observe(node.init_seconds)
        if info.ready_seconds is not None and info.sid not in self._seen_ready:
            self._seen_ready.add(info.sid)
            self.ready.labels(pipeline).observe(info.ready_seconds)
        if info.failure is not None and info.sid not in self._seen_failure:
            self._seen_failure.add(info.sid)
            self.crashes.labels(pipeline, crash_reason(info.failure)).inc()
        if info.state in ENDED:
            if self._live.pop(info.sid, None) is not None:
                self.ended.labels(pipeline, info.state).inc()
            self.forget(info.sid)
        else:
            self._live[info.sid] = info
            self._edges.pipeline_of[info.sid] = pipeline
        self._recount()

    def update_edges(self, sid: str, stats: Iterable[EdgeStats]) -> None:
        """The session's cumulative per-edge counters (replaces what was there)."""
        if sid in self._live:
            self._edges.edges[sid] = tuple(stats)

    def update_hop_latency(self, sid: str, hops: Iterable[HopLatency]) -> None:
        """The session's cumulative hop-latency histograms (replaces what was there)."""
        if sid in self._live:
            self._edges.hops[sid] = tuple(hops)

    def update_nodes(self, sid: str, figures: Iterable[NodeFigures]) -> None:
        """The session's per-node figures (replaces what was there)."""
        if sid in self._live:
            self._edges.nodes[sid] = tuple(figures)

    def set_refresh(self, loop: asyncio.AbstractEventLoop, func: Callable[[], None]) -> None:
        """Run ``func`` on ``loop`` at each scrape, before edge values are read (it calls
        update_edges/update_hop_latency for the live sessions)."""
        self._edges.refresh = (loop, func)

    def live_sessions(self) -> list[str]:
        return list(self._live)

    def forget(self, sid: str) -> None:
        self._edges.pipeline_of.pop(sid, None)
        self._edges.edges.pop(sid, None)
        self._edges.hops.pop(sid, None)
        self._edges.nodes.pop(sid, None)
        self._seen_init = {k for k in self._seen_init if k[0] != sid}
        self._seen_ready.discard(sid)
        self._seen_failure.discard(sid)

    def _recount(self) -> None:
        sessions = {(p, str(s)): 0 for p in self._pipelines for s in SessionState if str(s) not in ENDED}
        nodes = {(p, str(s)): 0 for p in self._pipelines for s in NodeState}
        for info in self._live.values():
            key = (info.pipeline, str(info.state))
            sessions[key] = sessions.get(key, 0) + 1
            for node in info.nodes:
                nkey = (info.pipeline, str(node.state))
                nodes[nkey] = nodes.get(nkey, 0) + 1
        for (pipeline, state), count in sessions.items():
            self.sessions.labels(pipeline, state).set(count)
        for (pipeline, state), count in nodes.items():
            self.nodes.labels(pipeline, state).set(count)

    # -- the endpoint -----------------------------------------------------------------

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, address: tuple[str, int]) -> None:
        from prometheus_client import start_http_server

        host, port = address
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                hint="change metrics_address in /etc/noded/noded.toml, or leave it empty",
            ) from exc
        log.info("metrics on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
