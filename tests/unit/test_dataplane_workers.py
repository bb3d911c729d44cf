"""The data plane across real processes: ``python -m noded.worker`` workers (no systemd; a
fake NOTIFY_SOCKET) wired by hand-built DataPlanes, driven by endpoints in the test
process. Every worker is stopped by PID; every session must leave nothing behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from noded.contract.exitcodes import ExitCode
from noded.contract.wire import Flags, Header, Kind, PixelFormat
from noded.dataplane import endpoint as dataplane
from noded.dataplane.channels import ConsumerGone
from tests.unit.dataplane_support import (
    Session,
    WorkerProc,
    patch_header_packing,
    receive,
    rss_kb,
)  # fmt: skip

FRAME = (1080, 1920, 3)


def start(session: Session, planes: dict[str, Any], workers: dict[str, tuple[str, dict[str, Any]]]) -> list[WorkerProc]:
    procs = [session.worker(name, cls, planes[name], params) for name, (cls, params) in workers.items()]
    for w in procs:
        w.wait_ready()
    return procs


def payloads() -> list[tuple[Any, dict[str, Any]]]:
    """(value, send kwargs) for every kind of payload the pipelines carry."""
    rng = np.random.default_rng(7)
    t = np.arange(48000, dtype=np.float32) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.cos(2 * np.pi * 523 * t)], axis=1)
    return [
        (rng.integers(0, 256, FRAME, dtype=np.uint8), {"kind": Kind.VIDEO, "pixel_format": PixelFormat.RGB24}),
        (stereo, {"kind": Kind.AUDIO, "sample_rate": 48000, "channels": 2, "timestamp_ns": 10**9}),
        (rng.integers(-(2**63), 2**63 - 1, (3, 5, 7), dtype=np.int64, endpoint=True), {}),
        (rng.standard_normal((1, 17, 3, 11)).astype(np.float16), {"kind": Kind.TENSOR}),
        ("héllo wörld ✓ 你好 🎉 — ñ", {}),
        (rng.integers(0, 256, FRAME, dtype=np.uint8), {"kind": Kind.VIDEO, "flags": Flags.END_OF_STREAM}),
    ]


def as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else np.ascontiguousarray(value).tobytes()


@pytest.mark.parametrize("hops", [3, 5])
def test_bit_identical_through_a_chain_of_workers(session: Session, hops: int) -> None:
    names = [f"p{i}" for i in range(hops)]
    chain = ["src", *names, "sink"]
    planes = session.plan([(f"{a}.out", b) for a, b in zip(chain, chain[1:])], depth=2, max_payload=7 << 20)
    start(session, planes, {n: ("passthrough", {}) for n in names})
    src, sink = session.endpoint("src", planes["src"]), session.endpoint("sink", planes["sink"])
    sent = payloads() * 2
    sender = threading.Thread(target=lambda: [src.send("out", v, **kw) for v, kw in sent])
    sender.start()
    for seq, (value, kw) in enumerate(sent):
        msg = receive(sink)
        assert msg.source == f"{names[-1]}.out" and msg.seq == seq
        assert msg.kind == kw.get("kind", Kind.TEXT if isinstance(value, str) else Kind.TENSOR)
        for field in ("sample_rate", "channels", "pixel_format", "timestamp_ns", "flags"):
            assert getattr(msg, field) == kw.get(field, 0), field
        if isinstance(value, str):
            assert msg.text == value
        else:
            assert (msg.array.dtype, msg.array.shape) == (value.dtype, value.shape)
        assert msg.data.tobytes() == as_bytes(value), seq
        del msg
    sender.join(10)
    assert not sender.is_alive()


def test_fan_out_to_two_consumers_and_fan_in_from_two(session: Session) -> None:
    planes = session.plan(
        [("src.out", "a"), ("src.out", "b"), ("a.out", "sink"), ("b.out", "m"), ("src.side", "m"), ("m.out", "sink")]
    )
    start(session, planes, {"a": ("passthrough", {}), "b": ("passthrough", {}), "m": ("passthrough", {})})
    src, sink = session.endpoint("src", planes["src"]), session.endpoint("sink", planes["sink"])
    n = 40

    def produce() -> None:
        for i in range(n):
            src.send("out", np.full(100, i, np.int32))  # to a and b
            src.send("side", np.full(50, 1000 + i, np.int32))  # straight to m

    sender = threading.Thread(target=produce)
    sender.start()
    got: dict[str, list[int]] = {"a.out": [], "m.out": []}
    merged: list[int] = []
    for _ in range(3 * n):
        msg = receive(sink)
        got[msg.source].append(msg.seq)
        if msg.source == "m.out":
            merged.append(int(msg.array[0]))
        assert (msg.array == msg.array[0]).all()
        del msg
    sender.join(10)
    assert got["a.out"] == list(range(n))  # each consumer gets every message, in order
    assert [v for v in merged if v < 1000] == list(range(n))  # m's two inputs: each in order
    assert [v for v in merged if v >= 1000] == [1000 + i for i in range(n)]
    assert sorted(got["m.out"]) == sorted(list(range(n)) * 2)


def test_backpressure_blocks_the_producer_without_loss_gil_or_growth(session: Session, tmp_path: Path) -> None:
    record = tmp_path / "sink.log"
    planes = session.plan([("src.out", "sink")], depth=2, max_payload=1 << 20)
    start(session, planes, {"sink": ("slow_sink", {"ms": 50.0, "record": str(record)})})
    src = session.endpoint("src", planes["src"])
    ticks: list[float] = []
    done = threading.Event()

    def tick() -> None:  # another thread of the producer: must keep running
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.002)

    ticker = threading.Thread(target=tick)
    ticker.start()
    n, rss = 30, []
    t0 = time.monotonic()
    for i in range(n):
        out = src.loan("out", (1 << 20,), np.uint8)
        out.fill(i)
        src.send("out", out)
        rss.append(rss_kb())
    elapsed = time.monotonic() - t0
    done.set()
    ticker.join()
    assert elapsed > (n - 3) * 0.05  # blocked: at the consumer's pace, not the producer's
    during = np.array([t for t in ticks if t0 + 0.1 < t < t0 + elapsed])
    assert len(during) > 100 and np.diff(during).max() < 0.04, np.diff(during).max()
    assert rss[-1] - rss[5] < 4 * 1024, rss  # KiB: the pool is reused, nothing queues up
    deadline = time.monotonic() + 5
    while len(record.read_text().splitlines()) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line.split() for line in record.read_text().splitlines()]
    assert lines == [["src.out", str(i), str(i)] for i in range(n)]  # all, in order


@pytest.mark.parametrize("mode", ["run", "thread"])
def test_a_killed_consumer_ends_a_blocked_producer_worker(session: Session, mode: str) -> None:
    planes = session.plan([("src.out", "sink")], depth=2)
    sink, src = start(session, planes, {
        "sink": ("slow_sink", {"ms": 10_000.0}), "src": ("source", {"count": 1000, "mode": mode}),
    })  # fmt: skip
    time.sleep(0.5)  # src has sent 2 and waits for credits
    assert src.proc.poll() is None
    session.killed = True
    sink.proc.kill()
    t0 = time.monotonic()
    status = src.proc.wait(5)
    assert time.monotonic() - t0 < 1.0
    assert status == ExitCode.PEER_GONE  # the daemon then blames the consumer
    assert src.statuses()[-1].startswith("error: ConsumerGone: port 'out'")


def test_a_killed_consumer_makes_a_blocked_send_raise(session: Session) -> None:
    planes = session.plan([("src.out", "sink")], depth=1)
    (sink,) = start(session, planes, {"sink": ("slow_sink", {"ms": 10_000.0})})
    src = session.endpoint("src", planes["src"])
    src.send("out", "held for 10 s")
    session.killed = True
    threading.Timer(0.3, sink.proc.kill).start()
    t0 = time.monotonic()
    with pytest.raises(ConsumerGone):
        src.send("out", "never delivered")
    assert 0.25 < time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("blocked", [True, False])
def test_sigterm_stops_a_worker_promptly_even_while_blocked(session: Session, blocked: bool) -> None:
    planes = session.plan([("src.out", "sink")], depth=2)
    if blocked:  # src waits for credits the slow sink gives every 3 s (the teardown waits that long)
        _, w = start(session, planes, {"sink": ("slow_sink", {"ms": 3_000.0}), "src": ("source", {"count": 100})})
    else:  # sink idles in its inbox
        (w,) = start(session, planes, {"sink": ("slow_sink", {"ms": 0.0})})
    time.sleep(0.5)
    t0 = time.monotonic()
    assert session.stop(w) == 0
    assert time.monotonic() - t0 < 0.5
    assert w.statuses()[-1] == "stopping"


def test_malformed_messages_are_rejected_and_the_worker_goes_on(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    planes = session.plan([("src.out", "p"), ("p.out", "sink")], depth=1)
    (p,) = start(session, planes, {"p": ("passthrough", {})})
    src, sink = session.endpoint("src", planes["src"]), session.endpoint("sink", planes["sink"])
    real = dataplane.pack_header_into

    def pack(buf: np.ndarray, header: Header) -> None:
        real(buf, header)
        if header.seq in (1, 2):
            buf[0] ^= 0xFF  # bad magic

    patch_header_packing(monkeypatch, pack)
    # depth 1: a rejected message must be credited for the next one to go out
    sender = threading.Thread(target=lambda: [src.send("out", np.full(64, i, np.uint8)) for i in range(5)])
    sender.start()
    assert [receive(sink).array[0] for _ in range(3)] == [0, 3, 4]
    sender.join(5)
    assert not sender.is_alive()
    assert p.proc.poll() is None
    assert session.stop(p) == 0
    err = p.stderr
    assert "rejected a message from src.out: bad_magic" in err
    assert err.count("rejected a message") == 1  # one log line per burst
    assert "3 messages processed" in err and "'rejected': 2" in err and "'sent': 3" in err


def test_an_exception_in_process_is_logged_and_the_worker_goes_on(session: Session) -> None:
    planes = session.plan([("src.out", "f"), ("f.out", "sink")], depth=2)
    (f,) = start(session, planes, {"f": ("flaky", {"fail_every": 2})})
    src, sink = session.endpoint("src", planes["src"]), session.endpoint("sink", planes["sink"])
    sender = threading.Thread(target=lambda: [src.send("out", f"message {i}") for i in range(10)])
    sender.start()
    assert [receive(sink).text for _ in range(5)] == [f"message {i}" for i in (1, 3, 5, 7, 9)]
    sender.join(5)
    assert f.proc.poll() is None
    assert session.stop(f) == 0
    err = f.stderr
    assert "<3>ERROR noded.worker: process() of node f failed on <Message from src.out TEXT" in err
    assert "<3>RuntimeError: flaky on purpose: seq 0" in err
    assert "10 messages processed, 5 failed in process()" in err
    assert "error" not in "".join(f.statuses())


def test_a_source_worker_feeds_a_client_until_end_of_stream(session: Session) -> None:
    planes = session.plan([("src.out", "sink")], depth=4, max_payload=1 << 20)
    sink = session.endpoint("sink", planes["sink"])
    (src,) = start(session, planes, {"src": ("source", {"count": 50, "shape": [256, 1024], "eos": True})})
    got = []
    while True:
        msg = receive(sink)
        assert (msg.array == msg.seq % 251).all() and msg.array.shape == (256, 1024)
        got.append(msg.seq)
        if msg.end_of_stream:
            break
    assert got == list(range(50))
    assert session.stop(src) == 0
