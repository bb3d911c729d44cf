"""`nodectl graph SID` on a streaming session: occupancy and a message rate on its edge."""

from __future__ import annotations

import re

from noded.contract.client import Client

from .conftest import Sessions, nodectl, wait_for

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


def test_graph_of_a_running_session_shows_rates(sessions: Sessions) -> None:
    with Client(timeout=60) as c:
        info = sessions.create(c, STREAM)
        wait_for(c, info.sid, lambda i: i.state == "ready", 60)
        res = nodectl("graph", info.sid, "--format", "dot")
        assert res.returncode == 0, res
        edge = next(line for line in res.stdout.splitlines() if '"src" -> "sink"' in line)
        assert re.search(r"\d+/\d+ in flight", edge), edge
        rate = float(re.search(r"([\d.]+) msg/s", edge)[1])  # type: ignore[index]
        assert rate > 1, edge  # the source sends about 100 a second
        assert '"src" [label="src\\nsource\\n' in res.stdout
        c.request("stop", sid=info.sid, wait=True)
