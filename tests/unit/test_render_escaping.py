"""Text that a pipeline, a node or the journal controls is shown as it is, never read as
rich markup: in every table, progress line, failure and `top` frame (noded.ctl)."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from noded.contract.protocol import ChannelStats, Failure, NodeInfo, NodeStats, SessionInfo, SessionStats
from noded.contract.states import NodeState, SessionState
from noded.ctl.render import (
    NodeProgress,
    channels_table,
    nodes_stats_table,
    print_failure,
    session_table,
    sessions_table,
)
from noded.ctl.top import TopView

HOSTILE = ["[/]", "[bold]", "dict[str, int]", "loading [/srv/models/en]", "a\\[b]", "[link=x]y[/link]"]


def _console(terminal: bool = False) -> Console:
    return Console(file=io.StringIO(), width=400, force_terminal=terminal, color_system=None, record=True)


def _text(c: Console) -> str:
    return c.export_text()


def _info(word: str, with_stats: bool = False) -> SessionInfo:
    node = NodeInfo(
        id=f"n{word}",
        cls=f"mod.C{word}",
        unit=f"u{word}",
        state=NodeState.INITIALIZING,
        since=time.time(),
        progress=0.5,
        status_text=f"init: {word}",
        main_pid=1,
    )
    stats = None
    if with_stats:
        stats = SessionStats(
            at=time.time(),
            nodes=[NodeStats(id=node.id, state="processing", state_seconds=1.0, errors=1, blocked_on=[f"out{word}"])],
            channels=[
                ChannelStats(
                    name=f"ch{word}",
                    service="s",
                    producer=node.id,
                    consumers=[f"c{word}"],
                    depth=2,
                    slice_bytes=128,
                    full=True,
                    blocked_now_seconds=1.0,
                )
            ],
        )
    return SessionInfo(
        sid="abcd1234",
        pipeline=f"voice{word}",
        state=SessionState.FAILED,
        created=time.time(),
        slice="s",
        nodes=[node],
        failure=Failure(node=node.id, reason=f"failed: {word}", journal=[f"journal {word}"]),
        stats=stats,
    )


@pytest.mark.parametrize("word", HOSTILE)
def test_tables_show_text_as_it_is(word: str) -> None:
    c = _console()
    info = _info(word, with_stats=True)
    c.print(sessions_table([info]))
    c.print(session_table(_info(word)))
    c.print(nodes_stats_table(info))
    assert info.stats is not None
    c.print(channels_table(info.stats))
    out = _text(c)
    for shown in (f"voice{word}", f"n{word}", f"mod.C{word}", f"u{word}", f"init: {word}", f"ch{word}", f"c{word}"):
        assert shown in out, (shown, out)
    assert f"out{word}" in out


@pytest.mark.parametrize("word", HOSTILE)
def test_failure_shows_reason_and_journal_whole(word: str) -> None:
    c = _console(terminal=True)
    print_failure(c, _info(word))
    out = _text(c)
    assert f"failed: {word}" in out and f"journal {word}" in out and f"n{word}" in out, out


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("word", HOSTILE)
def test_progress_shows_status_text_whole(word: str, terminal: bool) -> None:
    c = _console(terminal=terminal)
    with NodeProgress(c) as p:
        p.update(_info(word))
    assert word in _text(c)


@pytest.mark.parametrize("word", HOSTILE)
def test_top_frame_shows_text_whole(word: str) -> None:
    view = TopView()
    info = _info(word, with_stats=True)
    info.state = SessionState.READY  # a live session (top drops ended ones)
    view.apply(info)
    c = _console(terminal=True)
    c.print(view.render())
    out = _text(c)
    assert f"voice{word}" in out and f"n{word}" in out, out
