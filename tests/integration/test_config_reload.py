"""`systemctl reload noded` while a session streams: RELOADING=1/READY=1, drop-ins, the new
log level and limits for new sessions, the running session untouched, a bad config refused."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from noded.contract.client import Client

from .conftest import Sessions, nodectl, noded_main_pid, systemctl, wait_for
from .service_support import noded_with

CONFIG_DIR = Path("/run/noded-test-reload")  # the sandbox's own /run; noded can read it

STREAM = """
[[nodes]]
id = "src"
class = "source"
params = { count = 1000000, shape = [64], interval = 0.01 }

[[nodes]]
id = "sink"
class = "passthrough"
inputs = ["src.out"]
"""


def _sent(c: Client, sid: str) -> int:
    stats = c.request("show", sid=sid)["stats"]
    return next(n["messages_out"] or 0 for n in stats["nodes"] if n["id"] == "src")


def _tasks_max(unit: str) -> str:
    return systemctl("show", "-p", "TasksMax", "--value", unit).stdout.strip()


def _journal_since(cursor_time: str) -> str:
    res = subprocess.run(
        ["journalctl", "--no-pager", "-q", "-o", "cat", "-u", "noded.service", "--since", cursor_time],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return res.stdout


def _wait_journal(since: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = _journal_since(since)
        if text in out or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def _streams(c: Client, sid: str, timeout: float = 30) -> None:
    before = _sent(c, sid)
    deadline = time.monotonic() + timeout
    while _sent(c, sid) <= before:
        assert time.monotonic() < deadline, "the session stopped streaming"
        time.sleep(0.1)


def test_reload_applies_dropins_to_new_sessions_while_one_streams(sessions: Sessions) -> None:
    CONFIG_DIR.mkdir(exist_ok=True)
    main = CONFIG_DIR / "noded.toml"
    main.write_text('log_level = "info"\n[node_limits]\ntasks_max = 50\n')
    dropins = CONFIG_DIR / "noded.toml.d"
    dropins.mkdir(exist_ok=True)
    try:
        with noded_with({"NODED_CONFIG": str(main)}), Client(timeout=60) as c:
            pid = noded_main_pid()
            first = sessions.create(c, STREAM)
            ready = wait_for(c, first.sid, lambda i: i.state == "ready", 60)
            src_unit = next(n.unit for n in ready.nodes if n.id == "src")
            assert _tasks_max(src_unit) == "50"
            _streams(c, first.sid)

            (dropins / "50-reload.toml").write_text('log_level = "debug"\n[node_limits]\ntasks_max = 33\n')
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            res = systemctl("reload", "noded.service")
            assert res.returncode == 0, res
            assert noded_main_pid() == pid  # the same daemon: no restart
            log = _wait_journal(since, "reloaded the configuration")
            assert "reloaded the configuration" in log and "log level debug" in log, log
            status = json.loads(nodectl("--json", "status").stdout)
            assert status["node_limits"]["tasks_max"] == 33, status

            # The running session keeps streaming with its old limits ...
            assert c.request("show", sid=first.sid)["state"] == "ready"
            _streams(c, first.sid)
            assert _tasks_max(src_unit) == "50"
            # ... and a new one gets the new limit.
            second = sessions.create(c, STREAM)
            ready2 = wait_for(c, second.sid, lambda i: i.state == "ready", 60)
            assert _tasks_max(next(n.unit for n in ready2.nodes if n.id == "src")) == "33"

            # A bad drop-in: the old configuration stays, with one line that names the file.
            (dropins / "60-bad.toml").write_text('log_level = "loud"\n')
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            res = systemctl("reload", "noded.service")
            assert res.returncode == 0, res
            log = _wait_journal(since, "reload failed")
            failed = [line for line in log.splitlines() if "reload failed" in line]
            assert len(failed) == 1 and "60-bad.toml: key 'log_level'" in failed[0], log
            assert systemctl("is-active", "noded.service").stdout.strip() == "active"
            status = json.loads(nodectl("--json", "status").stdout)
            assert status["node_limits"]["tasks_max"] == 33, status
            _streams(c, first.sid)
            for sid in (first.sid, second.sid):
                c.request("stop", sid=sid, wait=True)
    finally:
        for f in dropins.glob("*.toml"):
            f.unlink()
        dropins.rmdir()
        main.unlink(missing_ok=True)
        CONFIG_DIR.rmdir()
