"""`nodectl logs SID [NODE] [-f]`: a session's journal, through journalctl.

Every node unit's log entries carry NODED_SESSION=<sid> and NODED_NODE=<node id>
(LogExtraFields=, noded.daemon.units), so a whole session is `journalctl NODED_SESSION=<sid>`,
which is what this runs; it works after the session (and even the daemon) is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import click

from noded.ctl.common import Ctx, reports_errors
from noded.ctl.completion import complete_node, complete_sid
from noded.errors import NodedError
from noded.pipeline.schema import NAME_RE

SID_RE = re.compile(r"[0-9a-f]{8}")
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


class LogsError(NodedError):
    code = "bad_request"  # nodectl exit status 2


class NoEntries(NodedError):
    code = "session_not_found"  # nodectl exit status 6


def journal_argv(
    sid: str,
    node: str | None,
    *,
    follow: bool = False,
    lines: int | None = None,
    since: str | None = None,
    priority: str | None = None,
    as_json: bool = False,
) -> list[str]:
    """The journalctl command line for a session's (or one node's) entries. Pure."""
    if not SID_RE.fullmatch(sid):
        raise LogsError(f"{sid!r} is not a session id", hint="session ids are 8 hex digits: see 'nodectl session list'")
    if node is not None and not NAME_RE.fullmatch(node):
        raise LogsError(
            f"{node!r} is not a node id", hint="node ids are letters, digits and _: see 'nodectl session show'"
        )
    argv = ["journalctl", f"NODED_SESSION={sid}"]
    if node is not None:
        argv.append(f"NODED_NODE={node}")
    if as_json:
        argv += ["-o", "json", "--no-pager"]
    if follow:
        argv.append("--follow")
    if lines is not None:
        argv += ["--lines", str(lines)]
    if since is not None:
        argv += ["--since", since]
    if priority is not None:
        argv += ["--priority", priority]
    return argv


def _has_entries(argv: list[str]) -> bool:
    res = subprocess.run(
        [
            argv[0],
            *[a for a in argv[1:] if "=" in a and not a.startswith("-")],
            "--quiet",
            "--no-pager",
            "--lines",
            "1",
            "-o",
            "cat",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return bool(res.stdout.strip())


def _reader_hint() -> str:
    if os.geteuid() == 0:
        return "the journal keeps a session's entries until it rotates them; 'nodectl session list' shows sessions"
    return (
        "you may only see your own entries: run as root, or join the 'systemd-journal' group "
        "(usermod -aG systemd-journal $USER)"
    )


@click.command("logs")
@click.argument("sid", shell_complete=complete_sid)
@click.argument("node", required=False, shell_complete=complete_node)
@click.option("-f", "--follow", is_flag=True, help="Keep showing new entries as they come (Ctrl-C ends).")
@click.option("-n", "--lines", type=click.IntRange(min=0), help="Only the last N entries.")
@click.option("--since", metavar="TIME", help="Only entries since TIME (journalctl's format: '10 min ago', '09:00').")
@click.option("-p", "--priority", type=click.Choice(PRIORITIES), help="Only entries of this priority or more urgent.")
@click.pass_obj
@reports_errors
def logs(
    ctx: Ctx, sid: str, node: str | None, follow: bool, lines: int | None, since: str | None, priority: str | None
) -> None:
    """Show the journal of session SID, or of its node NODE.

    Runs 'journalctl NODED_SESSION=SID [NODED_NODE=NODE]': each line names the node
    (noded-NODE[PID]); Python log levels are journal priorities. With --json, one
    journal entry per line as JSON. Works after the session has ended.
    """
    if shutil.which("journalctl") is None:
        raise NodedError("journalctl is not installed", hint="apt install systemd")
    argv = journal_argv(sid, node, follow=follow, lines=lines, since=since, priority=priority, as_json=ctx.json)
    if ctx.no_pager and "--no-pager" not in argv:
        argv.append("--no-pager")
    if not follow and not _has_entries(argv):
        what = f"node {node!r} of session {sid}" if node else f"session {sid}"
        raise NoEntries(f"the journal has no entries of {what}", hint=_reader_hint())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)  # journalctl's own pager, colours, follow and Ctrl-C
