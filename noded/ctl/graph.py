"""`nodectl graph PIPELINE.toml|SID`: a pipeline drawn as a graph (in the spirit of
``dora graph``), as Graphviz DOT, SVG (drawn here, no Graphviz needed) or Mermaid.

Nodes carry their class and limits; edges their depth and largest message. Given a
running session's id, each edge also shows its occupancy (messages in flight of the
depth), whether it is full or its producer blocked, and its message rate over one second.

The model (``Graph``) and the three writers are pure; only ``graph`` talks to the daemon.
"""

from __future__ import annotations

import html
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from noded.ctl.common import Ctx, reports_errors
from noded.errors import NodedError

FORMATS = ("dot", "svg", "mermaid")
SID_RE = re.compile(r"[0-9a-f]{8}")


@dataclass
class GNode:
    id: str
    lines: list[str]  # the label: id first
    external: bool = False  # an external input or output of the pipeline


@dataclass
class GEdge:
    src: str
    dst: str
    lines: list[str]
    state: str = "ok"  # ok, full (a consumer holds its whole depth), blocked (the producer waits)


@dataclass
class Graph:
    name: str
    nodes: list[GNode] = field(default_factory=list)
    edges: list[GEdge] = field(default_factory=list)


def _size(n: int | None) -> str:
    if n is None:
        return "unlimited"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} B"


def from_pipeline(pipeline: Any) -> Graph:
    """The graph of a parsed pipeline (``noded.pipeline.schema.Pipeline``)."""
    g = Graph(pipeline.name)
    for name in pipeline.inputs:
        g.nodes.append(GNode(f"input.{name}", [f"input.{name}"], external=True))
    for node in pipeline.nodes:
        r = node.resources
        limits = []
        if r.memory_max is not None:
            limits.append(f"mem {_size(r.memory_max)}")
        if r.cpu_quota is not None:
            limits.append(f"cpu {r.cpu_quota * 100:g}%")
        if r.tasks_max is not None:
            limits.append(f"tasks {r.tasks_max}")
        g.nodes.append(GNode(node.id, [node.id, node.cls, ", ".join(limits) or "no limits"]))
        for inp in node.inputs:
            src = str(inp.ref) if inp.ref.is_external else inp.ref.node
            port = "" if inp.ref.is_external else f"{inp.ref.port}: "
            payload = pipeline.node(inp.ref.node).max_payload if not inp.ref.is_external else None
            size = f", ≤{_size(payload)}" if payload is not None else ""
            mode = (", drop_oldest" if inp.overflow == "drop_oldest" else "") + (
                f", spin {inp.spin_us} us" if inp.spin_us else ""
            )
            g.edges.append(GEdge(src, node.id, [f"{port}depth {inp.depth}{size}{mode}"]))
    for ref in pipeline.outputs:
        out = f"output.{ref}"
        g.nodes.append(GNode(out, [str(ref)], external=True))
        g.edges.append(GEdge(ref.node, out, [f"{ref.port}"]))
    return g


def from_session(info: Any, before: Any, after: Any, seconds: float) -> Graph:
    """A running session's graph from two readings of its figures ``seconds`` apart
    (``SessionInfo`` and two ``SessionStats``): occupancy, full/blocked, rate."""
    g = Graph(f"{info.pipeline} ({info.sid})")
    limits = {n.id: n.memory_limit for n in (after.nodes if after else [])}
    for node in info.nodes:
        mem = limits.get(node.id)
        g.nodes.append(GNode(node.id, [node.id, node.cls, f"mem {_size(mem)}", str(node.state)]))
    earlier = {c.name: c.messages for c in (before.channels if before else [])}
    known = {n.id for n in info.nodes}
    for ch in after.channels if after else []:
        producer = ch.name.split(".", 1)[0]
        src = producer if producer in known else ch.name
        if src not in known and all(n.id != src for n in g.nodes):
            g.nodes.append(GNode(src, [src], external=True))
        rate = None
        if ch.messages is not None and earlier.get(ch.name) is not None and seconds > 0:
            rate = (ch.messages - earlier[ch.name]) / seconds
        for i, consumer in enumerate(ch.consumers):
            dst = consumer.split(".", 1)[0] if consumer.split(".", 1)[0] in known else consumer
            if dst not in known and all(n.id != dst for n in g.nodes):
                g.nodes.append(GNode(dst, [dst], external=True))
            held = ch.occupancy[i] if i < len(ch.occupancy) else 0
            lossy = i < len(ch.drop_oldest) and ch.drop_oldest[i]  # never holds its producer: never full
            state = "blocked" if ch.blocked_now_seconds > 0 else "full" if held >= ch.depth and not lossy else "ok"
            lines = [f"{held}/{ch.depth} in flight, ≤{_size(ch.slice_bytes)}"]
            lines.append(f"{rate:.1f} msg/s" if rate is not None else "rate unknown")
            if lossy:
                lines.append(f"drop_oldest: {ch.dropped[i] if i < len(ch.dropped) else 0} dropped")
            if state != "ok":
                lines.append(state)
            g.edges.append(GEdge(src, dst, lines, state))
    return g


# -- writers ------------------------------------------------------------------------


def _dot_id(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


COLOURS = {"ok": "black", "full": "orange", "blocked": "red"}


def to_dot(g: Graph) -> str:
    out = [f"digraph {_dot_id(g.name)} {{", "  rankdir=LR;", '  node [shape=box, fontname="sans-serif"];']
    for n in g.nodes:
        shape = ", shape=ellipse" if n.external else ""
        out.append(f"  {_dot_id(n.id)} [label={_dot_id(chr(10).join(n.lines))}{shape}];")
    for e in g.edges:
        label = _dot_id(chr(10).join(e.lines))
        out.append(f"  {_dot_id(e.src)} -> {_dot_id(e.dst)} [label={label}, color={COLOURS[e.state]}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_id(s: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", s)


def _mermaid_text(lines: list[str]) -> str:
    return "<br/>".join(html.escape(line, quote=True).replace("|", "&#124;") for line in lines)


def to_mermaid(g: Graph) -> str:
    out = ["flowchart LR"]
    for n in g.nodes:
        text = _mermaid_text(n.lines)
        out.append(f'  {_mermaid_id(n.id)}(["{text}"])' if n.external else f'  {_mermaid_id(n.id)}["{text}"]')
    for i, e in enumerate(g.edges):
        out.append(f'  {_mermaid_id(e.src)} -->|"{_mermaid_text(e.lines)}"| {_mermaid_id(e.dst)}')
        if e.state != "ok":
            out.append(f"  linkStyle {i} stroke:{COLOURS[e.state]}")
    return "\n".join(out) + "\n"


def layers(g: Graph) -> dict[str, int]:
    """Each node's column: the longest path from a source (cycles cannot occur: the
    pipeline checks refuse them; a back edge is ignored all the same)."""
    depth = {n.id: 0 for n in g.nodes}
    for _ in range(len(g.nodes)):
        changed = False
        for e in g.edges:
            if e.src in depth and e.dst in depth and depth[e.dst] < depth[e.src] + 1 <= len(g.nodes):
                depth[e.dst] = depth[e.src] + 1
                changed = True
        if not changed:
            break
    return depth


def to_svg(g: Graph) -> str:
    """A layered drawing: one column per layer, boxes for nodes, labelled arrows."""
    box_w, box_h, gap_x, gap_y, line_h = 190, 62, 150, 40, 15
    col = layers(g)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    for n in g.nodes:
        c = col[n.id]
        r = rows.get(c, 0)
        rows[c] = r + 1
        pos[n.id] = (20 + c * (box_w + gap_x), 40 + r * (box_h + gap_y))
    width = 40 + (max(col.values(), default=0) + 1) * (box_w + gap_x) - gap_x
    height = 60 + max(rows.values(), default=1) * (box_h + gap_y)
    esc = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{esc(g.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
        f'<text x="20" y="22" font-weight="bold">{esc(g.name)}</text>',
    ]
    for e in g.edges:
        (x1, y1), (x2, y2) = pos[e.src], pos[e.dst]
        x1, y1, x2, y2 = x1 + box_w, y1 + box_h // 2, x2, y2 + box_h // 2
        colour = COLOURS[e.state]
        out.append(
            f'<g class="edge" data-from="{esc(e.src)}" data-to="{esc(e.dst)}"><line x1="{x1}" y1="{y1}" x2="{x2}" '
            f'y2="{y2}" stroke="{colour}" marker-end="url(#arrow)"/>'
        )
        mx, my = (x1 + x2) // 2, (y1 + y2) // 2 - 4 - line_h * (len(e.lines) - 1)
        for i, line in enumerate(e.lines):
            out.append(f'<text x="{mx}" y="{my + i * line_h}" text-anchor="middle" fill="{colour}">{esc(line)}</text>')
        out.append("</g>")
    for n in g.nodes:
        x, y = pos[n.id]
        rx = box_h // 2 if n.external else 4
        out.append(
            f'<g class="node" data-id="{esc(n.id)}"><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" '
            f'rx="{rx}" fill="white" stroke="black"/>'
        )
        for i, line in enumerate(n.lines[:4]):
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(
                f'<text x="{x + box_w // 2}" y="{y + 17 + i * line_h}" text-anchor="middle"{weight}>{esc(line)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


WRITERS = {"dot": to_dot, "svg": to_svg, "mermaid": to_mermaid}


@click.command("graph")
@click.argument("target", metavar="PIPELINE_FILE|SID")
@click.option(
    "-f", "--format", "fmt", type=click.Choice(FORMATS), default="dot", show_default=True, help="The output format."
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file, not standard output."
)
@click.option(
    "--interval",
    type=click.FloatRange(0.2, 60),
    default=1.0,
    show_default=True,
    help="With a SID: seconds between the two readings a rate is computed from.",
)
@click.pass_obj
@reports_errors
def graph(ctx: Ctx, target: str, fmt: str, output: Path | None, interval: float) -> None:
    """Draw a pipeline file, or a running session SID, as a graph (DOT, SVG or Mermaid).

    Nodes show their class and limits, edges their depth and largest message; for a
    session, each edge's occupancy, full or blocked state and message rate.
    """
    path = Path(target)
    if path.exists() or target.endswith(".toml") or not SID_RE.fullmatch(target):
        from noded.pipeline.checks import parse_pipeline

        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise NodedError(f"cannot read {target}: {exc}", hint="give a pipeline file or a session id") from exc
        g = from_pipeline(parse_pipeline(text, path.name))
    else:
        with ctx.connect() as nd:
            first = nd.show(target)
            time.sleep(interval)
            info = nd.show(target)
        g = from_session(info, first.stats, info.stats, interval)
    text = WRITERS[fmt](g)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
