"""nodectl against the running daemon: what a user types and sees."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import NODECTL, Sessions, chain, nodectl, noded_units, systemctl

INVALID = {
    "unknown class": ('[[nodes]]\nid = "a"\nclass = "no_such_node"\n', ["'a'", "class"]),
    "unknown module": ('[[nodes]]\nid = "a"\nclass = "nosuchpkg.mod:Thing"\n', ["'a'", "class"]),
    "duplicate id": (
        '[[nodes]]\nid = "a"\nclass = "passthrough"\n[[nodes]]\nid = "a"\nclass = "passthrough"\n',
        ["'a'", "id", "duplicate"],
    ),
    "missing upstream": (
        '[[nodes]]\nid = "a"\nclass = "passthrough"\ninputs = ["ghost.out"]\n',
        ["'a'", "inputs", "ghost"],
    ),
    "cycle": (
        '[[nodes]]\nid = "a"\nclass = "passthrough"\ninputs = ["b.out"]\n'
        '[[nodes]]\nid = "b"\nclass = "passthrough"\ninputs = ["a.out"]\n',
        ["cycle"],
    ),
    "bad resource": ('[[nodes]]\nid = "a"\nclass = "passthrough"\nmemory_max = "12Q"\n', ["'a'", "memory_max"]),
    "unknown key": ('[[nodes]]\nid = "a"\nclass = "passthrough"\nmemroy_max = "1G"\n', ["'a'", "memroy_max"]),
    "toml syntax": ('[[nodes]\nid = "a"\n', ["bad.toml"]),
    "name too long": (f'name = "{"x" * 100_000}"\n[[nodes]]\nid = "a"\nclass = "passthrough"\n', ["name", "at most"]),
    "too many nodes": (
        "".join(f'[[nodes]]\nid = "n{i}"\nclass = "passthrough"\n' for i in range(257)),
        ["257 nodes", "max_pipeline_nodes"],
    ),
    "params too deep": (
        '[[nodes]]\nid = "a"\nclass = "passthrough"\nparams = { x = ' + "[" * 17 + "]" * 17 + " }\n",
        ["'a'", "params", "nested"],
    ),
    "file too large": ('[[nodes]]\nid = "a"\nclass = "passthrough"\n#' + "c" * (5 << 20) + "\n", ["file", "at most"]),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_pipelines_are_refused_clearly_and_start_nothing(tmp_path: Path, case: str) -> None:
    text, expected = INVALID[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    before = noded_units()
    res = nodectl("session", "create", str(path))
    assert res.returncode == 4, res
    assert "Traceback" not in res.stderr
    assert "bad.toml" in res.stderr
    for word in expected:
        assert word in res.stderr, (word, res.stderr)
    assert noded_units() == before


def test_create_wait_shows_progress_then_show_list_stop(sessions: Sessions) -> None:
    path = sessions.write(chain(2, "sleep", "{ seconds = 1.0, steps = 4 }"))
    res = nodectl("session", "create", str(path), "--wait")
    assert res.returncode == 0, res.stderr
    sid = res.stdout.split()[1]
    sessions.created.append(sid)
    assert "ready in" in res.stdout
    assert "initializing" in res.stderr and "%" in res.stderr  # per-node progress lines

    shown = json.loads(nodectl("--json", "session", "show", sid).stdout)
    assert shown["state"] == "ready" and [n["id"] for n in shown["nodes"]] == ["n0", "n1"]
    listed = json.loads(nodectl("--json", "session", "list").stdout)
    assert sid in [s["sid"] for s in listed]
    table = nodectl("session", "show", sid).stdout
    assert "n0" in table and "ready" in table

    res = nodectl("session", "stop", sid)
    assert res.returncode == 0 and "stopped" in res.stdout
    assert noded_units(f"noded-{sid}*") == []


def test_markup_in_names_and_progress_is_shown_as_it_is(sessions: Sessions) -> None:
    """A pipeline named with rich markup and progress text in brackets, through create
    --wait on a terminal (FORCE_COLOR), list and show: no MarkupError, nothing cut."""
    name = "voice[/] dict[str, int]"
    toml = f'name = "{name}"\n' + chain(1, "sleep", '{ seconds = 0.6, steps = 3, label = "loading [/srv/models/en]" }')
    path = sessions.write(toml)
    res = subprocess.run(
        [*NODECTL, "session", "create", str(path), "--wait"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FORCE_COLOR": "1", "COLUMNS": "200"},
    )
    assert res.returncode == 0, res.stderr
    sid = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout).split()[1]
    sessions.created.append(sid)
    assert "loading [/srv/models/en]" in re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", res.stderr), res.stderr
    for args in (("session", "list"), ("session", "show", sid)):
        shown = nodectl(*args)
        assert shown.returncode == 0 and name in shown.stdout, (args, shown.stdout, shown.stderr)
    assert nodectl("session", "stop", sid).returncode == 0


def test_create_wait_exits_5_and_names_the_failed_node(sessions: Sessions) -> None:
    path = sessions.write('[[nodes]]\nid = "boom"\nclass = "fail_setup"\nparams = { message = "no GPU here" }\n')
    res = nodectl("session", "create", str(path), "--wait")
    assert res.returncode == 5, res
    assert "boom" in res.stderr and "no GPU here" in res.stderr and "Traceback" not in res.stderr


def test_watch_follows_a_session_to_its_end(sessions: Sessions) -> None:
    path = sessions.write(chain(1, "crash", '{ when = "ready", after = 1.0, how = "exit", code = 7 }'))
    sid = nodectl("session", "create", "--no-block", str(path)).stdout.strip()
    sessions.created.append(sid)
    res = nodectl("session", "watch", sid)
    assert res.returncode == 5
    assert "failed" in res.stdout and "status 7" in res.stderr and "ready" in res.stderr


def test_not_running_daemon_is_one_clear_line() -> None:
    res = nodectl("--socket", "/run/noded/nonexistent.sock", "session", "list")
    assert res.returncode == 3
    assert (
        res.stderr.splitlines()[0] == "nodectl: noded is not running (nothing listens on /run/noded/nonexistent.sock)"
    )
    assert "systemctl start noded" in res.stderr and "Traceback" not in res.stderr
    res = nodectl("--json", "--socket", "/run/noded/nonexistent.sock", "status")
    assert json.loads(res.stdout)["error"]["code"] == "daemon_unavailable"


def test_unknown_session_exit_code() -> None:
    res = nodectl("session", "show", "deadbeef")
    assert res.returncode == 6 and "deadbeef" in res.stderr


@pytest.fixture
def process_limit_3() -> Iterator[None]:
    dropin = Path("/run/systemd/system/noded.service.d/50-test-limit.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nEnvironment=NODED_MAX_SESSION_PROCESSES=3\n")
    systemctl("daemon-reload", check=True)
    systemctl("restart", "noded.service", check=True)
    try:
        yield
    finally:
        dropin.unlink()
        systemctl("daemon-reload", check=True)
        systemctl("restart", "noded.service", check=True)


def test_pipeline_over_the_process_limit_is_refused_before_anything_starts(
    process_limit_3: None, sessions: Sessions
) -> None:
    status = json.loads(nodectl("--json", "status").stdout)
    assert status["limits"]["max_session_processes"] == 3
    before = noded_units()
    res = nodectl("session", "create", str(sessions.write(chain(5))))
    assert res.returncode == 7, res
    assert "5 nodes" in res.stderr and "at most 3" in res.stderr
    assert noded_units() == before
    ok = nodectl("session", "create", str(sessions.write(chain(3), "three.toml")), "--wait")
    assert ok.returncode == 0, ok.stderr
    sessions.created.append(ok.stdout.split()[1])


def test_noded_is_a_notify_service_and_ready() -> None:
    assert systemctl("show", "-P", "Type", "noded.service").stdout.strip() == "notify"
    assert systemctl("is-active", "noded.service").stdout.strip() == "active"
    res = subprocess.run(["systemctl", "show", "-P", "StatusText", "noded.service"], capture_output=True, text=True)
    assert "listening" in res.stdout


def test_noded_feeds_its_watchdog_from_its_loop() -> None:
    """noded.service has WatchdogSec=; the daemon's event loop pings it (WATCHDOG=1), so
    systemd's last-ping timestamp moves on while noded runs."""
    watchdog = systemctl("show", "-P", "WatchdogUSec", "noded.service").stdout.strip()  # e.g. "20s"
    assert watchdog not in ("", "0", "infinity"), f"noded.service has no WatchdogSec= ({watchdog!r})"

    def last_ping() -> int:
        return int(systemctl("show", "-P", "WatchdogTimestampMonotonic", "noded.service").stdout.strip() or 0)

    first = last_ping()
    deadline = time.monotonic() + 20  # it pings every quarter of WatchdogSec (20 s)
    while last_ping() == first:
        assert time.monotonic() < deadline, "no WATCHDOG=1 from noded"
        time.sleep(0.5)
    assert systemctl("is-active", "noded.service").stdout.strip() == "active"
