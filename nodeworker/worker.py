"""The worker: hosts one node in this process, as the main process of a Type=notify unit.

    python -m nodeworker --spec '<WorkerSpec JSON>' [--log-level LEVEL]

Lifecycle: STATUS=initializing -> import the node class, construct it, setup() with
progress -> READY=1 -> wait for SIGTERM/SIGINT -> STOPPING=1 -> teardown() -> exit 0.
What is sent to systemd, and the start-timeout policy: ``nodeworker.notify``. Exit codes:
``nodeworker.errors.ExitCode``.

Signals: the SIGTERM/SIGINT handler records the signal; the wake-up fd of
``signal.set_wakeup_fd`` wakes the main loop, which blocks reading it after READY (no
polling). While the node class is imported and setup() runs (in the main thread), the
handler also raises ``SetupInterrupted``, so a long setup ends at its next Python
bytecode or interruptible wait (sleep, lock, I/O): the worker sends STOPPING=1 and exits
0 without teardown. Setup stuck in a C call that never returns to Python cannot be
interrupted; systemd's TimeoutStopSec= and SIGKILL cover that.

Threads: an uncaught exception in any thread of the node is fatal (logged, STATUS=error,
exit 1, no teardown): a node with a dead thread would look alive and do nothing, and the
unit's Restart= is the recovery.

Start-up time matters (several workers start at once on few cores): import nothing heavy
here; node modules import what they need.
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

import msgspec

from nodeworker import notify
from nodeworker.logs import configure_logging
from nodeworker.errors import ExitCode, NodeworkerError, SetupInterrupted, SpecError
from nodeworker.loader import load_node_class
from nodeworker.node import Context, Node
from nodeworker.spec import WorkerSpec, decode_spec
from nodeworker.status import Phase, Status

log = logging.getLogger("noded.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_WAKE = b"\0"  # a dying thread's wake-up byte; no signal has number 0

class _Signals:
    """SIGTERM/SIGINT handling; see the module docstring."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._interruptible = False
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if self._interruptible:
            raise SetupInterrupted(signum)

    def set_interruptible(self, on: bool) -> None:
        """While on, a stop signal raises SetupInterrupted (also one that came before)."""
        self._interruptible = on
        if on and self.received is not None:
            raise SetupInterrupted(self.received)

    def wake(self) -> None:
        """Make wait() return 0; callable from any thread."""
        try:
            os.write(self._w, _WAKE)
        except BlockingIOError:
            pass  # the pipe is full of wake-ups: wait() will return anyway

    def wait(self) -> int:
        """Block until a stop signal (returns its number) or wake() (returns 0)."""
        while True:
            # The C-level handler writes the signal number here even before the Python
            # handler runs, so reading the bytes leaves no window for a lost wake-up.
            for byte in os.read(self._r, 512):
                if byte == 0 or byte in STOP_SIGNALS:
                    return byte


class _WorkerContext(Context):
    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(session=spec.session, node_id=spec.node, params=spec.params)
        self._reporter: notify.ProgressReporter | None = notify.ProgressReporter()

    def end_setup(self) -> None:
        self._reporter = None

    def _report(self, fraction: float | None, text: str) -> None:
        reporter = self._reporter
        if reporter is None:
            self.logger.debug("progress(%s, %r) after setup is ignored", fraction, text)
        else:
            reporter.report(fraction, text)


def _describe(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, NodeworkerError) else str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def report_error(exc: BaseException) -> None:
    notify.status(Status(Phase.ERROR, text=_describe(exc)))


class Worker:
    def __init__(self, spec: WorkerSpec, signals: _Signals) -> None:
        self.spec = spec
        self.signals = signals
        self.ctx = _WorkerContext(spec)
        self.node: Node | None = None
        self.fatal: BaseException | None = None  # first uncaught exception of a thread

    def run(self) -> int:
        started = time.monotonic()
        try:
            try:
                self.signals.set_interruptible(True)
                node = self._setup()
            finally:
                self.signals.set_interruptible(False)
                self.ctx.end_setup()
            self.node = node
        except SetupInterrupted as e:
            return self._stop(e.signum)  # no teardown: setup did not complete
        except Exception as e:
            return self._fail(e)
        if self.signals.received is not None:  # the node swallowed SetupInterrupted
            return self._stop(self.signals.received)
        if self.fatal is not None:
            return self._fail(self.fatal, logged=True)
        notify.ready()
        self.ctx.ready.set()
        log.info("node %s ready after %.0f ms (import and setup)", self.spec.node, (time.monotonic() - started) * 1e3)
        signum = self.signals.wait()
        if self.fatal is not None:  # wait() returned 0: a thread died
            return self._fail(self.fatal, logged=True)
        return self._stop(signum)

    def _setup(self) -> Node:
        cls = load_node_class(self.spec.cls)
        node = cls(node_id=self.spec.node, params=self.spec.params)
        node.setup(self.ctx)
        return node

    def _fail(self, exc: BaseException, *, logged: bool = False) -> int:
        if isinstance(exc, NodeworkerError):
            log.error("%s", exc, exc_info=exc if exc.show_traceback else None)
        elif not logged:
            log.error("node %s failed: %s", self.spec.node, _describe(exc), exc_info=exc)
        report_error(exc)
        return exc.exit_code if isinstance(exc, NodeworkerError) else ExitCode.FAILED

    def _stop(self, signum: int) -> int:
        log.info("%s: stopping node %s", signal.Signals(signum).name, self.spec.node)
        notify.stopping()
        if self.node is None:
            return ExitCode.OK
        try:
            self.node.teardown()
        except Exception as e:
            log.error("teardown of node %s failed", self.spec.node, exc_info=e)
            report_error(e)
            return ExitCode.TEARDOWN_FAILED
        return ExitCode.OK

    def thread_died(self, args: threading.ExceptHookArgs) -> None:
        """threading.excepthook: any uncaught exception in a thread stops the worker."""
        if issubclass(args.exc_type, SystemExit):
            return
        exc = args.exc_value if args.exc_value is not None else args.exc_type()
        name = args.thread.name if args.thread is not None else "?"
        log.error("thread %s of node %s died: %s", name, self.spec.node, _describe(exc), exc_info=exc)
        if self.fatal is None:
            self.fatal = exc
        self.signals.wake()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nodeworker",
        description="Host one noded node in this process (the main process of a Type=notify unit).",
    )
    parser.add_argument("--spec", required=True, help="the node's WorkerSpec as JSON")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("NODED_LOG_LEVEL", "INFO").upper(),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: $NODED_LOG_LEVEL or INFO",
    )
    return parser.parse_args(argv)


def _decode(text: str) -> WorkerSpec:
    try:
        return decode_spec(text)
    except msgspec.MsgspecError as e:
        raise SpecError(
            f"invalid --spec: {e}", hint='expected JSON {"session": ..., "node": ..., "cls": ..., "params": {...}}'
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Run the worker; returns its exit status (``__main__`` exits with it)."""
    args = _parse_args(argv)
    configure_logging(args.log_level)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # a node's print() reaches the journal now
    faulthandler.enable()  # a native crash leaves Python tracebacks in the journal
    notify.connect()
    signals = _Signals()
    notify.status(Status(Phase.INITIALIZING))
    try:
        spec = _decode(args.spec)
    except SpecError as e:
        log.error("%s", e)
        report_error(e)
        return e.exit_code
    worker = Worker(spec, signals)
    threading.excepthook = worker.thread_died
    log.info("starting node %s (%s) of session %s", spec.node, spec.cls, spec.session)
    return worker.run()
