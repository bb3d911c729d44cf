"""Per-edge overflow ("block" | "drop_oldest"), the pure parts: the pipeline key, the
plan (per-consumer flags, the service's safe overflow), the stats block's DROPPED slot,
what `session show` and the metrics make of it. The real thing runs in
tests/integration/test_lossy_edges.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from noded.contract.protocol import ChannelStats, NodeInfo, SessionInfo, SessionStats
from noded.contract.spec import InputSpec, OutputSpec
from noded.contract.stats import I_DROPPED, InputCounters, OutputCounters, Snapshot, StatsBlock, read_stats
from noded.ctl.render import channels_table
from noded.daemon.metrics import EdgeStats, Metrics, edge_stats_from_channels
from noded.daemon.stats import channel_stats
from noded.pipeline.checks import InputRef, PipelineError, PortRef, parse_pipeline
from noded.pipeline.topology import plan

PIPELINE = """
[[nodes]]
id = "src"
class = "passthrough"
[[nodes]]
id = "keep"
class = "passthrough"
inputs = [{ from = "src.out", overflow = "block" }]
[[nodes]]
id = "lossy"
class = "passthrough"
inputs = [{ from = "src.out", depth = 2, overflow = "drop_oldest" }]
[[nodes]]
id = "plain"
class = "passthrough"
inputs = ["keep.out"]
"""


def parse(text: str = PIPELINE):  # type: ignore[no-untyped-def]
    return parse_pipeline(textwrap.dedent(text), "p.toml")


def test_the_key_is_parsed_per_edge_and_blocks_by_default() -> None:
    nodes = {n.id: n for n in parse().nodes}
    assert nodes["keep"].inputs == (InputRef(PortRef("src", "out"), 4, "block"),)
    assert nodes["lossy"].inputs == (InputRef(PortRef("src", "out"), 2, "drop_oldest"),)
    assert nodes["plain"].inputs[0].overflow == "block"


@pytest.mark.parametrize("value", ['"drop_newest"', '"DROP_OLDEST"', "true", "3"])
def test_a_bad_overflow_names_the_file_node_and_field(value: str) -> None:
    text = PIPELINE.replace('overflow = "drop_oldest"', f"overflow = {value}")
    with pytest.raises(PipelineError) as info:
        parse(text)
    err = info.value
    assert err.code == "invalid_pipeline"  # nodectl's exit 4
    [p] = err.problems
    assert (p.node, p.field) == ("lossy", "inputs[0].overflow")
    assert ("'block'" in p.reason and "'drop_oldest'" in p.reason) or p.reason.startswith("expected a string")
    assert "p.toml" in str(err)
    if value.startswith('"'):  # a wrong word (a wrong type is msgspec's, like depth = true)
        assert err.hint is not None and "drop_oldest" in err.hint


def test_the_plan_flags_each_consumer_and_turns_on_safe_overflow_for_the_port() -> None:
    topology = plan(parse(), "ab12")
    src = topology.nodes["src"]
    assert src is not None
    [out] = src.outputs
    assert out.consumers == ["keep", "lossy"] and out.drop_oldest == [False, True] and out.safe_overflow
    keep, lossy = (topology.nodes[n].inputs[0] for n in ("keep", "lossy"))  # type: ignore[union-attr]
    assert (keep.drop_oldest, keep.safe_overflow) == (False, True)  # the service's QoS is shared
    assert (lossy.drop_oldest, lossy.safe_overflow) == (True, True)
    [plain_out] = topology.nodes["keep"].outputs  # type: ignore[union-attr]
    assert plain_out.drop_oldest == [] and not plain_out.safe_overflow  # a port that only blocks: as before
    plain_in = topology.nodes["plain"].inputs[0]  # type: ignore[union-attr]
    assert (plain_in.drop_oldest, plain_in.safe_overflow) == (False, False)


def test_specs_default_to_blocking() -> None:
    out = OutputSpec(port="out", service="s", consumers=["a"], consumer_inboxes=["a/inbox"])
    assert out.drop_oldest == [] and not out.safe_overflow
    spec = InputSpec(source="x.out", service="s", producer_inbox="x/inbox", port_index=0, consumer_index=0)
    assert not spec.drop_oldest and not spec.safe_overflow


def test_the_dropped_slot_is_read_back(tmp_path: Path) -> None:
    block = StatsBlock(1, 2, tmp_path / "stats_x")
    block.slots[block.in_base(1) + I_DROPPED] = 37
    snap = read_stats(tmp_path / "stats_x")
    assert snap is not None and [i.dropped for i in snap.inputs] == [0, 37]
    block.remove()


def _snap(outputs: list[OutputCounters], inputs: list[InputCounters]) -> Snapshot:
    return Snapshot(
        pid=1, state="idle", state_for_ns=0, processed=0, errors=0, busy_ns=0, rejected=0, unconsumed=0,
        outputs=outputs, inputs=inputs,
    )  # fmt: skip


def test_session_show_counts_drops_and_a_lossy_edge_is_never_full() -> None:
    topology = plan(parse(), "ab12")
    planes = dict(topology.nodes)
    snaps = {
        "src": _snap([OutputCounters(100, 100, 0, 0, True)], []),
        # keep holds its depth (4): full; lossy read 10, holds 2 of them, dropped 88
        "keep": _snap([OutputCounters(96, 96, 0, 0, True)], [InputCounters(100, 100, 96, True)]),
        "lossy": _snap([], [InputCounters(10, 10, 8, True, dropped=88)]),
        "plain": _snap([], [InputCounters(96, 96, 96, True)]),
    }
    by_name = {c.name: c for c in channel_stats(planes, snaps, live=lambda e: True)}
    src = by_name["src.out"]
    assert src.drop_oldest == [False, True] and src.dropped == [0, 88]
    assert src.occupancy == [4, 2] and src.full  # "keep" is full; "lossy" holds 2 of its depth 4
    snaps["keep"] = _snap([], [InputCounters(100, 100, 100, True)])
    src = next(c for c in channel_stats(planes, snaps, live=lambda e: True) if c.name == "src.out")
    assert src.occupancy == [0, 2] and not src.full
    lossy_full = _snap([], [InputCounters(10, 10, 6, True, dropped=88)])  # it holds 4 = depth: still not "full"
    snaps["lossy"] = lossy_full
    src = next(c for c in channel_stats(planes, snaps, live=lambda e: True) if c.name == "src.out")
    assert src.occupancy == [0, 4] and not src.full
    assert by_name["keep.out"].drop_oldest == [] and by_name["keep.out"].dropped == []


def test_the_channel_table_shows_drops_only_when_an_edge_is_lossy() -> None:
    blocking = ChannelStats(
        name="a.out", service="a/out", producer="a", consumers=["b"], depth=4, slice_bytes=1024, occupancy=[0]
    )
    console = Console(width=200, record=True)
    console.print(channels_table(SessionStats(at=0.0, channels=[blocking])))
    assert "DROPPED" not in console.export_text()
    lossy = ChannelStats(
        name="src.out", service="src/out", producer="src", consumers=["keep", "lossy"], depth=4, slice_bytes=1024,
        occupancy=[0, 1], drop_oldest=[False, True], dropped=[0, 88],
    )  # fmt: skip
    console = Console(width=200, record=True)
    console.print(channels_table(SessionStats(at=0.0, channels=[blocking, lossy])))
    text = console.export_text()
    assert "DROPPED" in text and "-/88" in text
    assert [line.split()[-1] for line in text.splitlines() if line.strip().startswith("a.out")] == ["-"]


def test_drops_are_a_prometheus_counter_per_edge() -> None:
    lossy = ChannelStats(
        name="src.out", service="src/out", producer="src", consumers=["keep", "lossy", "l2"], depth=4,
        slice_bytes=1024, messages=100, bytes=100, blocked_seconds=0.0, drop_oldest=[False, True, True],
        dropped=[0, 88, 5],
    )  # fmt: skip
    [edge] = edge_stats_from_channels([lossy])
    assert edge == EdgeStats(edge="src.out", messages=100, bytes=100, blocked_seconds=0.0, dropped=93)
    m = Metrics(per_session=True)
    m.on_session(
        SessionInfo(
            sid="s1", pipeline="p", state="ready", created=0.0, slice="x",
            nodes=[NodeInfo(id="src", cls="passthrough", unit="u", state="ready", since=0.0)],
        )
    )  # fmt: skip
    m.update_edges("s1", [edge])
    families = {f.name: f for f in text_string_to_metric_families(m.text().decode())}
    family = families["noded_edge_dropped"]
    assert family.type == "counter"
    [sample] = [s for s in family.samples if s.name == "noded_edge_dropped_total"]
    assert sample.value == 93 and sample.labels == {"pipeline": "p", "session": "s1", "edge": "src.out"}


def test_the_graph_marks_lossy_and_spinning_edges_and_never_calls_them_full() -> None:
    from noded.contract.protocol import NodeStats
    from noded.ctl.graph import from_pipeline, from_session

    text = PIPELINE.replace('depth = 2, overflow = "drop_oldest"', 'depth = 2, overflow = "drop_oldest", spin_us = 300')
    labels = {(e.src, e.dst): e.lines[0] for e in from_pipeline(parse(text)).edges}
    assert labels[("src", "lossy")].startswith("out: depth 2, ")
    assert labels[("src", "lossy")].endswith(", drop_oldest, spin 300 us")
    assert "drop_oldest" not in labels[("src", "keep")]
    info = SessionInfo(
        sid="s1", pipeline="p", state="ready", created=0.0, slice="x",
        nodes=[
            NodeInfo(id=n, cls="passthrough", unit=f"u-{n}", state="ready", since=0.0) for n in ("src", "keep", "lossy")
        ],
    )  # fmt: skip

    def stats(held: list[int]) -> SessionStats:
        channel = ChannelStats(
            name="src.out", service="src/out", producer="src", consumers=["keep", "lossy"], depth=4,
            slice_bytes=1152, occupancy=held, messages=10, drop_oldest=[False, True], dropped=[0, 7],
        )  # fmt: skip
        return SessionStats(at=0.0, nodes=[NodeStats(id="src", state="ready", state_seconds=1.0)], channels=[channel])

    g = from_session(info, stats([0, 4]), stats([1, 4]), 1.0)
    keep, lossy = g.edges
    assert keep.state == "ok" and lossy.state == "ok"  # 4/4 held on a lossy edge is not "full"
    assert "drop_oldest: 7 dropped" in lossy.lines and not any("dropped" in line for line in keep.lines)
