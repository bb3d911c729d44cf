"""The worker's only line to systemd: sd_notify datagrams on $NOTIFY_SOCKET.

What the worker sends, and when (one datagram per bullet):

* ``STATUS=initializing`` as soon as it starts;
* ``STATUS=initializing <pct>%: <text>`` + ``EXTEND_TIMEOUT_USEC=30000000`` for each setup
  progress report that ``ProgressThrottle`` lets through;
* ``STATUS=initializing <pct>%: <text> (<n> s)`` alone (a *heartbeat*: the last report
  again, with the seconds since setup began) whenever setup has been silent for
  ``HEARTBEAT`` s, so that whoever follows the session sees it move at least that often
  while a model loads in one long call. A heartbeat does not extend the start timeout:
  only progress the node reports does;
* ``READY=1`` + ``STATUS=ready`` once setup returned;
* ``STOPPING=1`` + ``STATUS=stopping`` on SIGTERM/SIGINT, before teardown;
* ``STATUS=error: <Type>: <message>`` before a failing exit;
* ``WATCHDOG=1`` when the unit has a watchdog (``WatchdogSec=``, the node's ``watchdog``
  key): at most every quarter of it, from setup's progress reports, from the serving loop
  between messages and while idle, from each send (a source's ``run()``, a ``process()``
  that yields) and while a send waits for credit. A node stuck longer (in ``setup()``
  after a progress report, or in ``process()``) stops feeding it and systemd ends it with
  SIGABRT, which makes faulthandler write every thread's stack to the journal.

Start-timeout policy: ``EXTEND_TIMEOUT_USEC=N`` asks systemd to wait N more µs from the
moment it gets the message, and only matters once TimeoutStartSec= has passed. So a setup
whose progress keeps moving (each report that changes the shown status) at least every
30 s may take as long as it needs, while one that goes silent is stopped by systemd after
TimeoutStartSec=, or 30 s after its last report if that is later. systemd extends a
running watchdog by the same N, so with a shorter watchdog N is the watchdog: a setup
stuck after a progress report is then ended that long after it.

Without $NOTIFY_SOCKET (outside systemd) sending is a no-op.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from noded.contract.sdnotify import NotifySocket, watchdog_interval
from noded.contract.status import Phase, Status, format_status

EXTEND_TIMEOUT_USEC = 30_000_000
MIN_PROGRESS_INTERVAL = 0.05  # seconds between two progress messages
HEARTBEAT = 1.0  # seconds of silence in setup after which the status is sent again
# systemd ignores a whole notify datagram above 4096 bytes: keep the status well below.
MAX_STATUS_BYTES = 1024

log = logging.getLogger("noded.worker")


def status_assignment(status: Status) -> str:
    """``STATUS=<format_status>``, made safe for one sd_notify datagram: no NUL (systemd
    rejects the datagram), valid UTF-8, at most MAX_STATUS_BYTES."""
    # systemd C-unescapes STATUS= (a lone backslash vanishes), so escape it.
    data = format_status(status).replace("\0", "").replace("\\", "\\\\").encode("utf-8", "replace")
    if len(data) > MAX_STATUS_BYTES:
        data = data[: MAX_STATUS_BYTES - 3].decode("utf-8", "ignore").encode() + "…".encode()
    return "STATUS=" + data.decode("utf-8")


class Notifier:
    """One socket to the notify socket named by $NOTIFY_SOCKET when it is created."""

    def __init__(self) -> None:
        self._sd: NotifySocket | None = NotifySocket()
        self.address = self._sd.address
        if not self._sd.enabled:
            self._sd = None
        self._failed = False

    def send(self, *assignments: str) -> None:
        if self._sd is None:
            return
        try:
            self._sd.send(*assignments)
        except OSError as e:
            if not self._failed:  # say it once: a dead notify socket fails every send
                self._failed = True
                log.warning("sd_notify to %s failed: %s", self.address, e)

    def close(self) -> None:
        if self._sd is not None:
            self._sd.close()
            self._sd = None


class Watchdog:
    """Feeds systemd's watchdog: ``feed()`` sends WATCHDOG=1 if ``interval`` seconds have
    passed since the last one (a clock read otherwise: cheap enough for every message).
    With ``interval`` None (no watchdog) ``feed`` does nothing; ``timeout`` is how long the
    caller may sleep without feeding it."""

    def __init__(
        self, interval: float | None, send: Callable[..., None], clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.interval = interval
        self.timeout = interval
        # The whole watchdog (interval is a quarter of it): what a progress report may
        # extend the start timeout by, since EXTEND_TIMEOUT_USEC extends the watchdog too.
        self.usec = round(interval * 4 * 1_000_000) if interval is not None else None
        self._send = send
        self._clock = clock
        self._step = int(interval * 1e9) if interval is not None else 0
        self._next = 0 if interval is not None else 1 << 62  # never due without a watchdog

    def feed(self) -> None:
        if self._clock() >= self._next:
            self.ping()

    def ping(self) -> None:
        if self.interval is None:
            return
        self._next = self._clock() + self._step
        self._send("WATCHDOG=1")


_default: Notifier | None = None
_watchdog: Watchdog | None = None


def connect() -> Notifier:
    """The worker's notifier. The first call also removes $NOTIFY_SOCKET and the watchdog's
    variables from the environment so that the node's child processes do not speak in
    the worker's name (nor feed its watchdog)."""
    global _default, _watchdog
    if _default is None:
        _default = Notifier()
        interval = watchdog_interval(os.environ, os.getpid())
        _watchdog = Watchdog(interval if _default.address else None, _default.send)
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(name, None)
    return _default


def watchdog() -> Watchdog:
    """The worker's watchdog feeder (does nothing when its unit has no watchdog)."""
    connect()
    assert _watchdog is not None
    return _watchdog


def status(st: Status, *, extend_usec: int | None = None) -> None:
    lines = [status_assignment(st)]
    if extend_usec is not None:
        lines.append(f"EXTEND_TIMEOUT_USEC={extend_usec}")
    connect().send(*lines)


def ready() -> None:
    connect().send("READY=1", status_assignment(Status(Phase.READY)))


def stopping() -> None:
    connect().send("STOPPING=1", status_assignment(Status(Phase.STOPPING)))


def extend_timeout(usec: int) -> None:
    connect().send(f"EXTEND_TIMEOUT_USEC={usec}")


class ProgressThrottle:
    """Decides which progress statuses are worth a message (pure: time is an argument).

    A status is sent when what it shows differs from the last one sent, and either
    ``min_interval`` has passed since then, or its phase differs, or its fraction is 1.0.
    Reports in between are dropped; the next one that passes carries the news.
    """

    def __init__(self, min_interval: float = MIN_PROGRESS_INTERVAL) -> None:
        self.min_interval = min_interval
        self._last: Status | None = None
        self._last_text = ""
        self._last_time = 0.0

    def admit(self, st: Status, now: float) -> bool:
        text = format_status(st)
        last = self._last
        if last is not None:
            if text == self._last_text:
                return False
            urgent = st.phase != last.phase or (st.fraction is not None and st.fraction >= 1.0)
            if not urgent and now - self._last_time < self.min_interval:
                return False
        self._last, self._last_text, self._last_time = st, text, now
        return True


class ProgressReporter:
    """Turns setup progress reports into throttled STATUS= + EXTEND_TIMEOUT_USEC= messages.

    Thread-safe: a node may report from its loader threads.
    """

    def __init__(
        self,
        send: Callable[..., None] = status,
        *,
        clock: Callable[[], float] = time.monotonic,
        throttle: ProgressThrottle | None = None,
        extend_usec: int = EXTEND_TIMEOUT_USEC,
    ) -> None:
        self._send = send
        self._clock = clock
        self._throttle = throttle or ProgressThrottle()
        self._extend_usec = extend_usec
        self._lock = threading.Lock()
        self._started: float | None = None  # the first call's time (setup begins)
        self._sent_at = 0.0
        self._fraction: float | None = None
        self._text = ""

    def report(self, fraction: float | None, text: str = "") -> bool:
        """Send ``initializing <fraction>: <text>`` if the throttle admits it; say if sent."""
        st = Status(Phase.INITIALIZING, fraction, text)
        with self._lock:
            now = self._clock()
            if self._started is None:
                self._started = now
            if not self._throttle.admit(st, now):
                return False
            self._send(st, extend_usec=self._extend_usec)
            self._sent_at, self._fraction, self._text = now, fraction, text
        return True

    def heartbeat(self, interval: float = HEARTBEAT) -> bool:
        """If nothing was sent for ``interval`` s, send the last report again with the
        seconds since setup began (no timeout extension); say if sent."""
        with self._lock:
            now = self._clock()
            if self._started is None:
                self._started = self._sent_at = now
            if now - self._sent_at < interval:
                return False
            took = f"({now - self._started:.0f} s)"
            text = f"{self._text} {took}" if self._text else took
            self._send(Status(Phase.INITIALIZING, self._fraction, text))
            self._sent_at = now
        return True


class Heartbeat:
    """A thread that calls ``reporter.heartbeat()`` every ``interval`` / 4 s until stopped."""

    def __init__(self, reporter: ProgressReporter, interval: float = HEARTBEAT) -> None:
        self._reporter, self._interval = reporter, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="setup-heartbeat", daemon=True)

    def _run(self) -> None:
        self._reporter.heartbeat(self._interval)  # the clock starts now
        while not self._stop.wait(self._interval / 4):
            self._reporter.heartbeat(self._interval)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
