"""A small synchronous client of the control socket (used by nodectl and tests)."""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from noded.contract.protocol import Event, Reply, Request, SessionInfo, decode_message, encode
from noded.errors import DaemonUnavailable, NodedError

DEFAULT_SOCKET = Path("/run/noded/control.sock")


class RemoteError(NodedError):
    """An error the daemon replied with; ``code`` is the daemon's."""

    def __init__(self, code: str, message: str, hint: str | None) -> None:
        super().__init__(message, hint=hint)
        self.code = code  # type: ignore[misc]


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
            raise NodedError("noded did not answer in time", hint="see 'journalctl -u noded'") from exc
        if not line:
            raise DaemonUnavailable("noded closed the connection", hint="see 'journalctl -u noded'")
        try:
            return decode_message(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NodedError(f"unexpected message from noded: {exc}") from exc

    def request(self, op: str, **args: Any) -> Any:
        self._next_id += 1
        self._sock.sendall(encode(Request(op=op, id=self._next_id, args=args)))
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
