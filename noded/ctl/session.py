"""`nodectl session create|list|show|stop|watch`: sessions, through ``noded.api``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from noded.ctl import common
from noded.ctl.common import Ctx, fail, reports_errors
from noded.ctl.completion import complete_sid
from noded.errors import NodedError

# rich (noded.ctl.render) and the protocol are imported inside the commands: completing
# `nodectl session <TAB>` imports this module and must stay fast.


@click.group()
def session() -> None:
    """Create, inspect and stop sessions."""


@session.command("create")
@click.argument("pipeline_file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--no-block",
    is_flag=True,
    help="Print the session id and return at once, without waiting for the nodes to be ready.",
)
@click.option("--wait", is_flag=True, hidden=True, help="Wait until ready (the default; kept for old scripts).")
@click.pass_obj
@reports_errors
def create(ctx: Ctx, pipeline_file: Path, no_block: bool, wait: bool) -> None:
    """Start a session of the pipeline in PIPELINE_FILE ('-' reads standard input).

    Waits until every node is ready, showing their progress on standard error, as
    'systemctl start' does; --no-block returns at once.
    """
    from noded.contract.states import SessionState
    from noded.ctl.render import print_failure

    out, err = common.out, common.err
    wait = not no_block
    try:
        text = sys.stdin.read() if str(pipeline_file) == "-" else pipeline_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise NodedError(
            f"cannot read {pipeline_file}: {exc}", hint="the pipeline file must be readable UTF-8 TOML"
        ) from exc
    name = "stdin.toml" if str(pipeline_file) == "-" else pipeline_file.name
    from noded.pipeline.bounds import refuse_too_large

    refuse_too_large(text, str(pipeline_file))
    with ctx.connect() as nd:
        folder = None if str(pipeline_file) == "-" else str(pipeline_file.absolute().parent)
        s = nd.create(text, filename=name, wait=False, directory=folder)
        with s:
            s.stop_on_exit = False  # the session outlives nodectl
            info = ctx.follow(s, until_ready=True) if wait else s.info
    if ctx.json:
        ctx.emit(info)
    elif wait and info.state is SessionState.READY:
        out.print(f"session {info.sid} ready in {info.ready_seconds:.2f}s ({len(info.nodes)} nodes)")
    elif not wait:
        out.print(info.sid)
    if info.state in (SessionState.FAILED, SessionState.STOPPING) and info.failure is not None:
        if not ctx.json:
            print_failure(err, info)
        fail()


@session.command("list")
@click.pass_obj
@reports_errors
def list_(ctx: Ctx) -> None:
    """List sessions (live, and recently ended)."""
    from noded.ctl.render import sessions_table

    with ctx.connect() as nd:
        sessions = nd.sessions()
    if ctx.json:
        ctx.emit(sessions)
    elif not sessions:
        if not ctx.no_legend:
            common.out.print("no sessions")
    else:
        table = sessions_table(sessions)
        table.show_header = not ctx.no_legend
        common.out.print(table)


@session.command("show")
@click.argument("sid", shell_complete=complete_sid)
@click.pass_obj
@reports_errors
def show(ctx: Ctx, sid: str) -> None:
    """Show a session: its nodes (state, memory, CPU, messages) and channels."""
    from rich.markup import escape

    from noded.ctl.render import channels_table, print_failure, session_table, wide

    with ctx.connect() as nd:
        info = nd.show(sid)
    if ctx.json:
        ctx.emit(info)
    else:
        console = wide(common.out)
        tables = [session_table(info)]
        if info.stats is not None and info.stats.channels:
            tables.append(channels_table(info.stats))
        for table in tables:
            if ctx.no_legend:
                table.show_header = False
                table.title = None
            console.print(table)
        for c in info.stats.clients if info.stats is not None else []:
            role = f"feeds {c.feeds}" if c.feeds else f"reads the outputs (slot {c.reader_slot})"
            console.print(f"client PID {c.pid} {escape(role)}", highlight=False)
        for node in info.nodes:
            if node.grants:
                console.print(f"{escape(node.id)} is granted: {escape(', '.join(node.grants))}", highlight=False)
        print_failure(common.out, info)


@session.command("stop")
@click.argument("sid", shell_complete=complete_sid)
@click.option("--no-block", is_flag=True, help="Return at once instead of when every unit is gone.")
@click.option("--no-wait", is_flag=True, hidden=True, help="The old name of --no-block.")
@click.pass_obj
@reports_errors
def stop(ctx: Ctx, sid: str, no_block: bool, no_wait: bool) -> None:
    """Stop a session: every unit is stopped and its slice removed.

    Waits until every unit is gone, as 'systemctl stop' does; --no-block returns at once.
    """
    with ctx.connect() as nd:
        info = nd.stop(sid, wait=not (no_block or no_wait))
    if ctx.json:
        ctx.emit(info)
    else:
        common.out.print(f"session {sid} {info.state}", markup=False)


@session.command("watch")
@click.argument("sid", shell_complete=complete_sid)
@click.pass_obj
@reports_errors
def watch(ctx: Ctx, sid: str) -> None:
    """Follow a session's node states until it ends."""
    from noded.contract.states import SessionState
    from noded.ctl.render import print_failure

    out, err = common.out, common.err
    with ctx.connect() as nd, nd.session(sid) as s:
        if ctx.json:
            ctx.emit(s.info)
        info = ctx.follow(s, until_ready=False)
    if not ctx.json:
        out.print(f"session {sid} {info.state}", markup=False)
        print_failure(err, info)
    if info.state is SessionState.FAILED:
        fail()
