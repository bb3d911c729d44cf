"""Logging to the journal through stderr: each line prefixed with its syslog priority.

Used by the worker and by the daemon (both run as services whose stderr is the journal).
"""

from __future__ import annotations

import logging
import sys

# Python levels -> syslog priorities, read by journald from a "<N>" line prefix.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


class JournalFormatter(logging.Formatter):
    """``<N>LEVEL logger: message``, with the ``<N>`` on every line, so that journald
    files each line of a traceback (one journal entry per line) at the record's priority."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prio = next((p for level, p in _PRIORITIES if record.levelno >= level), 7)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).split("\n"))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
