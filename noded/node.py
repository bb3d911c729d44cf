"""The node SDK: subclass ``Node``; the worker hands ``setup`` a ``Context``.

A node's life in its worker process::

    node = MyNode(node_id=..., params=...)   # cheap: keep heavy work out of __init__
    node.setup(ctx)                          # load models here; ctx.progress() as you go
    ... READY=1 ...                          # channels are open (ctx.loan/ctx.send work)
    node.run(ctx)                            # optional: a source produces its data here
    node.process(msg) for each message       # until SIGTERM/SIGINT (noded.worker.loop)
    node.on_flush(msg) for each flush         # an interruption; then it goes on downstream
    node.teardown()                          # on SIGTERM/SIGINT, only if setup returned

``noded.testing.FakeContext`` runs ``setup`` in plain pytest.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
from collections.abc import Mapping
from typing import Any


def logger_for(node_id: str) -> logging.Logger:
    return logging.getLogger(f"noded.node.{node_id}")


class Context(abc.ABC):
    """What a node's setup sees of its host: the real worker or ``testing.FakeContext``.

    Attributes: ``session``, ``node_id``, ``params`` (the spec's params), ``logger``
    (stdlib logger ``noded.node.<id>``; the worker sends it to the journal) and ``ready``,
    a ``threading.Event`` set once the worker has told systemd READY=1 (for threads that a
    node starts in setup and that must only act once the node is up), and ``stopping``,
    a ``threading.Event`` set on SIGTERM/SIGINT (for loops in ``run`` and in threads).

    Sending (``loan``, ``send``) works after READY=1, from any thread, for a node whose
    spec has a data plane (``noded.dataplane.endpoint`` has the details).
    """

    def __init__(self, *, session: str, node_id: str, params: Mapping[str, Any]) -> None:
        self.session = session
        self.node_id = node_id
        self.params = params
        self.logger = logger_for(node_id)
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def progress(self, fraction: float, text: str = "") -> None:
        """Report setup progress: ``fraction`` in [0, 1] (clamped; NaN shows no percentage).

        The worker turns reports into the unit's status text (``initializing 42.0%: text``),
        at most every ~50 ms, and each one that changes what is shown also extends systemd's
        start timeout. Call it from any thread, as often as you like; it is a no-op after
        setup. Raises TypeError when ``fraction`` is not a number.
        """
        try:
            value = float(fraction)
        except (TypeError, ValueError):
            raise TypeError(f"progress fraction must be a number, got {fraction!r}") from None
        self._report(None if math.isnan(value) else min(max(value, 0.0), 1.0), str(text))

    @abc.abstractmethod
    def _report(self, fraction: float | None, text: str) -> None:
        """Deliver one normalised progress report."""

    def loan(self, port: str, shape: Any, dtype: Any, kind: int | None = None, **fields: Any) -> Any:
        """A writable numpy array of ``shape`` and ``dtype`` that lives in shared memory,
        in a message of ``port``: fill it (decode, render, compute into it), then
        ``send(port, array)`` sends it without a copy. ``kind`` is a ``wire.Kind``
        (default TENSOR); ``fields`` are header fields: seq (default: the port's next),
        timestamp_ns, sample_rate, channels, pixel_format, flags. Do not touch the array
        after sending it. Dropped unsent, the memory returns to the port's pool.
        """
        return self._loan(port, shape, dtype, kind, fields)

    def send(self, port: str, value: Any, *, kind: int | None = None, **fields: Any) -> None:
        """Send ``value`` on ``port``: an array from ``loan`` (no copy; ``kind`` and
        ``fields`` given here override the loan's), or an ndarray (TENSOR), str (TEXT),
        dict/list (JSON), bytes (CONTROL) or a received Message (forwarded with its
        header), copied once.

        Blocks while a consumer of the port is not connected yet or already has
        ``depth`` messages in flight (nothing is ever dropped); raises ``Stopped`` (a
        BaseException) once the worker is stopping, and ``ConsumerGone`` if a consumer
        died. A port that nothing consumes silently takes anything.
        """
        self._send(port, value, kind, fields)

    def interrupted(self) -> bool:
        """True when a flush (an interruption: noded.contract.flush) waits in this node's
        inbox. Ask it as you go during long work on one message (a model writing a reply,
        a synthesiser speaking it) and stop that work when it says True: the worker has
        then dropped the messages that came before the flush on the same input (they are
        stale; end-of-stream markers are kept), and once ``process`` returns it calls
        ``Node.on_flush`` and passes the flush on. Never blocks; a cheap look into the
        inbox. Call it from ``process`` (the worker's main thread); False elsewhere.
        """
        return self._interrupted()

    def send_flush(
        self, port: str, id: int, reason: str = "", *, utterance: int | None = None, timestamp_ns: int = 0
    ) -> None:
        """Raise a flush on ``port``: its consumers drop what they hold of the current
        stream and pass it on, down to the client (noded-wire(7), "FLUSH"). ``id`` is
        unique among this node's flushes (a flush reaching a node twice is handled
        once); ``timestamp_ns`` (CLOCK_MONOTONIC) is when its cause happened."""
        from noded.contract.flush import Flush, encode_flush
        from noded.contract.wire import Flags, Kind

        flush = Flush(origin=self.node_id, id=int(id), reason=reason, utterance=utterance)
        self.send(port, encode_flush(flush), kind=Kind.CONTROL, flags=Flags.FLUSH, timestamp_ns=int(timestamp_ns))

    def _interrupted(self) -> bool:
        return False

    def _loan(self, port: str, shape: Any, dtype: Any, kind: int | None, fields: dict[str, Any]) -> Any:
        raise RuntimeError(f"node {self.node_id} has no data plane: nothing to loan from")

    def _send(self, port: str, value: Any, kind: int | None, fields: dict[str, Any]) -> None:
        raise RuntimeError(f"node {self.node_id} has no data plane: nothing to send on")


class Node:
    """Base class of every node. Override ``setup``, ``process`` and ``teardown``, and
    ``on_flush`` if the node holds state that an interruption makes stale.

    Interruptions (barge-in): a flush (a CONTROL message with ``Flags.FLUSH``; see
    ``noded.contract.flush`` and noded-wire(7)) never reaches ``process``: the worker calls
    ``on_flush`` and then sends the flush on every output port, so a node that ignores
    flushes still passes them downstream. Long work on one message should ask
    ``ctx.interrupted()`` as it goes and stop when it is True; ``ctx.send_flush`` raises one.

    ``self.params`` is a copy of the spec's params, ``self.node_id`` the node's id in its
    pipeline, ``self.logger`` the same logger as ``ctx.logger``. A subclass that overrides
    ``__init__`` must accept and pass on the keyword arguments.
    """

    def __init__(self, *, node_id: str = "node", params: Mapping[str, Any] | None = None) -> None:
        self.node_id = node_id
        self.params: dict[str, Any] = dict(params or {})
        self.logger = logger_for(node_id)

    def setup(self, ctx: Context) -> None:
        """Load models and open resources. READY=1 is sent only after this returns.

        An exception fails the worker (exit 1, ``STATUS=error: Type: message``); raise
        ``noded.errors.ParamError`` for invalid params (exit 2: no point restarting).
        SIGTERM/SIGINT during setup raise ``SetupInterrupted`` (a BaseException) out of
        whatever Python code runs: clean up with ``try/finally`` or ``with``, and do not
        catch BaseException. ``teardown`` is not called after a failed or interrupted setup.
        """

    def process(self, *args: Any, **kwargs: Any) -> Any:
        """Turn one input message into outputs: return them, or be a generator that
        yields them.

        The worker calls ``process(msg)`` with one ``noded.dataplane.message.Message`` at a
        time, from its main thread; ``msg.source`` says which input it came from. An
        output is ``None`` (nothing), ``(port, value)``, or a value for port "out";
        values are what ``ctx.send`` takes (see ``noded.worker.loop``). An exception is
        logged and counted, and the node goes on with the next message. The default
        raises NotImplementedError.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement process()")

    def on_flush(self, msg: Any) -> Any:
        """Optional: an interruption (a flush: noded.contract.flush) reached the node.
        Drop what you hold of the current stream (a half-heard utterance, a reply being
        written, audio not sent yet). Return or yield outputs as ``process`` does (e.g. a
        reply's closing message); they go out before the flush, which the worker then
        sends on, unchanged, on every output port. ``msg.source`` is the input it came
        on, ``noded.contract.flush.decode_flush(msg.data)`` who raised it and why. Called
        once per flush, even when it comes on several inputs. The default does nothing,
        which is right for nodes that hold nothing between messages. During long work in
        ``process``, ``ctx.interrupted()`` tells that a flush is waiting.
        """
        return None

    def run(self, ctx: Context) -> None:
        """Optional: produce data, for a source node. Called once after READY=1, in the
        main thread; ``process`` is called only once it returns. Send with ``ctx.send``
        (it blocks for backpressure) and end when ``ctx.stopping`` is set; a ``send``
        during a stop raises ``Stopped``, which ends ``run`` quietly. An exception fails
        the worker. Alternatively start a thread in ``setup`` that waits for
        ``ctx.ready`` and sends: ``ctx.send`` may be called from any thread.
        """

    def teardown(self) -> None:
        """Release what setup acquired. Called once, after a stop request, if setup returned.

        An exception is logged and makes the worker exit 4.
        """
