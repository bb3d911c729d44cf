"""The daemon restarted (`systemctl restart noded`) or killed (`kill -9` of its main PID)
while sessions run: one streaming through a client, one still loading its model, one
ready with a memory limit. Either way no orphan remains: no unit (service or slice), no
worker process, no iceoryx2 file, no /dev/shm segment; the client that was streaming is
told (it does not hang); and the new daemon runs sessions again.

What happens (docs/architecture.md, "Daemon restart and crash"): a restarted daemon stops its sessions
itself before it exits (SIGTERM -> stop every session, wait for the units); a killed one
cannot, and the new instance stops every noded-* unit it finds and removes every session
file before it sends READY=1. Sessions are cleaned up, never re-adopted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest

from noded.contract.client import Client
from noded.dataplane.endpoint import ConsumerGone
from noded.errors import Stopped

from .conftest import chain, noded_main_pid, systemctl, wait_for
from .load_support import DEADLINE, Streamer, all_leftovers, session_pids
from .test_dataplane import io_chain


@pytest.fixture
def running() -> Iterator[tuple[list[str], Streamer]]:
    """Three live sessions (streaming, loading, ready with a memory limit) and the streamer."""

    def start(toml: str, name: str, until) -> str:  # type: ignore[no-untyped-def]
        with Client(timeout=60) as c:  # one client each: wait_for skips other sessions' events
            sid = c.request("create", text=toml, filename=name, watch=True)["sid"]
            wait_for(c, sid, until, DEADLINE)
            return sid

    def ready(i) -> bool:  # type: ignore[no-untyped-def]
        return i.state == "ready"

    streaming = start(io_chain(3), "streaming.toml", ready)
    loading = start(
        chain(2) + '\n[[nodes]]\nid = "model"\nclass = "sleep"\nparams = { seconds = 60 }\n',
        "loading.toml",
        lambda i: any(n.state == "initializing" and n.main_pid for n in i.nodes),
    )
    limited = start(chain(2, extra='memory_max = "256M"'), "limited.toml", ready)
    streamer = Streamer(streaming)
    streamer.wait_flowing()
    sids = [streaming, loading, limited]
    assert all(session_pids(s) for s in sids)
    yield sids, streamer
    with Client(timeout=60) as c:  # after a failure: stop what is left
        for info in c.request("list"):
            if info["state"] not in ("stopped", "failed"):
                c.request("stop", sid=info["sid"], wait=True)


def wait_new_daemon(old: int) -> int:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        pid = noded_main_pid()
        if pid and pid != old and systemctl("is-active", "noded.service").stdout.strip() == "active":
            return pid
        time.sleep(0.1)
    raise AssertionError("noded did not come back")


def journal(pid: int) -> str:
    """What noded's process ``pid`` logged."""
    return subprocess.run(
        ["journalctl", "-u", "noded.service", f"_PID={pid}", "--no-pager", "-o", "cat"], capture_output=True, text=True
    ).stdout


def check_no_orphans(sids: list[str], streamer: Streamer) -> None:
    streamer.join()
    assert isinstance(streamer.outcome.get("send"), (ConsumerGone, Stopped)), streamer.outcome
    assert all_leftovers() == [], all_leftovers()
    assert not any(session_pids(s) for s in sids)


def check_daemon_works() -> None:
    with Client(timeout=60) as c:
        sid = c.request("create", text=chain(2), filename="after.toml", watch=True)["sid"]
        wait_for(c, sid, lambda i: i.state == "ready", DEADLINE)
        assert c.request("stop", sid=sid, wait=True)["state"] == "stopped"


def test_restart_stops_every_session_and_leaves_no_orphans(running: tuple[list[str], Streamer]) -> None:
    sids, streamer = running
    old = noded_main_pid()
    res = systemctl("restart", "noded.service")
    assert res.returncode == 0, res.stderr
    new = wait_new_daemon(old)
    check_no_orphans(sids, streamer)
    assert not psutil.pid_exists(old)
    # The old daemon stopped its sessions itself: the new one found nothing to clean.
    assert "stopping all sessions" in journal(old)
    assert "left by an earlier noded" not in journal(new)
    with Client(timeout=10) as c:  # the new daemon knows nothing of the old sessions
        assert not {s["sid"] for s in c.request("list")} & set(sids)
    check_daemon_works()
    assert noded_main_pid() == new


def test_kill_9_of_the_daemon_leaves_no_orphans(running: tuple[list[str], Streamer]) -> None:
    sids, streamer = running
    old = noded_main_pid()
    os.kill(old, signal.SIGKILL)
    wait_new_daemon(old)
    check_no_orphans(sids, streamer)
    log = journal(noded_main_pid())
    assert "left by an earlier noded" in log
    assert all(f"noded-{s}.slice" in log for s in sids), log
    check_daemon_works()


def test_kill_9_while_creating_a_session_leaves_no_orphans() -> None:
    """The daemon dies between starting a session's first units and its last."""
    old = noded_main_pid()
    with Client(timeout=60) as c:
        sid = c.request("create", text=chain(8, extra='memory_max = "256M"'), filename="big.toml")["sid"]
        os.kill(old, signal.SIGKILL)
    wait_new_daemon(old)
    assert all_leftovers() == [], all_leftovers()
    assert not session_pids(sid)
    check_daemon_works()


def test_units_that_failed_while_no_daemon_ran_are_cleaned_up() -> None:
    """A node dies while the daemon is frozen (so nobody resets its failed unit), then the
    daemon is killed: the new one must let the failed unit go too."""
    old = noded_main_pid()
    with Client(timeout=60) as c:
        sid = c.request("create", text=chain(3), filename="frozen.toml", watch=True)["sid"]
        ready = wait_for(c, sid, lambda i: i.state == "ready", DEADLINE)
    victim = ready.nodes[1]
    os.kill(old, signal.SIGSTOP)
    try:
        os.kill(victim.main_pid, signal.SIGKILL)
        deadline = time.monotonic() + DEADLINE
        while systemctl("show", "-P", "ActiveState", victim.unit).stdout.strip() != "failed":
            assert time.monotonic() < deadline, "the killed node's unit did not fail"
            time.sleep(0.05)
    finally:
        os.kill(old, signal.SIGKILL)
    wait_new_daemon(old)
    assert all_leftovers() == [], all_leftovers()
    check_daemon_works()
