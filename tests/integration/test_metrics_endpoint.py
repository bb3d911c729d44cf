"""Prometheus scrapes noded: the endpoint that metrics_address turns on."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from noded.contract.client import Client

from .conftest import NODECTL, Sessions, chain, ended, wait_for
from .service_support import free_port, noded_with


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as res:
        assert res.status == 200
        text = res.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_scrape_shows_sessions_nodes_init_times_and_crashes(sessions: Sessions) -> None:
    port = free_port()
    with noded_with({"NODED_METRICS_ADDRESS": f"127.0.0.1:{port}"}):
        before = scrape(port)
        assert not any(name == "noded_sessions" for name, _ in before)  # no pipeline seen yet
        assert [labels for name, labels in before if name == "noded_build_info"][0][1] == ("version", "0.1.0")
        assert not any(name.endswith("_created") for name, _ in before)
        assert not any(name == "noded_max_session_processes" for name, _ in before)  # no limit: no series
        with Client(timeout=60) as c:
            info = sessions.create(c, chain(3))
            p = ("pipeline", info.pipeline)
            wait_for(c, info.sid, lambda i: i.state == "ready", 60)
            up = scrape(port)
            assert up[("noded_sessions", (p, ("state", "ready")))] == 1
            assert up[("noded_nodes", (p, ("state", "ready")))] == 3
            assert up[("noded_node_init_seconds_count", (p,))] == 3
            assert up[("noded_session_ready_seconds_count", (p,))] == 1
            assert up[("noded_sessions_started_total", (p,))] == 1
            # Per-session series are opt-in (metrics_per_session): none by default.
            assert not any(dict(labels).get("session") for _, labels in up)

            crash = '[[nodes]]\nid = "boom"\nclass = "crash"\nparams = { how = "exit", code = 3 }\n'
            bad = sessions.create(c, crash)
            wait_for(c, bad.sid, ended, 60)
            c.request("stop", sid=info.sid, wait=True)
        after = scrape(port)
        q = ("pipeline", bad.pipeline)
        assert after[("noded_node_crashes_total", (q, ("reason", "exit-code")))] == 1
        assert after[("noded_sessions_ended_total", (q, ("state", "failed")))] == 1
        assert after[("noded_sessions_ended_total", (p, ("state", "stopped")))] == 1
        assert after[("noded_sessions", (p, ("state", "ready")))] == 0
        assert after[("noded_nodes", (p, ("state", "ready")))] == 0


FED = """
inputs = ["text"]

[[nodes]]
id = "a"
class = "passthrough"
inputs = ["input.text"]

[[nodes]]
id = "b"
class = "passthrough"
inputs = ["a.out"]
"""


def test_edge_and_node_figures_are_read_at_each_scrape(sessions: Sessions, tmp_path: Path) -> None:
    lines = tmp_path / "in.txt"
    lines.write_text("".join(f"line {i}\n" for i in range(30)))
    port = free_port()
    with noded_with({"NODED_METRICS_ADDRESS": f"127.0.0.1:{port}", "NODED_METRICS_PER_SESSION": "true"}):
        with Client(timeout=60) as c:
            info = sessions.create(c, FED)
            wait_for(c, info.sid, lambda i: i.state == "ready", 60)
            idle = scrape(port)
            fed = subprocess.run(
                [*NODECTL, "feed", info.sid, "text", str(lines)], capture_output=True, text=True, timeout=120
            )
            assert fed.returncode == 0, fed
            # The nodes may still be passing the last lines on: scrape until b has them all.
            deadline = time.monotonic() + 60
            while True:
                busy = scrape(port)
                done = busy.get(
                    (
                        "noded_node_messages_in_total",
                        (("node", "b"), ("pipeline", info.pipeline), ("session", info.sid)),
                    )
                )
                if done == 31 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            c.request("stop", sid=info.sid, wait=True)
        gone = scrape(port)

    def edge(got: dict, name: str, port_name: str, **more: str) -> float:
        labels = {"edge": port_name, "pipeline": info.pipeline, "session": info.sid, **more}
        return got[(name, tuple(sorted(labels.items())))]

    def node(got: dict, name: str, nid: str) -> float:
        return got[(name, (("node", nid), ("pipeline", info.pipeline), ("session", info.sid)))]

    assert edge(idle, "noded_edge_messages_total", "input.text") == 0
    # 30 lines, then END_OF_STREAM: each edge carried all of them, none lost.
    assert edge(busy, "noded_edge_messages_total", "input.text") == 31
    assert edge(busy, "noded_edge_messages_total", "a.out") == 31
    assert edge(busy, "noded_edge_bytes_total", "a.out") == edge(busy, "noded_edge_bytes_total", "input.text") > 0
    assert edge(busy, "noded_edge_blocked_seconds_total", "a.out") >= 0
    assert node(busy, "noded_node_messages_in_total", "b") == 31
    assert node(busy, "noded_node_memory_bytes", "a") > 1_000_000
    assert node(busy, "noded_node_errors_total", "a") == 0
    # Hop latency: every message each edge carried is one sample of its histogram.
    for port_name in ("input.text", "a.out"):
        sent = edge(busy, "noded_edge_messages_total", port_name)
        assert edge(busy, "noded_hop_latency_seconds_count", port_name) == sent == 31
        assert edge(busy, "noded_hop_latency_seconds_bucket", port_name, le="+Inf") == sent
        assert edge(busy, "noded_hop_latency_seconds_sum", port_name) > 0
    assert not any(dict(k[1]).get("session") == info.sid for k in gone)  # an ended session's series go
