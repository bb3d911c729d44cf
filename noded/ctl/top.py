"""`nodectl top [SID]`: a live view of sessions, refreshed by the daemon's event stream.

The command sends one ``watch`` request with ``stats`` (a period); the daemon then pushes
the session events as they happen and, once a period, each live session with its figures
(``noded.daemon.stats``): no polling. Each refresh highlights the busiest node (the largest share
of the last period spent processing, else of CPU time) and every edge that blocks its
upstream (full, or its producer waiting for it right now).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from noded.contract.protocol import SessionInfo, SessionStats
from noded.contract.states import SESSION_TERMINAL
from noded.ctl.common import Ctx, out, reports_errors
from noded.ctl.render import channels_table, human_seconds, nodes_stats_table, wide


@dataclass
class Rates:
    """Per node: busy and CPU time between the last two readings, as a share of the time."""

    busy: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    blocked: dict[str, float] = field(default_factory=dict)  # channel -> share its producer waited
    seconds: float = 0.0  # the period


def rates(prev: SessionStats | None, cur: SessionStats) -> Rates:
    r = Rates()
    if prev is None or cur.at <= prev.at:
        return r
    dt = r.seconds = cur.at - prev.at
    before = {n.id: n for n in prev.nodes}
    channels = {c.name: c for c in prev.channels}
    for c in cur.channels:
        p = channels.get(c.name)
        if p is not None and c.blocked_seconds is not None and p.blocked_seconds is not None:
            r.blocked[c.name] = min(max(c.blocked_seconds - p.blocked_seconds, 0.0) / dt, 1.0)
    for n in cur.nodes:
        q = before.get(n.id)
        if q is None:
            continue
        if n.busy_seconds is not None and q.busy_seconds is not None:
            r.busy[n.id] = max(n.busy_seconds - q.busy_seconds, 0.0) / dt
        if n.cpu_seconds is not None and q.cpu_seconds is not None:
            r.cpu[n.id] = max(n.cpu_seconds - q.cpu_seconds, 0.0) / dt
    return r


def busiest_node(r: Rates) -> tuple[str, str] | None:
    """(node, why) of the busiest node of the last period, or None if all were idle."""
    for share, what in ((r.busy, "busy"), (r.cpu, "CPU")):
        if share:
            node, value = max(share.items(), key=lambda kv: kv[1])
            if value >= 0.01:
                return node, f"{value * 100:.0f}% {what}"
    return None


BLOCKED_SHARE = 0.5  # an edge whose producer waited this much of the last period blocks it


def blocking_edges(stats: SessionStats, r: Rates | None = None) -> list[str]:
    """One line per edge that holds its producer back: full, its producer waiting on it
    now, or waiting for most of the last period."""
    lines = []
    for c in stats.channels:
        share = r.blocked.get(c.name, 0.0) if r is not None else 0.0
        if not (c.full or c.blocked_now_seconds or share >= BLOCKED_SHARE):
            continue
        waits = [cons for cons, n in zip(c.consumers, c.occupancy) if n >= c.depth] or c.consumers
        line = f"{c.name} -> {', '.join(waits)}: {'full' if c.full else 'not full'}"
        if c.blocked_now_seconds:
            line += f", {c.producer} blocked for {human_seconds(c.blocked_now_seconds)}"
        if r is not None and r.seconds and c.name in r.blocked:
            line += f"; {c.producer} waited {share * 100:.0f}% of the last {r.seconds:.1f}s"
        lines.append(line)
    return lines


class TopView:
    """The sessions as the last events showed them, and their last two readings."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionInfo] = {}
        self.prev: dict[str, SessionStats] = {}
        self.rates: dict[str, Rates] = {}
        self.readings = 0

    def apply(self, info: SessionInfo) -> None:
        if info.state in SESSION_TERMINAL:
            self.sessions.pop(info.sid, None)
            self.prev.pop(info.sid, None)
            self.rates.pop(info.sid, None)
            return
        old = self.sessions.get(info.sid)
        if info.stats is None:  # a state event: keep the last figures
            info.stats = old.stats if old is not None else None
        else:
            self.readings += 1
            last = self.prev.get(info.sid)
            if last is None or info.stats.at > last.at:
                self.rates[info.sid] = rates(last, info.stats)
                self.prev[info.sid] = info.stats
        self.sessions[info.sid] = info

    def render(self) -> RenderableType:
        if not self.sessions:
            return Text("no live sessions", style="dim")
        parts: list[RenderableType] = []
        for sid, info in self.sessions.items():
            if info.stats is None:
                parts.append(Text(f"session {sid} ({info.pipeline}): {info.state}, waiting for figures"))
                continue
            r = self.rates.get(sid, Rates())
            hot = busiest_node(r)
            title = f"session {sid} ({info.pipeline}): {info.state}"
            if hot is not None:
                title += f"; busiest: {hot[0]} ({hot[1]})"
            parts.append(nodes_stats_table(info, busy_node=hot[0] if hot else None, title=title))
            if info.stats.channels:
                parts.append(channels_table(info.stats))
            for line in blocking_edges(info.stats, r):
                parts.append(Text(f"blocking: {line}", style="bold red"))
            parts.append(Text(""))
        return Group(*parts)


@click.command()
@click.argument("sid", required=False)
@click.option(
    "--interval",
    type=click.FloatRange(0.2, 60),
    default=1.0,
    show_default=True,
    help="Seconds between the daemon's readings.",
)
@click.option(
    "-n",
    "--iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Exit after this many readings (default: until Ctrl-C, or SID ends).",
)
@click.pass_obj
@reports_errors
def top(ctx: Ctx, sid: str | None, interval: float, iterations: int | None) -> None:
    """Live view of all sessions (or of SID): node states, memory, CPU, channels.

    Highlights the busiest node and every edge that blocks its upstream. With --json,
    prints each event (with figures once a period) as one JSON line.
    """
    view = TopView()
    with ctx.client(timeout=None) as c:
        first = c.watch(sid, stats=interval)
        for info in first:
            view.apply(info)
        if sid is not None and sid not in view.sessions:
            if ctx.json:
                ctx.emit(first[0])
            else:
                out.print(f"session {sid} has ended")
            return
        if iterations is not None and not view.sessions:  # no reading will come
            if not ctx.json:
                out.print("no live sessions")
            return
        live = Live(view.render(), console=wide(out), auto_refresh=False, transient=False) if not ctx.json else None
        if live is not None:
            live.start()
        try:
            for info in c.events():
                view.apply(info)
                if ctx.json:
                    ctx.emit(info)
                    sys.stdout.flush()
                elif live is not None:
                    live.update(view.render(), refresh=True)
                if sid is not None and info.sid == sid and info.state in SESSION_TERMINAL:
                    break
                if iterations is not None and view.readings >= iterations:
                    break
        finally:
            if live is not None:
                live.stop()
