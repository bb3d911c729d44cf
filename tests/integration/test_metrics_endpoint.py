"""Prometheus scrapes noded: the endpoint that metrics_address turns on."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from daemon.client import Client

from .conftest import Sessions, chain, ended, wait_for
from .service_support import free_port, noded_with


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as res:
        assert res.status == 200
        text = res.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_scrape_shows_sessions_nodes_init_times_and_crashes(sessions: Sessions) -> None:
    port = free_port()
    with noded_with({"NODED_METRICS_ADDRESS": f"127.0.0.1:{port}"}):
        before = scrape(port)
        assert before[("noded_sessions", (("state", "ready"),))] == 0
        assert before[("noded_info", (("version", "0.1.0"),))] == 1
        assert ("noded_edge_messages_total", ()) not in before
        with Client(timeout=60) as c:
            info = sessions.create(c, chain(3))
            wait_for(c, info.sid, lambda i: i.state == "ready", 60)
            up = scrape(port)
            assert up[("noded_sessions", (("state", "ready"),))] == 1
            assert up[("noded_nodes", (("state", "ready"),))] == 3
            assert up[("noded_node_init_seconds_count", ())] == 3
            assert up[("noded_session_ready_seconds_count", ())] == 1
            assert up[("noded_sessions_created_total", ())] == 1

            crash = '[[nodes]]\nid = "boom"\nclass = "crash"\nparams = { how = "exit", code = 3 }\n'
            bad = sessions.create(c, crash)
            wait_for(c, bad.sid, ended, 60)
            c.request("stop", sid=info.sid, wait=True)
        after = scrape(port)
        assert after[("noded_node_crashes_total", (("reason", "exit-code"),))] == 1
        assert after[("noded_sessions_ended_total", (("state", "failed"),))] == 1
        assert after[("noded_sessions_ended_total", (("state", "stopped"),))] == 1
        assert after[("noded_sessions", (("state", "ready"),))] == 0
        assert after[("noded_nodes", (("state", "ready"),))] == 0
