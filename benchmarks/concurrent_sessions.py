"""SC-004: hop latency with 10 sessions of 3 nodes streaming at once, next to a single
session in the same run, and the degradation factor.

    tests/sandbox run -- /opt/noded/venv/bin/python benchmarks/concurrent_sessions.py [--quick] [--json]

Needs systemd as PID 1 and noded.service (benchmarks/README.md). Each session is
`src` (BenchSource) -> `relay` (LatencyRelay) -> `sink` (LatencySink), from
noded/nodes/testing/bench.py, driven like benchmarks/hop_latency.py: the benchmark
sends `src` a batch command on an external input; `src` sends COUNT messages of SIZE
bytes INTERVAL apart, each written in place in a loan with timestamp_ns taken before the
loan; `relay` records the latency of the hop into it and sends a fresh in-place message
(new timestamp) on; `sink` records the second hop. Both hops of every message are the
"hop latency" samples (one-way, time.monotonic_ns() in the consumer right after it took
msg.array, minus the header's timestamp).

The run: one session alone, then SESSIONS sessions (all created and ready first) streaming
at the same time (each from its own client thread, released together), then one session
alone again. The degradation factor is the concurrent p95 over the p95 of both single
runs pooled. Exit status 1 if any message is lost or damaged.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))

from hop_latency import machine, stats_us, until

from noded.contract.client import Client, session_info
from noded.dataplane.session import attach

BENCH = "noded.nodes.testing.bench"
PIPELINE = f"""name = "concurrent_sessions"
inputs = ["ctl"]
outputs = ["relay.stats", "sink.out"]
[dataplane]
depth = 4
max_payload = "1M"
[[nodes]]
id = "src"
class = "{BENCH}:BenchSource"
inputs = ["input.ctl"]
[[nodes]]
id = "relay"
class = "{BENCH}:LatencyRelay"
inputs = ["src.out"]
[[nodes]]
id = "sink"
class = "{BENCH}:LatencySink"
inputs = ["relay.out"]
"""


def create(c: Client) -> str:
    sid = session_info(c.request("create", text=PIPELINE, filename="concurrent_sessions.toml", watch=True)).sid
    until(c, sid, "ready")
    return sid


def batch(io: Any, tag: str, size: int, count: int, interval: float) -> list[int]:
    """One batch through the session; returns both hops' latencies (ns)."""
    io.send("ctl", {"tag": tag, "mode": "inplace", "size": size, "count": count, "interval": interval})
    summaries: dict[str, Any] = {}
    deadline = time.monotonic() + 120 + count * (interval + 0.01)
    while len(summaries) < 2:
        msg = io.receive(timeout=max(0.0, deadline - time.monotonic()))
        if msg is None:
            raise RuntimeError(f"batch {tag}: summaries missing (got {sorted(summaries)})")
        summaries[msg.source] = msg.json
    for source, s in summaries.items():
        if s["tag"] != tag or s["count"] != count or s["bad"]:
            raise RuntimeError(f"batch {tag} at {source}: {s['count']} of {count} came, {s['bad']} damaged")
    return summaries["relay.stats"]["lat_ns"] + summaries["sink.out"]["lat_ns"]


def stream(
    sid: str, name: str, size: int, count: int, warmup: int, interval: float, start: threading.Barrier | None = None
) -> list[int]:
    with attach(sid) as io:
        batch(io, f"{name}-warmup", size, warmup, interval)
        if start is not None:
            start.wait()
        return batch(io, name, size, count, interval)


def single(size: int, count: int, warmup: int, interval: float, name: str) -> list[int]:
    print(f"... one session alone ({name})", file=sys.stderr, flush=True)
    with Client(timeout=60) as c:
        sid = create(c)
        try:
            return stream(sid, name, size, count, warmup, interval)
        finally:
            c.request("stop", sid=sid, wait=True)


def concurrent(n: int, size: int, count: int, warmup: int, interval: float) -> dict[str, list[int]]:
    print(f"... {n} sessions at once", file=sys.stderr, flush=True)
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    with Client(timeout=60) as c:
        sids = []
        try:
            for _ in range(n):
                sids.append(create(c))
            start = threading.Barrier(n)

            def run(sid: str) -> None:
                try:
                    results[sid] = stream(sid, sid, size, count, warmup, interval, start)
                except BaseException as exc:
                    errors.append(exc)
                    start.abort()

            threads = [threading.Thread(target=run, args=(sid,)) for sid in sids]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            for sid in sids:
                c.request("stop", sid=sid, wait=True)
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} sessions failed: {errors[0]!r}")
    return results


def report(res: dict[str, Any]) -> None:
    m, p = res["machine"], res["params"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"load {' '.join(m['loadavg'])} before, {' '.join(res['loadavg_after'])} after"
    )
    print(
        f"{p['size']} B messages, {p['count']} timed ({p['warmup']} warm-up) per session, "
        f"{p['interval'] * 1e3:g} ms apart; 2 hops per message\n"
    )
    print("| run | sessions | hops | p50 µs | p95 µs | p99 µs | max µs |")
    print("|---|---|---|---|---|---|---|")
    for label, key, n in (
        ("one session alone (before)", "single_before", 1),
        (f"{p['sessions']} sessions at once", "concurrent", p["sessions"]),
        ("one session alone (after)", "single_after", 1),
        ("one session alone (both)", "single", 1),
    ):
        s = res[key]
        print(f"| {label} | {n} | {s['n']} | {s['p50']:.0f} | {s['p95']:.0f} | {s['p99']:.0f} | {s['max']:.0f} |")
    print(f"\nslowest session's p95 among the {p['sessions']}: {res['worst_session_p95']:.0f} µs")
    print(
        f"degradation factor (p95, concurrent / alone): {res['degradation_p95']:.2f}x "
        f"(p50: {res['degradation_p50']:.2f}x)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="100 timed messages per session instead of 400")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--sessions", type=int, default=10, help="sessions at once (default 10)")
    ap.add_argument("--size", type=int, default=64_000, help="message size in bytes (default 64000)")
    ap.add_argument("--interval", type=float, default=0.005, help="seconds between messages (default 0.005)")
    args = ap.parse_args()
    count, warmup = (100, 20) if args.quick else (400, 50)
    res: dict[str, Any] = {
        "machine": machine(),
        "params": {
            "sessions": args.sessions,
            "size": args.size,
            "count": count,
            "warmup": warmup,
            "interval": args.interval,
        },
    }
    before = single(args.size, count, warmup, args.interval, "alone-before")
    per_session = concurrent(args.sessions, args.size, count, warmup, args.interval)
    after = single(args.size, count, warmup, args.interval, "alone-after")
    res["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    res["single_before"], res["single_after"] = stats_us(before), stats_us(after)
    res["single"] = stats_us(before + after)
    res["concurrent"] = stats_us([x for lat in per_session.values() for x in lat])
    res["worst_session_p95"] = max(stats_us(lat)["p95"] for lat in per_session.values())
    res["degradation_p95"] = res["concurrent"]["p95"] / res["single"]["p95"]
    res["degradation_p50"] = res["concurrent"]["p50"] / res["single"]["p50"]
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        report(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
