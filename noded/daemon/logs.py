"""The daemon logs like the worker: to the journal, with priorities (noded.logs).

Its lines about a session ("session %s: ...", the convention of noded.daemon.manager) carry
NODED_SESSION like the session's node units, so `journalctl NODED_SESSION=<sid>` and
`nodectl logs SID` show why the daemon did what it did next to the nodes' own lines.
"""

from __future__ import annotations

import logging
import os

from noded.logs import configure_logging


class SessionFields(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(record.msg, str)
            and record.msg.startswith("session %s")
            and isinstance(args, tuple)
            and args
            and isinstance(args[0], str)
        ):
            record.journal_fields = {"NODED_SESSION": args[0]}
        return True


def setup_logging(level: str) -> None:
    handler = configure_logging(os.environ.get("SYSTEMD_LOG_LEVEL", level).upper())
    handler.addFilter(SessionFields())
