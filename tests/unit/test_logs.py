"""Journal logging: the native entry format, the identifier, the daemon's session field."""

from __future__ import annotations

import logging
import socket
import struct
from pathlib import Path

from noded.daemon.logs import SessionFields
from noded.logs import JournalHandler, encode_entry, priority


def test_priorities_of_python_levels() -> None:
    assert [priority(level) for level in (50, 40, 30, 25, 20, 10, 5)] == [2, 3, 4, 6, 6, 7, 7]


def test_native_entries_keep_multi_line_values_whole() -> None:
    data = encode_entry({"MESSAGE": "one\ntwo", "PRIORITY": "3"})
    assert data == b"MESSAGE\n" + struct.pack("<Q", 7) + b"one\ntwo\nPRIORITY=3\n"


def test_the_handler_sends_one_datagram_per_record_with_the_session_field(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
        journal.bind(path)
        handler = JournalHandler("noded", path)
        handler.addFilter(SessionFields())
        logger = logging.getLogger("test.journal")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.warning("session %s: node %s failed", "ab12cd34", "asr")
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception("plain %s", "message")
        finally:
            logger.removeHandler(handler)
            handler.close()
        first, second = journal.recv(65536), journal.recv(65536)
    assert b"MESSAGE=WARNING test.journal: session ab12cd34: node asr failed\n" in first
    assert b"PRIORITY=4\n" in first and b"NODED_SESSION=ab12cd34\n" in first and b"SYSLOG_IDENTIFIER=noded\n" in first
    assert b"PRIORITY=3\n" in second and b"NODED_SESSION" not in second
    assert b"Traceback" in second and b"RuntimeError: boom" in second and b"CODE_FUNC=" in second
