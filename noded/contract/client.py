"""The client of the control socket: the one nodectl, ``noded.connect()``, a session's
data-plane attach (``noded.dataplane.session``) and the tests use.

    with Client(configured_socket()) as c:
        info = c.show("3f2a9c1d")            # typed: a SessionInfo
        c.call(Stop(sid=info.sid, wait=True))  # any request of noded.contract.protocol

Synchronous, one request at a time. After a ``watch`` (or a ``create`` with ``watch``)
the daemon also sends session events on the connection: ``events()`` yields them, and
those that arrive while waiting for a reply are kept for it.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from noded.contract.paths import DEFAULT_SOCKET
from noded.contract.protocol import (
    Attach,
    Create,
    Event,
    List,
    Reply,
    Request,
    SessionInfo,
    Show,
    Status,
    Stop,
    Watch,
    decode_message,
    encode,
    request,
)
from noded.contract.spec import DataPlane
from noded.errors import DaemonUnavailable, NodedError

__all__ = ["DEFAULT_SOCKET", "Client", "DaemonTimeout", "RemoteError", "session_info"]


class RemoteError(NodedError):
    """An error the daemon replied with; ``code`` is the daemon's."""

    def __init__(self, code: str, message: str, hint: str | None) -> None:
        super().__init__(message, hint=hint)
        self.code = code  # type: ignore[misc]


class DaemonTimeout(NodedError):
    """Nothing came from noded within the connection's timeout (the connection is then unusable)."""


class Client:
    def __init__(self, path: Path | str = DEFAULT_SOCKET, timeout: float | None = 30.0) -> None:
        self.path = Path(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self._sock.close()
            raise DaemonUnavailable(
                f"noded is not running (nothing listens on {self.path})",
                hint="start it with 'systemctl start noded'",
            ) from exc
        except PermissionError as exc:
            self._sock.close()
            raise DaemonUnavailable(
                f"permission denied on {self.path}",
                hint="run as root, or as a member of the 'noded' group",
            ) from exc
        self._file = self._sock.makefile("rb")
        self._next_id = 0
        self._events: deque[SessionInfo] = deque()

    def close(self) -> None:
        """Hang up; a thread blocked reading this connection's events returns (it gets
        DaemonUnavailable) instead of holding the reader while it is closed."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected (any more)
        self._file.close()
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def _read(self) -> Reply | Event:
        try:
            line = self._file.readline()
        except TimeoutError as exc:
            raise DaemonTimeout("noded did not answer in time", hint="see 'journalctl -u noded'") from exc
        if not line:
            raise DaemonUnavailable("noded closed the connection", hint="see 'journalctl -u noded'")
        try:
            return decode_message(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NodedError(f"unexpected message from noded: {exc}") from exc

    def call(self, req: Request) -> Any:
        """Send ``req`` (its ``id`` is set here) and return the daemon's result; RemoteError
        if the daemon refused it."""
        self._next_id += 1
        req.id = self._next_id
        self._sock.sendall(encode(req))
        while True:
            msg = self._read()
            if isinstance(msg, Event):
                self._events.append(msg.session)
                continue
            if msg.id != self._next_id:
                continue
            if not msg.ok:
                err = msg.error
                assert err is not None
                raise RemoteError(err.code, err.message, err.hint)
            return msg.result

    def request(self, op: str, **fields: Any) -> Any:
        """``call`` by the operation's name: ``request("show", sid=sid)``."""
        return self.call(request(op, **fields))

    # -- typed operations ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self.call(Status())

    def create(self, text: str, filename: str, watch: bool = False, directory: str | None = None) -> SessionInfo:
        return session_info(self.call(Create(text=text, filename=filename, watch=watch, directory=directory)))

    def sessions(self) -> list[SessionInfo]:
        """Every session (``list``): live, and recently ended."""
        return [session_info(d) for d in self.call(List())]

    def show(self, sid: str) -> SessionInfo:
        return session_info(self.call(Show(sid=sid)))

    def stop(self, sid: str, wait: bool = False) -> SessionInfo:
        return session_info(self.call(Stop(sid=sid, wait=wait)))

    def watch(self, sid: str | None = None, stats: bool | float | None = None) -> list[SessionInfo]:
        """Follow session ``sid`` (None: every session): its state now (a list of one, or
        of every session); ``events()`` then yields the changes."""
        result = self.call(Watch(sid=sid, stats=stats))
        return [session_info(d) for d in (result if isinstance(result, list) else [result])]

    def attach(self, sid: str) -> DataPlane:
        """The client's side of session ``sid``'s data plane."""
        return msgspec.convert(self.call(Attach(sid=sid))["dataplane"], DataPlane)

    def events(self) -> Iterator[SessionInfo]:
        """Session events of the watched sessions, as they come."""
        while True:
            while self._events:
                yield self._events.popleft()
            msg = self._read()
            if isinstance(msg, Event):
                yield msg.session


def session_info(data: Any) -> SessionInfo:
    return msgspec.convert(data, SessionInfo)
