"""Helpers to test nodes and workers without systemd.

* ``FakeContext`` / ``run_setup``: call a node's ``setup`` in plain pytest and look at the
  progress it reported.
* ``NotifyListener``: a stand-in for systemd's notify socket; start
  ``python -m noded.worker`` with ``NOTIFY_SOCKET`` set to its ``path`` and read what the
  worker tells systemd.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from noded.node import Context, Node

N = TypeVar("N", bound=Node)


class FakeContext(Context):
    """A Context that records progress reports in ``progress_reports`` and what the node
    sends in ``sent`` (``(port, value, kind, fields)`` tuples; ``loan`` returns a plain
    zeroed numpy array).

    ``ready`` is never set by it: call ``ctx.ready.set()`` to play READY=1. ``interrupt()``
    plays a flush waiting in the inbox: ``interrupted()`` says True from then on (until
    ``interrupt(False)``); ``interrupt(after=n)`` makes it say so from its n+1-th call on.
    """

    def __init__(
        self, *, params: Mapping[str, Any] | None = None, node_id: str = "test", session: str = "test"
    ) -> None:
        super().__init__(session=session, node_id=node_id, params=dict(params or {}))
        self.progress_reports: list[tuple[float | None, str]] = []
        self.sent: list[tuple[str, Any, int | None, dict[str, Any]]] = []
        self.interrupted_calls = 0
        self._interrupt_after: int | None = None

    def interrupt(self, on: bool = True, *, after: int = 0) -> None:
        self._interrupt_after = self.interrupted_calls + after if on else None

    def _interrupted(self) -> bool:
        self.interrupted_calls += 1
        return self._interrupt_after is not None and self.interrupted_calls > self._interrupt_after

    def _report(self, fraction: float | None, text: str) -> None:
        self.progress_reports.append((fraction, text))

    def _loan(self, port: str, shape: Any, dtype: Any, kind: int | None, fields: dict[str, Any]) -> Any:
        import numpy as np

        return np.zeros(shape, dtype)

    def _send(self, port: str, value: Any, kind: int | None, fields: dict[str, Any]) -> None:
        self.sent.append((port, value, kind, fields))


def run_setup(cls: type[N], params: Mapping[str, Any] | None = None, *, node_id: str = "test") -> tuple[N, FakeContext]:
    """Construct ``cls`` as the worker does, run its setup with a FakeContext; return both."""
    node = cls(node_id=node_id, params=params)
    ctx = FakeContext(params=node.params, node_id=node_id)
    node.setup(ctx)
    return node, ctx


class NotifyListener:
    """A bound AF_UNIX datagram socket that collects sd_notify messages, like systemd's.

    Each message is a dict of its ``KEY=value`` lines (``{"READY": "1", "STATUS": "ready"}``).
    """

    def __init__(self, path: str) -> None:
        if len(path.encode()) >= 108:
            raise ValueError(f"socket path too long for AF_UNIX ({len(path)} bytes): {path}")
        self.path = path
        self.messages: list[dict[str, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(path)

    def receive(self, timeout: float) -> dict[str, str] | None:
        """The next message, or None after ``timeout`` seconds without one."""
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(65536)
        except (TimeoutError, BlockingIOError):  # BlockingIOError: timeout 0
            return None
        message = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        self.messages.append(message)
        return message

    def wait_for(self, predicate: Callable[[dict[str, str]], bool], timeout: float) -> dict[str, str]:
        """Receive until a message satisfies ``predicate``; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and predicate(message):
                return message
        raise TimeoutError(f"no matching notify message in {timeout} s; got {self.messages}")

    def drain(self) -> list[dict[str, str]]:
        """Everything received so far, after reading what is still queued."""
        while self.receive(0.0) is not None:
            pass
        return self.messages

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
