"""Sessions of real node processes as transient units of the real systemd."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import psutil
import pytest

from noded.contract.client import Client, RemoteError
from noded.contract.protocol import BadRequest, SessionInfo

from .conftest import Sessions, chain, ended, noded_main_pid, noded_units, systemctl, wait_for


def node(info: SessionInfo, node_id: str):
    return next(n for n in info.nodes if n.id == node_id)


def test_five_node_session_becomes_ready_and_stop_removes_every_unit(client: Client, sessions: Sessions) -> None:
    info = sessions.create(client, chain(5))
    ready = wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    assert {n.state for n in ready.nodes} == {"ready"}
    units = noded_units(f"noded-{info.sid}*")
    assert sorted(units) == sorted([f"noded-{info.sid}.slice"] + [n.unit for n in ready.nodes])
    for n in ready.nodes:
        show = systemctl("show", "-P", "ActiveState", n.unit).stdout.strip()
        assert show == "active"
        assert systemctl("show", "-P", "Slice", n.unit).stdout.strip() == f"noded-{info.sid}.slice"
        assert n.main_pid and psutil.pid_exists(n.main_pid)
    pids = [n.main_pid for n in ready.nodes]

    stopped = client.request("stop", sid=info.sid, wait=True)
    assert stopped["state"] == "stopped"
    assert noded_units(f"noded-{info.sid}*") == []
    assert not any(psutil.pid_exists(p) for p in pids)


def test_nodes_initialise_concurrently(client: Client, sessions: Sessions) -> None:
    info = sessions.create(client, chain(5, "sleep", "{ seconds = 2.0, steps = 4 }"))
    seen_progress = set()

    def progress_then_ready(i: SessionInfo) -> bool:
        seen_progress.update(n.id for n in i.nodes if n.progress is not None and 0 < n.progress < 1)
        return i.state == "ready" or ended(i)

    ready = wait_for(client, info.sid, progress_then_ready, 30)
    assert ready.state == "ready"
    assert ready.ready_seconds is not None and ready.ready_seconds >= 2.0, ready.ready_seconds
    assert all(n.init_seconds is not None and n.init_seconds >= 1.9 for n in ready.nodes)
    # Five 2-second loads in sequence would span 10 s or more; concurrently their windows
    # overlap, so they span about 2 s. Judged from the nodes' own windows, not from the
    # wall clock, so that a loaded machine (slow imports before setup) does not fail it.
    windows = [(n.init_started, n.init_started + n.init_seconds) for n in ready.nodes]  # type: ignore[operator]
    span = max(end for _, end in windows) - min(start for start, _ in windows)
    total = sum(end - start for start, end in windows)
    assert span < 0.75 * total, (span, total, windows)
    assert seen_progress, "no load progress reached the client"


def test_exception_in_setup_fails_the_session_with_the_message(client: Client, sessions: Sessions) -> None:
    toml = chain(2) + '\n[[nodes]]\nid = "bad"\nclass = "fail_setup"\nparams = { message = "weights are missing" }\n'
    info = sessions.create(client, toml)
    done = wait_for(client, info.sid, ended, 30)
    assert done.state == "failed"
    assert done.failure is not None and done.failure.node == "bad"
    assert "weights are missing" in done.failure.reason
    assert any("weights are missing" in line for line in done.failure.journal)
    assert noded_units(f"noded-{info.sid}*") == []


def _kill_and_time(client: Client, sessions: Sessions, toml: str, victim: str, when: str) -> SessionInfo:
    info = sessions.create(client, toml)
    if when == "init":
        cur = wait_for(
            client, info.sid, lambda i: node(i, victim).state == "initializing" and bool(node(i, victim).main_pid), 30
        )
    else:
        cur = wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    pid = node(cur, victim).main_pid
    assert pid
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    failing = wait_for(client, info.sid, lambda i: i.failure is not None, 5)
    detect = time.monotonic() - t0
    done = failing if ended(failing) else wait_for(client, info.sid, ended, 5)
    total = time.monotonic() - t0
    assert done.state == "failed" and done.failure is not None
    assert done.failure.node == victim
    assert detect < 1.0 and total < 1.0, (detect, total)
    assert noded_units(f"noded-{info.sid}*") == []
    assert not psutil.pid_exists(pid)
    return done


def test_kill_during_init_fails_the_session_within_a_second(client: Client, sessions: Sessions) -> None:
    toml = chain(3) + '\n[[nodes]]\nid = "loader"\nclass = "sleep"\nparams = { seconds = 20 }\n'
    done = _kill_and_time(client, sessions, toml, "loader", "init")
    assert "SIGKILL" in done.failure.reason and done.failure.signal == "SIGKILL"


def test_kill_after_ready_fails_the_session_within_a_second(client: Client, sessions: Sessions) -> None:
    done = _kill_and_time(client, sessions, chain(4), "n2", "ready")
    assert done.failure.signal == "SIGKILL"


def test_exit_code_3_fails_the_session(client: Client, sessions: Sessions) -> None:
    toml = chain(2) + (
        '\n[[nodes]]\nid = "quitter"\nclass = "crash"\n'
        'params = { when = "ready", after = 1.0, how = "exit", code = 3 }\n'
    )
    info = sessions.create(client, toml)
    wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    t0 = time.monotonic()
    done = wait_for(client, info.sid, ended, 10)
    assert time.monotonic() - t0 < 2.0  # crashes 1 s after ready, reported well within 1 s of that
    assert done.state == "failed" and done.failure.node == "quitter"
    assert done.failure.exit_status == 3 and "status 3" in done.failure.reason
    assert noded_units(f"noded-{info.sid}*") == []


@pytest.mark.parametrize("how,expect", [("sigsegv", "SIGSEGV"), ("exception", "status")])
def test_other_crashes_are_named(client: Client, sessions: Sessions, how: str, expect: str) -> None:
    toml = chain(1) + f'\n[[nodes]]\nid = "c"\nclass = "crash"\nparams = {{ when = "ready", how = "{how}" }}\n'
    info = sessions.create(client, toml)
    done = wait_for(client, info.sid, ended, 30)
    assert done.state == "failed" and done.failure.node == "c" and expect in done.failure.reason


def test_memory_over_limit_fails_the_session_naming_memory(client: Client, sessions: Sessions) -> None:
    toml = chain(1) + '\n[[nodes]]\nid = "hog"\nclass = "alloc"\nparams = { mb = 300 }\nmemory_max = "100M"\n'
    info = sessions.create(client, toml)
    done = wait_for(client, info.sid, ended, 30)
    assert done.state == "failed" and done.failure.node == "hog"
    reason = done.failure.reason.lower()
    assert "memory" in reason or "oom" in reason, done.failure.reason
    assert noded_units(f"noded-{info.sid}*") == []


def test_node_exiting_zero_unexpectedly_fails_the_session(client: Client, sessions: Sessions) -> None:
    toml = chain(1) + (
        '\n[[nodes]]\nid = "quiet"\nclass = "crash"\nparams = { when = "ready", how = "exit", code = 0 }\n'
    )
    info = sessions.create(client, toml)
    done = wait_for(client, info.sid, ended, 30)
    assert done.state == "failed" and done.failure.node == "quiet"
    assert done.failure.exit_status == 0


def test_daemon_does_not_poll_while_sessions_idle(client: Client, sessions: Sessions) -> None:
    for _ in range(2):
        info = sessions.create(client, chain(3))
        wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    proc = psutil.Process(noded_main_pid())
    before = proc.cpu_times()
    time.sleep(5)
    after = proc.cpu_times()
    used = (after.user + after.system) - (before.user + before.system)
    assert used < 0.05, f"noded used {used:.3f}s of CPU in 5 idle seconds"


def test_unknown_session_and_bad_requests(client: Client) -> None:
    with pytest.raises(RemoteError) as exc:
        client.request("show", sid="nosuch")
    assert exc.value.code == "session_not_found"
    with pytest.raises(BadRequest, match="unknown operation 'frobnicate'"):
        client.request("frobnicate")  # refused before it is sent
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # and by the daemon
        sock.settimeout(30)
        sock.connect(str(client.path))
        sock.sendall(b'{"op": "frobnicate", "id": 9}\n')
        reply = json.loads(sock.makefile("rb").readline())
    assert reply["id"] == 9 and reply["ok"] is False and reply["error"]["code"] == "bad_request"
    assert reply["error"]["message"] == "unknown operation 'frobnicate'" and "attach" in reply["error"]["hint"]
    with pytest.raises(RemoteError) as exc:
        client.request("create", text="nodes = 3", filename="x.toml")
    assert exc.value.code == "invalid_pipeline"


def test_params_reach_the_node_verbatim(client: Client, sessions: Sessions) -> None:
    # "$" and "%" must not be expanded by systemd on the way to the worker.
    message = 'cost $HOME ${USER} 100% %n \\ " done'
    toml = f'[[nodes]]\nid = "echo"\nclass = "fail_setup"\nparams = {{ message = {json.dumps(message)} }}\n'
    info = sessions.create(client, toml)
    done = wait_for(client, info.sid, ended, 30)
    assert done.failure is not None and message in done.failure.reason, done.failure.reason


def test_a_systemd_reload_leaves_running_nodes_loaded_and_stoppable(client: Client, sessions: Sessions) -> None:
    """apt runs ``systemctl daemon-reload`` on nearly every upgrade, and systemd then reads
    every transient unit back from /run/systemd/transient: a node's unit must come back
    loaded (systemd 252 cannot read back an ``ExecStartEx=`` it wrote itself: the unit
    turned "bad-setting", StopUnit no longer reached it, and it ran on after its session
    "stopped"). A reload is no failure: the session stays ready, then stops cleanly."""
    info = sessions.create(client, chain(3))
    ready = wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    pids = [n.main_pid for n in ready.nodes]
    systemctl("daemon-reload", check=True)
    for n in ready.nodes:
        assert systemctl("show", "-P", "LoadState", n.unit).stdout.strip() == "loaded", n.unit
        assert systemctl("show", "-P", "ActiveState", n.unit).stdout.strip() == "active", n.unit
    assert client.request("show", sid=info.sid)["state"] == "ready"
    stopped = client.request("stop", sid=info.sid, wait=True)
    assert stopped["state"] == "stopped"
    assert noded_units(f"noded-{info.sid}*") == []
    assert not any(psutil.pid_exists(p) for p in pids)
