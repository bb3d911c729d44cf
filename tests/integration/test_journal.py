"""Node logs in journald: session and node fields, priorities, and `nodectl logs`."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from noded.contract.client import Client

from .conftest import NODECTL, Sessions, chain, ended, nodectl, wait_for

CRASH = """
[[nodes]]
id = "calm"
class = "passthrough"

[[nodes]]
id = "boom"
class = "crash"
params = { when = "ready", after = 0.2, how = "exception" }
"""


def entries(*args: str, want: Any = None, timeout: float = 30) -> list[dict[str, Any]]:
    """`nodectl --json logs ARGS` as dicts; polls until ``want(entries)`` (journald may lag)."""
    deadline = time.monotonic() + timeout
    while True:
        res = nodectl("--json", "logs", *args)
        found = [json.loads(line) for line in res.stdout.splitlines()] if res.returncode == 0 else []
        if (want is None and found) or (want is not None and want(found)) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_entries_carry_session_node_and_python_log_level_as_priority(client: Client, sessions: Sessions) -> None:
    info = sessions.create(client, CRASH)
    done = wait_for(client, info.sid, ended, 60)
    assert done.state == "failed" and done.failure is not None and done.failure.node == "boom"

    def complete(found: list[dict[str, Any]]) -> bool:
        return (
            any("crashing on purpose" in str(e.get("MESSAGE")) for e in found)
            and any(e.get("NODED_NODE") == "calm" for e in found)
            and any("RuntimeError" in str(e.get("MESSAGE")) for e in found)
        )

    found = entries(info.sid, want=complete)
    assert complete(found), [e.get("MESSAGE") for e in found]
    assert {e["NODED_SESSION"] for e in found} == {info.sid}
    assert {e["NODED_NODE"] for e in found if "NODED_NODE" in e} == {"calm", "boom"}
    # The daemon's own lines about the session are there too: why it ended.
    daemon = [e for e in found if e.get("_SYSTEMD_UNIT") == "noded.service"]
    assert any("node boom" in str(e["MESSAGE"]) and e["PRIORITY"] == "3" for e in daemon), daemon
    assert all("NODED_NODE" not in e for e in daemon)
    by_message = {str(e["MESSAGE"]): e for e in found}
    warning = next(e for m, e in by_message.items() if "crashing on purpose" in m)
    assert warning["PRIORITY"] == "4" and warning["NODED_NODE"] == "boom"  # logging.WARNING
    assert warning["SYSLOG_IDENTIFIER"] == "noded-boom"
    started = next(e for m, e in by_message.items() if "starting node calm" in m)
    assert started["PRIORITY"] == "6"  # logging.INFO
    # logging.ERROR with a traceback: one entry (native protocol), priority 3, with its source.
    traceback = [e for m, e in by_message.items() if "Traceback" in m]
    assert len(traceback) == 1 and traceback[0]["PRIORITY"] == "3", traceback
    assert "RuntimeError: crash on purpose" in str(traceback[0]["MESSAGE"])
    assert traceback[0]["CODE_FILE"].endswith(".py") and traceback[0]["PYTHON_LOGGER"]
    assert traceback[0]["SYSLOG_IDENTIFIER"] == "noded-boom"
    assert not any(str(e["MESSAGE"]).startswith("<") for e in found)  # the prefix was consumed

    one = entries(info.sid, "boom", want=lambda f: any("crashing" in str(e.get("MESSAGE")) for e in f))
    assert one and {e["NODED_NODE"] for e in one} == {"boom"}
    text = nodectl("logs", info.sid, "calm", "--lines", "50")
    assert text.returncode == 0 and "noded-calm[" in text.stdout and "noded-boom" not in text.stdout, text
    errors = nodectl("logs", info.sid, "--priority", "err", "--reverse")
    assert errors.returncode == 2  # unknown option: journalctl's own options are not passed through
    errors = nodectl("logs", info.sid, "--priority", "err")
    assert "RuntimeError" in errors.stdout and "starting node" not in errors.stdout, errors


def test_logs_errors_are_one_line_with_exit_codes() -> None:
    res = nodectl("logs", "ffffffff")
    assert res.returncode == 6 and "no entries of session ffffffff" in res.stderr, res
    res = nodectl("logs", "not-a-session")
    assert res.returncode == 2 and "is not a session id" in res.stderr, res
    res = nodectl("logs", "ffffffff", "bad-node")
    assert res.returncode == 2 and "is not a node id" in res.stderr, res


def test_follow_shows_entries_as_they_come(client: Client, sessions: Sessions) -> None:
    info = sessions.create(client, chain(1, "sleep", "{ seconds = 3.0, steps = 3 }"))
    with subprocess.Popen([*NODECTL, "logs", info.sid, "n0", "-f"], stdout=subprocess.PIPE, text=True) as proc:
        try:
            lines = []
            assert proc.stdout is not None
            for line in proc.stdout:  # hang guard: the test's own timeout
                lines.append(line)
                if "ready after" in line:
                    break
            assert any("starting node n0" in line for line in lines), lines
            wait_for(client, info.sid, lambda i: i.state == "ready", 60)
        finally:
            proc.terminate()
