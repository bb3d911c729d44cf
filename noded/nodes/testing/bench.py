"""Nodes for benchmarks/hop_latency.py: a source that sends what it is told, timed, and a
sink that measures one-way latency and reports it.

``BenchSource`` reads JSON commands on its input (the benchmark sends them on an
external input) and sends one batch per command on "out":
``{"tag": str, "mode": "inplace" | "copy", "size": bytes, "count": n, "interval": s}``.
Each message's header timestamp_ns is ``time.monotonic_ns()`` (CLOCK_MONOTONIC,
comparable across processes) taken

* "inplace": before ``ctx.loan`` (so the loan is timed too); then the payload is written
  in the loan (its first and last bytes: the production of the data itself is the
  producer's work, not the data plane's) and the loan is sent without a copy;
* "copy": before ``ctx.send(port, existing_array)``, which copies the array (made before
  the batch) once into a fresh loan.

A batch ends with a JSON message ``{"end": tag, "send_ns": [...]}``: how long each
``send`` (for "inplace" from t0: loan, write and send) took in the source.

``LatencySink`` records, for each TENSOR message, ``t1 - timestamp_ns`` where t1 is
``time.monotonic_ns()`` right after it took ``msg.array`` (the numpy view), and how long
taking the view took. On the end marker it returns the batch's summary (JSON, on "out").
``EchoSink`` is a LatencySink that answers each message (the client -> node hop), and
``RateSink`` (benchmarks/throughput.py) only counts what arrives and when.
All of them keep their records in arrays allocated once, so that they do not grow per
message (the benchmark watches their RSS).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from noded.contract.wire import Kind
from noded.node import Context, Node

CAPACITY = 1 << 15  # messages recorded per batch; a longer batch keeps the first ones


class BenchSource(Node):
    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        self.send_ns = np.zeros(CAPACITY, np.int64)
        self.arrays: dict[int, np.ndarray] = {}

    def process(self, msg: Any) -> Any:
        cmd = msg.json
        ctx, port, size, mode = self.ctx, "out", int(cmd["size"]), cmd["mode"]
        count, interval = int(cmd["count"]), float(cmd.get("interval", 0.0))
        if mode == "copy" and size not in self.arrays:
            self.arrays = {size: np.full(size, 7, np.uint8)}  # made (and paged in) once, untimed
        existing = self.arrays.get(size)
        now = time.monotonic_ns
        for i in range(count):
            if interval and ctx.stopping.wait(interval):
                return None
            if mode == "inplace":
                t0 = now()
                arr = ctx.loan(port, (size,), np.uint8, timestamp_ns=t0)
                arr[0] = arr[-1] = i % 251
                ctx.send(port, arr)
            else:
                t0 = now()
                ctx.send(port, existing, timestamp_ns=t0)
            if i < CAPACITY:
                self.send_ns[i] = now() - t0
        return {"end": cmd["tag"], "send_ns": self.send_ns[: min(count, CAPACITY)].tolist()}


class LatencySink(Node):
    def setup(self, ctx: Context) -> None:
        self.lat = np.zeros(CAPACITY, np.int64)
        self.view = np.zeros(CAPACITY, np.int64)
        self.n = 0
        self.bad = 0

    def process(self, msg: Any) -> Any:
        if msg.kind is Kind.TENSOR:
            t = time.monotonic_ns()
            a = msg.array
            t1 = time.monotonic_ns()
            if self.n < CAPACITY:
                self.lat[self.n] = t1 - msg.header.timestamp_ns
                self.view[self.n] = t1 - t
            self.n += 1
            self.bad += a[0] != a[-1]  # untimed check that the payload is what was written
            return None
        end = msg.json
        k = min(self.n, CAPACITY)
        summary = {
            "tag": end["end"],
            "count": self.n,
            "bad": int(self.bad),
            "lat_ns": self.lat[:k].tolist(),
            "view_ns": self.view[:k].tolist(),
            "send_ns": end["send_ns"],
        }
        self.n = self.bad = 0
        return summary


class LatencyRelay(LatencySink):
    """The middle of a 3-node chain (benchmarks/concurrent_sessions.py): records each
    TENSOR message's latency like ``LatencySink`` (the hop into it), then sends a fresh
    in-place message of the same size on "out" with a new timestamp_ns, taken before the
    loan (the hop out of it is measured downstream). On the end marker it forwards the
    marker on "out" and returns its own summary on "stats"."""

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.ctx = ctx

    def process(self, msg: Any) -> Any:
        if msg.kind is not Kind.TENSOR:
            summary = super().process(msg)
            self.ctx.send("out", msg)
            return ("stats", summary)
        super().process(msg)
        a = msg.array
        t0 = time.monotonic_ns()
        out = self.ctx.loan("out", a.shape, np.uint8, timestamp_ns=t0)
        out[0], out[-1] = a[0], a[-1]
        self.ctx.send("out", out)
        return None


class RateSink(Node):
    """The end of benchmarks/throughput.py's chain: counts TENSOR messages and notes the
    first one's ``timestamp_ns`` (the source's clock before it sent it) and when the last
    one arrived; on the end marker it returns ``{"tag", "count", "first_t0", "last_ns",
    "bad"}`` on "out". Nothing is kept per message."""

    def setup(self, ctx: Context) -> None:
        self.n = self.bad = self.first_t0 = self.last_ns = 0

    def process(self, msg: Any) -> Any:
        if msg.kind is Kind.TENSOR:
            if not self.n:
                self.first_t0 = msg.header.timestamp_ns
            self.n += 1
            a = msg.array
            self.bad += a[0] != a[-1]
            self.last_ns = time.monotonic_ns()
            return None
        summary = {
            "tag": msg.json["end"], "count": self.n, "first_t0": self.first_t0, "last_ns": self.last_ns,
            "bad": int(self.bad),
        }  # fmt: skip
        self.n = self.bad = self.first_t0 = self.last_ns = 0
        return summary


class EchoSink(LatencySink):
    """``LatencySink`` that also answers each TENSOR message at once with a 1-byte TENSOR on
    "out" (benchmarks/hop_latency.py's client -> node hop: the client waits for the answer
    before its next message, as the raw floor's producer does, and times the round trip)."""

    _ANSWER = np.zeros(1, np.uint8)

    def process(self, msg: Any) -> Any:
        summary = super().process(msg)
        return self._ANSWER if msg.kind is Kind.TENSOR else summary
