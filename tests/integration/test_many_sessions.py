"""SC-001: create, process and stop many sessions of 5 nodes, each with a deadline.

NODED_SC001_SESSIONS (default 100) sessions run in batches of BATCH at the same time,
one test per batch. Each session: create, wait until ready, stream MESSAGES messages
through its 5 node processes (checked on arrival), stop, and check that nothing of it
is left. A session that has not finished all of that by DEADLINE counts as hung.
Target: every session succeeds, none hangs.
"""

from __future__ import annotations

import threading
import time
import traceback

import numpy as np
import pytest

from noded.contract.client import Client

from .conftest import wait_for
from .load_support import all_leftovers, env_int, session_leftovers
from .test_dataplane import io_chain

SESSIONS = env_int("NODED_SC001_SESSIONS", 100)
BATCH = 10  # sessions at the same time
NODES = 5
MESSAGES = 20
SIZE = 64_000
DEADLINE = 120.0  # s per batch: a hang guard, not a timing target


def one_session(results: dict[int, str], index: int) -> None:
    """Create, stream through, stop one session; record "ok" or what went wrong."""
    sid = "?"
    try:
        from noded.dataplane.session import attach

        with Client(timeout=60) as c:
            info = c.request("create", text=io_chain(NODES), filename=f"sc001_{index}.toml", watch=True)
            sid = info["sid"]
            wait_for(c, sid, lambda i: i.state == "ready", 60)
            with attach(sid) as io:
                feeder = threading.Thread(
                    target=lambda: (
                        [io.send("data", np.full(SIZE, k % 251, np.uint8)) for k in range(MESSAGES)],
                        io.end("data"),
                    )
                )
                feeder.start()
                got = []
                for msg in io.messages(timeout=30):
                    assert msg.array.shape == (SIZE,) and msg.array[0] == msg.array[-1] == msg.seq % 251
                    got.append(msg.seq)
                del msg
                feeder.join(30)
                assert got == list(range(MESSAGES)), got
            stopped = c.request("stop", sid=sid, wait=True)
            assert stopped["state"] == "stopped", stopped
            left = session_leftovers(sid)
            assert left == [], left
        results[index] = "ok"
    except BaseException as exc:
        results[index] = f"session {sid}: {exc!r}\n{traceback.format_exc()}"


def stop_everything() -> None:
    """After a failure: stop whatever sessions are still live, so the next batch starts clean."""
    with Client(timeout=60) as c:
        for s in c.request("list"):
            if s["state"] not in ("stopped", "failed"):
                c.request("stop", sid=s["sid"], wait=True)


@pytest.mark.parametrize("batch", range(0, SESSIONS, BATCH), ids=lambda b: f"sessions{b}-{b + BATCH - 1}")
def test_sessions_of_five_nodes_create_process_and_stop(batch: int) -> None:
    indices = list(range(batch, min(batch + BATCH, SESSIONS)))
    results: dict[int, str] = {}
    threads = [threading.Thread(target=one_session, args=(results, i), name=f"sc001-{i}", daemon=True) for i in indices]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, DEADLINE - (time.monotonic() - t0)))
    hung = [t.name for t in threads if t.is_alive()]
    failed = {i: r for i, r in results.items() if r != "ok"}
    if hung or failed:
        stop_everything()
    assert not hung, f"sessions still running after {DEADLINE} s: {hung}"
    assert not failed, "\n".join(failed.values())
    assert sorted(results) == indices
    assert all_leftovers() == []
