"""`nodectl status`: is the daemon up, its version, sessions, limits and configuration."""

from __future__ import annotations

from typing import Any

import click

from noded.ctl.common import Ctx, out, reports_errors


@click.command()
@click.pass_obj
@reports_errors
def status(ctx: Ctx) -> None:
    """Is the daemon up: its version, sessions and limits."""
    with ctx.connect() as nd:
        data = nd.status()
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
