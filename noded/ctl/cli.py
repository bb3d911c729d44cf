"""`nodectl`: the command line for noded sessions.

Exit codes: 0 success; 1 other error; 2 bad usage; 3 the daemon is unreachable;
4 invalid pipeline; 5 the session failed; 6 no such session; 7 a limit refused it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from noded.contract.client import DEFAULT_SOCKET, Client, session_info
from noded.contract.protocol import SessionInfo, to_builtins
from noded.ctl.completion import complete_sid
from noded.ctl.render import NodeProgress, channels_table, print_failure, session_table, sessions_table, wide
from noded.daemon.config import configured_socket
from noded.errors import NodedError, WorkerError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INVALID, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_LIMIT = 4, 5, 6, 7
_EXIT_BY_CODE = {
    "daemon_unavailable": EXIT_UNAVAILABLE,
    "invalid_pipeline": EXIT_INVALID,
    "session_not_found": EXIT_NOT_FOUND,
    "limit_exceeded": EXIT_LIMIT,
    "bad_request": EXIT_USAGE,
}

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


class Ctx:
    def __init__(self, socket: str, as_json: bool, debug: bool) -> None:
        self.socket = socket
        self.json = as_json
        self.debug = debug

    def client(self, timeout: float | None = 30.0) -> Client:
        return Client(self.socket, timeout=timeout)

    def emit(self, data: Any) -> None:
        print(json.dumps(to_builtins(data), indent=None if not sys.stdout.isatty() else 2))


def reports_errors(func: F) -> F:
    """One clear line (and a hint) instead of a traceback, and the documented exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx: Ctx = click.get_current_context().find_object(Ctx)  # type: ignore[assignment]
        try:
            return func(*args, **kwargs)
        except (NodedError, WorkerError) as exc:  # the latter: the data plane of run/feed
            if ctx is not None and ctx.debug:
                raise
            code = getattr(exc, "code", "error")
            if ctx is not None and ctx.json:
                print(json.dumps({"error": {"code": code, "message": exc.message, "hint": exc.hint or None}}))
            else:
                err.print(f"nodectl: {exc.message}", markup=False, soft_wrap=True)
                if exc.hint:
                    err.print(f"hint: {exc.hint}", markup=False, style="dim", soft_wrap=True)
            sys.exit(_EXIT_BY_CODE.get(code, EXIT_ERROR))
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


class _Group(click.Group):
    """Global flags may also follow the command: `nodectl session list --json`."""

    MOVABLE = ("--json", "--debug")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        moved = [a for a in args[:end] if a in self.MOVABLE]
        rest = [a for a in args[:end] if a not in self.MOVABLE]
        return super().parse_args(ctx, moved + rest + args[end:])


@click.group(cls=_Group, context_settings={"auto_envvar_prefix": "NODED", "help_option_names": ["-h", "--help"]})
@click.option(
    "--socket",
    default=lambda: str(configured_socket()),
    show_default=f"socket in /etc/noded/noded.toml, else {DEFAULT_SOCKET}",
    help="The daemon's control socket.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="NODED_JSON",
    help="Machine-readable JSON output (also after the command).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="noded")
@click.pass_context
def cli(ctx: click.Context, socket: str, as_json: bool, debug: bool) -> None:
    """Control noded pipeline sessions.

    \b
    Exit codes: 0 ok, 1 error, 2 usage, 3 daemon unreachable, 4 invalid pipeline,
    5 session failed, 6 no such session, 7 refused by a limit.
    """
    ctx.obj = Ctx(socket, as_json, debug)


@cli.command()
@click.pass_obj
@reports_errors
def status(ctx: Ctx) -> None:
    """Is the daemon up: its version, sessions and limits."""
    with ctx.client() as c:
        data = c.request("status")
    if ctx.json:
        ctx.emit(data)
    else:
        limit = data["limits"]["max_session_processes"]
        out.print(
            f"noded {data['version']} is running: {data['sessions']} live session(s); "
            f"node processes per session: {limit if limit is not None else 'unlimited'}"
        )
        _print_status_details(data)


def _print_status_details(data: dict[str, Any]) -> None:
    """The node defaults and the metrics endpoint (when the daemon reports them)."""
    limits = {k: v for k, v in (data.get("node_limits") or {}).items() if v is not None}
    if limits:
        out.print("node limits by default: " + ", ".join(f"{k} {v}" for k, v in limits.items()), markup=False)
    if data.get("metrics"):
        out.print(f"metrics: http://{data['metrics']}/metrics", markup=False)
    if data.get("config"):
        out.print(f"configuration: {data['config']}", markup=False)


@cli.group()
def session() -> None:
    """Create, inspect and stop sessions."""


def _follow(ctx: Ctx, c: Client, first: SessionInfo, until_ready: bool) -> SessionInfo:
    """Show events of one session until it is ready (if until_ready) or has ended."""
    current = first
    done_states = {"stopped", "failed"} | ({"ready"} if until_ready else set())
    with NodeProgress(err) as progress:  # progress on stderr, results on stdout
        progress.update(current)
        if current.state not in done_states:
            for info in c.events():
                if info.sid != first.sid:
                    continue
                current = info
                if ctx.json and not until_ready:
                    ctx.emit(info)
                progress.update(info)
                if info.state in done_states:
                    break
    return current


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
    if str(pipeline_file) == "-":
        pipeline_file = Path("stdin.toml")
    with ctx.client(timeout=None if wait else 30.0) as c:
        info = session_info(c.request("create", text=text, filename=pipeline_file.name, watch=wait))
        if wait:
            info = _follow(ctx, c, info, until_ready=True)
    if ctx.json:
        ctx.emit(info)
    elif wait and info.state == "ready":
        out.print(f"session {info.sid} ready in {info.ready_seconds:.2f}s ({len(info.nodes)} nodes)")
    elif not wait:
        out.print(info.sid)
    if info.state in ("failed", "stopping") and info.failure is not None:
        if not ctx.json:
            print_failure(err, info)
        sys.exit(EXIT_FAILED)


@session.command("list")
@click.pass_obj
@reports_errors
def list_(ctx: Ctx) -> None:
    """List sessions (live, and recently ended)."""
    with ctx.client() as c:
        sessions = [session_info(d) for d in c.request("list")]
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
    with ctx.client() as c:
        info = session_info(c.request("show", sid=sid))
    if ctx.json:
        ctx.emit(info)
    else:
        console = wide(out)
        console.print(session_table(info))
        if info.stats is not None and info.stats.channels:
            console.print(channels_table(info.stats))
        print_failure(out, info)


@session.command("stop")
@click.argument("sid", shell_complete=complete_sid)
@click.option("--no-wait", is_flag=True, help="Return at once instead of when every unit is gone.")
@click.pass_obj
@reports_errors
def stop(ctx: Ctx, sid: str, no_wait: bool) -> None:
    """Stop a session: every unit is stopped and its slice removed."""
    with ctx.client(timeout=None) as c:
        info = session_info(c.request("stop", sid=sid, wait=not no_wait))
        if not no_wait and info.state not in ("stopped", "failed"):
            info = session_info(c.request("show", sid=sid))
    if ctx.json:
        ctx.emit(info)
    else:
        out.print(f"session {sid} {info.state}")


@session.command("watch")
@click.argument("sid", shell_complete=complete_sid)
@click.pass_obj
@reports_errors
def watch(ctx: Ctx, sid: str) -> None:
    """Follow a session's node states until it ends."""
    with ctx.client(timeout=None) as c:
        info = session_info(c.request("watch", sid=sid))
        if ctx.json:
            ctx.emit(info)
        info = _follow(ctx, c, info, until_ready=False)
    if not ctx.json:
        out.print(f"session {sid} {info.state}")
        print_failure(err, info)
    if info.state == "failed":
        sys.exit(EXIT_FAILED)


def main() -> None:
    import noded.ctl.logs
    import noded.ctl.run
    import noded.ctl.top  # noqa: F401  (registers top)

    cli(prog_name="nodectl")
