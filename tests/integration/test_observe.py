"""What `nodectl session show` and `nodectl top` report about real sessions: memory from
systemd, states from the workers' counters, full edges and blocked producers."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from noded.contract.client import Client, session_info
from noded.contract.protocol import ChannelStats, NodeStats, SessionInfo
from noded.dataplane.session import SessionIO, request_attach

from .conftest import Sessions, nodectl, wait_for

MiB = 1 << 20


def figures(info: SessionInfo, node: str) -> NodeStats:
    assert info.stats is not None
    return next(n for n in info.stats.nodes if n.id == node)


def channel(info: SessionInfo, name: str) -> ChannelStats:
    assert info.stats is not None
    return next(c for c in info.stats.channels if c.name == name)


def watch_stats(c: Client, sid: str) -> None:
    c.request("watch", sid=sid, stats=0.2)


def until(c: Client, sid: str, predicate: Callable[[SessionInfo], bool], timeout: float = 60) -> SessionInfo:
    """The first reading (stats event) of the session for which predicate holds."""
    return wait_for(c, sid, lambda i: i.stats is not None and predicate(i), timeout)


def test_a_slow_consumer_shows_its_edge_full_and_its_producer_blocked(client: Client, sessions: Sessions) -> None:
    toml = """
[dataplane]
depth = 2
[[nodes]]
id = "src"
class = "source"
params = { count = 100000, shape = [1024] }
[[nodes]]
id = "sink"
class = "slow_sink"
params = { ms = 400.0 }
inputs = ["src.out"]
"""
    info = sessions.create(client, toml)
    sid = info.sid
    wait_for(client, sid, lambda i: i.state == "ready", 60)
    watch_stats(client, sid)
    # The sink may still be starting its loop when the source has filled the edge: wait for
    # a reading where it has taken a message too.
    info = until(
        client,
        sid,
        lambda i: (
            channel(i, "src.out").full
            and figures(i, "src").blocked_on == ["out"]
            and figures(i, "sink").messages_in >= 1
        ),
    )
    edge = channel(info, "src.out")
    assert edge.occupancy == [2] and edge.depth == 2
    assert (edge.producer, edge.consumers) == ("src", ["sink"])
    assert edge.publishers == 1 and edge.subscribers == 1
    assert edge.blocked_now_seconds > 0 and edge.blocked_seconds >= edge.blocked_now_seconds
    assert edge.messages >= 2 and edge.bytes % 1024 == 0
    assert abs(edge.bytes // 1024 - edge.messages) <= 1  # (two slots, read while the producer may move on)
    assert edge.slice_bytes > 10 * MiB  # the default max payload, sized up front
    src, sink = figures(info, "src"), figures(info, "sink")
    assert src.state == "processing"  # a source is busy in run(), here waiting for credits
    assert sink.messages_in >= 1 and sink.errors == 0

    # The same through nodectl: the JSON, the tables, and top's highlight.
    shown = json.loads(nodectl("--json", "session", "show", sid).stdout)
    assert [c["name"] for c in shown["stats"]["channels"]] == ["src.out"]
    table = nodectl("session", "show", sid).stdout
    assert "FULL" in table and "blocked: out" in table, table
    res = nodectl("top", sid, "--interval", "0.2", "-n", "3", timeout=60)
    assert res.returncode == 0, res.stderr
    assert "blocking: src.out -> sink: full, src blocked for" in res.stdout, res.stdout
    assert "busiest: sink (" in res.stdout  # the slow one: its producers only wait
    assert shown["nodes"][0]["state"] == "processing"  # show gives the worker's state
    res = nodectl("--json", "top", "--interval", "0.2", "-n", "5", timeout=60)  # every session
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert any(e["sid"] == sid and e["stats"] and e["stats"]["channels"][0]["full"] for e in events), events
    client.request("stop", sid=sid, wait=True)


def test_a_node_that_allocates_200_mb_shows_about_200_mb(client: Client, sessions: Sessions) -> None:
    toml = """
[[nodes]]
id = "big"
class = "alloc"
params = { mb = 200 }
memory_max = "1G"
[[nodes]]
id = "small"
class = "sleep"
params = { seconds = 0.0, steps = 1 }
memory_max = "1G"
"""
    info = sessions.create(client, toml)
    wait_for(client, info.sid, lambda i: i.state == "ready", 60)
    shown = session_info(client.request("show", sid=info.sid))
    big, small = figures(shown, "big"), figures(shown, "small")
    assert big.memory_bytes is not None and small.memory_bytes is not None
    assert big.memory_limit == small.memory_limit == 1 << 30
    grown = big.memory_bytes - small.memory_bytes  # the same worker, without the 200 MiB
    assert 190 * MiB <= grown <= 230 * MiB, (big.memory_bytes, small.memory_bytes)
    assert big.memory_bytes >= 200 * MiB
    assert big.cpu_seconds is not None and big.cpu_seconds > 0 and big.cpu_source in ("systemd", "cgroup2")
    assert big.tasks is not None and big.tasks >= 1
    table = nodectl("session", "show", info.sid).stdout
    assert "1.0G" in table and "M" in table
    client.request("stop", sid=info.sid, wait=True)


def test_states_follow_what_the_nodes_do(client: Client, sessions: Sessions) -> None:
    toml = """
inputs = ["data"]
[[nodes]]
id = "loader"
class = "sleep"
params = { seconds = 3.0, steps = 3 }
[[nodes]]
id = "worker"
class = "slow_sink"
params = { ms = 2500.0 }
inputs = ["input.data"]
"""
    info = sessions.create(client, toml)
    sid = info.sid
    shown = session_info(client.request("show", sid=sid))
    assert figures(shown, "loader").state == "initializing"  # 3 s of loading ahead
    loading = session_info(client.request("show", sid=sid))
    assert loading.nodes[0].init_started is not None
    wait_for(client, sid, lambda i: i.state == "ready", 60)
    shown = session_info(client.request("show", sid=sid))
    assert figures(shown, "worker").state == "ready"
    loader = next(n for n in shown.nodes if n.id == "loader")
    assert loader.init_seconds is not None and loader.init_seconds >= 3.0

    watch_stats(client, sid)
    with SessionIO(request_attach(sid)) as io:
        io.send("data", np.zeros(16, np.float32))
        busy = until(client, sid, lambda i: figures(i, "worker").state == "processing")
        assert figures(busy, "worker").messages_in == 1
        done = until(client, sid, lambda i: figures(i, "worker").state == "idle")
    worker = figures(done, "worker")
    assert worker.busy_seconds is not None and worker.busy_seconds >= 2.5  # it slept 2.5 s on the message
    assert worker.errors == 0
    assert figures(done, "loader").state == "ready"  # no data plane: what systemd says
    edge = channel(done, "input.data")
    assert edge.producer == "client:data" and edge.messages == 1 and edge.occupancy == [0]
    client.request("stop", sid=sid, wait=True)


def test_watch_refuses_a_bad_stats_period(client: Client) -> None:
    from noded.contract.client import RemoteError
    from noded.contract.protocol import BadRequest

    for bad in (0.01, 3600, "often"):
        try:
            client.request("watch", stats=bad)
        except (RemoteError, BadRequest) as exc:  # the daemon's range check; the type, already the client's
            assert isinstance(exc, BadRequest if bad == "often" else RemoteError), exc
            assert exc.code == "bad_request" and "stats" in exc.message
        else:
            raise AssertionError(f"stats={bad!r} was accepted")
