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

Send from one thread and receive in another (as ``nodectl run`` does): a single thread
that sends more than the pipeline can buffer before it reads waits on itself, because
the outputs it does not read hold the pipeline's credits.

The channels come from the daemon's ``attach`` request, through the one control-socket
client (``noded.contract.client``). ``noded.connect()`` (``noded.api``) wraps all this in
a session handle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from noded.contract.client import Client
from noded.contract.flush import Flush, encode_flush
from noded.contract.paths import CLIENT, DEFAULT_SOCKET
from noded.contract.spec import DataPlane
from noded.contract.stats import stats_path
from noded.contract.wire import Flags, Kind
from noded.dataplane.channels import InboxTaken
from noded.dataplane.endpoint import Endpoint
from noded.dataplane.message import Message
from noded.dataplane.sessionuser import SessionUser, as_session_user
from noded.errors import WorkerError


class AttachError(WorkerError):
    """The session has no such external port, or another client is attached."""


CLIENT_PID_FILE = "client.pid"  # in the session's iceoryx2 root: who is attached now


def request_attach(sid: str, socket_path: Path | str = DEFAULT_SOCKET, timeout: float = 10.0) -> DataPlane:
    """Ask noded for the client side of session ``sid``'s data plane (DaemonUnavailable,
    or the daemon's RemoteError, if it does not give it)."""
    with Client(socket_path, timeout=timeout) as client:
        return client.attach(sid)


class SessionIO:
    """The client's endpoint of a session: send on external inputs, receive external outputs."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.inputs = [o.port for o in plane.outputs]  # what the client produces
        self.outputs = [i.source for i in plane.inputs]  # what it consumes
        # Sandboxed nodes run as the session's user: iceoryx2 calls run as that user
        # too, so that the nodes can open what they create (noded.dataplane.sessionuser).
        self.session_user = SessionUser.of_root(plane.root)
        try:
            self.endpoint = self._endpoint(plane)
            taken = False
        except InboxTaken:
            taken = True  # raised below, outside this block: its traceback would hold the
            # half-made endpoint's iceoryx2 node, and with it a place on every service
        if taken:
            raise AttachError(
                f"another client is attached to session {Path(plane.root).name}{_holder(plane.root)}: "
                "a session has one client at a time",
                hint="wait until that client has detached (or stop it), then attach again",
            )
        self._pid_file = Path(plane.root) / CLIENT_PID_FILE
        self._mark_attached()
        self._ended: set[str] = set()
        self._flushes = 0

    @as_session_user
    def _mark_attached(self) -> None:
        try:
            self._pid_file.write_text(f"{os.getpid()}\n")
        except OSError:  # the root not writable to this process: the error names no PID
            pass

    @as_session_user
    def _endpoint(self, plane: DataPlane) -> Endpoint:
        # Its counters go where the daemon shows them when this process may write there.
        counters = stats_path(plane.root, CLIENT) if os.access(plane.root, os.W_OK) else None
        return Endpoint(plane, CLIENT, stats_path=counters)

    @as_session_user
    def loan(self, port: str, shape: Any, dtype: Any, kind: Kind | int | None = None, **fields: Any) -> Any:
        """A writable array in shared memory to fill and pass to ``send`` (no copy)."""
        return self.endpoint.loan(port, shape, dtype, kind, **fields)

    def send(self, port: str, value: Any, *, kind: Kind | int | None = None, **fields: Any) -> None:
        if port not in self.inputs:
            raise AttachError(
                f"the session has no external input {port!r}", hint=f"its inputs: {', '.join(self.inputs) or 'none'}"
            )
        self._send(port, value, kind, fields)

    @as_session_user
    def _send(self, port: str, value: Any, kind: Kind | int | None, fields: dict[str, Any]) -> None:
        self.endpoint.send(port, value, kind=kind, **fields)

    def end(self, port: str) -> None:
        """Tell the consumers of ``port`` that nothing more will come on it."""
        self.send(port, b"", kind=Kind.CONTROL, flags=Flags.END_OF_STREAM)

    def interrupt(self, port: str, reason: str = "client") -> None:
        """Raise a flush on ``port`` (noded.contract.flush): downstream drops what it holds."""
        self._flushes += 1
        flush = Flush(origin=CLIENT, id=self._flushes, reason=reason)
        self.send(port, encode_flush(flush), kind=Kind.CONTROL, flags=Flags.FLUSH, timestamp_ns=time.monotonic_ns())

    @as_session_user
    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message of an external output, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            msg = self.endpoint.receive()
            if msg is not None:
                if msg.end_of_stream:
                    self._ended.add(msg.source)
                return msg
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self.endpoint.wait(left)

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

    @as_session_user
    def close(self) -> None:
        self.endpoint.close()
        try:
            if self._pid_file.read_text().strip() == str(os.getpid()):
                self._pid_file.unlink()
        except OSError:
            pass

    def __enter__(self) -> SessionIO:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _holder(root: str) -> str:
    """ " (PID n)" of the attached client, when it left its PID file and still runs."""
    try:
        pid = int((Path(root) / CLIENT_PID_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return ""
    return f" (PID {pid})"


def attach(sid: str, socket_path: Path | str = DEFAULT_SOCKET) -> SessionIO:
    return SessionIO(request_attach(sid, socket_path))
