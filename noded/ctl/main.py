"""`nodectl`: the command line for noded sessions, the one entry point.

It builds the group and adds each command group from its module (``status``,
``session``, ``run``/``feed``, ``logs``, ``top``); no module imports this one back.
Modules import their heavy dependencies (numpy, iceoryx2) inside the commands, so
``nodectl --help`` and completion stay fast.
"""

from __future__ import annotations

import click

from noded.contract.exitcodes import CliExit
from noded.contract.paths import DEFAULT_SOCKET, configured_socket
from noded.ctl.common import Ctx
from noded.ctl.logs import logs
from noded.ctl.run import feed, run
from noded.ctl.session import session
from noded.ctl.status import status
from noded.ctl.top import top

HELP = "Control noded pipeline sessions.\n\n\b\nExit statuses:\n" + "\n".join(
    f"  {int(code):>3}  {code.meaning}" for code in CliExit
)


class _Group(click.Group):
    """Global flags may also follow the command: `nodectl session list --json`."""

    MOVABLE = ("--json", "--debug")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        moved = [a for a in args[:end] if a in self.MOVABLE]
        rest = [a for a in args[:end] if a not in self.MOVABLE]
        return super().parse_args(ctx, moved + rest + args[end:])


@click.group(
    cls=_Group,
    help=HELP,
    context_settings={"auto_envvar_prefix": "NODED", "help_option_names": ["-h", "--help"]},
)
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
    ctx.obj = Ctx(socket, as_json, debug)


for command in (status, session, run, feed, logs, top):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="nodectl")


if __name__ == "__main__":
    main()
