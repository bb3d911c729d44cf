"""Hung nodes: a node's ``watchdog`` becomes WatchdogSec= of its unit; a node stuck in
process() (a deadlock, an endless loop) or in setup() after a progress report is ended by
systemd with SIGABRT, and the session fails naming it, where it hung, for how long, with
the stack faulthandler wrote; nodes that are merely idle, waiting for credit or serving
without a data plane keep feeding it and live on.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from noded.contract.client import Client
from noded.dataplane.session import SessionIO, request_attach

from .conftest import Sessions, ended, systemctl, wait_for
from .load_support import session_leftovers


def hang_pipeline(when: str, how: str = "lock", watchdog: str = "2s") -> str:
    return f"""inputs = ["data"]
outputs = ["after.out"]
[[nodes]]
id = "asr"
class = "hang"
params = {{ when = "{when}", how = "{how}" }}
inputs = ["input.data"]
watchdog = "{watchdog}"
[[nodes]]
id = "after"
class = "passthrough"
inputs = ["asr.out"]
"""


@pytest.mark.parametrize("how", ["lock", "spin"])
def test_a_node_hung_in_process_is_ended_and_named(client: Client, sessions: Sessions, how: str) -> None:
    info = sessions.create(client, hang_pipeline("process", how))
    wait_for(client, info.sid, lambda i: i.state == "ready", 60)
    unit = f"noded-{info.sid}-asr.service"
    assert systemctl("show", "-P", "WatchdogUSec", unit).stdout.strip() == "2s"
    with SessionIO(request_attach(info.sid)) as io:
        io.send("data", np.zeros(16, np.uint8))
        sent = time.monotonic()
        done = wait_for(client, info.sid, ended, 60)
    took = time.monotonic() - sent
    assert done.state == "failed" and done.failure is not None, done
    failure = done.failure
    assert failure.node == "asr" and failure.result == "watchdog", failure
    assert failure.reason.startswith("hung in process() for 2 s"), failure.reason
    assert failure.signal == "SIGABRT", failure
    assert took >= 1.5, f"ended after {took:.1f} s, before its 2 s watchdog"
    # The journal's last lines: faulthandler's stack of the hung call, then systemd's words.
    journal = "\n".join(failure.journal)
    assert "in hang" in journal and "in process" in journal, journal
    assert "Watchdog timeout" in journal, journal


def test_a_setup_hung_after_a_progress_report_is_ended_before_the_start_timeout(
    client: Client, sessions: Sessions
) -> None:
    started = time.monotonic()
    info = sessions.create(client, hang_pipeline("setup"))
    done = wait_for(client, info.sid, ended, 60)
    assert done.state == "failed" and done.failure is not None, done
    assert done.failure.node == "asr" and done.failure.result == "watchdog", done.failure
    assert done.failure.reason.startswith("hung in setup() for 2 s"), done.failure.reason
    assert "in setup" in "\n".join(done.failure.journal), done.failure.journal
    assert time.monotonic() - started < 30  # node_start_timeout is 60 s


def test_a_setup_deaf_to_sigterm_is_killed_and_its_session_still_ends(client: Client, sessions: Sessions) -> None:
    """Stopped while its start job runs, a node whose setup blocks SIGTERM (as a C call that
    never returns to Python would) is killed by systemd after TimeoutStopSec= (5 s): its
    unit then fails after noded counted the node as ended (our stop cancelled the start
    job). That failed unit must still be let go, or the session never ends."""
    toml = hang_pipeline("setup", "masked", watchdog="off")
    info = sessions.create(client, toml)
    wait_for(client, info.sid, lambda i: any("hanging" in n.status_text for n in i.nodes), 60)
    stopped = time.monotonic()
    client.request("stop", sid=info.sid)
    done = wait_for(client, info.sid, ended, 60)
    took = time.monotonic() - stopped
    assert done.state == "stopped", done
    assert took >= 4, f"ended after {took:.1f} s: the node was not deaf to SIGTERM, nothing was tested"
    assert session_leftovers(info.sid) == []


LIVELY = """inputs = ["data"]
[limits]
watchdog = "2s"
[dataplane]
depth = 1
[[nodes]]
id = "relay"
class = "passthrough"
inputs = ["input.data"]
[[nodes]]
id = "slow"
class = "slow_sink"
params = { ms = 5000.0 }
inputs = ["relay.out"]
watchdog = "infinity"
[[nodes]]
id = "quiet"
class = "sleep"
params = { seconds = 0.0, steps = 1 }
"""


def test_idle_waiting_and_plane_less_nodes_keep_their_watchdog_fed(client: Client, sessions: Sessions) -> None:
    """relay: idle, then blocked in send for credit from slow (5 s a message) much longer
    than its 2 s watchdog; quiet: no data plane at all. Both live on."""
    info = sessions.create(client, LIVELY)
    wait_for(client, info.sid, lambda i: i.state == "ready", 60)
    for node, want in (("relay", "2s"), ("quiet", "2s"), ("slow", "0")):
        unit = f"noded-{info.sid}-{node}.service"
        assert systemctl("show", "-P", "WatchdogUSec", unit).stdout.strip() == want, node
    errors: list[BaseException] = []

    def feed(io: SessionIO) -> None:
        try:
            for _ in range(4):  # slow holds 1, the edges 1 each: relay waits in send
                io.send("data", np.zeros(16, np.uint8))
        except BaseException as exc:  # reported below
            errors.append(exc)

    with SessionIO(request_attach(info.sid)) as io:
        feeder = threading.Thread(target=feed, args=(io,))
        feeder.start()
        time.sleep(7)  # 3.5 watchdogs, idle then blocked
        show = client.request("show", sid=info.sid)
        assert show["state"] == "ready", show
        blocked = next(n for n in show["nodes"] if n["id"] == "relay")
        assert blocked["state"] != "error", blocked
        io.stop()
        feeder.join(10)
    client.request("stop", sid=info.sid, wait=True)
    done = client.request("show", sid=info.sid)
    assert done["state"] == "stopped" and done.get("failure") is None, done
    assert not errors or all(type(e).__name__ == "Stopped" for e in errors), errors
