"""Data-plane timings: per-hop latency and worker start-up with a data plane.

Latency: a ``source`` worker stamps each message with CLOCK_MONOTONIC (system-wide) just
before ``ctx.send`` of a loan it already filled; the test process receives it (sleeping
in its inbox, as a worker does) and subtracts. "direct" is one hop, producer process to
consumer process; "via passthrough" adds a PassThrough worker, whose hop includes its
one copy of the payload. Messages are 50 ms apart, so nothing queues.

    PYTHONPATH=. python tests/unit/test_dataplane_perf.py [messages]   # prints the numbers

The tests assert what arrives, never how fast (timings belong to benchmarks/, which
compare against a baseline in the same run); run the file to print the numbers.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.unit.dataplane_support import Session, receive

KB, MB = 1024, 1024 * 1024


def latencies_us(size: int, via_passthrough: bool, count: int = 40, interval: float = 0.05) -> list[float]:
    """Microseconds from the source's send to the sink holding the message, per message."""
    session = Session(Path(tempfile.mkdtemp(prefix="dplat")))
    try:
        chain = ["src", "p", "sink"] if via_passthrough else ["src", "sink"]
        planes = session.plan([(f"{a}.out", b) for a, b in zip(chain, chain[1:])], depth=4, max_payload=size)
        sink = session.endpoint("sink", planes["sink"])
        workers = [session.worker("p", "passthrough", planes["p"])] if via_passthrough else []
        params = {"count": count, "shape": [size], "interval": interval}
        workers.append(session.worker("src", "source", planes["src"], params))
        for w in workers:
            w.wait_ready()
        out = []
        for _ in range(count):
            msg = receive(sink)
            out.append((time.monotonic_ns() - msg.timestamp_ns) / 1e3)
            assert msg.array[0] == msg.seq % 251
            del msg
        return out[2:]  # the first ones pay for page faults of fresh samples
    finally:
        session.close()


def time_to_ready(n: int) -> float:
    """Seconds from spawning a chain of ``n`` PassThrough workers to the last READY=1."""
    session = Session(Path(tempfile.mkdtemp(prefix="dpstart")))
    try:
        names = [f"p{i}" for i in range(n)]
        chain = ["src", *names, "sink"]
        planes = session.plan([(f"{a}.out", b) for a, b in zip(chain, chain[1:])])
        t0 = time.monotonic()
        workers = [session.worker(name, "passthrough", planes[name]) for name in names]
        for w in workers:
            w.wait_ready()
        return time.monotonic() - t0
    finally:
        session.close()


def test_one_hop_delivers_every_timed_message_at_any_size() -> None:
    for size in (KB, 10 * MB):
        lat = latencies_us(size, via_passthrough=False, count=25)
        assert len(lat) == 23 and all(x > 0 for x in lat), (size, sorted(lat))


def test_five_workers_with_a_data_plane_all_get_ready() -> None:
    assert time_to_ready(5) > 0  # wait_ready raises (after its timeout) if one does not


def _summary(values: list[float]) -> str:
    v = np.sort(values)
    return f"p50 {np.percentile(v, 50):7.0f}  p95 {np.percentile(v, 95):7.0f}  max {v[-1]:7.0f} us"


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    for via in (False, True):
        for size in (KB, 10 * MB):
            label = f"{size // KB:>6} KB {'via passthrough' if via else 'direct         '}"
            print(label, _summary(latencies_us(size, via, count=n)))
    for k in (1, 5):
        ready = sorted(time_to_ready(k) for _ in range(10))
        print(
            f"{k} worker(s) with a data plane, all READY: min {ready[0] * 1e3:.0f} ms, "
            f"median {statistics.median(ready) * 1e3:.0f} ms, max {ready[-1] * 1e3:.0f} ms"
        )
