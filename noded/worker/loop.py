"""The worker's main loop after READY=1, for a node with a data plane.

1. ``node.run(ctx)``, if the node overrides it (a *source*: see ``Node.run``). While it
   runs, inputs wait (with backpressure); ``ctx.send`` blocks for credits.
2. Then, until a stop is requested: take the next message (inputs in turn, each in
   order), call ``node.process(msg)`` and send what it returns or yields; sleep in the
   inbox when there is nothing to do (no polling: ``Endpoint.wait``, which the signal
   pipe also wakes).

What ``process`` returns or yields (a generator: each item in turn):

* ``None``: nothing is sent;
* ``(port, value)`` with ``port`` a str: ``value`` is sent on ``port``;
* any other value: sent on port ``"out"``.

A value is what ``ctx.send`` takes: an array from ``ctx.loan`` (no copy), an ndarray
(TENSOR), a str (TEXT), a dict or list (JSON), bytes (CONTROL), or a received
``Message`` (forwarded with its header). Send with ``ctx.send`` directly to choose
``kind`` or header fields.

Watchdog (``noded.worker.notify.Watchdog``): fed before each message, after each sleep
in the inbox (which lasts at most a quarter of the watchdog) and by each send; a
``process()`` or ``run()`` that neither returns nor sends for the node's ``watchdog``
stops feeding it, and systemd ends the node.

State (``noded.contract.stats``, read by the daemon when asked): READY once serving,
PROCESSING while ``run`` runs and from the first message of a burst until there is
nothing left to take, then IDLE while the loop sleeps. A transition is two stores and a
clock read per burst; messages, errors and busy time are counted in the same block.

Flushes (an interruption, e.g. a barge-in: ``noded.contract.flush``, noded-wire(7)): a
CONTROL message with ``Flags.FLUSH`` never reaches ``process``. The loop calls the node's
``on_flush(msg)`` (once per flush, even if it comes on several inputs), sends what that
returns, then sends the flush on, unchanged, on every output port: a node that ignores
flushes still passes them down. ``ctx.interrupted()`` (``Loop.interrupted``) lets long
work in ``process`` look ahead into the inbox: the messages it takes are kept, in order,
and taken before the inbox's next ones; when a flush is among them, the data that came
before it on the same input is dropped. Ordinary messages pay one identity check of
their kind (and one check of an empty deque) for all this.

Failures: an exception from ``process`` (or from sending its outputs) is logged with
its traceback, counted in ``errors``, and the loop goes on with the next message; the
log is throttled to one traceback per ``ERROR_LOG_INTERVAL`` seconds (with the number
of failures since). ``Stopped`` ends the loop; ``ChannelError`` (e.g. ``ConsumerGone``)
and an exception from ``run`` propagate: the worker fails.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from noded.contract.flush import Seen, decode_flush
from noded.contract.stats import H_BUSY_NS, H_ERRORS, H_PROCESSED, H_SERVING_SINCE, H_STATE, H_STATE_SINCE, State
from noded.contract.wire import Flags, Kind
from noded.dataplane.endpoint import ChannelError, Endpoint
from noded.dataplane.message import Message
from noded.errors import Stopped
from noded.node import Context, Node
from noded.worker.notify import Watchdog

ERROR_LOG_INTERVAL = 5.0
_IDLE, _PROCESSING = int(State.IDLE), int(State.PROCESSING)  # plain ints: the cheapest stores
_CONTROL, _FLUSH = Kind.CONTROL, int(Flags.FLUSH)

log = logging.getLogger("noded.worker")


class Loop:
    def __init__(
        self, node: Node, ctx: Context, endpoint: Endpoint, should_stop: Callable[[], bool],
        stop_event: threading.Event | None = None, outputs: Sequence[str] = (),
        watchdog: Watchdog | None = None,
    ) -> None:  # fmt: skip
        """``should_stop`` is asked before sleeping (it may drain a pipe); ``stop_event``,
        set whenever it would say True, is checked between messages instead; ``outputs``
        are the node's output ports (a flush goes on on each); ``watchdog`` is fed between
        messages and while idle."""
        self.node, self.ctx, self.endpoint = node, ctx, endpoint
        self.watchdog = watchdog if watchdog is not None else Watchdog(None, lambda *_: None)
        self.outputs = tuple(outputs)
        self._ahead: deque[Message] = deque()  # taken by interrupted(), not yet dispatched
        self._flushes_ahead = 0
        self._seen = Seen()
        self._thread = threading.get_ident()  # interrupted() looks ahead from this one only
        self.flushes = 0  # flushes handled (on_flush called, passed on)
        self.dropped = 0  # messages dropped because a flush came after them
        self.should_stop = should_stop
        self.stop_event = stop_event
        self.block = endpoint.block
        self._slots = self.block.slots
        self._unlogged = 0
        self._logged_at = -ERROR_LOG_INTERVAL

    @property
    def processed(self) -> int:
        return self._slots[H_PROCESSED]

    @property
    def errors(self) -> int:
        return self._slots[H_ERRORS]

    def run(self) -> None:
        """Run until a stop is requested (or Stopped is raised)."""
        slots, monotonic_ns = self._slots, time.monotonic_ns
        self._thread = threading.get_ident()
        feed, idle_timeout = self.watchdog.feed, self.watchdog.timeout
        now = monotonic_ns()
        slots[H_SERVING_SINCE] = now
        if not slots[H_STATE]:
            self.block.set_state(State.READY, now)
        busy = False
        try:
            if type(self.node).run is not Node.run:
                self.block.set_state(State.PROCESSING)
                busy = True
                self.node.run(self.ctx)
            stopping = self.stop_event.is_set if self.stop_event is not None else self.should_stop
            receive, ahead = self.endpoint.receive, self._ahead
            while not stopping():
                feed()
                msg = ahead.popleft() if ahead else receive()
                if msg is None:
                    if busy:  # the burst is over
                        now = monotonic_ns()
                        slots[H_BUSY_NS] += now - slots[H_STATE_SINCE]
                        slots[H_STATE_SINCE] = now
                        slots[H_STATE] = _IDLE
                        busy = False
                    if self.should_stop():
                        break
                    self.endpoint.wait(idle_timeout)
                    continue
                if not busy:
                    slots[H_STATE_SINCE] = monotonic_ns()
                    slots[H_STATE] = _PROCESSING
                    busy = True
                self.dispatch(msg)
                del msg  # not held while idle: the producer gets its credit now
        except Stopped:
            pass
        finally:
            if busy:
                slots[H_BUSY_NS] += monotonic_ns() - slots[H_STATE_SINCE]
            self.block.set_state(State.STOPPING)

    def dispatch(self, msg: Message) -> None:
        """Call process(msg) and send its outputs; count and log a failure."""
        header = msg.header
        if header.kind is _CONTROL and header.flags & _FLUSH:
            self.flush(msg)
            return
        self.call(self.node.process, msg)
        self._slots[H_PROCESSED] += 1

    def call(self, handler: Callable[[Message], Any], msg: Message) -> None:
        """``handler(msg)`` (process or on_flush) with its outputs sent; a failure is
        counted and logged, and the node goes on."""
        try:
            result = handler(msg)
            if inspect.isgenerator(result):
                for item in result:
                    self.emit(item)
            else:
                self.emit(result)
        except (Stopped, ChannelError):
            raise
        except Exception as e:
            self.failed(msg, e)

    def flush(self, msg: Message) -> None:
        """Handle a flush: on_flush and its outputs, then the flush on every output port."""
        if self._flushes_ahead:  # it came out of _ahead (taken first while one is there)
            self._flushes_ahead -= 1
        payload = bytes(msg.data)
        if not self._seen.first(decode_flush(payload)):
            return  # the same flush on another input: handled already
        self.flushes += 1
        self.call(self.node.on_flush, msg)
        for port in self.outputs:
            self.endpoint.send(port, payload, kind=_CONTROL, flags=Flags.FLUSH, timestamp_ns=msg.timestamp_ns)

    def interrupted(self) -> bool:
        """True when a flush waits: takes what the inbox holds now (without blocking) into
        the queue the loop takes from first, dropping the data that came before a flush
        on its input. False when called from another thread than the loop's."""
        if threading.get_ident() != self._thread:
            return False
        receive, ahead = self.endpoint.receive, self._ahead
        while (msg := receive()) is not None:
            header = msg.header
            if header.kind is _CONTROL and header.flags & _FLUSH:
                self._drop_before(msg.source)
                self._flushes_ahead += 1
            ahead.append(msg)
        return self._flushes_ahead > 0

    def _drop_before(self, source: str) -> None:
        """Drop the queued data of ``source``: a flush came after it (CONTROL messages,
        end-of-stream markers and flushes, stay)."""
        kept = [m for m in self._ahead if m.source != source or m.header.kind is _CONTROL]
        dropped = len(self._ahead) - len(kept)
        if dropped:
            self.dropped += dropped
            log.debug("node %s: a flush on %s drops %d message(s) before it", self.node.node_id, source, dropped)
            self._ahead.clear()
            self._ahead.extend(kept)

    def emit(self, item: Any) -> None:
        if item is None:
            return
        if type(item) is tuple and len(item) == 2 and isinstance(item[0], str):
            self.ctx.send(item[0], item[1])
        else:
            self.ctx.send("out", item)

    def failed(self, msg: Message, exc: Exception) -> None:
        self._slots[H_ERRORS] += 1
        now = time.monotonic()
        if now - self._logged_at < ERROR_LOG_INTERVAL:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more failures not logged)" if self._unlogged else ""
        log.error(
            "process() of node %s failed on %r: %s (%d failures so far)%s",
            self.node.node_id, msg, type(exc).__name__, self.errors, more, exc_info=exc,
        )  # fmt: skip
        self._logged_at, self._unlogged = now, 0
