"""Dynamic shell completion for nodectl: session ids and node ids from the running daemon.

Click calls these while completing (bash, zsh, fish); any failure (no daemon, no
permission) completes nothing rather than printing an error into the shell.
"""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem

from noded.contract.paths import configured_socket

TIMEOUT = 2.0  # seconds: a shell waiting on a completion must not hang


def _sessions(ctx: click.Context) -> list[dict[str, Any]]:
    # Imported here: completing a command name or an option must not pay for msgspec.
    from noded.contract.client import Client
    from noded.contract.protocol import List

    socket = ctx.find_root().params.get("socket") or configured_socket()
    try:
        with Client(socket, timeout=TIMEOUT) as c:
            result = c.call(List())
    except Exception:
        return []
    return [s for s in result if isinstance(s, dict)] if isinstance(result, list) else []


def complete_sid(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return [
        CompletionItem(s["sid"], help=f"{s.get('pipeline', '')} ({s.get('state', '')})")
        for s in _sessions(ctx)
        if str(s.get("sid", "")).startswith(incomplete)
    ]


def complete_node(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    sid = ctx.params.get("sid")
    return [
        CompletionItem(n["id"], help=str(n.get("cls", "")))
        for s in _sessions(ctx)
        if s.get("sid") == sid
        for n in s.get("nodes", [])
        if str(n.get("id", "")).startswith(incomplete)
    ]
