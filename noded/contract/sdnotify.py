"""sd_notify(3) without a library: one datagram of ``KEY=VALUE`` lines on $NOTIFY_SOCKET.

The protocol is documented by systemd (sd_notify(3), "Notes"): a path or an abstract
socket name (leading ``@``) of an AF_UNIX SOCK_DGRAM socket; each message is one
datagram of newline-separated assignments, UTF-8. Both the daemon and the workers send
through ``NotifySocket``; it replaces the `sdnotify` package (unreleased since 2017,
whose Latin-1 encoding and bare ``except:`` needed workarounds here).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = ["NotifySocket", "monotonic_usec", "watchdog_interval"]


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in µs, for ``MONOTONIC_USEC=`` next to ``RELOADING=1``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: a quarter of systemd's WATCHDOG_USEC, or None when
    no watchdog is set for this process (sd_watchdog_enabled(3)). A quarter, not the half
    systemd suggests: a process on a loaded machine may be scheduled late."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0 or env.get("WATCHDOG_PID", str(pid)) != str(pid):
        return None
    return usec / 4 / 1_000_000


def _address(name: str) -> str | bytes:
    if name.startswith("@"):  # abstract namespace
        return b"\0" + name[1:].encode()
    return name


class NotifySocket:
    """A datagram socket to ``address`` (default: $NOTIFY_SOCKET when created).

    Without an address ``send`` does nothing (not under systemd). Raises OSError from
    ``send`` when the socket cannot take the message; the caller decides how loud to be.
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else (os.environ.get("NOTIFY_SOCKET") or None)
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *assignments: str) -> None:
        if self._sock is None or self.address is None:
            return
        self._sock.sendto("\n".join(assignments).encode("utf-8"), _address(self.address))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
