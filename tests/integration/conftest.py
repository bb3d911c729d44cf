"""Fixtures for tests against the real systemd of tests/sandbox, with noded.service running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from noded.contract.client import Client, session_info
from noded.contract.protocol import SessionInfo
from noded.errors import NodedError

NODECTL = [sys.executable, "-c", "from noded.ctl.main import main; main()"]


def _pid1_is_systemd() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


@pytest.hookimpl(trylast=True)  # after -m deselected: only the tests of this folder that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    selected = [item for item in items if item.path.is_relative_to(here)]
    if not selected or _pid1_is_systemd():
        return
    if os.environ.get("CI") or os.environ.get("NODED_REQUIRE_SYSTEMD"):
        raise pytest.UsageError("integration tests need systemd as PID 1: run them through tests/run")
    skip = pytest.mark.skip(reason="needs systemd as PID 1 (run through tests/run)")
    for item in selected:
        item.add_marker(skip)


def systemctl(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=check)


def noded_units(pattern: str = "noded-*") -> list[str]:
    res = systemctl("list-units", "--all", "--plain", "--no-legend", pattern)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


def worker_pids() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-m" in cmd and b"noded.worker" in cmd:
            pids.append(int(d.name))
    return pids


def noded_main_pid() -> int:
    return int(systemctl("show", "-P", "MainPID", "noded.service").stdout.strip())


def nodectl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NODECTL, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_after_the_suite() -> Iterator[None]:
    yield
    if not _pid1_is_systemd():
        return
    assert noded_units() == [], "units left behind by the suite"
    assert worker_pids() == [], "worker processes left behind by the suite"
    assert stray_files() == [], "files left behind by the suite"


def stray_files() -> list[str]:
    """Files of ours that should not outlive their sessions."""
    found = [str(p) for p in Path("/run/noded").rglob("*") if p.name != "control.sock" and not p.is_dir()]
    found += [
        str(p)
        for p in Path("/dev/shm").iterdir()
        if ("iox2" in p.name or "noded" in p.name) and "global_mgmt" not in p.name
    ]
    return found


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(timeout=60) as c:
        yield c


class Sessions:
    """Creates sessions for a test and makes sure each one is gone afterwards."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.created: list[str] = []

    def write(self, toml: str, name: str = "pipeline.toml") -> Path:
        path = self.tmp_path / name
        path.write_text(toml)
        return path

    def create(self, c: Client, toml: str, watch: bool = True) -> SessionInfo:
        info = session_info(c.request("create", text=toml, filename="test.toml", watch=watch))
        self.created.append(info.sid)
        return info

    def cleanup(self) -> None:
        errors: dict[str, str] = {}
        with Client(timeout=60) as c:
            for sid in self.created:
                try:
                    c.request("stop", sid=sid, wait=True)
                except Exception as exc:  # reported below if the session's units stay
                    errors[sid] = f"{type(exc).__name__}: {exc}"
        for sid in self.created:
            left = noded_units(f"noded-{sid}*")
            assert left == [], f"units of session {sid} left behind (stop: {errors.get(sid, 'ok')})\n" + _diagnose(left)


def _diagnose(units: list[str]) -> str:
    """What systemd and noded say of units that stayed: for a failure that only a loaded
    CI machine shows."""
    out = [systemctl("status", "--no-pager", "-n", "5", *units).stdout] if units else []
    res = subprocess.run(
        ["journalctl", "--no-pager", "-q", "-o", "short-monotonic", "-n", "40", "-u", "noded.service"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return "\n".join([*out, "noded's last journal lines:", res.stdout])


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[Sessions]:
    s = Sessions(tmp_path)
    yield s
    s.cleanup()


def wait_for(c: Client, sid: str, predicate: Callable[[SessionInfo], bool], timeout: float) -> SessionInfo:
    """Read the session's events until predicate holds; fail after timeout."""
    deadline = time.monotonic() + timeout
    c.settimeout(timeout)
    try:
        for info in c.events():
            if info.sid != sid:
                continue
            if predicate(info):
                return info
            if ended(info):
                raise AssertionError(f"session {sid} ended ({info.state}) before the condition held: {info.failure}")
            if time.monotonic() > deadline:
                break
    except NodedError as exc:  # the read timed out
        raise AssertionError(f"session {sid}: condition not met within {timeout}s ({exc})") from exc
    raise AssertionError(f"session {sid}: condition not met within {timeout}s")


def ended(info: SessionInfo) -> bool:
    return info.state in ("stopped", "failed")


def chain(n: int, cls: str = "passthrough", params: str = "{}", extra: str = "") -> str:
    parts = []
    for i in range(n):
        inputs = f'["n{i - 1}.out"]' if i else "[]"
        parts.append(f'[[nodes]]\nid = "n{i}"\nclass = "{cls}"\nparams = {params}\ninputs = {inputs}\n{extra}\n')
    return "\n".join(parts)
