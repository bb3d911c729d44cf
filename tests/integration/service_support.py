"""Run noded.service with other settings for one test: a drop-in in the private /run.

The drop-in (and any file it names) lives under /run, which is the sandbox's own; it is
removed afterwards and noded restarted with its usual settings, even when the test fails.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import systemctl

DROPIN = Path("/run/systemd/system/noded.service.d/zz-test.conf")


def _restart() -> None:
    systemctl("daemon-reload", check=True)
    systemctl("reset-failed", "noded.service")
    systemctl("restart", "noded.service")


@contextmanager
def noded_with(env: dict[str, str], expect_active: bool = True) -> Iterator[None]:
    """noded.service restarted with these environment variables; back to normal afterwards."""
    DROPIN.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f'Environment="{k}={v}"\n' for k, v in env.items())
    DROPIN.write_text(f"[Service]\n{lines}")
    try:
        _restart()
        if expect_active:
            wait_active()
        yield
    finally:
        DROPIN.unlink(missing_ok=True)
        _restart()
        wait_active()


def wait_active(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while systemctl("is-active", "noded.service").stdout.strip() != "active":
        if time.monotonic() > deadline:
            raise AssertionError(
                "noded.service did not become active: " + systemctl("status", "--no-pager", "noded.service").stdout
            )
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
