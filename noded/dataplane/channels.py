"""The iceoryx2 side of the data plane: the only module that imports iceoryx2.

Services (named by the ``DataPlane`` spec, under the session's ``root`` and ``prefix``):

* per output port, a publish-subscribe service of ``Slice[c_uint8]``: a sample is a wire
  message (``noded.contract.wire``). The producer creates it for its consumers; they only
  open it, so its QoS is the producer's. Both build it with ``_stream_service``: iceoryx2
  refuses to open a service built with other QoS (docs/dataplane.md, "Identical QoS on both
  sides").
* per endpoint, an event service, its *inbox*: its owner creates it and is its only
  listener; peers only open it to notify. Built by ``_inbox_service``.

Event ids on an inbox::

    EVENT_DATA     0   producer -> consumer: a sample was sent to one of your inputs
    EVENT_CONNECT  1   producer -> consumer: my output services exist, subscribe now
                       (and producer -> reader: your join is applied)
    EVENT_READER + k   reader -> producer: reader slot ``k`` joined (its inbox has its
                       listener) or left (it has none): reset that consumer's count
    CREDIT_BASE + (port_index * MAX_CONSUMERS + consumer_index) * CREDIT_WINDOW
                + released % CREDIT_WINDOW
                       consumer -> producer: I have released ``released`` messages of
                       your port ``port_index`` in total (0 = "hello, I am subscribed")

Credits carry a cumulative count, never "one more": iceoryx2 may merge notifications of
one id, and a producer that drained several credits of one consumer keeps the largest
advance (``OutPort.credit``). ``CREDIT_WINDOW`` > 2 * depth keeps that unambiguous. An
inbox supports ids up to ``inbox_event_id_max(outputs, consumers of the last one)``: a
listener's ``try_wait`` scans every id (3-10 ns each, on every wake-up and credit: 1,040
ids cost a producer 10 us a message where 80 cost 1 us), so the id space ends at the
last consumer of the owner's last output.

Reader slots: the last ``OutputSpec.readers`` consumers of an external output are the
clients that read it, each attached or not. A send needs every node consumer and at
least one attached reader; each attached reader gets every message. A reader joins by
subscribing, then sending ``EVENT_READER + k``: the producer counts it from then on,
with the messages it delivered beyond its counted consumers meanwhile (``extra``) as in
flight to it, and acks with EVENT_CONNECT. It leaves by closing its subscriber and inbox,
then sending the same id; a reader that died is found by the dead-consumer check. Either
way its credits are freed at once: nothing waits for it any more.

Flow control: a producer sends on a port only when every consumer has said hello and
has fewer than ``depth`` messages in flight (sent, not credited); subscriber buffers hold
``depth`` and consumers may borrow ``depth``, so buffers never fill and ``DiscardData``
never discards. A send reaching fewer subscribers than consumers means one is gone
(``ConsumerGone``). Nothing here blocks: waiting is ``noded.dataplane.endpoint``'s job.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import iceoryx2 as iox

from noded.contract.exitcodes import ExitCode
from noded.contract.sessionfiles import (
    remove_session_resources,  # noqa: F401  (re-exported)
    restrict_shared_files,
)
from noded.contract.spec import MAX_CONSUMERS, MAX_DEPTH, MAX_PORTS, InputSpec, OutputSpec
from noded.errors import WorkerError

log = logging.getLogger("noded.channels")

EVENT_DATA = 0
EVENT_CONNECT = 1
EVENT_READER = 2  # + a reader slot (< CREDIT_BASE - EVENT_READER)
CREDIT_BASE = 16
CREDIT_WINDOW = 64
assert MAX_DEPTH < CREDIT_WINDOW // 2, "credit counts would be ambiguous"
JOIN_WAIT = 1.0  # s a producer waits for the join of a reader its sends already reach
MAX_LOANS = 4  # samples a producer may hold loaned per port at once
PAYLOAD_ALIGNMENT = 64  # samples start 64-byte aligned, so payloads (at offset 128) do too
_NEVER = 1 << 62  # messages in flight that block a lossy edge's consumer: none do
CLIENT_NODE = "client"  # the iceoryx2 node name of every client endpoint (a reserved node id)
_SOCKET_NAME_LEN = 48  # iceoryx2 puts "<prefix><32 digits>.event" sockets into the root
_SUN_PATH_MAX = 107


# iceoryx2's Python layer wraps each Slice publisher's loan and each sample's assume_init
# in a function that asserts on typing.get_origin of the payload type, per call. The
# payload type here is always Slice[c_uint8], so the per-message path calls the binding's
# methods underneath (iceoryx2 is pinned in pyproject.toml; the public name is the
# fallback if a release renames them).
_RAW_LOAN = "__loan_slice_uninit"
_RAW_ASSUME_INIT = "__assume_init"
_HAS_RAW_ASSUME_INIT = hasattr(iox.SampleMutUninit, _RAW_ASSUME_INIT)


def _assume_init(sample: Any) -> Any:
    return getattr(sample, _RAW_ASSUME_INIT)() if _HAS_RAW_ASSUME_INIT else sample.assume_init()


class _EventIds:
    """iox.EventId objects, made once per id (EventId.new per notify costs a binding call)."""

    def __init__(self) -> None:
        self._ids: dict[int, Any] = {}

    def __getitem__(self, value: int) -> Any:
        event = self._ids.get(value)
        if event is None:
            event = self._ids[value] = iox.EventId.new(value)
        return event


_EVENT_IDS = _EventIds()


class ChannelError(WorkerError):
    """An iceoryx2 channel cannot be set up or used."""


class InboxTaken(ChannelError):
    """The inbox already has its one listener: another process is this endpoint."""


class ConsumerGone(ChannelError):
    """A consumer of an output port died or left: the producer cannot deliver to it. The
    worker exits with PEER_GONE, which tells the daemon to blame the consumer if it failed."""

    exit_code = ExitCode.PEER_GONE


def credit_event_id(port_index: int, consumer_index: int, released: int) -> int:
    return CREDIT_BASE + (port_index * MAX_CONSUMERS + consumer_index) * CREDIT_WINDOW + released % CREDIT_WINDOW


def decode_credit(event_id: int) -> tuple[int, int, int] | None:
    """``(port_index, consumer_index, released % CREDIT_WINDOW)``, or None for another id."""
    if event_id < CREDIT_BASE:
        return None
    slot, released = divmod(event_id - CREDIT_BASE, CREDIT_WINDOW)
    port_index, consumer_index = divmod(slot, MAX_CONSUMERS)
    return port_index, consumer_index, released


def inbox_event_id_max(n_outputs: int, last_consumers: int = MAX_CONSUMERS) -> int:
    """The largest id an inbox needs: the last credit id of consumer ``last_consumers - 1``
    of port ``n_outputs - 1`` (earlier ports keep their full stride of MAX_CONSUMERS)."""
    if n_outputs <= 0:
        return CREDIT_BASE - 1
    return CREDIT_BASE + ((n_outputs - 1) * MAX_CONSUMERS + last_consumers) * CREDIT_WINDOW - 1


def _is(exc: BaseException, reason: str) -> bool:
    return bool(exc.args) and exc.args[0] == reason


class LimitReached(ChannelError):
    """One of iceoryx2's per-service limits (publishers, subscribers, listeners,
    notifiers, nodes) is reached: more processes use a port than its pipeline planned."""


# iceoryx2's error names for its per-service limits -> what the limit counts.
_LIMITS = {
    "ExceedsMaxSupportedPublishers": "publishers",
    "ExceedsMaxSupportedSubscribers": "subscribers",
    "ExceedsMaxSupportedListeners": "listeners",
    "ExceedsMaxSupportedNotifiers": "notifiers",
    "ExceedsMaxNumberOfNodes": "nodes",
}


@contextlib.contextmanager
def _limits(endpoint: str, action: str, service: str, **planned: int) -> Iterator[None]:
    """Turn an iceoryx2 limit error inside the block into LimitReached naming the limit
    (with its value when ``planned`` has it: publishers=1, ...), the endpoint (node or
    client) and the service; other errors pass unchanged."""
    try:
        yield
    except Exception as exc:
        text = f"{type(exc).__name__} {exc}"
        key = next((k for k in _LIMITS if k in text), None)
        if key is None:
            raise
        limit = planned.get(_LIMITS[key])
        most = f", {limit}," if limit is not None else ""
        raise LimitReached(
            f"{endpoint}: cannot {action} {service!r}: iceoryx2's limit on {_LIMITS[key]} per service{most} is "
            f"reached ({key})",
            hint="another process uses this port as well (a second client, or a process left from before?); "
            "each port takes the producers and consumers its pipeline plans",
        ) from None


class Channels:
    """An endpoint's iceoryx2 node, and its notifiers to other endpoints' inboxes."""

    def __init__(self, name: str, root: str, prefix: str) -> None:
        root = root if root.endswith("/") else root + "/"
        if len(root) + len(prefix) + _SOCKET_NAME_LEN > _SUN_PATH_MAX:
            raise ChannelError(
                f"iceoryx2 root {root!r} with prefix {prefix!r} is too long for its AF_UNIX sockets",
                hint=f"keep len(root) + len(prefix) <= {_SUN_PATH_MAX - _SOCKET_NAME_LEN}",
            )
        self.root, self.prefix, self.name = root, prefix, name
        self.config = iox.config.default()
        self.config.global_cfg.root_path = iox.Path.new(root)
        self.config.global_cfg.prefix = iox.FileName.new(prefix)
        try:
            self.node: Any = (
                iox.NodeBuilder.new()
                .name(iox.NodeName.new(name[: iox.NodeName.max_len()]))
                .config(self.config)
                .signal_handling_mode(iox.SignalHandlingMode.Disabled)
                .create(iox.ServiceType.Ipc)
            )
        except iox.NodeCreationFailure as e:
            raise ChannelError(f"cannot create iceoryx2 node {name!r} under {root}: {e}") from e
        restrict_shared_files(prefix)  # iceoryx2's node counter is 0666
        self._notifiers: dict[str, Any] = {}  # inbox service name -> Notifier

    def notifier(self, inbox: str, event_id_max: int) -> Any | None:
        """A notifier to another endpoint's inbox; None while that inbox does not exist."""
        notifier = self._notifiers.get(inbox)
        if notifier is None:
            try:
                with _limits(self.name, "open the inbox", inbox):
                    service = _inbox_service(self.node, inbox, event_id_max, 1, create=False)
            except iox.EventOpenError as e:
                if _is(e, "DoesNotExist") or _is(e, "InsufficientPermissions"):
                    return None
                raise ChannelError(f"cannot open inbox {inbox!r}: {e}") from e
            with _limits(self.name, "notify the inbox", inbox):
                notifier = self._notifiers[inbox] = service.notifier_builder().create()
        return notifier

    def listening(self, inbox: str) -> bool:
        """Whether ``inbox`` has its listener now (its owner is attached)."""
        try:
            service = _inbox_service(self.node, inbox, EVENT_CONNECT, 1, create=False)
        except iox.EventOpenError:
            return False
        return bool(service.dynamic_config.number_of_listeners)

    def cleanup_dead(self) -> list[str]:
        """Remove the stale resources of every dead iceoryx2 node under this root (a
        client killed with SIGKILL keeps its ports, and so its slots, until this runs:
        docs/dataplane.md, "Dead nodes' files stay until cleanup"); their names."""
        names = []
        with contextlib.suppress(Exception):
            for state in iox.Node.list(iox.ServiceType.Ipc, self.config):
                if type(state).__name__ == "Dead":
                    view = state._0
                    with contextlib.suppress(Exception):
                        view.try_remove_stale_resources()
                        names.append(view.details.name.as_str() if view.details is not None else "?")
        return names

    def close(self) -> None:
        for notifier in self._notifiers.values():
            notifier.delete()
        self._notifiers.clear()
        self.node = None  # dropping the last reference removes the node's files


def _stream_service(
    node: Any, name: str, depth: int, max_subscribers: int, *, create: bool, safe_overflow: bool = False
) -> Any:
    """THE publish-subscribe QoS, for both sides: opening with any other QoS fails
    (docs/dataplane.md, "Identical QoS on both sides"). The producer creates it for its
    exact consumer count; a consumer opens it asking for at least its own index + 1.
    ``safe_overflow``: the port has a lossy edge (a full buffer of a consumer the producer
    does not wait for loses its oldest sample); off, a full buffer is never overwritten."""
    builder = (
        node.service_builder(iox.ServiceName.new(name))
        .publish_subscribe(iox.Slice[ctypes.c_uint8])
        .payload_alignment(iox.Alignment.new(PAYLOAD_ALIGNMENT))
        .enable_safe_overflow(safe_overflow)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(max_subscribers)
        .max_nodes(max_subscribers + 1)
        .subscriber_max_buffer_size(depth)
        .subscriber_max_borrowed_samples(depth)  # a node may hold every message in flight
    )
    return builder.open_or_create() if create else builder.open()


def _inbox_service(node: Any, name: str, event_id_max: int, max_peers: int, *, create: bool) -> Any:
    """THE inbox QoS, for its owner (create) and for peers (open, with their minimums)."""
    builder = (
        node.service_builder(iox.ServiceName.new(name))
        .event()
        .event_id_max_value(event_id_max)
        .max_listeners(1)
        .max_notifiers(max_peers)
        .max_nodes(max_peers + 1)
        .disable_notifier_created_event()
        .disable_notifier_dropped_event()
        .disable_notifier_dead_event()
        .disable_deadline()
    )
    return builder.open_or_create() if create else builder.open()


class Inbox:
    """The owner's side of its inbox: one listener, plus a wake-up pipe and an optional
    extra fd (the worker's signal pipe), all waited on by one WaitSet. Its signal handling
    is disabled: by default a WaitSet swallows SIGTERM, which must reach Python's handler
    (docs/dataplane.md, "WaitSet swallows SIGTERM")."""

    def __init__(
        self,
        chan: Channels,
        name: str,
        n_outputs: int,
        max_peers: int,
        extra_fd: int | None,
        last_consumers: int = MAX_CONSUMERS,
    ) -> None:
        event_id_max = inbox_event_id_max(n_outputs, last_consumers)
        with _limits(chan.name, "open its inbox", name, listeners=1, notifiers=max_peers, nodes=max_peers + 1):
            self._service = _inbox_service(chan.node, name, event_id_max, max_peers, create=True)
        try:
            self._listener = self._service.listener_builder().create()
        except Exception as exc:
            if "ExceedsMaxSupportedListeners" not in f"{type(exc).__name__} {exc}":
                raise
            raise InboxTaken(
                f"inbox {name!r} already has its listener (iceoryx2 {type(exc).__name__}: {exc})",
                hint="another process is attached as the same endpoint",
            ) from None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._waitset = (
            iox.WaitSetBuilder.new().signal_handling_mode(iox.SignalHandlingMode.Disabled).create(iox.ServiceType.Ipc)
        )
        fds = [self._wake_r] if extra_fd is None else [self._wake_r, extra_fd]
        self._closed = False
        self._guards = [self._waitset.attach_notification(self._listener)]
        self._guards += [self._waitset.attach_notification_fd(iox.FileDescriptor.non_owning_new(fd)) for fd in fds]

    def wait(self, timeout: float, spin_ns: int = 0) -> list[int]:
        """Sleep (GIL released) until an event, a wake(), the extra fd or ``timeout``
        seconds; then return the pending event ids (maybe none). A signal ends it early.
        The wake-up pipe is drained only when no event came (a syscall, and an exception
        when empty, saved per message): a wake() left in it costs one spare wake-up.
        ``spin_ns``: first poll the listener for that long (at most ``timeout``), burning
        CPU so that the next event is taken without a wake-up (an edge's ``spin_us``);
        a wake() or the extra fd is seen only once the spin is over."""
        if spin_ns:
            now = time.monotonic_ns
            end = now() + min(spin_ns, int(timeout * 1e9))
            try_wait = self._listener.try_wait
            while True:
                activations = try_wait()
                if activations:
                    return [activation.id.as_value for activation in activations]
                if now() >= end:
                    break
        try:  # try/except, not contextlib.suppress: this runs once per message
            self._waitset.wait_and_process_with_timeout(iox.Duration.from_secs_f64(max(timeout, 0.0)))
        except iox.WaitSetRunError:
            pass
        events = self.take()
        if not events:  # woken by wake() (or the extra fd, the caller's to drain): drain the pipe
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
        return events

    def take(self) -> list[int]:
        """The pending event ids, without waiting."""
        return [activation.id.as_value for activation in self._listener.try_wait()]

    def wake(self) -> None:
        """Make a wait() return now; callable from any thread, and from finalizers."""
        if self._closed:
            return
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def close(self) -> None:
        self._closed = True
        for guard in self._guards:
            guard.delete()
        self._waitset.delete()
        self._listener.delete()
        self._service = None
        os.close(self._wake_r)
        os.close(self._wake_w)


class OutPort:
    """A producer's output port: its publisher and each consumer's credit state."""

    def __init__(self, chan: Channels, spec: OutputSpec, index: int, max_message_len: int) -> None:
        n = len(spec.consumers)
        if not 1 <= n <= MAX_CONSUMERS or len(spec.consumer_inboxes) != n:
            raise ChannelError(f"port {spec.port!r}: {n} consumers (1..{MAX_CONSUMERS}, one inbox each)")
        if not 1 <= spec.depth <= MAX_DEPTH:
            raise ChannelError(f"port {spec.port!r}: depth {spec.depth} is not in 1..{MAX_DEPTH}")
        if not 0 <= index < MAX_PORTS:
            raise ChannelError(f"port {spec.port!r}: more than {MAX_PORTS} outputs")
        self.spec, self.index, self.depth = spec, index, spec.depth
        self.max_message_len = max_message_len
        self._chan = chan
        with _limits(chan.name, "publish on", spec.service, publishers=1, subscribers=n, nodes=n + 1):
            self._service = _stream_service(
                chan.node, spec.service, spec.depth, n, create=True, safe_overflow=spec.safe_overflow
            )
            self.publisher = (
                self._service.publisher_builder()
                .initial_max_slice_len(max_message_len)
                .allocation_strategy(iox.AllocationStrategy.Static)  # sized up front: never grows
                # Never blocks: a send blocked in RetryUntilDelivered has no timeout, holds the GIL
                # and hangs if the consumer dies (docs/dataplane.md, "Blocked send has no timeout").
                .backpressure_strategy(iox.BackpressureStrategy.DiscardData)
                .max_loaned_samples(MAX_LOANS)
                .create()
            )
        self._loan = getattr(self.publisher, _RAW_LOAN, None) or self.publisher.loan_slice_uninit
        self._data_event = _EVENT_IDS[EVENT_DATA]
        self.hello = [False] * n
        self.sent = [0] * n
        self.released = [0] * n
        # Messages in flight that block a consumer: depth, or never for a lossy edge.
        self.limit = [_NEVER if lossy else spec.depth for lossy in spec.drop_oldest] or [spec.depth] * n
        if len(self.limit) != n:
            raise ChannelError(f"port {spec.port!r}: drop_oldest has {len(spec.drop_oldest)} entries for {n} consumers")
        self._notifiers: list[Any | None] = [None] * n
        self.readers = min(getattr(spec, "readers", 0), n)
        self.first_reader = n - self.readers  # consumers from here on are reader slots
        self.extra = 0  # deliveries beyond the counted consumers: to a reader joining now
        self.joining_since = 0.0  # a send reached a reader not counted yet: wait for its join

    def credit(self, consumer: int, released_mod: int) -> None:
        """Apply one credit event (see the module docstring)."""
        if not 0 <= consumer < len(self.sent):
            return
        if consumer >= self.first_reader and not self.hello[consumer]:
            return  # a reader slot nobody holds: a credit of one that left, stale
        if not self.hello[consumer] and self.sent[consumer] == 0:
            # The first word of a consumer that lived before this producer (a client that
            # attaches after an earlier one detached): its count goes on from there, so count
            # from it; only differences of sent and released matter.
            self.sent[consumer] = self.released[consumer] = released_mod
        self.hello[consumer] = True
        in_flight = self.sent[consumer] - self.released[consumer]
        advance = (released_mod - self.released[consumer]) % CREDIT_WINDOW
        if advance <= in_flight:  # otherwise stale: an older count than already applied
            self.released[consumer] += advance

    def join(self, slot: int, attached: bool) -> bool:
        """Reader slot ``slot`` joined (``attached``) or left: count it from now on, with
        what was delivered beyond the counted consumers as in flight to it, or no more.
        True if this port has that slot."""
        i = self.first_reader + slot
        if not self.first_reader <= i < len(self.sent):
            return False
        self.hello[i] = attached
        self.sent[i], self.released[i] = (self.extra, 0) if attached else (0, 0)
        if attached:
            self.extra, self.joining_since = 0, 0.0
        return True

    def blocking(self) -> list[int]:
        """The consumers that keep the next send from going out: no hello yet, or
        ``depth`` messages in flight (never, for a lossy edge's consumer); of reader slots,
        the attached ones that are full, or the first slot while none is attached."""
        if len(self.sent) == 1:  # the common case, without a comprehension per send
            return [] if self.hello[0] and self.sent[0] - self.released[0] < self.limit[0] else [0]
        blocked = [
            i for i, (hello, s, r, limit) in enumerate(zip(self.hello, self.sent, self.released, self.limit))
            if i < self.first_reader and (not hello or s - r >= limit)
        ]  # fmt: skip
        if self.readers:
            attached = [i for i in range(self.first_reader, len(self.sent)) if self.hello[i]]
            blocked += [i for i in attached if self.sent[i] - self.released[i] >= self.depth] or (
                [] if attached else [self.first_reader]
            )
            if self.joining_since and not blocked:
                # A reader subscribed and got a message before its join came: send no more
                # until it comes (or JOIN_WAIT passed), else what its full buffer discards
                # would leave a gap in the messages it reads.
                if time.monotonic() - self.joining_since < JOIN_WAIT:
                    blocked = [
                        next(
                            (i for i in range(self.first_reader, len(self.sent)) if not self.hello[i]),
                            self.first_reader,
                        )
                    ]
                else:
                    self.joining_since = 0.0
        return blocked

    def targets(self) -> list[int]:
        """The consumers a send counts: every node consumer and the attached readers."""
        return [i for i in range(len(self.sent)) if i < self.first_reader or self.hello[i]]

    def loan(self, length: int) -> Any:
        """A sample of ``length`` bytes (uninitialised)."""
        if length > self.max_message_len:
            raise ValueError(
                f"port {self.spec.port!r}: a {length}-byte message exceeds its max of {self.max_message_len} bytes"
            )
        return self._loan(length)

    def send(self, sample: Any) -> None:
        """Send a loaned, written sample to every consumer and notify their inboxes.
        The caller has checked ``blocking()`` is empty."""
        delivered = _assume_init(sample).send()
        if self.readers:
            self._send_fanned(delivered)
            return
        n = len(self.sent)
        if delivered < n:
            self.check_consumers()
            raise ConsumerGone(f"port {self.spec.port!r}: delivered to {delivered} of {n} consumers")
        sent, notifiers, event = self.sent, self._notifiers, self._data_event
        for i in range(n):
            sent[i] += 1
            notifier = notifiers[i]
            if notifier is None:
                notifier = self._notifier(i)
            if notifier is not None:
                notifier.notify_with_custom_event_id(event)

    def _send_fanned(self, delivered: int) -> None:
        """``send`` for a port with reader slots: count and notify the node consumers and
        the attached readers; deliveries beyond them went to a reader joining now."""
        targets = self.targets()
        if delivered < len(targets):
            self.check_consumers()  # resets readers that left; raises if a node consumer did
            targets = self.targets()
            if delivered < self.first_reader:
                raise ConsumerGone(f"port {self.spec.port!r}: delivered to {delivered} of {len(targets)} consumers")
        elif delivered > len(targets):
            self.extra += delivered - len(targets)
            self.joining_since = time.monotonic()
        for i in targets:
            self.sent[i] += 1
            notifier = self._notifiers[i] or self._notifier(i)
            if notifier is not None:
                notifier.notify_with_custom_event_id(self._data_event)

    def acknowledge(self, slot: int) -> None:
        """Tell reader slot ``slot`` that its join is applied (EVENT_CONNECT)."""
        notifier = self._notifier(self.first_reader + slot)
        if notifier is not None:
            notifier.notify_with_custom_event_id(_EVENT_IDS[EVENT_CONNECT])

    def check_readers(self) -> list[int]:
        """Reset the attached reader slots whose inbox has no listener (they left or
        died and were cleaned up); the slots reset."""
        gone = [
            i - self.first_reader
            for i in range(self.first_reader, len(self.sent))
            if self.hello[i] and not self._chan.listening(self.spec.consumer_inboxes[i])
        ]
        for slot in gone:
            self.join(slot, False)
        return gone

    def announce(self) -> None:
        """Tell consumers whose inbox already exists that this port is up (EVENT_CONNECT);
        the others will find the service when they start."""
        for i in range(len(self.sent)):
            notifier = self._notifier(i)
            if notifier is not None:
                notifier.notify_with_custom_event_id(_EVENT_IDS[EVENT_CONNECT])

    def _notifier(self, i: int) -> Any | None:
        notifier = self._notifiers[i]
        if notifier is None:
            notifier = self._notifiers[i] = self._chan.notifier(self.spec.consumer_inboxes[i], EVENT_CONNECT)
        return notifier

    def check_consumers(self) -> None:
        """Raise ConsumerGone if a node that opened this port's service died (its stale
        resources are removed first), or if a consumer that said hello unsubscribed."""
        dead = [state._0 for state in self._service.nodes if type(state).__name__ == "Dead"]
        for view in dead:
            with contextlib.suppress(Exception):
                view.try_remove_stale_resources()
        names = [view.details.name.as_str() if view.details is not None else "?" for view in dead]
        if self.readers:  # a reader that died or left frees its slot; only a node is fatal
            self.check_readers()
            names = [name for name in names if name != CLIENT_NODE]
        if names:
            raise ConsumerGone(f"port {self.spec.port!r}: consumer process died ({', '.join(names)})")
        subscribed = self._service.dynamic_config.number_of_subscribers
        expected = sum(self.hello[: self.first_reader])  # a reader may unsubscribe before it says so
        if subscribed < expected:
            raise ConsumerGone(f"port {self.spec.port!r}: {expected - subscribed} consumer(s) left")

    def close(self) -> None:
        self.publisher.delete()
        self._service = None


class InPort:
    """A consumer's input: its subscriber (once the producer's service exists) and the
    cumulative count of released messages it credits back."""

    def __init__(self, chan: Channels, spec: InputSpec, index: int) -> None:
        if not 1 <= spec.depth <= MAX_DEPTH:
            raise ChannelError(f"input {spec.source!r}: depth {spec.depth} is not in 1..{MAX_DEPTH}")
        if not (0 <= spec.port_index < MAX_PORTS and 0 <= spec.consumer_index < MAX_CONSUMERS):
            raise ChannelError(f"input {spec.source!r}: port/consumer index out of range")
        self.spec, self.index = spec, index
        self._chan = chan
        self._service: Any = None
        self.subscriber: Any = None
        self.released = 0
        self.credited = -1  # the count last delivered to the producer; -1: no hello yet
        self.lossy = spec.drop_oldest
        self.next_seq = 0  # a lossy edge: the seq expected next; a gap is messages dropped
        self.joined = False  # a reader slot: its join was delivered
        self._credit_base = credit_event_id(spec.port_index, spec.consumer_index, 0)
        self._notifier: Any | None = None  # to the producer's inbox, once it exists (Channels keeps it)

    @property
    def connected(self) -> bool:
        return self.credited >= 0

    def connect(self) -> bool:
        """Subscribe (if the producer's service exists) and say hello; True once done."""
        if self.subscriber is None:
            try:
                with _limits(self._chan.name, "subscribe to", self.spec.service):
                    self._service = _stream_service(
                        self._chan.node, self.spec.service, self.spec.depth, self.spec.consumer_index + 1,
                        create=False, safe_overflow=self.spec.safe_overflow,
                    )  # fmt: skip
            except iox.PublishSubscribeOpenError as e:
                if _is(e, "DoesNotExist"):
                    return False
                raise ChannelError(f"input {self.spec.source!r}: cannot open {self.spec.service!r}: {e}") from e
            with _limits(self._chan.name, "subscribe to", self.spec.service):
                self.subscriber = self._service.subscriber_builder().buffer_size(self.spec.depth).create()
        if self.spec.reader_slot >= 0 and not self.joined:  # a reader joins (module docstring)
            if not self.say_reader():
                return False
            self.joined = True
        return self.credit()

    def say_reader(self) -> bool:
        """A reader slot's join (after subscribing) or leave (after closing): True if the
        producer's inbox got it."""
        event_id = EVENT_READER + self.spec.reader_slot
        notifier = self._notifier
        if notifier is None:
            notifier = self._notifier = self._chan.notifier(self.spec.producer_inbox, event_id)
        return notifier is not None and notifier.notify_with_custom_event_id(_EVENT_IDS[event_id]) > 0

    def receive(self) -> Any | None:
        if self.subscriber is None:
            return None
        if not self.lossy:
            return self.subscriber.receive()
        try:  # a lossy edge's producer does not wait: the node may hold `depth` already
            return self.subscriber.receive()
        except iox.ReceiveError as e:
            if "ExceedsMaxBorrows" in f"{e} {e.args}":
                return None  # the oldest buffered ones are overwritten meanwhile: counted as dropped
            raise

    def credit(self) -> bool:
        """Tell the producer the current released count; True if it was delivered."""
        event_id = self._credit_base + self.released % CREDIT_WINDOW  # credit_event_id, per release
        notifier = self._notifier
        if notifier is None:
            notifier = self._notifier = self._chan.notifier(self.spec.producer_inbox, event_id)
        if notifier is None or notifier.notify_with_custom_event_id(_EVENT_IDS[event_id]) < 1:
            return False
        self.credited = self.released
        return True

    def close(self) -> None:
        """Unsubscribe (a reader says it left once its inbox is closed too: ``leave``)."""
        if self.subscriber is not None:
            self.subscriber.delete()
            self.subscriber = None
        self._service = None

    def leave(self) -> None:
        if self.joined:
            with contextlib.suppress(Exception):
                self.say_reader()
        self._notifier = None  # Channels.close deletes it
