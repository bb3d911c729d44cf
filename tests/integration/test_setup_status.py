"""SC-002: while models load, the client gets a status at least every 2 s, even from a
node whose setup says nothing for longer (one long load call): its worker repeats its
last status with the seconds since setup began (noded.worker.notify's heartbeat), and the
daemon passes each change on to the clients following the session."""

from __future__ import annotations

import time

import noded
from noded.contract.protocol import SessionInfo
from noded.contract.states import SessionState

PIPELINE = """
[[nodes]]
id = "whisper"
class = "sleep"
params = { seconds = 5.0, steps = 1, label = "loading" }

[[nodes]]
id = "llm"
class = "sleep"
params = { seconds = 4.0, steps = 1, label = "loading" }
"""


def test_a_silent_setup_still_shows_progress_at_least_every_2_s() -> None:
    seen: list[tuple[float, SessionInfo]] = []
    with noded.connect() as nd:
        t0 = time.monotonic()
        with nd.create(PIPELINE, on_progress=lambda info: seen.append((time.monotonic(), info)), timeout=60) as s:
            ready = time.monotonic()
            assert s.state is SessionState.READY
    assert ready - t0 >= 5.0
    times = [t0] + [t for t, _ in seen] + [ready]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) <= 2.0, gaps
    texts = {n.status_text for _, info in seen for n in info.nodes}
    assert any("(3 s)" in t or "(4 s)" in t for t in texts), texts
