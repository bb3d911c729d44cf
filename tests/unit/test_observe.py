"""The daemon's figures from readings (noded.daemon.stats), and what `nodectl top` makes of two
readings (noded.ctl.top): pure functions, fed hand-made snapshots."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from noded.contract.paths import CLIENT
from noded.contract.protocol import ChannelStats, NodeStats, SessionStats
from noded.contract.spec import client_planes
from noded.contract.states import Activated, Starting
from noded.contract.stats import O_SENT, InputCounters, OutputCounters, Snapshot, StatsBlock, stats_path
from noded.contract.wire import HEADER_SIZE
from noded.ctl.render import channels_table, human_bytes
from noded.ctl.top import Rates, blocking_edges, busiest_node, rates
from noded.daemon.session import Session
from noded.daemon.stats import cgroup2_cpu_ns, channel_stats, node_stats, session_channels
from noded.daemon.systemd import UnitResources
from noded.pipeline.checks import parse_pipeline
from noded.pipeline.topology import plan

PIPELINE = """
inputs = ["data"]
outputs = ["b.out"]
[dataplane]
depth = 3
max_payload = "1M"
[[nodes]]
id = "a"
class = "passthrough"
inputs = ["input.data"]
[[nodes]]
id = "b"
class = "passthrough"
inputs = ["a.out"]
[[nodes]]
id = "c"
class = "passthrough"
inputs = ["a.out"]
"""


def snap(
    outputs: list[OutputCounters] = (), inputs: list[InputCounters] = (), state: str | None = "idle", busy_ns: int = 0
) -> Snapshot:  # type: ignore[assignment]
    return Snapshot(
        pid=1,
        state=state,
        state_for_ns=2_000_000_000,
        processed=0,
        errors=1,
        busy_ns=busy_ns,
        rejected=2,
        unconsumed=0,
        outputs=list(outputs),
        inputs=list(inputs),
    )


def out(sent: int, blocked_ns: int = 0, now_ns: int = 0) -> OutputCounters:
    return OutputCounters(sent=sent, bytes=sent * 100, blocked_ns=blocked_ns, blocked_for_ns=now_ns, open=True)


def inp(received: int, released: int) -> InputCounters:
    return InputCounters(received=received, bytes=received * 100, released=released, subscribed=True)


def planes() -> dict:  # type: ignore[type-arg]
    topo = plan(parse_pipeline(PIPELINE, "p.toml"), "s1")
    return {**topo.nodes, **client_planes(topo.client)}  # as noded.daemon.stats reads them


def test_channels_combine_the_producer_and_each_consumer() -> None:
    snaps = {
        "client:data": snap([out(5)]),  # the feeder of input "data"
        CLIENT: snap([], [inp(1, 1)]),  # reader slot 0
        "a": snap([out(10, blocked_ns=3_000_000_000, now_ns=500_000_000)], [inp(5, 5)]),
        "b": snap([out(1)], [inp(9, 7)]),
        "c": snap([], [inp(10, 10)]),
    }
    by_name = {c.name: c for c in channel_stats(planes(), snaps, live=lambda e: e != "c")}
    assert set(by_name) == {"input.data", "a.out", "b.out"}
    a = by_name["a.out"]
    assert (a.producer, a.consumers, a.depth) == ("a", ["b", "c"], 3)
    assert a.slice_bytes == HEADER_SIZE + (1 << 20)
    assert a.occupancy == [3, 0] and a.full  # b holds 3 of 10, c none
    assert (a.publishers, a.subscribers) == (1, 1)  # c is not live
    assert (a.messages, a.bytes, a.blocked_seconds, a.blocked_now_seconds) == (10, 1000, 3.0, 0.5)
    b = by_name["b.out"]
    assert b.consumers == ["client.b.out", "client1.b.out"] and b.occupancy == [0, 0] and not b.full
    assert by_name["input.data"].producer == "client:data" and by_name["input.data"].occupancy == [0]


def test_a_channel_without_its_producers_block_counts_what_consumers_got() -> None:
    snaps = {"client:data": None, "a": snap([out(0)], [inp(4, 2)]), "b": None, "c": None}
    data = next(c for c in channel_stats(planes(), snaps, live=lambda e: True) if c.name == "input.data")
    assert data.messages == 4 and data.occupancy == [2] and data.blocked_seconds is None
    assert data.publishers == 0 and data.subscribers == 1


def test_node_figures_prefer_the_workers_state_when_up() -> None:
    pipeline = parse_pipeline(PIPELINE, "p.toml")
    session = Session.new("s1", pipeline, plan(pipeline, "s1"))
    node = session.nodes["a"]
    node.apply(Starting())
    res = UnitResources(
        memory_current=200 << 20, memory_limit=None, cpu_usage_ns=None, tasks_current=3, control_group="/x"
    )
    busy = snap([out(3, blocked_ns=1_000_000_000, now_ns=1)], [inp(3, 3)], state="processing", busy_ns=3_000_000_000)
    f = node_stats(node, res, busy, 5_000_000_000, "cgroup2", time.time(), ports=["out"])
    assert f.state == "initializing"  # not up yet: the lifecycle state
    node.apply(Activated())
    f = node_stats(node, res, busy, 5_000_000_000, "cgroup2", time.time(), ports=["out"])
    assert (f.state, f.state_seconds) == ("processing", 2.0)
    assert (f.memory_bytes, f.memory_limit, f.tasks, f.cpu_seconds) == (200 << 20, None, 3, 5.0)
    assert (f.messages_in, f.messages_out, f.errors, f.rejected) == (3, 3, 1, 2)
    assert f.busy_seconds == 2.0  # 3 s processing, 1 s of it waiting for credits
    assert f.blocked_on == ["out"]


def test_cgroup2_cpu_reads_usage_usec(tmp_path: Path) -> None:
    d = tmp_path / "noded.slice" / "u.service"
    d.mkdir(parents=True)
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    assert cgroup2_cpu_ns("/noded.slice/u.service", roots=(tmp_path / "nope", tmp_path)) == 1_500_000
    assert cgroup2_cpu_ns("/other", roots=(tmp_path,)) is None
    assert cgroup2_cpu_ns("", roots=(tmp_path,)) is None


def reading(at: float, busy: dict[str, float], blocked: float) -> SessionStats:
    return SessionStats(
        at=at,
        nodes=[
            NodeStats(id=n, state="processing", state_seconds=1.0, busy_seconds=b, cpu_seconds=b)
            for n, b in busy.items()
        ],
        channels=[
            ChannelStats(
                name="a.out",
                service="a/out",
                producer="a",
                consumers=["b"],
                depth=2,
                slice_bytes=1,
                occupancy=[1],
                blocked_seconds=blocked,
            )
        ],
    )


def test_top_finds_the_busiest_node_and_the_edge_that_blocks() -> None:
    first = reading(100.0, {"a": 1.0, "b": 1.0}, blocked=0.0)
    second = reading(102.0, {"a": 1.1, "b": 2.9}, blocked=1.8)
    r = rates(first, second)
    assert busiest_node(r) == ("b", "95% busy")
    assert r.blocked == {"a.out": 0.9}
    assert blocking_edges(second, r) == ["a.out -> b: not full; a waited 90% of the last 2.0s"]
    assert blocking_edges(second, Rates()) == []  # not full, nobody waits now, no history
    assert busiest_node(rates(second, second)) is None
    idle = rates(second, reading(104.0, {"a": 1.1, "b": 2.9}, blocked=1.8))
    assert busiest_node(idle) is None


def test_the_channel_table_marks_a_full_edge() -> None:
    stats = SessionStats(at=0.0, channels=[ChannelStats(
        name="a.out", service="a/out", producer="a", consumers=["b"], depth=2, slice_bytes=10 << 20,
        occupancy=[2], full=True, publishers=1, subscribers=1, messages=7, bytes=7 << 10,
        blocked_seconds=3.0, blocked_now_seconds=0.25)])  # fmt: skip
    console = Console(width=200, record=True, color_system=None)
    console.print(channels_table(stats))
    text = console.export_text()
    assert "2 FULL" in text and "10.0M" in text and "3.0s (now 250ms)" in text
    assert human_bytes(None) == "-" and human_bytes(512) == "512B" and human_bytes(3 << 30) == "3.0G"


def test_top_keeps_the_last_figures_across_state_events_and_drops_ended_sessions() -> None:
    from noded.contract.protocol import SessionInfo
    from noded.ctl.top import TopView

    def info(state: str, stats: SessionStats | None) -> SessionInfo:
        return SessionInfo(sid="s1", pipeline="p", state=state, created=0.0, slice="x", stats=stats)

    view = TopView()
    view.apply(info("ready", reading(100.0, {"a": 1.0, "b": 1.0}, blocked=0.0)))
    view.apply(info("ready", None))  # a state event between readings
    assert view.sessions["s1"].stats is not None and view.readings == 1
    view.apply(info("ready", reading(101.0, {"a": 1.0, "b": 1.9}, blocked=0.9)))
    assert busiest_node(view.rates["s1"]) == ("b", "90% busy")
    console = Console(width=200, record=True, color_system=None)
    console.print(view.render())
    text = console.export_text()
    assert "busiest: b (90% busy)" in text and "blocking: a.out -> b: not full; a waited 90%" in text
    view.apply(info("stopped", None))
    assert view.sessions == {} and view.rates == {}


def test_session_channels_reads_the_blocks_only(tmp_path: Path) -> None:
    pipeline = parse_pipeline(PIPELINE, "p.toml")
    session = Session.new("s1", pipeline, plan(pipeline, "s1", root_base=str(tmp_path)))
    Path(session.topology.root).mkdir(parents=True)
    block = StatsBlock(1, 1, stats_path(session.topology.root, "a"))
    block.slots[block.out_base(0) + O_SENT] = 4
    by_name = {c.name: c for c in session_channels(session)}
    assert by_name["a.out"].messages == 4 and by_name["a.out"].publishers == 0  # node "a" is not up
    data = by_name["input.data"]  # the client has no block: what "a" received
    assert data.messages == 0 and data.blocked_seconds is None
    assert by_name["b.out"].messages is None  # nobody's block: nothing known
    block.remove()


def test_waiting_for_names_who_holds_a_full_edge_and_who_is_missing() -> None:
    from noded.contract.spec import OutputSpec
    from noded.contract.stats import InputCounters
    from noded.daemon.stats import waiting_for

    def ins(*subscribed: bool) -> list[tuple[str, InputCounters | None]]:
        return [(f"e{i}", InputCounters(0, 0, 0, s)) for i, s in enumerate(subscribed)]

    nodes = OutputSpec("out", "a/out", ["b", "c"], ["b/inbox", "c/inbox"], 2)
    assert waiting_for(nodes, [2, 1], ins(True, True), lambda e: True) == "b holds 2 of 2"
    assert waiting_for(nodes, [0, 0], ins(True, False), lambda e: True) == "c is not connected"
    assert waiting_for(nodes, [0, 0], [("e0", None), ("e1", None)], lambda e: True) == (
        "b is not connected; c is not connected"
    )
    readers = OutputSpec(
        "out", "a/out", ["b", "client.a.out", "client1.a.out"], ["b/inbox", "client/inbox", "client1/inbox"], 2,
        readers=2,
    )  # fmt: skip
    assert waiting_for(readers, [0, 0, 0], ins(True, False, False), lambda e: True) == "no client reads a.out"
    assert waiting_for(readers, [0, 2, 0], ins(True, True, False), lambda e: True) == "client.a.out holds 2 of 2"
    # a reader that is gone (its block left behind by a kill, not live) holds nothing
    assert waiting_for(readers, [0, 2, 0], ins(True, True, False), lambda e: e != "e1") == "no client reads a.out"
