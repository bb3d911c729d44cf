"""The worker: hosts one node in this process, as the main process of a Type=notify unit.

    python -m noded.worker --spec '<WorkerSpec JSON>' [--log-level LEVEL]

Lifecycle: STATUS=initializing -> import the node class, construct it, setup() with
progress -> open the data plane (if the spec has one) -> READY=1 -> serve (below) until
SIGTERM/SIGINT -> STOPPING=1 -> teardown() -> close the data plane -> exit 0.

Serving: without a data plane, the worker just waits for a stop signal. With one,
``noded.worker.loop`` runs ``node.run(ctx)`` (sources) and then feeds each message to
``node.process``; READY=1 means the node's inbox and output channels exist, so peers
can connect (``noded.dataplane.endpoint``). numpy and iceoryx2 are imported only then.
What is sent to systemd, and the start-timeout policy: ``noded.worker.notify``. Exit codes:
``noded.errors.ExitCode``.

Signals: the SIGTERM/SIGINT handler records the signal and sets ``ctx.stopping``; the
wake-up fd of ``signal.set_wakeup_fd`` wakes the main loop, which blocks reading it after
READY, or, with a data plane, has it in the inbox's WaitSet next to the inbox listener
(no polling, and no window between checking the flag and sleeping). While the node
class is imported and setup() runs (in the main thread), the
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
import contextlib
import faulthandler
import io
import logging
import os
import select
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import msgspec

from noded.contract.exitcodes import ExitCode
from noded.contract.spec import WorkerSpec, decode_spec
from noded.contract.status import Phase, Status
from noded.errors import SetupInterrupted, SpecError, Stopped, WorkerError
from noded.loader import load_node_class
from noded.logs import configure_logging
from noded.node import Context, Node
from noded.worker import notify

if TYPE_CHECKING:
    from noded.dataplane.endpoint import Endpoint
    from noded.worker.loop import Loop

log = logging.getLogger("noded.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_WAKE = b"\0"  # a dying thread's wake-up byte; no signal has number 0


class _Signals:
    """SIGTERM/SIGINT handling; see the module docstring."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.stopping = threading.Event()  # set by a stop signal (and by poll())
        self._interruptible = False
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        self.stopping.set()
        if self._interruptible:
            raise SetupInterrupted(signum)

    def set_interruptible(self, on: bool) -> None:
        """While on, a stop signal raises SetupInterrupted (also one that came before)."""
        self._interruptible = on
        if on and self.received is not None:
            raise SetupInterrupted(self.received)

    def wake(self) -> None:
        """Make wait() return 0 and the worker stop (as poll() would say); callable from
        any thread."""
        self.stopping.set()
        try:
            os.write(self._w, _WAKE)
        except BlockingIOError:
            pass  # the pipe is full of wake-ups: wait() will return anyway

    def fileno(self) -> int:
        """The read end of the wake-up pipe (readable after a signal or wake())."""
        return self._r

    def poll(self) -> bool:
        """Without blocking: True (and ``stopping`` set) if a stop signal or wake() came.
        Drains the pipe; callable from any thread."""
        while select.select([self._r], [], [], 0)[0]:
            try:
                data = os.read(self._r, 512)
            except BlockingIOError:
                break
            if any(byte == 0 or byte in STOP_SIGNALS for byte in data):
                self.stopping.set()
        return self.stopping.is_set()

    def wait(self, watchdog: notify.Watchdog | None = None) -> int:
        """Block until a stop signal (returns its number) or wake() (returns 0), feeding
        ``watchdog`` meanwhile."""
        timeout = watchdog.timeout if watchdog is not None else None
        while True:
            if watchdog is not None:
                watchdog.feed()
                if not select.select([self._r], [], [], timeout)[0]:
                    continue
            # The C-level handler writes the signal number here even before the Python
            # handler runs, so reading the bytes leaves no window for a lost wake-up.
            for byte in os.read(self._r, 512):
                if byte == 0 or byte in STOP_SIGNALS:
                    return byte


class _WorkerContext(Context):
    def __init__(self, spec: WorkerSpec, stopping: threading.Event) -> None:
        super().__init__(session=spec.session, node_id=spec.node, params=spec.params)
        self.stopping = stopping
        self._watchdog = notify.watchdog()
        extend = notify.EXTEND_TIMEOUT_USEC
        if self._watchdog.usec is not None:  # EXTEND_TIMEOUT_USEC extends the watchdog too
            extend = min(extend, self._watchdog.usec)
        self._reporter: notify.ProgressReporter | None = notify.ProgressReporter(extend_usec=extend)
        self.endpoint: Endpoint | None = None
        self.loop: Loop | None = None  # while serving: ctx.interrupted() looks ahead through it

    def _interrupted(self) -> bool:
        loop = self.loop
        return loop is not None and loop.interrupted()

    def _loan(self, port: str, shape: Any, dtype: Any, kind: int | None, fields: dict[str, Any]) -> Any:
        if self.endpoint is None:
            return super()._loan(port, shape, dtype, kind, fields)
        return self.endpoint.loan(port, shape, dtype, kind, **fields)

    def _send(self, port: str, value: Any, kind: int | None, fields: dict[str, Any]) -> None:
        self._watchdog.feed()  # a source's run(), or a process() that yields, is alive
        if self.endpoint is None:
            super()._send(port, value, kind, fields)
        else:
            self.endpoint.send(port, value, kind=kind, **fields)

    def end_setup(self) -> None:
        self._reporter = None

    def heartbeat(self) -> notify.Heartbeat | contextlib.nullcontext[None]:
        reporter = self._reporter
        return notify.Heartbeat(reporter) if reporter is not None else contextlib.nullcontext()

    def _report(self, fraction: float | None, text: str) -> None:
        reporter = self._reporter
        if reporter is None:
            self.logger.debug("progress(%s, %r) after setup is ignored", fraction, text)
        else:
            self._watchdog.feed()  # from the first report on, setup() is watched
            reporter.report(fraction, text)


def _describe(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, WorkerError) else str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def report_error(exc: BaseException) -> None:
    notify.status(Status(Phase.ERROR, text=_describe(exc)))


class Worker:
    def __init__(self, spec: WorkerSpec, signals: _Signals) -> None:
        self.spec = spec
        self.signals = signals
        self.ctx = _WorkerContext(spec, signals.stopping)
        self.node: Node | None = None
        self.endpoint: Endpoint | None = None
        self.fatal: BaseException | None = None  # first uncaught exception of a thread

    def run(self) -> int:
        try:
            return self._run()
        finally:
            self._close_dataplane()  # after teardown (in _stop): the node may hold messages

    def _run(self) -> int:
        started = time.monotonic()
        try:
            try:
                self.signals.set_interruptible(True)
                with self.ctx.heartbeat():  # the status moves at least every HEARTBEAT s
                    node = self._setup()
                self.node = node
                self._open_dataplane()
            finally:
                self.signals.set_interruptible(False)
                self.ctx.end_setup()
        except SetupInterrupted as e:  # teardown only if node.setup() had returned
            return self._stop(e.signum)
        except Exception as e:
            return self._fail(e)
        if self.signals.received is not None:  # the node swallowed SetupInterrupted
            return self._stop(self.signals.received)
        if self.fatal is not None:
            return self._fail(self.fatal, logged=True)
        if self.endpoint is not None:  # the daemon's view agrees with READY=1 from now on
            from noded.contract.stats import State  # (imported with the data plane)

            self.endpoint.block.set_state(State.READY)
        notify.ready()
        self.ctx.ready.set()
        log.info("node %s ready after %.0f ms (import and setup)", self.spec.node, (time.monotonic() - started) * 1e3)
        if self.endpoint is None:
            signum = self.signals.wait(notify.watchdog())
        else:
            try:
                signum = self._serve(node, self.endpoint)
            except Exception as e:  # ConsumerGone, or run() failed
                return self._fail(e)
        if self.fatal is not None:  # a thread died
            return self._fail(self.fatal, logged=True)
        return self._stop(signum)

    def _open_dataplane(self) -> None:
        if self.spec.dataplane is None:
            return
        from noded.contract.stats import stats_path
        from noded.dataplane.endpoint import Endpoint  # numpy and iceoryx2: only when needed

        plane = self.spec.dataplane
        self.endpoint = Endpoint(
            plane, self.spec.node, extra_fd=self.signals.fileno(), should_stop=self.signals.poll,
            stop_event=self.signals.stopping, stats_path=stats_path(plane.root, self.spec.node),
            keepalive=notify.watchdog().feed,
        )  # fmt: skip
        self.ctx.endpoint = self.endpoint

    def _serve(self, node: Node, endpoint: Endpoint) -> int:
        from noded.worker.loop import Loop

        outputs = [o.port for o in self.spec.dataplane.outputs] if self.spec.dataplane is not None else []
        loop = Loop(node, self.ctx, endpoint, self.signals.poll, self.signals.stopping, outputs, notify.watchdog())
        self.ctx.loop = loop
        try:
            loop.run()
        finally:
            self.ctx.loop = None
            log.info(
                "node %s: %d messages processed, %d failed in process(), %d flushes passed on "
                "(%d messages dropped before them); %s",
                self.spec.node, loop.processed, loop.errors, loop.flushes, loop.dropped, dict(endpoint.stats),
            )  # fmt: skip
        return self.signals.received or 0

    def _close_dataplane(self) -> None:
        endpoint, self.endpoint = self.endpoint, None
        self.ctx.endpoint = None
        if endpoint is not None:
            try:
                endpoint.close()
            except Exception as e:
                log.error("closing the data plane of node %s failed", self.spec.node, exc_info=e)

    def _setup(self) -> Node:
        sys.path[:0] = self.spec.sys_path  # the node's own code, before any installed module
        cls = load_node_class(self.spec.cls)
        node = cls(node_id=self.spec.node, params=self.spec.params)
        node.setup(self.ctx)
        return node

    def _fail(self, exc: BaseException, *, logged: bool = False) -> int:
        if isinstance(exc, WorkerError):
            log.error("%s", exc, exc_info=exc if exc.show_traceback else None)
        elif not logged:
            log.error("node %s failed: %s", self.spec.node, _describe(exc), exc_info=exc)
        report_error(exc)
        return exc.exit_code if isinstance(exc, WorkerError) else ExitCode.FAILED

    def _stop(self, signum: int) -> int:
        name = signal.Signals(signum).name if signum else "stop"
        log.info("%s: stopping node %s", name, self.spec.node)
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
        if issubclass(args.exc_type, (SystemExit, Stopped)):
            return  # Stopped: a sending thread ended by the stop
        exc = args.exc_value if args.exc_value is not None else args.exc_type()
        name = args.thread.name if args.thread is not None else "?"
        log.error("thread %s of node %s died: %s", name, self.spec.node, _describe(exc), exc_info=exc)
        if self.fatal is None:
            self.fatal = exc
        self.signals.wake()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m noded.worker",
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
