"""`noded`: the session-manager daemon's entry point."""

from __future__ import annotations

import asyncio
import logging
import sys

from daemon.config import load_config
from daemon.errors import NodedError
from daemon.logs import setup_logging

EXIT_FAILURE = 1
EXIT_CONFIG = 3


def main() -> None:
    setup_logging("info")
    try:
        config = load_config()
    except NodedError as exc:
        logging.getLogger("noded").error("%s%s", exc, f" (hint: {exc.hint})" if exc.hint else "")
        sys.exit(EXIT_CONFIG)
    setup_logging(config.log_level)
    from daemon.app import Daemon

    try:
        asyncio.run(Daemon(config).run())
    except NodedError as exc:
        logging.getLogger("noded").error("%s%s", exc, f" (hint: {exc.hint})" if exc.hint else "")
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
