"""Logging to the journal, with Python levels as journal priorities.

Used by the worker and by the daemon, both services whose stderr is the journal. When
it is (systemd's JOURNAL_STREAM names stderr), records go straight to journald's native
socket: one entry per record, a traceback included, with PRIORITY, SYSLOG_IDENTIFIER,
CODE_FILE/CODE_LINE/CODE_FUNC, PYTHON_LOGGER and any fields a filter put in the record's
``journal_fields`` (the daemon adds NODED_SESSION). journald adds the unit's own
LogExtraFields= (NODED_SESSION, NODED_NODE of a node). Otherwise, or if the socket
cannot be reached, each line goes to stderr prefixed with ``<N>``, which journald (and
only journald) reads as the priority.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
from pathlib import Path

JOURNAL_SOCKET = "/run/systemd/journal/socket"
MAX_FIELD = 60_000  # bytes of one field; a datagram must fit the socket's send buffer

# Python levels -> syslog priorities.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_FORMAT = "%(levelname)s %(name)s: %(message)s"


def priority(levelno: int) -> int:
    return next((p for level, p in _PRIORITIES if levelno >= level), 7)


class JournalFormatter(logging.Formatter):
    """``<N>LEVEL logger: message``, with the ``<N>`` on every line, so that journald
    files each line of a traceback (one journal entry per line) at the record's priority."""

    def __init__(self) -> None:
        super().__init__(_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prio = priority(record.levelno)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).split("\n"))


def encode_entry(fields: dict[str, str]) -> bytes:
    """journald's native datagram: KEY=value lines; a value with a newline is written as
    KEY, newline, its length (64-bit little-endian), the value, newline."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")[:MAX_FIELD]
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Sends each record to journald's native socket as one entry."""

    def __init__(self, identifier: str, path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.identifier = identifier
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "MESSAGE": self.format(record),
                "PRIORITY": str(priority(record.levelno)),
                "SYSLOG_IDENTIFIER": self.identifier,
                "PYTHON_LOGGER": record.name,
                "CODE_FILE": record.pathname,
                "CODE_LINE": str(record.lineno),
                "CODE_FUNC": record.funcName,
            }
            fields.update(getattr(record, "journal_fields", None) or {})
            self.sock.send(encode_entry(fields))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def stderr_is_journal() -> bool:
    """True when systemd connected stderr to the journal (JOURNAL_STREAM=dev:inode)."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return dev.isdigit() and ino.isdigit() and (st.st_dev, st.st_ino) == (int(dev), int(ino))


_NODE_UNIT = re.compile(r"noded-[0-9a-f]+-(\w+)\.service")


def default_identifier() -> str:
    """What the unit's SyslogIdentifier= names its other lines: noded-<node> for a node's
    unit (noded-<sid>-<node>.service), the unit's name for another, else the program's."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        unit = line.rsplit("/", 1)[-1]
        if unit.endswith(".service"):
            match = _NODE_UNIT.fullmatch(unit)
            return f"noded-{match[1]}" if match else unit.removesuffix(".service")
    return Path(sys.argv[0]).name or "python"


def configure_logging(level: str, identifier: str | None = None) -> logging.Handler:
    """Make the root logger write to the journal at ``level``; returns the handler."""
    handler: logging.Handler | None = None
    if stderr_is_journal():
        try:
            handler = JournalHandler(identifier or default_identifier())
        except OSError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, JournalHandler):  # ours from an earlier call: its socket
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
