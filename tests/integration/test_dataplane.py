"""Data through real node processes of a real session: integrity, backpressure, failures."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import psutil

from noded.contract.client import Client
from noded.contract.wire import Kind, PixelFormat
from noded.dataplane.endpoint import ConsumerGone
from noded.dataplane.session import SessionIO, request_attach
from noded.errors import Stopped

from .conftest import Sessions, ended, wait_for
from .load_support import env_int


def io_chain(n: int, cls: str = "passthrough", params: str = "{}", depth: int = 4) -> str:
    parts = ['inputs = ["data"]', f'outputs = ["n{n - 1}.out"]', f"[dataplane]\ndepth = {depth}"]
    for i in range(n):
        src = f"n{i - 1}.out" if i else "input.data"
        parts.append(f'[[nodes]]\nid = "n{i}"\nclass = "{cls}"\nparams = {params}\ninputs = ["{src}"]')
    return "\n".join(parts) + "\n"


def start(client: Client, sessions: Sessions, toml: str) -> tuple[str, SessionIO]:
    info = sessions.create(client, toml)
    wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    return info.sid, SessionIO(request_attach(info.sid))


def test_payloads_arrive_bit_identical_through_five_node_processes(client: Client, sessions: Sessions) -> None:
    sid, io = start(client, sessions, io_chain(5))
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(3)]
    audio = [rng.standard_normal((960, 2)).astype(np.float32) for _ in range(5)]  # 20 ms at 48 kHz
    odd = [
        rng.integers(-(2**62), 2**62, (7, 13, 3), dtype=np.int64),
        rng.standard_normal((5, 1, 11)).astype(np.float16),
        np.arange(1, dtype=np.int64).reshape(()),
    ]
    texts = ["grüße, 世界 🎙️", "ünïcödé ½ ∑ ☃", ""]
    sent: list[tuple[Kind, object, dict]] = (
        [(Kind.VIDEO, f, {"pixel_format": PixelFormat.RGB24}) for f in frames]
        + [(Kind.AUDIO, a, {"sample_rate": 48000, "channels": 2}) for a in audio]
        + [(Kind.TENSOR, t, {}) for t in odd]
        + [(Kind.TEXT, t, {}) for t in texts]
    )
    with io:
        feeder = threading.Thread(
            target=lambda: [io.send("data", v, kind=k, **f) for k, v, f in sent] + [io.end("data")]
        )
        feeder.start()
        # Compare each message as it comes and let it go: a consumer that holds on to
        # `depth` messages stops its producer (they are borrowed shared memory).
        seqs = []
        for (kind, value, fields), msg in zip(sent, io.messages(timeout=30)):
            seqs.append(msg.seq)
            assert msg.kind is kind and msg.source == "n4.out"
            if kind is Kind.TEXT:
                assert msg.text == value
                continue
            assert msg.array.dtype == value.dtype and msg.array.shape == value.shape
            assert msg.array.tobytes() == value.tobytes()  # bit-identical
            assert not msg.array.flags.writeable
            for name, want in fields.items():
                assert getattr(msg, name) == want
        del msg
        feeder.join(10)
        assert seqs == list(range(len(sent)))
    client.request("stop", sid=sid, wait=True)


def test_slow_consumer_blocks_the_producer_and_loses_nothing(client: Client, sessions: Sessions) -> None:
    sid, io = start(client, sessions, io_chain(1, "slow_sink", "{ ms = 50.0, forward = true }", depth=2))
    ticks = 0
    stop_ticking = threading.Event()

    def ticker() -> None:  # another thread of the producer keeps running while it waits
        nonlocal ticks
        while not stop_ticking.is_set():
            ticks += 1
            time.sleep(0.001)

    proc = psutil.Process()
    n = 40
    received: list[int] = []
    with io:
        t = threading.Thread(target=ticker)
        t.start()
        reader = threading.Thread(target=lambda: received.extend(m.seq for m in io.messages(timeout=30)))
        reader.start()
        rss = []
        sends = []
        for i in range(n):
            t0 = time.monotonic()
            io.send("data", np.full(4096, i % 251, np.uint8))
            sends.append(time.monotonic() - t0)
            rss.append(proc.memory_info().rss)
        io.end("data")
        reader.join(30)
        stop_ticking.set()
        t.join()
    assert received == list(range(n))  # every message, in order
    assert max(sends[10:]) > 0.02  # the producer waited for the consumer
    assert sum(sends) > 0.05 * (n - 4)  # ~50 ms a message once the buffer is full
    assert ticks >= 0.2 * sum(sends) * 1000  # the other thread ran (~1 tick/ms) while sends waited
    assert rss[-1] - rss[5] < 8 * 2**20  # flat: no growing queue in the producer
    client.request("stop", sid=sid, wait=True)


def test_consumer_killed_while_producer_blocked(client: Client, sessions: Sessions) -> None:
    sid, io = start(client, sessions, io_chain(1, "slow_sink", "{ ms = 2000.0 }", depth=2))
    info = client.request("show", sid=sid)
    pid = info["nodes"][0]["main_pid"]
    outcome: list[BaseException | None] = []

    def produce() -> None:
        try:
            for _ in range(50):
                io.send("data", np.zeros(1024, np.uint8))
            outcome.append(None)
        except (ConsumerGone, Stopped) as exc:
            outcome.append(exc)

    with io:
        producer = threading.Thread(target=produce)
        producer.start()
        time.sleep(0.5)  # the buffer is full now and the producer waits
        assert producer.is_alive()
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        failing = wait_for(client, sid, lambda i: i.failure is not None, 5)
        assert time.monotonic() - t0 < 1.0
        assert failing.failure is not None and failing.failure.node == "n0"
        io.stop()  # what nodectl does when the session fails
        producer.join(2.0)
        assert not producer.is_alive(), "the producer hangs on a dead consumer"
        assert outcome and isinstance(outcome[0], (ConsumerGone, Stopped))
    # Detached (leaving the block): noded, which waits for an attached client before it
    # removes the session's files, ends the session at once.
    t1 = time.monotonic()
    done = wait_for(client, sid, ended, 5)
    assert done.state == "failed" and done.failure.node == "n0"
    assert time.monotonic() - t1 < 1.0


def test_fan_out_and_fan_in(client: Client, sessions: Sessions) -> None:
    toml = """inputs = ["data"]
outputs = ["join.out"]
[[nodes]]
id = "a"
class = "passthrough"
inputs = ["input.data"]
[[nodes]]
id = "b"
class = "passthrough"
inputs = ["input.data"]
[[nodes]]
id = "join"
class = "passthrough"
inputs = ["a.out", "b.out"]
"""
    sid, io = start(client, sessions, toml)
    with io:
        # Send from a thread: one thread that sends more than the pipeline buffers before
        # it reads would wait on itself.
        feeder = threading.Thread(target=lambda: [io.send("data", np.full(16, i, np.int32)) for i in range(10)])
        feeder.start()
        got: list[int] = []
        while len(got) < 20:
            msg = io.receive(timeout=10)
            assert msg is not None, f"only {len(got)} of 20 messages came"
            got.append(int(msg.array[0]))
            del msg
        feeder.join(10)
    assert sorted(got) == sorted(list(range(10)) * 2)  # each input copied to both branches, joined
    client.request("stop", sid=sid, wait=True)


def test_feeding_clients_one_after_another_each_deliver(client: Client, sessions: Sessions) -> None:
    """Clients that attach, feed more than the depth and detach, one after another (as
    successive `nodectl feed --no-end` do): each gets the node's hello and credits, so none
    hangs (before: the node said hello only once, to the first client), and the node
    receives every message."""
    toml = 'inputs = ["data"]\n[dataplane]\ndepth = 4\n'
    toml += '[[nodes]]\nid = "n0"\nclass = "passthrough"\ninputs = ["input.data"]\n'
    info = sessions.create(client, toml)
    wait_for(client, info.sid, lambda i: i.state == "ready", 30)
    rounds, per_round = env_int("NODED_TEST_CLIENT_ROUNDS", 20), 10
    for _ in range(rounds):
        with SessionIO(request_attach(info.sid)) as io:
            io.send_timeout = 20.0  # a hang fails the test instead of waiting for ever
            for i in range(per_round):
                io.send("data", np.full(4, i, dtype=np.int32), kind=Kind.TENSOR)
    deadline = time.monotonic() + 30
    received = None
    while time.monotonic() < deadline:
        shown = client.request("show", sid=info.sid)
        stats = shown.get("stats") or {}
        received = next((n.get("messages_in") for n in stats.get("nodes", []) if n["id"] == "n0"), None)
        if received == rounds * per_round:
            break
        time.sleep(0.5)
    assert received == rounds * per_round, received
