"""SC-006 soak: session create -> stream -> destroy cycles, watching the daemon's RSS and
open file descriptors for an upward trend, and for leaked units or files.

    NODED_SOAK_CYCLES=200 (default, CI)   cycles measured
    NODED_SOAK_HOURS=8                    measure for that long instead (any fraction)
    NODED_SOAK_REPORT=/var/tmp/soak.json  also write every sample there

First, WARMUP sessions of the same pipeline are created and stopped, so that the ring of
ended sessions the daemon keeps for `session list` (noded.daemon.manager.KEEP_FINISHED) is full
before measuring: it is the one thing meant to grow. Measured in the sandbox: RSS still
rises ~200-300 KB over the first ~100 cycles (in 4 KB steps, the allocator's arenas
settling; warming up with full cycles instead changed little) and is flat after that. Then each cycle: create a 3-node
session, wait until ready, stream MESSAGES messages through it, stop it, and sample
VmRSS and the number of open fds of noded's main process.

The criterion (`trend`): the samples are split in quartiles; the median RSS of the last
quartile may exceed that of the first by at most RSS_TOLERANCE (allocator noise), and the
largest fd count of the last quartile may not exceed that of the first. The least-squares
slope with its 95% confidence interval is reported, and the growth over the run that the
interval's lower bound implies must stay within RSS_TOLERANCE too: a leak of a few hundred
bytes per cycle fails an 8-hour run.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from noded.contract.client import Client
from noded.daemon.manager import KEEP_FINISHED
from noded.dataplane.session import attach

from .conftest import noded_main_pid, wait_for
from .load_support import all_leftovers, env_float, env_int, open_fds, rss_bytes
from .test_dataplane import io_chain

CYCLES = env_int("NODED_SOAK_CYCLES", 200)
HOURS = env_float("NODED_SOAK_HOURS", 0.0)
WARMUP = KEEP_FINISHED
MESSAGES = 10
RSS_TOLERANCE = 2 * 2**20  # bytes
PIPELINE = io_chain(3)


@dataclass(frozen=True)
class Trend:
    n: int
    slope: float  # per cycle
    low: float  # 95% confidence interval of the slope
    high: float
    first: float  # median of the first quartile
    last: float  # median of the last quartile

    def __str__(self) -> str:
        return (
            f"slope {self.slope:+.1f}/cycle (95% CI {self.low:+.1f} .. {self.high:+.1f}), "
            f"median first quartile {self.first:.0f}, last quartile {self.last:.0f}, {self.n} cycles"
        )


def trend(ys: list[float]) -> Trend:
    """Least-squares slope of ``ys`` against the cycle number, with a normal-approximation
    95% interval (fine from ~30 samples), and the medians of the first and last quartile."""
    n = len(ys)
    if n < 8:
        raise ValueError("a trend needs at least 8 samples")
    x = np.arange(n, dtype=float)
    y = np.asarray(ys, dtype=float)
    sxx = float(((x - x.mean()) ** 2).sum())
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / sxx)
    resid = y - (y.mean() + slope * (x - x.mean()))
    se = math.sqrt(float((resid**2).sum()) / (n - 2) / sxx)
    q = n // 4
    return Trend(n, slope, slope - 1.96 * se, slope + 1.96 * se, statistics.median(ys[:q]), statistics.median(ys[-q:]))


def test_trend_sees_a_leak_and_no_leak_in_noise() -> None:
    rng = np.random.default_rng(1)
    noise = list(50e6 + rng.normal(0, 200e3, 200))
    flat = trend(noise)
    assert flat.low <= 0 <= flat.high and abs(flat.last - flat.first) < RSS_TOLERANCE
    leak = trend([v + 20e3 * i for i, v in enumerate(noise)])  # 20 kB per cycle: 4 MB in 200
    assert leak.low > 0 and leak.last - leak.first > RSS_TOLERANCE


def cycle(c: Client, index: int) -> None:
    info = c.request("create", text=PIPELINE, filename=f"soak_{index}.toml", watch=True)
    sid = info["sid"]
    try:
        wait_for(c, sid, lambda i: i.state == "ready", 60)
        with attach(sid) as io:
            feeder = threading.Thread(
                target=lambda: (
                    [io.send("data", np.full(4096, k % 251, np.uint8)) for k in range(MESSAGES)],
                    io.end("data"),
                )
            )
            feeder.start()
            seqs = [m.seq for m in io.messages(timeout=30)]
            feeder.join(30)
        assert seqs == list(range(MESSAGES)), f"cycle {index}: {seqs}"
    finally:
        assert c.request("stop", sid=sid, wait=True)["state"] == "stopped"


def _timeout() -> float:
    return HOURS * 3600 + 900 if HOURS else 120 + 3.0 * (CYCLES + WARMUP)


@pytest.mark.timeout(_timeout())
def test_soak_no_upward_trend_in_rss_or_fds_and_nothing_leaked() -> None:
    pid = noded_main_pid()
    with Client(timeout=60) as c:
        for i in range(WARMUP):
            sid = c.request("create", text=PIPELINE, filename=f"warmup_{i}.toml")["sid"]
            c.request("stop", sid=sid, wait=True)
        samples: list[tuple[float, int, int]] = []
        t0 = time.monotonic()
        end = t0 + HOURS * 3600
        i = 0
        while (time.monotonic() < end) if HOURS else (i < CYCLES):
            cycle(c, i)
            samples.append((time.monotonic() - t0, rss_bytes(pid), open_fds(pid)))
            i += 1
    assert noded_main_pid() == pid, "noded restarted during the soak"
    rss = trend([s[1] for s in samples])
    fds = trend([s[2] for s in samples])
    q = len(samples) // 4
    report = (
        f"SC-006 soak: {len(samples)} cycles in {samples[-1][0]:.0f} s after {WARMUP} warm-up sessions\n"
        f"  RSS (bytes): {rss}\n  open fds: {fds}"
    )
    print(report)
    if os.environ.get("NODED_SOAK_REPORT"):
        with open(os.environ["NODED_SOAK_REPORT"], "w") as f:
            json.dump({"samples": samples, "rss": rss.__dict__, "fds": fds.__dict__}, f)
    assert all_leftovers() == []
    assert rss.last - rss.first <= RSS_TOLERANCE, report
    assert rss.low * len(samples) <= RSS_TOLERANCE, report
    assert max(s[2] for s in samples[-q:]) <= max(s[2] for s in samples[:q]), report
