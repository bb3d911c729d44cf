"""`nodectl session create|list|show|stop|watch`: sessions, through ``noded.api``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from noded.contract.states import SessionState
from noded.ctl.common import Ctx, err, fail, out, reports_errors
from noded.ctl.completion import complete_sid
from noded.ctl.render import channels_table, print_failure, session_table, sessions_table, wide
from noded.errors import NodedError
from noded.pipeline.bounds import refuse_too_large


@click.group()
def session() -> None:
    """Create, inspect and stop sessions."""


@session.command("create")
@click.argument("pipeline_file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--wait", is_flag=True, help="Wait until every node is ready, showing progress.")
@click.pass_obj
@reports_errors
def create(ctx: Ctx, pipeline_file: Path, wait: bool) -> None:
    """Start a session of the pipeline in PIPELINE_FILE ('-' reads standard input)."""
    try:
        text = sys.stdin.read() if str(pipeline_file) == "-" else pipeline_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise NodedError(
            f"cannot read {pipeline_file}: {exc}", hint="the pipeline file must be readable UTF-8 TOML"
        ) from exc
    name = "stdin.toml" if str(pipeline_file) == "-" else pipeline_file.name
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
    with ctx.connect() as nd:
        sessions = nd.sessions()
    if ctx.json:
        ctx.emit(sessions)
    elif not sessions:
        out.print("no sessions")
    else:
        out.print(sessions_table(sessions))


@session.command("show")
@click.argument("sid", shell_complete=complete_sid)
@click.pass_obj
@reports_errors
def show(ctx: Ctx, sid: str) -> None:
    """Show a session: its nodes (state, memory, CPU, messages) and channels."""
    with ctx.connect() as nd:
        info = nd.show(sid)
    if ctx.json:
        ctx.emit(info)
    else:
        console = wide(out)
        console.print(session_table(info))
        if info.stats is not None and info.stats.channels:
            console.print(channels_table(info.stats))
        for node in info.nodes:
            if node.grants:
                console.print(f"{escape(node.id)} is granted: {escape(', '.join(node.grants))}", highlight=False)
        print_failure(out, info)


@session.command("stop")
@click.argument("sid", shell_complete=complete_sid)
@click.option("--no-wait", is_flag=True, help="Return at once instead of when every unit is gone.")
@click.pass_obj
@reports_errors
def stop(ctx: Ctx, sid: str, no_wait: bool) -> None:
    """Stop a session: every unit is stopped and its slice removed."""
    with ctx.connect() as nd:
        info = nd.stop(sid, wait=not no_wait)
    if ctx.json:
        ctx.emit(info)
    else:
        out.print(f"session {sid} {info.state}", markup=False)


@session.command("watch")
@click.argument("sid", shell_complete=complete_sid)
@click.pass_obj
@reports_errors
def watch(ctx: Ctx, sid: str) -> None:
    """Follow a session's node states until it ends."""
    with ctx.connect() as nd, nd.session(sid) as s:
        if ctx.json:
            ctx.emit(s.info)
        info = ctx.follow(s, until_ready=False)
    if not ctx.json:
        out.print(f"session {sid} {info.state}", markup=False)
        print_failure(err, info)
    if info.state is SessionState.FAILED:
        fail()
