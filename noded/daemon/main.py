"""`noded`: the session-manager daemon's entry point.

    noded                          run the daemon (as noded.service, Type=notify)
    noded --check-config [--json]  check the configuration and exit: 0 valid, 78 invalid
    noded --check-config --verbose also list the files read (noded.toml, then its
                                   drop-ins noded.toml.d/*.toml in order) and the settings

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
from noded.daemon.config import Config, ConfigError, describe, load_config
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
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="With --check-config: the files read, in the order they are merged, and the effective settings.",
)
@click.version_option(__version__, prog_name="noded")
def cli(config_path: Path | None, check_config: bool, as_json: bool, verbose: bool) -> None:
    """The noded session manager: runs pipeline sessions as systemd units.

    Started by systemd as noded.service; see noded(8), noded.toml(5).
    """
    if check_config:
        sys.exit(_check(config_path, as_json, verbose))
    setup_logging("info")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        log.error("invalid configuration, not starting: %s", _one_line(exc))
        sys.exit(DaemonExit.CONFIG)
    setup_logging(config.log_level)
    from noded.daemon.app import Daemon

    try:
        asyncio.run(Daemon(config, config_path).run())
    except NodedError as exc:
        log.error("%s", _one_line(exc))
        sys.exit(DaemonExit.FAILURE)


def _check(config_path: Path | None, as_json: bool, verbose: bool = False) -> int:
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
        if verbose:
            _print_verbose(config)
    return 0


def _print_verbose(config: Config) -> None:
    """The merge order, then every effective setting as ``key = value`` (sections dotted)."""
    print("files, merged in this order (a later one wins key by key):")
    for n, name in enumerate(config.files, 1):
        print(f"  {n}. {name}")
    if not config.files:
        print("  (none: built-in defaults)")
    print("effective settings:")
    for key, value in describe(config).items():
        if key in ("source", "files"):
            continue
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                print(f"  {key}.{sub} = {json.dumps(subvalue)}")
        else:
            print(f"  {key} = {json.dumps(value)}")


def main() -> None:
    cli(prog_name="noded")


if __name__ == "__main__":
    main()
