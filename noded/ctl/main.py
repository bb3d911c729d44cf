"""`nodectl`: the command line for noded sessions, the one entry point.

It builds the group and names each command's module (``status``, ``session``,
``run``/``feed``, ``logs``, ``top``); a module is imported only when its command runs
or is completed, so ``nodectl --help`` and TAB completion import neither rich nor
numpy nor the protocol (the commands' one-line help is written here, and a unit test
keeps it equal to the command's own). No module imports this one back.

Global options may come before or after the command, as systemctl takes them.
"""

from __future__ import annotations

import importlib

import click
from click.shell_completion import CompletionItem

from noded.contract.exitcodes import CliExit
from noded.contract.paths import DEFAULT_SOCKET, configured_socket
from noded.ctl.common import Ctx

HELP = (
    "Control noded pipeline sessions.\n\n"
    "Global options may come before or after the command. With --json, a failure prints "
    '{"error": {"code": CODE, "message": TEXT, "hint": TEXT or null}} on standard output '
    "and exits with the status below (CODE: see nodectl(1), ERRORS).\n\n\b\nExit statuses:\n"
    + "\n".join(f"  {int(code):>3}  {code.meaning}" for code in CliExit)
)

# name -> (module, attribute, one-line help); the help is what `nodectl --help` lists.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "feed": (
        "noded.ctl.run",
        "feed",
        "Send FILE to external input PORT of session SID (audio: WAV, FLAC, OGG; .npy; or text lines).",
    ),
    "graph": (
        "noded.ctl.graph",
        "graph",
        "Draw a pipeline file, or a running session SID, as a graph (DOT, SVG or Mermaid).",
    ),
    "logs": ("noded.ctl.logs", "logs", "Show the journal of session SID, or of its node NODE."),
    "run": ("noded.ctl.run", "run", "Run PIPELINE_FILE on input files: create a session, stream, write outputs, stop."),
    "session": ("noded.ctl.session", "session", "Create, inspect and stop sessions."),
    "status": ("noded.ctl.status", "status", "Is the daemon up: its version, sessions and limits."),
    "top": ("noded.ctl.top", "top", "Live view of all sessions (or of SID): node states, memory, CPU, channels."),
}

# Global options and whether they take a value.
GLOBAL = {"--json": False, "--debug": False, "--no-pager": False, "--no-legend": False, "--socket": True}


def move_globals(args: list[str]) -> list[str]:
    """Global options found after the command, put before it (pure). ``--`` ends it."""
    end = args.index("--") if "--" in args else len(args)
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < end:
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL:
            moved.append(arg)
            if GLOBAL[name] and "=" not in arg and i + 1 < end:
                moved.append(args[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return moved + rest + args[end:]


class _Group(click.Group):
    """Commands imported when used; global options also after the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, move_globals(args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names from COMMANDS, without importing the commands (click would)."""
        items = [
            CompletionItem(name, help=short)
            for name, (_, _, short) in sorted(COMMANDS.items())
            if name.startswith(incomplete)
        ]
        return items + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, _, short) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=_Group,
    help=HELP,
    context_settings={"auto_envvar_prefix": "NODED", "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--socket",
    default=lambda: str(configured_socket()),
    show_default=f"socket in /etc/noded/noded.toml, else {DEFAULT_SOCKET}",
    help="The daemon's control socket (env: NODED_SOCKET).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="NODED_JSON",
    help="Machine-readable JSON output, errors included (env: NODED_JSON).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one line per error.")
@click.option("--no-pager", is_flag=True, help="Do not pipe output into a pager (nodectl logs runs journalctl's).")
@click.option("--no-legend", is_flag=True, help="Leave out table headers and hint lines, for scripts.")
@click.version_option(package_name="noded", help="Show the version and exit.")
@click.help_option("-h", "--help", help="Show this message and exit.")
@click.pass_context
def cli(ctx: click.Context, socket: str, as_json: bool, debug: bool, no_pager: bool, no_legend: bool) -> None:
    ctx.obj = Ctx(socket, as_json, debug, no_pager=no_pager, no_legend=no_legend)


def main() -> None:
    cli(prog_name="nodectl")


if __name__ == "__main__":
    main()
