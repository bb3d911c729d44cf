"""Counting and logging rejected messages without flooding the journal.

A peer that sends garbage usually sends a lot of it. ``RejectLog`` counts every rejection
per reason but logs only the first one of each *burst*: a burst is a run of rejections
with gaps shorter than ``quiet`` seconds. When a rejection arrives after ``quiet`` seconds
without any, the rejections the previous burst left unlogged are summed up first ("N more
rejected since the last report ..."), then the new one is logged. ``flush()`` writes that summary on
demand (at shutdown, say).

It is pure: the clock and the logger are given to the constructor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from noded.contract.wire import WireError

DEFAULT_QUIET = 5.0

_log = logging.getLogger("noded.dataplane.rejects")


class RejectLog:
    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter = _log,
        clock: Callable[[], float] = time.monotonic,
        quiet: float = DEFAULT_QUIET,
    ) -> None:
        if quiet < 0:
            raise ValueError(f"quiet must be >= 0, got {quiet}")
        self._logger = logger
        self._clock = clock
        self._quiet = quiet
        self._lock = threading.Lock()  # receive paths may run on several threads
        self._counts: dict[str, int] = {}
        self._total = 0
        self._last: float | None = None  # clock of the latest rejection
        self._logged_at = 0.0  # clock of the latest warning or summary
        self._unlogged: dict[str, int] = {}  # rejections counted but not logged since then

    def record(self, reason: str | WireError, source: str = "?", detail: str = "") -> bool:
        """Count one rejected message from ``source`` (e.g. "camera.out"). ``reason`` is a
        WireError (its ``reason`` is counted, its message is the detail) or a short reason
        string. Returns True when this rejection was logged."""
        if isinstance(reason, WireError):
            detail = detail or str(reason)
            reason = reason.reason
        with self._lock:
            now = self._clock()
            self._total += 1
            self._counts[reason] = self._counts.get(reason, 0) + 1
            last, self._last = self._last, now
            if last is not None and now - last < self._quiet:
                self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
                return False
            self._summarize(now)
            self._logged_at = now
            self._logger.warning("rejected a message from %s: %s%s%s", source, reason, ": " if detail else "", detail)
            return True

    def flush(self) -> int:
        """Log the summary of the rejections not logged yet, if any; return their number.
        The current burst goes on: its next rejections are still only counted."""
        with self._lock:
            return self._summarize(self._clock())

    def _summarize(self, now: float) -> int:
        n = sum(self._unlogged.values())
        if n:
            by_reason = ", ".join(f"{r} {c}" for r, c in sorted(self._unlogged.items()))
            self._logger.warning(
                "%d more rejected since the last report %.1fs ago (%s)",
                n, now - self._logged_at, by_reason,
            )  # fmt: skip
            self._unlogged.clear()
            self._logged_at = now
        return n

    @property
    def total(self) -> int:
        """All rejections recorded."""
        return self._total

    @property
    def counts(self) -> dict[str, int]:
        """Rejections recorded per reason (a copy)."""
        with self._lock:
            return dict(self._counts)

    def count(self, reason: str) -> int:
        return self._counts.get(reason, 0)

    @property
    def pending(self) -> int:
        """Rejections counted but not logged yet (what the next summary will report)."""
        with self._lock:
            return sum(self._unlogged.values())
