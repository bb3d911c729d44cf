"""Per-edge overflow in real sessions: an edge that blocks loses nothing, a lossy edge
(overflow = "drop_oldest") never holds its producer back and counts what it dropped."""

from __future__ import annotations

from noded.contract.client import Client, session_info
from noded.contract.protocol import ChannelStats, NodeStats, SessionInfo

from .conftest import Sessions, nodectl, wait_for

COUNT = 100

# One port, two edges: "keep" blocks the source (5 ms a message), "lossy" is 40x slower
# and drops its oldest unread messages instead of holding the source back.
MIXED = f"""
[[nodes]]
id = "src"
class = "source"
params = {{ count = {COUNT}, shape = [1024] }}
[[nodes]]
id = "keep"
class = "slow_sink"
params = {{ ms = 5.0 }}
inputs = [{{ from = "src.out", depth = 2, overflow = "block" }}]
[[nodes]]
id = "lossy"
class = "slow_sink"
params = {{ ms = 200.0 }}
inputs = [{{ from = "src.out", depth = 2, overflow = "drop_oldest" }}]
"""


def figures(info: SessionInfo, node: str) -> NodeStats:
    assert info.stats is not None
    return next(n for n in info.stats.nodes if n.id == node)


def channel(info: SessionInfo, name: str) -> ChannelStats:
    assert info.stats is not None
    return next(c for c in info.stats.channels if c.name == name)


def settled(info: SessionInfo) -> bool:
    """Every message is accounted for: "keep" read them all, "lossy" read or dropped each."""
    if info.stats is None:
        return False
    edge = channel(info, "src.out")
    return (
        figures(info, "keep").messages_in == COUNT
        and len(edge.dropped) == 2
        and figures(info, "lossy").messages_in + edge.dropped[1] == COUNT
    )


def test_block_loses_nothing_and_drop_oldest_counts_its_drops(client: Client, sessions: Sessions) -> None:
    info = sessions.create(client, MIXED)
    sid = info.sid
    wait_for(client, sid, lambda i: i.state == "ready", 60)
    client.request("watch", sid=sid, stats=0.2)
    info = wait_for(client, sid, settled, 90)
    edge = channel(info, "src.out")
    assert edge.consumers == ["keep", "lossy"] and edge.drop_oldest == [False, True]
    assert edge.messages == COUNT
    keep, lossy = figures(info, "keep"), figures(info, "lossy")
    assert keep.messages_in == COUNT and edge.dropped[0] == 0  # block: every message
    # drop_oldest: at 200 ms a message the lossy sink read a fraction; the rest were dropped,
    # and the source was held back only by "keep" (5 ms a message), not by it.
    assert edge.dropped[1] > COUNT // 4, edge.dropped
    assert lossy.messages_in + edge.dropped[1] == COUNT
    assert keep.errors == lossy.errors == 0
    table = nodectl("session", "show", sid).stdout
    assert "DROPPED" in table and f"-/{edge.dropped[1]}" in table, table
    shown = session_info(client.request("show", sid=sid))
    assert shown.stats is not None and channel(shown, "src.out").dropped == edge.dropped
    client.request("stop", sid=sid, wait=True)


def test_a_lossy_edge_alone_never_blocks_its_producer(client: Client, sessions: Sessions) -> None:
    toml = f"""
[[nodes]]
id = "src"
class = "source"
params = {{ count = {COUNT}, shape = [1024] }}
[[nodes]]
id = "lossy"
class = "slow_sink"
params = {{ ms = 100.0 }}
inputs = [{{ from = "src.out", depth = 2, overflow = "drop_oldest" }}]
"""
    info = sessions.create(client, toml)
    sid = info.sid
    wait_for(client, sid, lambda i: i.state == "ready", 60)
    client.request("watch", sid=sid, stats=0.2)

    def done(i: SessionInfo) -> bool:
        if i.stats is None:
            return False
        edge = channel(i, "src.out")
        return bool(edge.dropped) and figures(i, "lossy").messages_in + edge.dropped[0] == COUNT

    # The whole burst goes out while the sink sleeps on its first messages: the source
    # waits only for the sink's hello, never for credits. When it has sent everything,
    # the sink has read a few (a blocking edge of depth 2 would have made it all but all).
    sent = wait_for(client, sid, lambda i: i.stats is not None and channel(i, "src.out").messages == COUNT, 90)
    assert figures(sent, "lossy").messages_in < COUNT // 2, figures(sent, "lossy")
    info = wait_for(client, sid, done, 90)
    edge = channel(info, "src.out")
    assert edge.drop_oldest == [True] and edge.messages == COUNT and edge.dropped[0] > COUNT // 2
    assert not edge.full
    client.request("stop", sid=sid, wait=True)
