"""How nodectl shows sessions to a person: tables, progress lines, failures."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from noded.contract.protocol import ChannelStats, Failure, NodeInfo, SessionInfo, SessionStats
from noded.contract.states import NODE_UP, NodeState, SessionState

STATE_STYLE: dict[str, str] = {  # node and session states (StrEnums: their values are the keys)
    NodeState.READY: "green",
    NodeState.PROCESSING: "cyan",
    NodeState.IDLE: "green",
    NodeState.INITIALIZING: "yellow",
    SessionState.CREATING: "yellow",
    NodeState.STOPPING: "magenta",
    NodeState.STOPPED: "dim",
    SessionState.FAILED: "bold red",
    NodeState.ERROR: "bold red",
}


def cell(value: str, style: str = "") -> Text:
    """A table cell or title that is shown as it is: text that a pipeline, a node or the
    journal controls (names, status text, reasons) is never read as rich markup."""
    return Text(value, style=style)


def _ago(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    secs = max(0.0, time.time() - epoch)
    return f"{secs:.1f}s" if secs < 120 else f"{secs / 60:.0f}m"


def sessions_table(sessions: list[SessionInfo]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("SESSION", "PIPELINE", "STATE", "NODES", "AGE", "READY IN"):
        table.add_column(col)
    for s in sessions:
        table.add_row(
            cell(s.sid),
            cell(s.pipeline),
            cell(s.state, STATE_STYLE.get(s.state, "")),
            str(len(s.nodes)),
            _ago(s.created),
            f"{s.ready_seconds:.3f}s" if s.ready_seconds is not None else "-",
        )
    return table


def session_table(s: SessionInfo) -> Table:
    if s.stats is not None:
        return nodes_stats_table(s)
    table = Table(
        title=cell(f"session {s.sid} ({s.pipeline}): {s.state}"),
        box=None,
        header_style="bold",
        title_justify="left",
    )
    for col in ("NODE", "CLASS", "STATE", "FOR", "PID", "INIT", "UNIT", "STATUS"):
        table.add_column(col)
    for n in s.nodes:
        table.add_row(
            cell(n.id),
            cell(n.cls),
            cell(n.state, STATE_STYLE.get(n.state, "")),
            _ago(n.since),
            str(n.main_pid or "-"),
            f"{n.init_seconds:.2f}s" if n.init_seconds is not None else "-",
            cell(n.unit),
            cell(n.status_text),
        )
    return table


# -- live figures (noded.daemon.stats) ---------------------------------------------------------

PIPE_WIDTH = 200  # columns of the figure tables when not on a terminal (rich's default: 80)


def wide(console: Console) -> Console:
    """``console``, or a wide one like it when output goes to a pipe or file: the figure
    tables have more columns than 80, and a script wants them whole."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=PIPE_WIDTH, highlight=False, color_system=None)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return "-"


def human_seconds(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.0f}ms" if x < 1 else f"{x:.1f}s" if x < 120 else f"{x / 60:.0f}m"


def _count(n: int | None) -> str:
    return "-" if n is None else str(n)


def _init(n: NodeInfo) -> str:
    if n.init_started is None:
        return "-"
    at = time.strftime("%H:%M:%S", time.localtime(n.init_started))
    return f"{at} +{n.init_seconds:.2f}s" if n.init_seconds is not None else f"{at} ..."


def nodes_stats_table(s: SessionInfo, busy_node: str | None = None, title: str | None = None) -> Table:
    """Nodes with their figures (``s.stats``); ``busy_node`` is highlighted."""
    assert s.stats is not None
    table = Table(
        title=cell(title or f"session {s.sid} ({s.pipeline}): {s.state}"),
        box=None,
        header_style="bold",
        title_justify="left",
    )
    for col in (
        "NODE",
        "CLASS",
        "STATE",
        "FOR",
        "PID",
        "MEM",
        "LIMIT",
        "CPU",
        "BUSY",
        "INIT",
        "IN",
        "OUT",
        "ERR",
        "UNIT",
    ):
        table.add_column(
            col, justify="right" if col in ("PID", "MEM", "LIMIT", "CPU", "BUSY", "IN", "OUT", "ERR") else "left"
        )
    figures = {n.id: n for n in s.stats.nodes}
    for n in s.nodes:
        f = figures.get(n.id)
        state = f.state if f is not None else n.state
        style = STATE_STYLE.get(state, "")
        if f is not None and f.blocked_on:
            state += f" (blocked: {', '.join(f.blocked_on)})"
            style = "bold yellow"
        errors = None if f is None or f.errors is None else f.errors + (f.rejected or 0)
        table.add_row(
            cell(n.id),
            cell(n.cls),
            cell(state, style),
            human_seconds(f.state_seconds) if f is not None else _ago(n.since),
            str(n.main_pid or "-"),
            human_bytes(f.memory_bytes if f else None),
            human_bytes(f.memory_limit) if f is not None and f.memory_limit is not None else "-",
            human_seconds(f.cpu_seconds if f else None),
            human_seconds(f.busy_seconds if f else None),
            _init(n),
            _count(f.messages_in if f else None),
            _count(f.messages_out if f else None),
            cell(str(errors), "bold red") if errors else _count(errors),
            cell(n.unit),
            style="reverse" if n.id == busy_node else None,
        )
    return table


def channels_table(stats: SessionStats) -> Table:
    """Channels with capacity, occupancy and traffic; a full one (its producer waits) in red.
    With a lossy edge (overflow = "drop_oldest") in the session, a DROPPED column: per
    consumer, the messages it lost ("-" for an edge that blocks)."""
    table = Table(title="channels", box=None, header_style="bold", title_justify="left")
    lossy = any(c.drop_oldest for c in stats.channels)
    cols = ("CHANNEL", "TO", "DEPTH", "SLICE", "QUEUED", "PUB", "SUB", "MSGS", "BYTES", "BLOCKED")
    for col in (*cols, "DROPPED") if lossy else cols:
        table.add_column(col, justify="left" if col in ("CHANNEL", "TO") else "right")
    for c in stats.channels:
        extra = [_dropped(c)] if lossy else []
        queued = "/".join(str(n) for n in c.occupancy) or "0"
        blocked = human_seconds(c.blocked_seconds)
        if c.blocked_now_seconds:
            blocked += f" (now {human_seconds(c.blocked_now_seconds)}{': ' + c.waiting_for if c.waiting_for else ''})"
        table.add_row(
            cell(c.name),
            cell(", ".join(c.consumers)),
            str(c.depth),
            human_bytes(c.slice_bytes),
            cell(f"{queued} FULL", "bold red") if c.full else queued,
            str(c.publishers),
            str(c.subscribers),
            _count(c.messages),
            human_bytes(c.bytes),
            cell(blocked, "bold red") if c.blocked_now_seconds else blocked,
            *extra,
        )
    return table


def _dropped(c: ChannelStats) -> str:
    if not c.drop_oldest:
        return "-"
    counts = c.dropped or [0] * len(c.drop_oldest)
    return "/".join(str(n) if drop else "-" for n, drop in zip(counts, c.drop_oldest))


def print_failure(console: Console, s: SessionInfo) -> None:
    f: Failure | None = s.failure
    if f is None:
        return
    headline = Text.assemble((f"session {s.sid} failed:", "bold red"), " node ", (f.node, "bold"), " ", f.reason)
    console.print(headline, highlight=False)
    if f.journal:
        console.print(f"last lines of node {f.node}'s journal:", style="dim", markup=False)
        for line in f.journal:
            console.print(f"  {line}", highlight=False, markup=False)


class NodeProgress:
    """One progress bar per node while a session starts (plain lines when not a TTY)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._progress = Progress(
            # markup=False: progress text is the node's own (a path in brackets, say)
            TextColumn("{task.fields[node]:<12}", markup=False),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[state]:<12}", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[text]}", markup=False),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._last: dict[str, tuple[str, str]] = {}

    def __enter__(self) -> NodeProgress:
        if self.live:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self._progress.stop()

    def update(self, s: SessionInfo) -> None:
        for n in s.nodes:
            done = n.state in NODE_UP
            fraction = 1.0 if done else (n.progress or 0.0)
            text = n.status_text.partition(": ")[2] if ": " in n.status_text else ""
            if self.live:
                if n.id not in self._tasks:
                    self._tasks[n.id] = self._progress.add_task("", total=1.0, node=n.id, state=n.state, text="")
                self._progress.update(self._tasks[n.id], completed=fraction, state=n.state, text=text)
            else:
                line = (n.state, f"{fraction * 100:.0f}% {text}".strip())
                if self._last.get(n.id) != line:
                    self._last[n.id] = line
                    self.console.print(f"{n.id}: {n.state} {line[1]}", highlight=False, markup=False)
