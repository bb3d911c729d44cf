"""Attach to a running session's external inputs and outputs from any local process.

    from noded.dataplane.session import attach

    with attach(sid) as session:                 # asks noded for this client's channels
        session.send("audio", chunk, kind=Kind.AUDIO, sample_rate=16000, channels=1)
        session.end("audio")                     # END_OF_STREAM: no more on this input
        for msg in session.messages():           # external outputs, until each has ended
            print(msg.source, msg.array)

The pipeline declares the ports: top-level ``inputs = [...]`` (this client produces
them) and ``outputs = ["node.port", ...]`` (this client consumes them). Sending blocks
while a consumer's buffer is full, exactly as between nodes; receiving hands out
read-only views of shared memory (``Message``), valid while the message is referenced.
Only root can attach: the nodes run as the session's sandboxed user, and each call into
the data plane runs as that user (``noded.dataplane.sessionuser``); members of the ``noded``
group may ask for the channels but cannot open them.

Several clients may be attached to one session at once:

- **feeding**: one client at a time per external input. A client takes an input on its
  first send (its own endpoint, whose inbox ``input/<name>/inbox`` has one listener);
  another client feeding the same input meanwhile gets an ``AttachError`` naming the
  first one's PID. Two clients may feed two inputs at once. Once an input has had its
  END_OF_STREAM, feeding it again fails at once with ``InputEnded``.
- **reading**: up to ``[dataplane] max_clients`` clients read the external outputs at
  once, each in its own *reader slot*, taken on the first receive. Every attached reader
  gets every message sent while it is attached (fan-out); a producer waits while no
  reader is attached, so the first reader misses nothing. A reader that detaches, or
  dies, frees its slot and its credits at once (``noded.dataplane.channels``).

Send from one thread and receive in another (as ``nodectl run`` does): a single thread
that sends more than the pipeline can buffer before it reads waits on itself, because
the outputs it does not read hold the pipeline's credits.

The channels come from the daemon's ``attach`` request, through the one control-socket
client (``noded.contract.client``). ``noded.connect()`` (``noded.api``) wraps all this in
a session handle.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from noded.contract.client import Client
from noded.contract.flush import Flush, encode_flush
from noded.contract.paths import CLIENT, DEFAULT_SOCKET
from noded.contract.spec import DataPlane, client_pid_file, feeder_plane, feeder_stats, reader_plane, reader_stats
from noded.contract.stats import stats_path
from noded.contract.wire import Flags, Kind
from noded.dataplane.channels import Channels, InboxTaken
from noded.dataplane.endpoint import Endpoint
from noded.dataplane.message import Message
from noded.dataplane.sessionuser import SessionUser, as_session_user
from noded.errors import AttachError, InputEnded, Stopped

__all__ = ["AttachError", "InputEnded", "SessionIO", "attach", "request_attach"]

log = logging.getLogger("noded.dataplane")

JOIN_ACK_TIMEOUT = 2.0  # s a joining reader waits for its producers' ack, holding the join lock
STALL_REPORT = 5.0  # s a send may wait for credit before it says what it waits for


_JOIN_LOCK = "readers.lock"  # in the session's iceoryx2 root: one reader joins at a time


def _pid_file(root: str, role: str) -> Path:
    return Path(client_pid_file(root, role))


def _ended_file(root: str, port: str) -> Path:
    return Path(root) / f"input.{port}.ended"


def request_attach(sid: str, socket_path: Path | str = DEFAULT_SOCKET, timeout: float = 10.0) -> DataPlane:
    """Ask noded for the client side of session ``sid``'s data plane (DaemonUnavailable,
    or the daemon's RemoteError, if it does not give it)."""
    with Client(socket_path, timeout=timeout) as client:
        return client.attach(sid)


class SessionIO:
    """A client of a session: feeds external inputs, reads external outputs."""

    def __init__(
        self,
        plane: DataPlane,
        *,
        readers: int | None = None,
        send_timeout: float | None = None,
        on_stall: Callable[[str], None] | None = None,
    ) -> None:
        """``readers``: how many reader slots to try (default: the session's, the pipeline's
        ``[dataplane] max_clients``); ``send_timeout``: sends
        wait at most this long for credit (None: as long as needed); ``on_stall``: called
        with what a send waits for once it has waited ``STALL_REPORT`` seconds (default:
        a warning in the log)."""
        self.plane = plane
        self.sid = Path(plane.root).name
        self.inputs = [o.port for o in plane.outputs]  # what the client produces
        self.outputs = [i.source for i in plane.inputs]  # what it consumes
        self.readers = readers
        self.send_timeout = send_timeout
        self.on_stall = on_stall
        self.stall_after: float | None = STALL_REPORT  # for endpoints made from now on
        # Sandboxed nodes run as the session's user: iceoryx2 calls run as that user
        # too, so that the nodes can open what they create (noded.dataplane.sessionuser).
        self.session_user = SessionUser.of_root(plane.root)
        self._lock = threading.Lock()
        self._feeders: dict[str, Endpoint] = {}
        self._reader: Endpoint | None = None
        self.reader_slot: int | None = None
        self._stopped = False
        self._closed = False
        self._ended: set[str] = set()
        self._flushes = 0
        self._cleanup_dead()

    # -- places ---------------------------------------------------------------------

    @as_session_user
    def _cleanup_dead(self) -> None:
        """A client killed with SIGKILL keeps its inbox listeners (and so its places) and
        its publisher until someone cleans its iceoryx2 node up: do it before taking one."""
        chan = Channels(CLIENT, self.plane.root, self.plane.prefix)
        try:
            dead = chan.cleanup_dead()
        finally:
            chan.close()
        for role, stats in self._roles():  # what a killed client left: its PID file, its counters
            if not _holder(_pid_file(self.plane.root, role)):
                with contextlib.suppress(OSError):
                    _pid_file(self.plane.root, role).unlink()
                with contextlib.suppress(OSError):
                    stats_path(self.plane.root, stats).unlink()
        if dead:
            log.info("session %s: removed the ports of %d dead iceoryx2 node(s): %s", self.sid, len(dead), dead)

    def _roles(self) -> list[tuple[str, str]]:
        """Every client role of the session: (its PID file's role, its stats block's name)."""
        roles = [(f"feed.{port}", feeder_stats(port)) for port in self.inputs]
        return roles + [(f"read.{k}", reader_stats(k)) for k in range(self.plane.readers if self.outputs else 0)]

    def _endpoint(self, plane: DataPlane, stats: str) -> Endpoint:
        # Its counters go where the daemon shows them when this process may write there.
        counters = stats_path(plane.root, stats) if os.access(plane.root, os.W_OK) else None
        endpoint = Endpoint(plane, CLIENT, send_timeout=self.send_timeout, stats_path=counters)
        endpoint.on_stall, endpoint.stall_after = self._stalled, self.stall_after
        return endpoint

    def _stalled(self, what: str) -> None:
        if self.on_stall is not None:
            self.on_stall(what)
        else:
            log.warning("session %s: %s", self.sid, what)

    @as_session_user
    def feeder(self, port: str) -> Endpoint:
        """The endpoint feeding external input ``port``, taken on first use."""
        with self._lock:
            endpoint = self._feeders.get(port)
            if endpoint is not None:
                return endpoint
            self._check_open()
            if port not in self.inputs:
                raise AttachError(
                    f"the session has no external input {port!r}",
                    hint=f"its inputs: {', '.join(self.inputs) or 'none'}",
                )
            if _ended_file(self.plane.root, port).exists():
                raise InputEnded(
                    f"input {port!r} of session {self.sid} has ended: it had its END_OF_STREAM",
                    hint="an input takes no more data after its end; create a new session to feed it again",
                )
            spec = self.plane.outputs[self.inputs.index(port)]
            made: Endpoint | None = None
            try:
                made = self._endpoint(feeder_plane(self.plane, spec), feeder_stats(port))
            except InboxTaken:
                pass  # raised outside this block: its traceback would hold the half-made node
            if made is None:
                raise AttachError(
                    f"input {port!r} of session {self.sid} is fed by another client"
                    f"{_holder(_pid_file(self.plane.root, f'feed.{port}'))}: one client at a time feeds an input",
                    hint="wait until that client has detached (or stop it), then feed again",
                )
            self._feeders[port] = made
            _mark(_pid_file(self.plane.root, f"feed.{port}"))
            return made

    @as_session_user
    def reader(self) -> Endpoint:
        """This client's reader slot of the external outputs, taken on first use: from
        then on it gets every message the outputs send."""
        with self._lock:
            if self._reader is not None:
                return self._reader
            self._check_open()
            if not self.outputs:
                raise AttachError(f"session {self.sid} has no external outputs to read")
            with _join_lock(self.plane.root):
                slots = min(self.readers or self.plane.readers, self.plane.readers) or 1
                holders = []
                for slot in range(slots):
                    try:
                        endpoint = self._endpoint(reader_plane(self.plane, slot), reader_stats(slot))
                    except InboxTaken:
                        holders.append(_holder(_pid_file(self.plane.root, f"read.{slot}")).strip(" ()") or "?")
                        continue
                    self._reader, self.reader_slot = endpoint, slot
                    _mark(_pid_file(self.plane.root, f"read.{slot}"))
                    self._await_join(endpoint)
                    return endpoint
            raise AttachError(
                f"session {self.sid}: all {len(holders)} reader slots of its outputs are taken "
                f"({', '.join(holders)}): [dataplane] max_clients = {len(holders)}",
                hint="wait until a reader detaches, or raise [dataplane] max_clients in the pipeline",
            )

    def _await_join(self, endpoint: Endpoint) -> None:
        """Hold the join lock until the producers applied this reader's join (their
        EVENT_CONNECT), so that two readers never join one producer at the same moment."""
        deadline = time.monotonic() + JOIN_ACK_TIMEOUT
        while not (endpoint.connected and endpoint.announced) and time.monotonic() < deadline:
            endpoint.wait(0.05)

    def _check_open(self) -> None:
        if self._closed:
            raise AttachError("this client has detached")
        if self._stopped:
            raise Stopped()

    # -- data ------------------------------------------------------------------------

    def loan(self, port: str, shape: Any, dtype: Any, kind: Kind | int | None = None, **fields: Any) -> Any:
        """A writable array in shared memory to fill and pass to ``send`` (no copy)."""
        return self._loan(self.feeder(port), port, shape, dtype, kind, fields)

    @as_session_user
    def _loan(self, endpoint: Endpoint, port: str, shape: Any, dtype: Any, kind: Any, fields: dict[str, Any]) -> Any:
        return endpoint.loan(port, shape, dtype, kind, **fields)

    def send(self, port: str, value: Any, *, kind: Kind | int | None = None, **fields: Any) -> None:
        endpoint = self.feeder(port)
        self._send(endpoint, port, value, kind, fields)

    @as_session_user
    def _send(self, endpoint: Endpoint, port: str, value: Any, kind: Kind | int | None, fields: dict[str, Any]) -> None:
        endpoint.send(port, value, kind=kind, timeout=self.send_timeout, **fields)
        if kind == Kind.CONTROL and Flags(fields.get("flags", 0)) & Flags.END_OF_STREAM:
            with contextlib.suppress(OSError):  # the next feeder is told at once
                _ended_file(self.plane.root, port).touch()

    def end(self, port: str) -> None:
        """Tell the consumers of ``port`` that nothing more will come on it."""
        self.send(port, b"", kind=Kind.CONTROL, flags=Flags.END_OF_STREAM)

    def interrupt(self, port: str, reason: str = "client") -> None:
        """Raise a flush on ``port`` (noded.contract.flush): downstream drops what it holds."""
        self._flushes += 1
        flush = Flush(origin=CLIENT, id=self._flushes, reason=reason)
        self.send(port, encode_flush(flush), kind=Kind.CONTROL, flags=Flags.FLUSH, timestamp_ns=time.monotonic_ns())

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message of an external output, or None after ``timeout`` seconds."""
        return self._receive(self.reader(), timeout)

    @as_session_user
    def _receive(self, endpoint: Endpoint, timeout: float | None) -> Message | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            msg = endpoint.receive()
            if msg is not None:
                if msg.end_of_stream:
                    self._ended.add(msg.source)
                return msg
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            if self._stopped:
                raise Stopped()
            endpoint.wait(left)

    def messages(self, timeout: float | None = None) -> Iterator[Message]:
        """Messages of the external outputs until every one has sent END_OF_STREAM, or
        until none came for ``timeout`` seconds. A bare end marker (a CONTROL message
        with the flag) is not yielded; a data message carrying the flag is, and so is a
        flush (``msg.flush``: an interruption, noded.contract.flush)."""
        while not self.all_ended:
            msg = self.receive(timeout)
            if msg is None:
                return
            if not (msg.end_of_stream and msg.kind is Kind.CONTROL):
                yield msg

    @property
    def all_ended(self) -> bool:
        return set(self.outputs) <= self._ended

    def endpoints(self) -> list[Endpoint]:
        with self._lock:
            return [*self._feeders.values(), *([self._reader] if self._reader is not None else [])]

    def stop(self) -> None:
        """Make blocked and later sends and receives raise Stopped; from any thread."""
        self._stopped = True
        for endpoint in self.endpoints():
            endpoint.stop()

    @as_session_user
    def close(self) -> None:
        """Detach: every place this client holds is free again at once."""
        with self._lock:
            self._closed = True
            roles = [(f"feed.{port}", ep) for port, ep in self._feeders.items()]
            if self._reader is not None:
                roles.append((f"read.{self.reader_slot}", self._reader))
            self._feeders, self._reader = {}, None
        for role, endpoint in roles:
            endpoint.close()
            _unmark(_pid_file(self.plane.root, role))

    def __enter__(self) -> SessionIO:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mark(path: Path) -> None:
    """Say who holds a place (for the error another client gets)."""
    with contextlib.suppress(OSError):  # the root not writable to this process: the error names no PID
        path.write_text(f"{os.getpid()}\n")


def _unmark(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()


def _holder(path: Path) -> str:
    """ " (PID n)" of the client holding a place, when it left its PID file and still runs."""
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return ""
    return f" (PID {pid})"


@contextlib.contextmanager
def _join_lock(root: str, timeout: float = 10.0) -> Iterator[None]:
    """One reader joins at a time (see ``SessionIO._await_join``); released on close,
    also when the process dies."""
    try:
        fd = os.open(Path(root) / _JOIN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        yield  # not ours to lock: join unserialised
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AttachError("another client has been joining the session's outputs for 10 s") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


def attach(sid: str, socket_path: Path | str = DEFAULT_SOCKET) -> SessionIO:
    return SessionIO(request_attach(sid, socket_path))
