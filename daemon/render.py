"""How nodectl shows sessions to a person: tables, progress lines, failures."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from daemon.protocol import Failure, SessionInfo

STATE_STYLE = {
    "ready": "green", "processing": "cyan", "idle": "green", "initializing": "yellow",
    "creating": "yellow", "stopping": "magenta", "stopped": "dim", "failed": "bold red", "error": "bold red",
}


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
        table.add_row(s.sid, s.pipeline, f"[{STATE_STYLE.get(s.state, '')}]{s.state}", str(len(s.nodes)),
                      _ago(s.created), f"{s.ready_seconds:.3f}s" if s.ready_seconds is not None else "-")
    return table


def session_table(s: SessionInfo) -> Table:
    table = Table(title=f"session {s.sid} ({s.pipeline}): {s.state}", box=None, header_style="bold",
                  title_justify="left")
    for col in ("NODE", "CLASS", "STATE", "FOR", "PID", "INIT", "UNIT", "STATUS"):
        table.add_column(col)
    for n in s.nodes:
        table.add_row(n.id, n.cls, f"[{STATE_STYLE.get(n.state, '')}]{n.state}", _ago(n.since),
                      str(n.main_pid or "-"), f"{n.init_seconds:.2f}s" if n.init_seconds is not None else "-",
                      n.unit, n.status_text)
    return table


def print_failure(console: Console, s: SessionInfo) -> None:
    f: Failure | None = s.failure
    if f is None:
        return
    console.print(f"[bold red]session {s.sid} failed:[/] node [bold]{f.node}[/] {f.reason}", highlight=False)
    if f.journal:
        console.print(f"last lines of node {f.node}'s journal:", style="dim")
        for line in f.journal:
            console.print(f"  {line}", highlight=False, markup=False)


class NodeProgress:
    """One progress bar per node while a session starts (plain lines when not a TTY)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._progress = Progress(
            TextColumn("{task.fields[node]:<12}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[state]:<12}"), TimeElapsedColumn(), TextColumn("{task.fields[text]}"),
            console=console, transient=False,
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
            done = n.state in ("ready", "processing", "idle")
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
