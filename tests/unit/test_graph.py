"""`nodectl graph`: every example pipeline in DOT, SVG and Mermaid; a session's live edges."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from noded.contract.protocol import ChannelStats, NodeInfo, NodeStats, SessionInfo, SessionStats
from noded.ctl.graph import from_pipeline, from_session, to_dot, to_mermaid, to_svg
from noded.pipeline.checks import parse_pipeline

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))
SVG = "{http://www.w3.org/2000/svg}"


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_in_every_format(path: Path) -> None:
    pipeline = parse_pipeline(path.read_text(), path.name)
    g = from_pipeline(pipeline)
    ids = {n.id for n in pipeline.nodes}
    assert ids <= {n.id for n in g.nodes}
    wanted_edges = sum(len(n.inputs) for n in pipeline.nodes) + len(pipeline.outputs)
    assert len(g.edges) == wanted_edges

    dot = to_dot(g)
    assert dot.startswith(f'digraph "{pipeline.name}" {{') and dot.rstrip().endswith("}")
    assert len(re.findall(r"^  \".*\" -> \".*\" \[label=", dot, re.M)) == wanted_edges
    for node in pipeline.nodes:
        assert f'"{node.id}" [label="{node.id}\\n{node.cls}\\n' in dot  # class and limits on the node
        for inp in node.inputs:
            assert f"depth {inp.depth}" in dot

    mermaid = to_mermaid(g)
    assert mermaid.startswith("flowchart LR\n")
    assert mermaid.count("-->|") == wanted_edges

    root = ET.fromstring(to_svg(g))  # well-formed XML
    nodes = root.findall(f"{SVG}g[@class='node']")
    edges = root.findall(f"{SVG}g[@class='edge']")
    assert {n.get("data-id") for n in nodes} == {n.id for n in g.nodes}
    assert len(edges) == wanted_edges
    for e in edges:
        assert e.get("data-from") in {n.id for n in g.nodes} and e.get("data-to") in {n.id for n in g.nodes}


def test_a_session_shows_occupancy_full_blocked_and_rate() -> None:
    info = SessionInfo(
        sid="3f2a9c1d",
        pipeline="p",
        state="ready",
        created=0.0,
        slice="s",
        nodes=[
            NodeInfo(id="a", cls="source", unit="u1", state="ready", since=0.0),
            NodeInfo(id="b", cls="slow_sink", unit="u2", state="ready", since=0.0),
        ],
    )

    def stats(messages: int, held: int, blocked: float) -> SessionStats:
        channel = ChannelStats(
            name="a.out",
            service="s",
            producer="a",
            consumers=["b"],
            depth=4,
            slice_bytes=1152,
            occupancy=[held],
            messages=messages,
            blocked_now_seconds=blocked,
        )
        node = NodeStats(id="a", state="ready", state_seconds=1.0, memory_limit=2**20)
        return SessionStats(at=0.0, nodes=[node], channels=[channel])

    g = from_session(info, stats(100, 1, 0.0), stats(150, 4, 0.0), 2.0)
    (edge,) = g.edges
    assert (edge.src, edge.dst, edge.state) == ("a", "b", "full")
    assert edge.lines[0].startswith("4/4 in flight") and "25.0 msg/s" in edge.lines
    assert "mem 1 MiB" in g.nodes[0].lines
    blocked = from_session(info, stats(100, 4, 0.0), stats(100, 4, 0.3), 1.0)
    assert blocked.edges[0].state == "blocked" and "0.0 msg/s" in blocked.edges[0].lines
    assert 'stroke="red"' in to_svg(blocked) and "color=red" in to_dot(blocked)
    assert "linkStyle 0 stroke:red" in to_mermaid(blocked)


def test_labels_with_quotes_and_markup_are_escaped() -> None:
    text = '[[nodes]]\nid = "a"\nclass = "passthrough"\n'
    g = from_pipeline(parse_pipeline(text, 'we"ird<b>.toml'))
    g.nodes[0].lines.append('say "hi" <b>|')
    ET.fromstring(to_svg(g))
    assert '\\"hi\\"' in to_dot(g)
    assert "&quot;hi&quot;" in to_mermaid(g) and "&#124;" in to_mermaid(g)


def test_the_command_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "assistant.svg"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "noded.ctl.main",
            "graph",
            str(REPO / "examples/assistant.toml"),
            "-f",
            "svg",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr
    assert ET.parse(out).getroot().tag == f"{SVG}svg"
    bad = subprocess.run(
        [sys.executable, "-m", "noded.ctl.main", "graph", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert bad.returncode != 0 and "missing.toml" in bad.stderr and "Traceback" not in bad.stderr
