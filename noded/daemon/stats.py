"""A session's live figures: per node (state, memory, CPU, messages, errors) and per
channel (capacity, occupancy, ports, traffic, time its producer waited).

Sources, read when asked (``nodectl session show``, and once a period for ``nodectl top``):

* the unit's cgroup through systemd over D-Bus (``Systemd.unit_resources``: MemoryCurrent,
  MemoryMax/MemoryLimit, CPUUsageNSec, TasksCurrent). Where systemd has no CPU figure
  (hybrid cgroups without the v1 cpuacct controller, as in tests/sandbox), the unit's
  cgroup2 ``cpu.stat`` (``usage_usec``, always kept by the kernel) stands in;
* each endpoint's counters in its stats block (``noded.contract.stats``) under the session's
  iceoryx2 root: state, messages, bytes, errors, time blocked.

``channel_stats`` and ``node_stats`` are plain functions of those readings (no I/O), for
tests; ``session_stats`` does all the reading, ``session_channels`` only the counters (no
D-Bus: what a metrics scrape wants per edge). Every figure is a msgspec struct of
``noded.contract.protocol`` (``msgspec.to_builtins`` makes it plain data).

``channel_hops``/``session_hops`` give each channel's hop-latency histogram (``EdgeHops``,
plain data: the consumers' histograms of that channel, summed), for the metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from noded.contract.protocol import ChannelStats, ClientStats, NodeStats, SessionInfo, SessionStats
from noded.contract.spec import (
    DataPlane,
    OutputSpec,
    client_pid_file,
    client_planes,
    feeder_stats,
    reader_consumer,
    reader_stats,
)
from noded.contract.states import NODE_TERMINAL, NODE_UP, NodeState
from noded.contract.stats import HOP_BOUNDS_NS, HOP_BUCKETS, InputCounters, Snapshot, read_stats, stats_path
from noded.contract.wire import HEADER_SIZE
from noded.daemon.session import NodeRuntime, Session
from noded.daemon.systemd import Systemd, UnitResources
from noded.errors import SystemdError

CGROUP2_ROOT = Path("/sys/fs/cgroup/unified")  # hybrid; on a unified host: /sys/fs/cgroup

ReadStats = Callable[[str], Snapshot | None]  # endpoint name -> its block


def cgroup2_cpu_ns(control_group: str, roots: tuple[Path, ...] = (CGROUP2_ROOT, Path("/sys/fs/cgroup"))) -> int | None:
    """``usage_usec`` of the cgroup's cgroup2 ``cpu.stat`` in ns; None if there is none."""
    if not control_group:
        return None
    for root in roots:
        try:
            text = (root / control_group.lstrip("/") / "cpu.stat").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) * 1000
    return None


def node_stats(
    node: NodeRuntime,
    res: UnitResources | None,
    snap: Snapshot | None,
    cpu_ns: int | None,
    cpu_source: str | None,
    now: float,
    ports: list[str] | None = None,
) -> NodeStats:
    """One node's figures from its unit's resources and its block (either may be None);
    ``ports``: its output ports, in the block's order."""
    state, seconds = str(node.state), max(now - node.since, 0.0)
    if snap is not None and snap.state is not None and node.state in NODE_UP:
        state, seconds = snap.state, snap.state_for_ns / 1e9
    out = NodeStats(id=node.spec.id, state=state, state_seconds=seconds)
    if res is not None:
        out.memory_bytes, out.memory_limit, out.tasks = res.memory_current, res.memory_limit, res.tasks_current
    if cpu_ns is not None:
        out.cpu_seconds, out.cpu_source = cpu_ns / 1e9, cpu_source
    if snap is not None:
        out.messages_in = sum(i.received for i in snap.inputs)
        out.messages_out = sum(o.sent for o in snap.outputs)
        # Busy: processing, less the waits for credits (they happen inside process/run).
        waited = sum(o.blocked_ns for o in snap.outputs)
        out.errors, out.rejected = snap.errors, snap.rejected
        out.busy_seconds = max(snap.busy_ns - waited, 0) / 1e9
        names = ports or []
        out.blocked_on = [
            names[i] if i < len(names) else str(i) for i, o in enumerate(snap.outputs) if o.blocked_for_ns > 0
        ]
    return out


@dataclass(frozen=True)
class EdgeHops:
    """One channel's hop-latency histogram: every message its consumers accepted that
    carried a send time, counted per bucket (not cumulative) of ``bounds_ns`` (the last
    bucket is +Inf). A channel with two consumers counts each message twice."""

    edge: str  # the channel's name: "node.port" or "input.<name>"
    buckets: tuple[int, ...]
    sum_ns: int
    bounds_ns: tuple[int, ...] = HOP_BOUNDS_NS

    @property
    def count(self) -> int:
        return sum(self.buckets)


def _readers(planes: dict[str, DataPlane | None]) -> dict[tuple[str, str], tuple[str, int]]:
    """Where each consumer reads each service: (service, consumer) -> (endpoint, index of that input)."""
    readers: dict[tuple[str, str], tuple[str, int]] = {}
    for endpoint, plane in planes.items():
        for i, spec in enumerate(plane.inputs if plane else []):
            consumer = reader_consumer(spec.reader_slot, spec.source) if spec.reader_slot >= 0 else endpoint
            readers[(spec.service, consumer)] = (endpoint, i)
    return readers


def _consumer_counters(
    readers: dict[tuple[str, str], tuple[str, int]],
    snaps: dict[str, Snapshot | None],
    service: str,
    consumers: list[str],
) -> list[tuple[str, InputCounters | None]]:
    ins = []
    for consumer in consumers:
        endpoint, i = readers.get((service, consumer), (consumer, -1))
        csnap = snaps.get(endpoint)
        ins.append((endpoint, csnap.inputs[i] if csnap is not None and 0 <= i < len(csnap.inputs) else None))
    return ins


def channel_hops(planes: dict[str, DataPlane | None], snaps: dict[str, Snapshot | None]) -> list[EdgeHops]:
    """Each channel's hop-latency histogram, from its consumers' blocks; channels none of
    whose consumers has a block with histograms are left out."""
    readers = _readers(planes)
    edges = []
    for plane in planes.values():
        for spec in plane.outputs if plane else []:
            counters = [
                c
                for _, c in _consumer_counters(readers, snaps, spec.service, spec.consumers)
                if c is not None and len(c.hop_buckets) == HOP_BUCKETS
            ]
            if not counters:
                continue
            buckets = tuple(sum(col) for col in zip(*(c.hop_buckets for c in counters)))
            edges.append(EdgeHops(spec.service.replace("/", "."), buckets, sum(c.hop_sum_ns for c in counters)))
    return edges


def channel_stats(
    planes: dict[str, DataPlane | None], snaps: dict[str, Snapshot | None], live: Callable[[str], bool]
) -> list[ChannelStats]:
    """Every channel of a session's data plane (``planes``: endpoint -> its DataPlane, the
    client's under CLIENT), with the counters of the endpoints' blocks (``snaps``); an
    endpoint counts as publisher or subscriber only while ``live(endpoint)``."""
    readers = _readers(planes)
    channels = []
    for producer, plane in planes.items():
        for index, spec in enumerate(plane.outputs if plane else []):
            psnap = snaps.get(producer)
            pout = psnap.outputs[index] if psnap is not None and index < len(psnap.outputs) else None
            ins = _consumer_counters(readers, snaps, spec.service, spec.consumers)
            sent = pout.sent if pout is not None else max((c.received for _, c in ins if c is not None), default=None)
            lossy = spec.drop_oldest or [False] * len(ins)
            first_reader = len(spec.consumers) - spec.readers
            occupancy = [
                # a lossy edge's consumer, and a reader slot (counted from its join), hold what
                # they received and did not release; otherwise all that was sent and not released
                0 if sent is None or c is None
                else min(max((c.received if drop or i >= first_reader else sent) - c.released, 0), spec.depth)
                for i, ((_, c), drop) in enumerate(zip(ins, lossy))
            ]  # fmt: skip
            channels.append(ChannelStats(
                name=spec.service.replace("/", "."), service=spec.service, producer=producer,
                consumers=list(spec.consumers), depth=spec.depth, slice_bytes=HEADER_SIZE + spec.max_payload,
                occupancy=occupancy, full=any(n >= spec.depth for n, drop in zip(occupancy, lossy) if not drop),
                drop_oldest=list(spec.drop_oldest),
                dropped=[c.dropped if c is not None else 0 for _, c in ins] if spec.drop_oldest else [],
                publishers=int(pout is not None and pout.open and live(producer)),
                subscribers=sum(1 for e, c in ins if c is not None and c.subscribed and live(e)),
                messages=sent,
                bytes=pout.bytes if pout is not None else max((c.bytes for _, c in ins if c is not None), default=None),
                blocked_seconds=pout.blocked_ns / 1e9 if pout is not None else None,
                blocked_now_seconds=pout.blocked_for_ns / 1e9 if pout is not None else 0.0,
                waiting_for=waiting_for(spec, occupancy, ins, live) if pout is not None and pout.blocked_for_ns else "",
            ))  # fmt: skip
    return channels


def waiting_for(
    spec: OutputSpec, occupancy: list[int], ins: list[tuple[str, InputCounters | None]], live: Callable[[str], bool]
) -> str:
    """What a producer blocked on ``spec`` waits for: consumers that hold ``depth``
    messages (a full edge), or that are not connected (for an external output: no client
    reads it)."""
    first_reader = len(spec.consumers) - spec.readers

    def connected(i: int) -> bool:
        endpoint, counters = ins[i]
        return counters is not None and bool(counters.subscribed) and live(endpoint)

    parts = [
        f"{spec.consumers[i]} holds {occupancy[i]} of {spec.depth}"
        for i in range(len(spec.consumers))
        if occupancy[i] >= spec.depth and (i < first_reader or connected(i))
    ]
    parts += [f"{spec.consumers[i]} is not connected" for i in range(first_reader) if not connected(i)]
    if spec.readers and not any(connected(i) for i in range(first_reader, len(spec.consumers))):
        parts.append(f"no client reads {spec.service.replace('/', '.')}")
    return "; ".join(parts)


def attached_clients(session: Session) -> list[ClientStats]:
    """The clients attached now: the PID files of the roles they hold, whose process runs."""
    plane = session.topology.client
    if plane is None:
        return []
    roles = [(f"feed.{spec.port}", spec.port, -1) for spec in plane.outputs]
    roles += [(f"read.{k}", "", k) for k in range(plane.readers if plane.inputs else 0)]
    clients = []
    for role, port, slot in roles:
        try:
            pid = int(Path(client_pid_file(session.topology.root, role)).read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        clients.append(ClientStats(pid=pid, feeds=port, reader_slot=slot))
    return clients


def _planes(session: Session) -> dict[str, DataPlane | None]:
    planes: dict[str, DataPlane | None] = dict(session.topology.nodes)
    if session.topology.client is not None:  # a feeder per external input, a reader per slot
        planes.update(client_planes(session.topology.client))
    return planes


def _read_blocks(
    session: Session, planes: dict[str, DataPlane | None], read: ReadStats | None
) -> dict[str, Snapshot | None]:
    root = session.topology.root
    if read is None:

        def read(endpoint: str) -> Snapshot | None:
            return read_stats(stats_path(root, endpoint))

    return {name: read(name) if plane is not None else None for name, plane in planes.items()}


def _live(session: Session, snaps: dict[str, Snapshot | None]) -> Callable[[str], bool]:
    # A client's endpoint is live while the process holding its role runs (its block is
    # removed when it detaches, but stays behind a client killed with SIGKILL).
    attached = {feeder_stats(c.feeds) if c.feeds else reader_stats(c.reader_slot) for c in attached_clients(session)}

    def live(endpoint: str) -> bool:
        node = session.nodes.get(endpoint)
        if node is None:
            return endpoint in attached and snaps.get(endpoint) is not None
        return node.state not in NODE_TERMINAL and node.state is not NodeState.INITIALIZING

    return live


def session_channels(session: Session, read: ReadStats | None = None) -> list[ChannelStats]:
    """The session's channels with their counters: file reads only, no D-Bus (for a
    metrics scrape: messages, bytes, occupancy and blocked time per edge)."""
    planes = _planes(session)
    snaps = _read_blocks(session, planes, read)
    return channel_stats(planes, snaps, _live(session, snaps))


def session_hops(session: Session, read: ReadStats | None = None) -> list[EdgeHops]:
    """The session's per-channel hop-latency histograms: file reads only (for a metrics scrape)."""
    planes = _planes(session)
    return channel_hops(planes, _read_blocks(session, planes, read))


def session_stats(session: Session, sd: Systemd, read: ReadStats | None = None) -> SessionStats:
    """Read everything now (D-Bus calls and small file reads: about 1 ms a node)."""
    planes = _planes(session)
    snaps = _read_blocks(session, planes, read)
    now = time.time()
    nodes = []
    for node in session.nodes.values():
        res = cpu = source = None
        if node.loaded and node.went_active and node.state not in NODE_TERMINAL:
            try:
                res = sd.unit_resources(node.unit)
            except SystemdError:
                res = None
            if res is not None:
                cpu, source = res.cpu_usage_ns, "systemd"
                if cpu is None:
                    cpu, source = cgroup2_cpu_ns(res.control_group), "cgroup2"
        plane = planes.get(node.spec.id)
        ports = [o.port for o in plane.outputs] if plane is not None else []
        nodes.append(
            node_stats(node, res, snaps.get(node.spec.id), cpu, source if cpu is not None else None, now, ports)
        )
    channels = channel_stats(planes, snaps, _live(session, snaps))
    return SessionStats(at=now, nodes=nodes, channels=channels, clients=attached_clients(session))


def with_live_states(info: SessionInfo, stats: SessionStats) -> SessionStats:
    """Put the figures' node states (the workers' processing/idle) into ``info``'s nodes
    that are up; returns ``stats``."""
    figures = {n.id: n for n in stats.nodes}
    for node in info.nodes:
        f = figures.get(node.id)
        if f is not None and node.state in NODE_UP and f.state != node.state:
            node.state, node.since = NodeState(f.state), stats.at - f.state_seconds
    return stats
