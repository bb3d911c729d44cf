"""`noded`: the session-manager daemon's entry point.

    noded                          run the daemon (as noded.service, Type=notify)
    noded --check-config [--json]  check the configuration and exit: 0 valid, 78 invalid

An invalid configuration is one line on stderr (the journal, under systemd) and exit
status 78 (EX_CONFIG, which systemd shows as "status=78/CONFIG"); noded.service does
not restart on it (RestartPreventExitStatus=78).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import click

from noded import __version__
from noded.contract.exitcodes import DaemonExit
from noded.daemon.config import ConfigError, describe, load_config
from noded.daemon.logs import setup_logging
from noded.errors import NodedError

log = logging.getLogger("noded")


def _one_line(exc: NodedError) -> str:
    return f"{exc}{f' (hint: {exc.hint})' if exc.hint else ''}"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="NODED_CONFIG",
    help="The configuration file  [default: /etc/noded/noded.toml; env: NODED_CONFIG]",
)
@click.option(
    "--check-config", is_flag=True, help="Check the configuration, print the result and exit (0 valid, 78 invalid)."
)
@click.option("--json", "as_json", is_flag=True, help="With --check-config: the effective settings as JSON.")
@click.version_option(__version__, prog_name="noded")
def cli(config_path: Path | None, check_config: bool, as_json: bool) -> None:
    """The noded session manager: runs pipeline sessions as systemd units.

    Started by systemd as noded.service; see noded(8), noded.toml(5).
    """
    if check_config:
        sys.exit(_check(config_path, as_json))
    setup_logging("info")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        log.error("invalid configuration, not starting: %s", _one_line(exc))
        sys.exit(DaemonExit.CONFIG)
    setup_logging(config.log_level)
    from noded.daemon.app import Daemon

    try:
        asyncio.run(Daemon(config).run())
    except NodedError as exc:
        log.error("%s", _one_line(exc))
        sys.exit(DaemonExit.FAILURE)


def _check(config_path: Path | None, as_json: bool) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if as_json:
            print(json.dumps({"valid": False, "error": {"code": exc.code, "message": exc.message, "hint": exc.hint}}))
        else:
            print(f"noded: invalid configuration: {_one_line(exc)}", file=sys.stderr)
        return DaemonExit.CONFIG
    if as_json:
        print(json.dumps({"valid": True, "config": describe(config)}))
    else:
        print(f"noded: configuration is valid ({config.source})")
    return 0


def main() -> None:
    cli(prog_name="noded")


if __name__ == "__main__":
    main()
