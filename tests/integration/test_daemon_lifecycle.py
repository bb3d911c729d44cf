"""The daemon's own life: heartbeats to watchers, and leftovers of an earlier instance."""

from __future__ import annotations

import time

import psutil

from noded.contract.client import Client

from .conftest import Sessions, chain, noded_main_pid, noded_units, systemctl, wait_for


def test_watchers_hear_at_least_every_two_seconds_while_nodes_load(client: Client, sessions: Sessions) -> None:
    # One node loads for 5 s with a single progress step: without heartbeats the
    # watcher would hear nothing for ~5 s.
    toml = '[[nodes]]\nid = "slow"\nclass = "sleep"\nparams = { seconds = 5.0, steps = 1 }\n'
    info = sessions.create(client, toml)
    stamps = [time.monotonic()]
    wait_for(client, info.sid, lambda i: bool(stamps.append(time.monotonic())) or i.state == "ready", 30)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert stamps[-1] - stamps[0] >= 4.5
    assert max(gaps) <= 2.3, gaps


def test_a_new_daemon_stops_what_a_killed_one_left_behind(client: Client, sessions: Sessions) -> None:
    info = sessions.create(client, chain(3))
    ready = wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    pids = [n.main_pid for n in ready.nodes]
    old = noded_main_pid()
    client.close()

    systemctl("kill", "--signal=SIGKILL", "noded.service", check=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # Restart=on-failure brings it back after RestartSec
        pid = noded_main_pid()
        if pid and pid != old and systemctl("is-active", "noded.service").stdout.strip() == "active":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("noded was not restarted")
    # READY=1 comes after the leftovers are cleaned up, so they are gone now.
    assert noded_units(f"noded-{info.sid}*") == []
    assert not any(psutil.pid_exists(p) for p in pids if p)
    log = systemctl("status", "--no-pager", "-n", "20", "noded.service").stdout
    assert "left by an earlier noded" in log
    sessions.created.remove(info.sid)
