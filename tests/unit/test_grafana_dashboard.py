"""packaging/grafana-dashboard.json: every query names a metric the daemon exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from noded.contract.protocol import NodeInfo, SessionInfo
from noded.daemon.metrics import EdgeStats, HopLatency, Metrics, NodeFigures

DASHBOARD = Path(__file__).resolve().parents[2] / "packaging" / "grafana-dashboard.json"


def exported_names() -> set[str]:
    m = Metrics(max_session_processes=4, per_session=True)
    node = NodeInfo(id="x", cls="passthrough", unit="u", state="ready", since=0.0, init_seconds=0.1)
    m.on_session(
        SessionInfo(sid="a", pipeline="p", state="ready", created=0.0, slice="s", nodes=[node], ready_seconds=0.2)
    )
    m.update_edges("a", [EdgeStats(edge="x.out", messages=1, bytes=1, blocked_seconds=0.0)])
    m.update_hop_latency("a", [HopLatency(edge="x.out", sum_seconds=0.001, buckets=((float("inf"), 1),))])
    m.update_nodes(
        "a", [NodeFigures(node="x", memory_bytes=1, cpu_seconds=1.0, messages_in=1, messages_out=1, errors=0)]
    )
    return {s.name for f in text_string_to_metric_families(m.text().decode()) for s in f.samples}


def test_every_query_names_an_exported_family() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = exported_names()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = set()
    for expr in exprs:
        metrics = set(re.findall(r"\b(noded_[a-z0-9_]+)", expr))
        assert metrics, expr
        missing = metrics - names
        assert not missing, (expr, missing)
        used |= metrics
    # The dashboard covers sessions, nodes, crashes, start-up, edges and hop latency.
    for family in ("noded_sessions", "noded_node_crashes_total", "noded_hop_latency_seconds_bucket"):
        assert family in used
