"""noded.service and its configuration: refusal of a bad one, defaults of a good one."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from noded.contract.client import Client

from .conftest import Sessions, chain, nodectl, systemctl, wait_for
from .service_support import noded_with

CONFIG_DIR = Path("/run/noded-test-config")  # the sandbox's own /run; noded can read it


def show(unit: str, *props: str) -> dict[str, str]:
    out = systemctl("show", "-p", ",".join(props), unit).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_an_invalid_config_stops_the_daemon_with_one_line_in_the_journal() -> None:
    CONFIG_DIR.mkdir(exist_ok=True)
    bad = CONFIG_DIR / "bad.toml"
    bad.write_text("max_session_processes = 2\n[node_limits]\nmemroy_max = '1G'\n")
    try:
        with noded_with({"NODED_CONFIG": str(bad)}, expect_active=False):
            props = show("noded.service", "ActiveState", "Result", "ExecMainStatus", "ExecMainPID", "NRestarts")
            assert props["ActiveState"] == "failed" and props["Result"] == "exit-code", props
            assert props["ExecMainStatus"] == "78" and props["NRestarts"] == "0", props
            pid = props["ExecMainPID"]
            deadline = time.monotonic() + 30
            lines: list[str] = []
            while not lines and time.monotonic() < deadline:
                lines = _journal(f"_PID={pid}")
                time.sleep(0.1)
            assert len(lines) == 1, lines
            assert "invalid configuration, not starting" in lines[0]
            assert f"{bad}: unknown key 'node_limits.memroy_max' (did you mean 'memory_max'?)" in lines[0]
            # nodectl says the daemon is not there, with its exit code.
            res = nodectl("status")
            assert res.returncode == 3 and "not running" in res.stderr, res
    finally:
        bad.unlink(missing_ok=True)
        CONFIG_DIR.rmdir()


def _journal(*matches: str) -> list[str]:
    res = subprocess.run(
        ["journalctl", "--no-pager", "-q", "-o", "cat", *matches], capture_output=True, text=True, timeout=30
    )
    return res.stdout.splitlines()


def test_node_limits_and_the_process_limit_from_the_config(sessions: Sessions) -> None:
    env = {
        "NODED_NODE_LIMITS_MEMORY_MAX": "256M",
        "NODED_NODE_LIMITS_TASKS_MAX": "40",
        "NODED_MAX_SESSION_PROCESSES": "2",
    }
    with noded_with(env):
        status = nodectl("--json", "status")
        assert '"max_session_processes": 2' in status.stdout, status
        text = nodectl("status").stdout
        assert "node processes per session: 2" in text and "memory_max 268435456, tasks_max 40" in text, text
        assert "NODED_NODE_LIMITS_MEMORY_MAX" in text, text
        with Client(timeout=60) as c:
            toml = chain(2) + "\n[limits]\ntasks_max = 30\n"
            info = sessions.create(c, toml)
            ready = wait_for(c, info.sid, lambda i: i.state == "ready", 60)
            props = show(ready.nodes[0].unit, "MemoryMax", "TasksMax")
            assert props == {"MemoryMax": str(256 * 2**20), "TasksMax": "30"}, props  # the pipeline's value wins
            res = nodectl("session", "create", str(sessions.write(chain(3))))
            assert res.returncode == 7 and "at most 2 node processes" in " ".join(res.stderr.split()), res
            c.request("stop", sid=info.sid, wait=True)
