"""The daemon logs like the worker: to the journal through stderr, with priorities."""

from __future__ import annotations

import os

from nodeworker.logs import configure_logging


def setup_logging(level: str) -> None:
    configure_logging(os.environ.get("SYSTEMD_LOG_LEVEL", level).upper())
