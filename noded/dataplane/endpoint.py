"""An endpoint of a session's data plane: what a worker (or a client) sends and receives.

``Endpoint(plane, name)`` opens everything a ``spec.DataPlane`` describes (its inbox,
a publisher per output, a subscriber per input) and offers::

    arr = ep.loan(port, shape, dtype, kind=Kind.VIDEO, **header_fields)  # writable, in shm
    ep.send(port, arr)                     # that loan: no copy
    ep.send(port, value, kind=..., **hf)   # ndarray/str/dict/bytes/Message: copied once
    msg = ep.receive()                     # a Message, or None (never blocks)
    ep.wait(timeout)                       # sleep until something may have arrived
    ep.close()

It knows nothing of nodes or workers (``noded.worker.loop`` drives one for a node).

Threads: every method may be called from any thread. One thread at a time sleeps in the
inbox (the *pump*: iceoryx2's WaitSet, GIL released); others wait on a condition it
signals after each wake-up. Messages may be dropped in any thread.

Blocking: ``send`` blocks while a consumer has not said hello yet or has ``depth``
messages in flight (credit protocol: ``noded.dataplane.channels``). While blocked it flushes
this endpoint's own credits (so cycles through a client do not deadlock on them),
raises ``Stopped`` as soon as ``stop()`` was called or ``should_stop()`` says so, and
every ``DEAD_CHECK`` seconds checks its consumers: a dead one raises ``ConsumerGone``
(only for consumers that had said hello: before that, a missing consumer is
indistinguishable from a slow starter). A send on a port nobody consumes (not in the
spec) goes nowhere, as the daemon's topology defines; ``stats`` counts it.

READY semantics for a worker: once the constructor returns, the inbox and every output
service exist, so peers can connect; inputs whose producer is not up yet are connected
when its EVENT_CONNECT arrives (or within ``HOUSEKEEPING`` seconds), and the producer
sends nothing before this endpoint's hello, so nothing is lost at start-up.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from noded.contract.spec import DataPlane
from noded.contract.stats import (
    H_REJECTED,
    H_UNCONSUMED,
    HOP_BOUNDS_NS,
    HOP_SUM_NS,
    I_BYTES,
    I_DROPPED,
    I_RECEIVED,
    I_RELEASED,
    I_SUBSCRIBED,
    O_BLOCKED_NS,
    O_BLOCKED_SINCE,
    O_BYTES,
    O_OPEN,
    O_SENT,
    StatsBlock,
)  # fmt: skip
from noded.contract.wire import (
    HEADER_SIZE,
    Flags,
    Header,
    Kind,
    WireError,
    pack_header,
    pack_header_into,
    pack_header_patched_into,
    patch_template,
    payload_checksum,
    unpack_head,
    unpack_header,
    verify_payload,
)
from noded.dataplane.channels import (
    EVENT_CONNECT,
    EVENT_READER,
    ChannelError,
    Channels,
    ConsumerGone,
    Inbox,
    InPort,
    OutPort,
    decode_credit,
)  # fmt: skip
from noded.dataplane.message import Lease, Loan, Message, _Mapping, make_header, outgoing, owner_of
from noded.dataplane.rejects import RejectLog
from noded.errors import Stopped

__all__ = ["ChannelError", "ConsumerGone", "Endpoint", "Stopped"]

DEAD_CHECK = 0.25  # s between dead-consumer checks while a send is blocked
STALL_LOG = 30.0  # s a send waits for credit before the log says what it waits for (then every 30 s)
HOUSEKEEPING = 1.0  # s: the longest wait(); retries connecting inputs and undelivered credits
MAX_TEMPLATES = 64  # header templates kept per endpoint (see Endpoint._template)
_PER_MESSAGE = frozenset({"timestamp_ns", "seq"})  # loan fields a template leaves open
# Module globals, not attribute lookups: sends and receives read the clock once a message.
_monotonic_ns = time.monotonic_ns
_I64_MAX = (1 << 63) - 1

log = logging.getLogger("noded.dataplane")


class Endpoint:
    def __init__(
        self,
        plane: DataPlane,
        name: str,
        *,
        extra_fd: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        stop_event: threading.Event | None = None,
        rejects: RejectLog | None = None,
        send_timeout: float | None = None,
        stats_path: Path | None = None,
        keepalive: Callable[[], None] | None = None,
    ) -> None:
        """``name``: this endpoint's name (node id, or "client"); ``extra_fd``: another fd
        that wakes ``wait`` (the worker's signal pipe; ``should_stop`` must drain it);
        ``stop_event``: set whenever ``should_stop`` would say True, checked instead of
        calling it on every send (a ``select`` per message); ``send_timeout``: the default
        ``timeout`` of ``send`` (None: wait as needed); ``stats_path``: where to keep the
        live counters the daemon reads (``noded.contract.stats``; None, or a place this process
        may not write: anonymous); ``keepalive``: called while a send waits for credit
        (the worker's watchdog: waiting for a slow consumer is not hanging)."""
        self.name = name
        self._keepalive = keepalive
        self.send_timeout = send_timeout
        self.verify = plane.verify_payload
        # wait() polls this long before it sleeps: the largest spin_us of the inputs (0: never)
        self._spin_ns = max((spec.spin_us for spec in plane.inputs), default=0) * 1000
        self.block = _stats_block(len(plane.outputs), len(plane.inputs), stats_path)
        self._slots = self.block.slots
        self._out_base = [self.block.out_base(i) for i in range(len(plane.outputs))]
        self._in_base = [self.block.in_base(i) for i in range(len(plane.inputs))]
        self._hop_base = [self.block.hop_base(i) for i in range(len(plane.inputs))]
        self.rejects = rejects if rejects is not None else RejectLog(logger=log)
        self._should_stop = should_stop or (lambda: False)
        self._stop_event = stop_event if stop_event is not None else threading.Event()
        # (kind, dtype, shape) -> (Header, its packed bytes): loans of a geometry seen
        # before skip building and validating a Header (see loan()).
        self._templates: dict[Any, tuple[Header, bytes]] = {}
        self._stopped = False
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # The lock as a context manager: on leaving, it flushes what a Lease handed over
        # while it was held (its finalizer found the lock taken, and appended before that
        # check). One object, not a generator per use: it is on every message's path.
        self._locked_cm = _Locked(self)
        self._pumping = False
        self._released: deque[tuple[int, Any]] = deque()  # (input index, sample) from Leases
        self._next_input = 0
        self._next_housekeeping = 0.0
        self._all_connected = False
        self.announced = 0  # EVENT_CONNECTs received (a reader's join is acked by one)
        # A send that waited ``stall_after`` s for credit tells ``on_stall`` what it waits
        # for, once per wait (None: only the log at ``STALL_LOG`` s): never silently for ever.
        self.stall_after: float | None = None
        self.on_stall: Callable[[str], None] | None = None
        self._seq: dict[str, int] = {}
        self._unconsumed: set[str] = set()
        self._outputs: dict[str, OutPort] = {}
        self._by_index: list[OutPort] = []  # outputs by port_index
        self._inputs: list[InPort] = []
        self._inbox: Inbox | None = None
        self._chan = Channels(name, plane.root, plane.prefix)
        try:
            ports = [o.port for o in plane.outputs]
            if len(set(ports)) != len(ports):
                raise ChannelError(f"endpoint {name!r}: duplicate output ports {ports}")
            peers = sum(len(o.consumers) for o in plane.outputs) + len(plane.inputs) + 1
            last = len(plane.outputs[-1].consumers) if plane.outputs else 0
            self._inbox = Inbox(self._chan, plane.inbox, len(plane.outputs), peers, extra_fd, last)
            for i, spec in enumerate(plane.outputs):
                self._outputs[spec.port] = OutPort(self._chan, spec, i, HEADER_SIZE + spec.max_payload)
                self._seq[spec.port] = 0
                self._slots[self._out_base[i] + O_OPEN] = 1
            self._by_index = list(self._outputs.values())
            self._inputs = [InPort(self._chan, spec, i) for i, spec in enumerate(plane.inputs)]
            for out in self._by_index:
                out.announce()
            self._housekeeping()
        except BaseException:
            self.close()
            raise

    # -- receiving -------------------------------------------------------------------

    def receive(self) -> Message | None:
        """The next message (inputs in turn, each in order), or None. Malformed samples
        are rejected (counted, logged once per burst, released and credited)."""
        with self._locked_cm:
            if self._released:
                self._flush_credits()
            if not self._all_connected and self._inbox is not None:  # a client that only polls
                self._apply(self._inbox.take())
            n = len(self._inputs)
            k = 0
            while k < n:
                port = self._inputs[(self._next_input + k) % n]
                sample = port.receive()
                if sample is None:
                    k += 1
                    continue
                msg = self._accept(port, sample)
                if msg is not None:
                    self._next_input = (port.index + 1) % n
                    return msg
            if self._released:
                self._flush_credits()
            return None

    def _accept(self, port: InPort, sample: Any) -> Message | None:
        lease = Lease(sample, sample.header.number_of_elements, port.index, self._on_release)
        try:
            if self.verify:
                buf = lease.bytes()
                header = unpack_header(buf, lease.length)
                verify_payload(buf, header)
            else:
                header = unpack_head(lease.head(), lease.length)
        except WireError as e:
            self._slots[H_REJECTED] += 1
            self.rejects.record(e, port.spec.source)
            return None  # the lease goes: released and credited
        slots, base = self._slots, self._in_base[port.index]
        slots[base + I_RECEIVED] += 1
        slots[base + I_BYTES] += header.payload_len
        if port.lossy:  # what safe overflow dropped shows as a gap in the producer's seq
            gap = header.seq - port.next_seq
            if gap > 0:
                slots[base + I_DROPPED] += gap
            port.next_seq = header.seq + 1  # a smaller seq: a new producer (a client) started over
        sent = header.sent_ns
        if sent:  # the hop: from the producer's send to here (noded.contract.stats)
            hop = _monotonic_ns() - sent
            if hop < 0:  # not our clock (a foreign sender): count it, in the first bucket
                hop = 0
            base = self._hop_base[port.index]
            slots[base + bisect_left(HOP_BOUNDS_NS, hop)] += 1
            try:  # free unless it raises (Python >= 3.11)
                slots[base + HOP_SUM_NS] += hop
            except ValueError:  # past int64: only hops of a foreign clock get there; it stays full
                slots[base + HOP_SUM_NS] = _I64_MAX
        return Message(port.spec.source, header, lease)

    def _on_release(self, index: int, sample: Any) -> None:
        # From Lease.__del__, in any thread, maybe inside an iceoryx2 call of this very
        # thread: then this endpoint's lock is held (every port call is made under it,
        # except the inbox wait, whose objects a flush does not touch), so flush only if
        # the lock is free; else its holder, or the woken pump, flushes.
        self._released.append((index, sample))
        if not self._try_flush():
            inbox = self._inbox
            if inbox is not None:
                inbox.wake()

    def _try_flush(self) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._released:
                self._flush_credits()
        finally:
            self._lock.release()
        return True

    def _flush_credits(self) -> None:
        """With the lock held: release the samples Leases let go, then credit them."""
        released = self._released
        if not released:
            return
        if len(released) == 1:  # the common case, without a Counter per message
            index, sample = released.popleft()
            sample.delete()
            counts: Any = ((index, 1),)
        else:
            tally: Counter[int] = Counter()
            while released:
                index, sample = released.popleft()
                sample.delete()
                tally[index] += 1
            counts = tally.items()
        for index, n in counts:
            if index < len(self._inputs):
                port = self._inputs[index]
                port.released += n
                self._slots[self._in_base[index] + I_RELEASED] = port.released
                port.credit()  # undelivered (producer gone): retried by housekeeping

    def wait(self, timeout: float | None = None) -> None:
        """Sleep until a message, a credit or a wake-up may have arrived, or ``timeout``
        seconds (at most HOUSEKEEPING) have passed. Returns early on signals."""
        limit = HOUSEKEEPING if timeout is None else min(timeout, HOUSEKEEPING)
        with self._locked_cm:
            if self._released:
                self._flush_credits()
            self._pump(limit, self._spin_ns)

    def _pump(self, timeout: float, spin_ns: int = 0) -> None:
        """With the lock held: sleep in the inbox (or, if another thread does, on the
        condition) and apply what arrived."""
        if self._pumping or self._inbox is None:  # another thread pumps, or closed
            self._cond.wait(timeout)
            return
        self._pumping = True
        self._lock.release()
        try:
            events = self._inbox.wait(timeout, spin_ns)
        finally:
            self._lock.acquire()
            self._pumping = False
        if self._released:
            self._flush_credits()
        # should_stop() also drains the extra fd, which would keep waking us; a wake-up
        # that brought events needs it only if a stop is known (stop_event) already.
        if (not events or self._stop_event.is_set()) and self._should_stop():
            self._stopped = True
        self._apply(events)
        if self._cond._waiters:  # type: ignore[attr-defined]  # Condition.notify_all is Python code: skip it when nobody waits
            self._cond.notify_all()

    def _apply(self, events: list[int]) -> None:
        """With the lock held: apply credits; connect inputs on EVENT_CONNECT or when due."""
        connect = False
        if len(events) > 1:
            events.sort()  # a reader's join (a low id) before the credits that follow it
        for event_id in events:
            credit = decode_credit(event_id)
            if credit is not None:
                if credit[0] < len(self._by_index):
                    self._by_index[credit[0]].credit(credit[1], credit[2])
            elif event_id == EVENT_CONNECT:
                connect = True
                self.announced += 1
            elif event_id >= EVENT_READER:  # and < CREDIT_BASE: a reader slot joined or left
                self._reader_joined(event_id - EVENT_READER)
        if connect or time.monotonic() >= self._next_housekeeping:
            self._housekeeping(reconnect=connect)

    def _reader_joined(self, slot: int) -> None:
        """A reader of an external output joined or left (``channels.OutPort.join``)."""
        for out in self._by_index:
            if out.readers > slot:
                attached = self._chan.listening(out.spec.consumer_inboxes[out.first_reader + slot])
                out.join(slot, attached)
                if attached:
                    out.acknowledge(slot)
                log.info("%s: reader %d of %r %s", self.name, slot, out.spec.port, "joined" if attached else "left")

    def _housekeeping(self, reconnect: bool = False) -> None:
        for port in self._inputs:
            if reconnect and port.connected:
                # A producer announced itself: a new one (a client attaching after another
                # detached) needs this consumer's hello too, with the count so far.
                port.credit()
            elif not port.connected:
                port.connect()
                self._slots[self._in_base[port.index] + I_SUBSCRIBED] = port.subscriber is not None
            elif port.credited != port.released:
                port.credit()
        self._next_housekeeping = time.monotonic() + HOUSEKEEPING
        self._all_connected = all(port.connected for port in self._inputs)

    @property
    def connected(self) -> bool:
        """True once every input is subscribed and its producer got the hello."""
        with self._lock:
            return all(port.connected for port in self._inputs)

    # -- sending ---------------------------------------------------------------------

    def loan(self, port: str, shape: Any, dtype: Any, kind: Kind | int | None = None, **fields: Any) -> np.ndarray:
        """A writable array of ``shape``/``dtype`` inside a sample of ``port``, to fill and
        pass to ``send(port, array)``; header fields (seq, timestamp_ns, sample_rate,
        channels, pixel_format, flags) are given here. Dropped unsent, the sample returns
        to the pool. On a port nobody consumes it is an ordinary array."""
        kind = Kind.TENSOR if kind is None else kind
        template = None
        if not fields or (not fields.keys() - _PER_MESSAGE and all(map(_fits_i64, fields.values()))):
            template = self._template(kind, dtype, shape)
        if template is None:
            header, seq_given = make_header(kind, dtype, shape, fields)
        else:
            header, seq_given = template[0], "seq" in fields
        out = self._outputs.get(port)
        if out is None:
            return np.empty(header.shape, header.dtype)
        with self._locked_cm:
            sample = out.loan(HEADER_SIZE + header.payload_len)
        loan = Loan(port, sample, header, seq_given)
        if template is not None:
            loan.template = template[1]
            loan.timestamp_ns = fields.get("timestamp_ns", 0)
            loan.seq = fields.get("seq", 0)
        return loan.array()

    def _template(self, kind: Any, dtype: Any, shape: Any) -> tuple[Header, bytes] | None:
        """The header (timestamp_ns and seq 0) and packed template for a loan of this
        geometry, made and validated once; None if the key is not hashable (a list)."""
        key = (kind, dtype, shape)
        try:
            template = self._templates.get(key)
        except TypeError:
            return None
        if template is None:
            header, _ = make_header(kind, dtype, shape, {})
            if len(self._templates) >= MAX_TEMPLATES:
                self._templates.clear()  # geometries that change every message: no cache
            template = self._templates[key] = (header, pack_header(header))
        return template

    def send(
        self, port: str, value: Any, *, kind: Kind | int | None = None, timeout: float | None = None, **fields: Any
    ) -> None:
        """Send ``value`` on ``port``: a loaned array without a copy (``kind``/``fields``
        given here override the loan's), anything else copied once into a new loan (see
        ``message.outgoing``). Blocks for credits, for at most ``timeout`` seconds
        (default: ``send_timeout``; then TimeoutError, nothing sent); raises Stopped or
        ConsumerGone."""
        timeout = self.send_timeout if timeout is None else timeout
        if self._stopped:
            raise Stopped()
        out = self._outputs.get(port)
        if out is None:
            self._drop_unconsumed(port)
            return
        owner = _loan_of(value, port) if isinstance(value, np.ndarray) else None
        template = None if owner is None else owner.template
        if template is not None and owner is not None and not fields and kind is None and not self.verify:
            # The common case: a loan made from a template, sent as it is. Its header is
            # the template with this message's timestamp and seq (and its crc), written in
            # one go; no Header and no dict is built, and the credit wait is entered only
            # when something is pending (what it checks first, inline).
            loan = owner
            if loan.sample is None:
                raise ValueError("this loan was already sent")
            with self._locked_cm:
                if self._stopped or self._released or self._stop_event.is_set() or out.blocking():
                    self._wait_for_credit(out, None if timeout is None else time.monotonic() + timeout)
                seq = loan.seq if loan.seq_given else self._seq[port]
                loan.write_header(patch_template(template, loan.timestamp_ns, seq, _monotonic_ns()))
                self._seq[port] = seq + 1
                sample, loan.sample = loan.sample, None
                out.send(sample)
                slots, base = self._slots, self._out_base[out.index]
                slots[base + O_SENT] += 1
                slots[base + O_BYTES] += loan.header.payload_len
            value.flags.writeable = False  # the consumers own it now
            return
        changes: dict[str, Any] = {}  # applied to the header in one go, under the lock
        if owner is not None:
            if owner.sample is None:
                raise ValueError("this loan was already sent")
            loan = owner
            changes.update(fields)
            if kind is not None:
                changes["kind"] = kind
        else:
            header, seq_given, payload = outgoing(value, kind, fields)
            with self._locked_cm:
                sample = out.loan(HEADER_SIZE + header.payload_len)
            loan = Loan(port, sample, header, seq_given)
            np.copyto(loan.array(), payload, casting="no")
        if loan.template is not None:  # the header this loan stands for, with its timestamp and seq
            fixed = {"timestamp_ns": loan.timestamp_ns, **({"seq": loan.seq} if loan.seq_given else {})}
            loan.header, loan.template = _with(loan.header, fixed), None
        header = loan.header
        # Fast path: only seq (and, verifying, flags/payload_crc) change, which need no
        # second Header: the same bytes as pack_header_into(buf, _with(header, changes)).
        fast = not changes
        if self.verify:
            changes["flags"] = Flags(changes.get("flags", header.flags)) | Flags.PAYLOAD_CHECKSUM
            changes["payload_crc"] = payload_checksum(loan.payload_bytes())
        with self._locked_cm:
            self._wait_for_credit(out, None if timeout is None else time.monotonic() + timeout)
            if not (loan.seq_given or "seq" in changes):
                changes["seq"] = self._seq[port]
            if fast:
                seq = changes.get("seq", header.seq)
                pack_header_patched_into(
                    loan.header_bytes(), header, seq,
                    changes.get("flags", header.flags), changes.get("payload_crc", header.payload_crc),
                    _monotonic_ns(),
                )  # fmt: skip
                self._seq[port] = seq + 1
            else:
                changes["sent_ns"] = _monotonic_ns()
                header = _with(header, changes)
                self._seq[port] = header.seq + 1
                pack_header_into(loan.header_bytes(), header)
            sample, loan.sample = loan.sample, None
            out.send(sample)
            slots, base = self._slots, self._out_base[out.index]
            slots[base + O_SENT] += 1
            slots[base + O_BYTES] += header.payload_len
        if owner is loan:
            value.flags.writeable = False  # the consumers own it now

    @property
    def stats(self) -> Counter[str]:
        """Totals of this endpoint: received, sent, rejected, unconsumed, dropped (by lossy
        inputs; the per-port counters: ``self.block``, ``noded.contract.stats``)."""
        s = self._slots
        return Counter({
            "received": sum(s[b + I_RECEIVED] for b in self._in_base),
            "sent": sum(s[b + O_SENT] for b in self._out_base),
            "rejected": s[H_REJECTED], "unconsumed": s[H_UNCONSUMED],
            "dropped": sum(s[b + I_DROPPED] for b in self._in_base),
        })  # fmt: skip

    def _drop_unconsumed(self, port: str) -> None:
        self._slots[H_UNCONSUMED] += 1
        if port not in self._unconsumed:
            self._unconsumed.add(port)
            log.info("%s: nothing consumes port %r: what is sent on it goes nowhere", self.name, port)

    def _wait_for_credit(self, out: OutPort, deadline: float | None) -> None:
        """Until ``out`` may send. While it waits (pumps), the port's BLOCKED_SINCE slot
        says since when; the wait is added to BLOCKED_NS when it ends (``noded.contract.stats``)."""
        if self._stopped or self._stop_event.is_set():
            raise Stopped()
        next_check = None
        blocked_at = 0
        stall_at = None if self.stall_after is None else time.monotonic() + self.stall_after
        log_at = time.monotonic() + STALL_LOG
        try:
            while True:
                if self._released:
                    self._flush_credits()
                blocking = out.blocking()
                if blocking and not self._pumping and self._inbox is not None:
                    # Credits already pending in the inbox: apply them without a WaitSet cycle
                    # (no thread sleeps in the inbox, so its listener is free).
                    events = self._inbox.take()
                    if events:
                        self._apply(events)
                        self._cond.notify_all()
                        blocking = out.blocking()
                if not blocking:
                    return
                if self._stopped or self._should_stop():  # drains the extra fd before sleeping
                    raise Stopped()
                now = time.monotonic()
                if next_check is None:
                    next_check = now + DEAD_CHECK
                if deadline is not None and now >= deadline:
                    names = [out.spec.consumers[i] for i in blocking]
                    raise TimeoutError(f"port {out.spec.port!r}: no credit from {', '.join(names)}")
                if now >= next_check:
                    if any(out.hello[i] for i in blocking):
                        out.check_consumers()
                    next_check = now + DEAD_CHECK
                    if now >= log_at or (stall_at is not None and now >= stall_at):
                        what = waiting_for(out, blocking, now - (blocked_at / 1e9 if blocked_at else now))
                        if stall_at is not None and now >= stall_at and self.on_stall is not None:
                            self.on_stall(what)
                        else:
                            log.warning("%s: %s", self.name, what)
                        stall_at, log_at = None, now + STALL_LOG
                if self._keepalive is not None:
                    self._keepalive()
                if not blocked_at:
                    blocked_at = time.monotonic_ns()
                    self._slots[self._out_base[out.index] + O_BLOCKED_SINCE] = blocked_at
                self._pump(DEAD_CHECK if deadline is None else max(min(DEAD_CHECK, deadline - now), 0.0))
        finally:
            if blocked_at:
                slots, base = self._slots, self._out_base[out.index]
                slots[base + O_BLOCKED_NS] += time.monotonic_ns() - blocked_at
                slots[base + O_BLOCKED_SINCE] = 0

    def in_flight(self, port: str) -> list[int]:
        """Per consumer of ``port``: messages sent and not credited back yet."""
        with self._locked_cm:
            out = self._outputs[port]
            return [s - r for s, r in zip(out.sent, out.released)]

    def stop(self) -> None:
        """Make blocked and future sends raise Stopped (also on ports nobody consumes);
        callable from any thread."""
        self._stopped = True
        if self._inbox is not None:
            self._inbox.wake()

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the ports in a fixed order (outputs, inputs, inbox, node); idempotent.
        A send blocked in another thread raises Stopped first, as later sends do.
        Messages still referenced keep their samples (and mappings) alive."""
        with self._lock:
            self._stopped = True
            if self._inbox is not None:
                self._inbox.wake()
            deadline = time.monotonic() + 2 * DEAD_CHECK
            while self._pumping and time.monotonic() < deadline:  # out of the inbox first
                self._cond.wait(DEAD_CHECK)
            try:
                for out in self._outputs.values():
                    out.close()
                for port in self._inputs:
                    port.close()
                inbox, self._inbox = self._inbox, None
                if inbox is not None:
                    inbox.close()
                for port in self._inputs:  # a reader says it left once it is gone
                    port.leave()
            finally:
                self._outputs, self._inputs, self._by_index, self._inbox = {}, [], [], None
                if self._chan is not None:
                    self._chan.close()
                    self._chan = None  # type: ignore[assignment]
                for base in self._out_base:
                    self._slots[base + O_OPEN] = 0
                for base in self._in_base:
                    self._slots[base + I_SUBSCRIBED] = 0
                self.block.remove()
        self.rejects.flush()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def waiting_for(out: OutPort, blocking: list[int], seconds: float) -> str:
    """What a send on ``out`` has waited for, ``seconds`` long: consumers that are not
    connected, or that hold ``depth`` messages (a full edge)."""
    parts = []
    for i in blocking:
        who = out.spec.consumers[i]
        if i >= out.first_reader and not out.hello[i]:
            parts.append(f"no client reads {who.partition('.')[2]!r}")
        elif not out.hello[i]:
            parts.append(f"{who} is not connected")
        else:
            parts.append(f"{who} holds {out.sent[i] - out.released[i]} of {out.depth} messages (edge full)")
    return f"port {out.spec.port!r} has waited {seconds:.0f} s to send: {'; '.join(parts)}"


def _stats_block(n_out: int, n_in: int, path: Path | None) -> StatsBlock:
    """The endpoint's counters: in a file at ``path`` when it can be made, else anonymous
    (counting goes on; only the daemon cannot see them)."""
    if path is not None:
        try:
            return StatsBlock(n_out, n_in, path)
        except OSError as e:
            log.warning("no live counters for the daemon: cannot create %s: %s", path, e)
    return StatsBlock(n_out, n_in)


class _Locked:
    __slots__ = ("_ep",)

    def __init__(self, ep: Endpoint) -> None:
        self._ep = ep

    def __enter__(self) -> None:
        self._ep._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        ep = self._ep
        ep._lock.release()
        if ep._released:
            ep._try_flush()


def _loan_of(value: np.ndarray, port: str) -> Loan | None:
    """The Loan of ``port`` whose whole payload ``value`` is (sent without a copy), or
    None. First the cheap check (the very array the loan made), then owner_of + covers."""
    base: object = value.base
    if type(base) is _Mapping:
        owner = base.owner
        if type(owner) is Loan and owner.port == port and owner.made(value):
            return owner
    owner = owner_of(value)
    if isinstance(owner, Loan) and owner.port == port and owner.covers(value):
        return owner
    return None


def _fits_i64(value: Any) -> bool:
    """A timestamp_ns or seq a template can take without validating a Header (others go
    through make_header, which accepts or rejects them as it always did)."""
    return type(value) is int and 0 <= value < 1 << 63


def _with(header: Header, changes: dict[str, Any]) -> Header:
    """``header`` with ``changes``, validated again."""
    fields = {name: getattr(header, name) for name in Header.__slots__}
    fields.update(changes)
    return Header(**fields)
