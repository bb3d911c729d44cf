"""Shared by the load, crash, soak, restart and exhaustion tests (SC-001, SC-005, SC-006):
what a session may leave behind, and the knobs that make the CI runs longer.

Counts come from NODED_* variables (tests/sandbox passes those in), so that the full
runs are the same tests with bigger numbers:

    NODED_SC001_SESSIONS=100   sessions in SC-001
    NODED_SC005_SCENARIOS=100  crash scenarios in SC-005; NODED_SC005_SEED=N replays a run
    NODED_SOAK_CYCLES=200      soak cycles; NODED_SOAK_HOURS=8 runs for that long instead
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from noded.dataplane.session import attach

from .conftest import noded_units, worker_pids

RUNTIME = Path("/run/noded")
SHM = Path("/dev/shm")
DEADLINE = 30  # s: a hang guard for single steps
CGROUPS = Path("/sys/fs/cgroup")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


@contextlib.contextmanager
def cpu_hogs(count: int | None = None) -> Iterator[list[int]]:
    """Busy loops, one per core plus one (NODED_TEST_HOGS overrides), for the duration:
    the machine as loaded as a shared CI runner. Each is stopped by its PID."""
    n = count if count is not None else env_int("NODED_TEST_HOGS", (os.cpu_count() or 1) + 1)
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            p.wait()


def session_leftovers(sid: str) -> list[str]:
    """Everything of session ``sid`` that should be gone once it has ended: units
    (services and slice), worker processes, its iceoryx2 root and /dev/shm segments."""
    left = [f"unit {u}" for u in noded_units(f"noded-{sid}*")]
    left += [f"worker pid {p}" for p in session_pids(sid)]
    root = RUNTIME / "iox2" / sid
    if root.exists():
        left.append(f"iceoryx2 root {root}")
    left += [f"shm {p}" for p in SHM.glob(f"noded_{sid}_*")]
    return left


def session_pids(sid: str) -> list[int]:
    """Worker processes whose spec names session ``sid``."""
    found = []
    for pid in worker_pids():
        try:
            if f'"{sid}"'.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


def all_leftovers() -> list[str]:
    """Anything of any session: units, worker processes, iceoryx2 roots, shm segments,
    cgroups."""
    left = [f"unit {u}" for u in noded_units()]
    left += [f"worker pid {p}" for p in worker_pids()]
    base = RUNTIME / "iox2"
    if base.exists():
        left += [f"iceoryx2 {p}" for p in base.iterdir()]
    left += [
        f"shm {p.name}"
        for p in SHM.iterdir()
        if p.name.startswith("noded_") or ("iox2" in p.name and "global_mgmt" not in p.name)
    ]
    left += [f"cgroup {p}" for p in CGROUPS.glob("*/noded.slice/noded-*")]
    left += [f"cgroup {p}" for p in CGROUPS.glob("noded.slice/noded-*")]  # unified hierarchy
    return left


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class Streamer:
    """A client streaming into a session from two threads until the session goes away."""

    def __init__(self, sid: str) -> None:
        self.io = attach(sid)
        self.sent = 0
        self.received = 0
        self.outcome: dict[str, BaseException | None] = {}
        self._threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _send(self) -> None:
        try:
            while True:
                self.io.send("data", np.full(4096, self.sent % 251, np.uint8))
                self.sent += 1
                time.sleep(0.005)
        except BaseException as exc:
            self.outcome["send"] = exc

    def _receive(self) -> None:
        try:
            while True:
                msg = self.io.receive(timeout=0.5)
                if msg is not None:
                    self.received += 1
                elif not self._threads[0].is_alive():
                    break
        except BaseException as exc:
            self.outcome["receive"] = exc

    def wait_flowing(self, at_least: int = 20) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.received < at_least:
            assert time.monotonic() < deadline, f"no data flowing: sent {self.sent}, received {self.received}"
            time.sleep(0.05)

    def detach(self) -> None:
        """Stop streaming and detach, as a client does before it stops its session."""
        self.io.stop()
        self.join()

    def join(self) -> None:
        for t in self._threads:
            t.join(DEADLINE)
        assert not any(t.is_alive() for t in self._threads), f"the streaming client hangs ({self.outcome})"
        self.io.close()
