"""The floors for hop_latency.py: the same hop with iceoryx2's Python binding and almost no
code of ours, measured in the same run as noded, three ways.

The producer, every ``interval`` seconds: t0, ``loan_slice_uninit``, writes t0 into a
128-byte header template (one ``struct.pack_into``) and the payload's first and last
bytes, ``assume_init().send()``, one ``notify`` (a cached EventId) to the consumer's event
service. The consumer sleeps in a WaitSet (``SignalHandlingMode.Disabled``, as noded's) on
its listener, drains it with ``try_wait``, ``receive``s the sample, reads t0 with one
``struct.unpack_from`` and makes a read-only numpy view of the payload; t1 right after the
view: one-way latency t1 - t0.

- ``floors`` (what hop_latency.py's matrix uses): each message answered, both figures at
  once, in plain processes or in units.
- ``run_raw``: two plain processes (no systemd, no daemon): the producer is this one.
- ``run_raw_units``: the same code in two transient units started with a node's exact
  service properties (``noded.daemon.units.service_properties``: DynamicUser, the mount
  namespaces, seccomp's system-call filter, the cgroup), except ``Type=exec`` for
  ``Type=notify`` (the bare code sends no READY=1). The difference from ``run_raw`` is
  what the sandbox itself costs a hop.
- ``reply=True`` (either way): a request/reply floor, the way a client waits for a node's
  answer: the consumer answers each message with a 128-byte sample carrying t0 on a
  second service and notifies the producer, which sleeps in its own WaitSet until the
  answer is there; the figure is the round trip t2 - t0, measured by the producer.

What it leaves out, against noded: header validation and checksums, loan bookkeeping,
credits (backpressure: depth is 4 and the consumer always keeps up), fan-out, the stop
checks, the node SDK. So noded's hop minus this row is what noded's own Python costs, and
this row is what any Python node on this binding pays on this machine.

In units the two roles run this very file's source (``python -c``), and meet through
files in the session-like root: the consumer writes ``raw-ready`` once subscribed, each
role writes ``raw-<role>.json`` (its latencies) when done.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing as mp
import os
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HEADER = 128
_T0 = struct.Struct("<q")
_T0_OFFSET = 68  # where wire.py keeps timestamp_ns
PREFIX = "rawhop_"
READY = "raw-ready"
UNIT_TIMEOUT = 60.0  # s for the units to start and the consumer to subscribe


class _View:
    __slots__ = ("__array_interface__", "owner")

    def __init__(self, owner: Any, ptr: int, n: int) -> None:
        self.owner = owner
        self.__array_interface__ = {"data": (ptr, True), "shape": (n,), "typestr": "|u1", "version": 3}


def _node(iox: Any, root: str, prefix: str, name: str) -> Any:
    cfg = iox.config.default()
    cfg.global_cfg.root_path = iox.Path.new(root)
    cfg.global_cfg.prefix = iox.FileName.new(prefix)
    return (
        iox.NodeBuilder.new()
        .name(iox.NodeName.new(name))
        .config(cfg)
        .signal_handling_mode(iox.SignalHandlingMode.Disabled)
        .create(iox.ServiceType.Ipc)
    )


def _stream(iox: Any, node: Any, name: str = "raw/stream") -> Any:
    return (
        node.service_builder(iox.ServiceName.new(name))
        .publish_subscribe(iox.Slice[ctypes.c_uint8])
        .payload_alignment(iox.Alignment.new(64))
        .enable_safe_overflow(False)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(1)
        .subscriber_max_buffer_size(4)
        .subscriber_max_borrowed_samples(4)
        .open_or_create()
    )


def _event(iox: Any, node: Any, name: str = "raw/event") -> Any:
    return node.service_builder(iox.ServiceName.new(name)).event().open_or_create()


def _publisher(iox: Any, service: Any, max_len: int) -> Any:
    return (
        service.publisher_builder()
        .initial_max_slice_len(max_len)
        .allocation_strategy(iox.AllocationStrategy.Static)
        .backpressure_strategy(iox.BackpressureStrategy.DiscardData)
        .create()
    )


def _waitset(iox: Any) -> Any:
    return iox.WaitSetBuilder.new().signal_handling_mode(iox.SignalHandlingMode.Disabled).create(iox.ServiceType.Ipc)


def consumer(root: str, prefix: str, reply: bool) -> dict[int, list[int]]:
    """Receive until the end marker; one-way latencies (ns) per payload size. With
    ``reply``, answer each message (t0 in a 128-byte sample on raw/reply)."""
    import iceoryx2 as iox

    node = _node(iox, root, prefix, "raw-consumer")
    sub = _stream(iox, node).subscriber_builder().buffer_size(4).create()
    listener = _event(iox, node).listener_builder().create()
    answer = notifier = None
    if reply:
        answer = _publisher(iox, _stream(iox, node, "raw/reply"), HEADER)
        notifier = _event(iox, node, "raw/reply-event").notifier_builder().create()
    event = iox.EventId.new(1)
    ws = _waitset(iox)
    guard = ws.attach_notification(listener)
    timeout = iox.Duration.from_secs_f64(1.0)
    lat: dict[int, list[int]] = {}
    Path(root, READY).write_text("")
    try:
        while True:
            ws.wait_and_process_with_timeout(timeout)
            listener.try_wait()
            sample = sub.receive()
            while sample is not None:
                n = sample.header.number_of_elements
                ptr = sample.payload_ptr
                t0 = _T0.unpack_from(ctypes.string_at(ptr + _T0_OFFSET, 8))[0]
                arr = np.asarray(_View(sample, ptr + HEADER, n - HEADER))
                t1 = time.monotonic_ns()
                if answer is not None and t0 >= 0:
                    back = answer.loan_slice_uninit(HEADER)
                    ctypes.memmove(back.payload_ptr, ptr, HEADER)  # its header, t0 included
                    back.assume_init().send()
                    notifier.notify_with_custom_event_id(event)
                del arr
                sample.delete()
                if t0 < 0:  # the end marker
                    return lat
                if t0 > 0:  # 0: warm-up
                    lat.setdefault(n - HEADER, []).append(t1 - t0)
                sample = sub.receive()
    finally:
        guard.delete()
        ws.delete()
        listener.delete()
        sub.delete()
        if answer is not None:
            notifier.delete()
            answer.delete()


def producer(
    root: str, prefix: str, sizes: list[int], count: int, warmup: int, interval: float, reply: bool, wait: float = 30.0
) -> dict[int, list[int]]:
    """Once the consumer is subscribed (its ready file), send each size ``warmup + count``
    times; with ``reply``, wait for each answer and return round trips (ns) per size."""
    import iceoryx2 as iox

    node = _node(iox, root, prefix, "raw-producer")
    max_len = HEADER + max(sizes)
    pub = _publisher(iox, _stream(iox, node), max_len)
    notifier = _event(iox, node).notifier_builder().create()
    event = iox.EventId.new(1)
    answers = listener = ws = guard = None
    if reply:
        answers = _stream(iox, node, "raw/reply").subscriber_builder().buffer_size(4).create()
        listener = _event(iox, node, "raw/reply-event").listener_builder().create()
        ws = _waitset(iox)
        guard = ws.attach_notification(listener)
    timeout = iox.Duration.from_secs_f64(1.0)
    template = bytearray(HEADER)
    rtt: dict[int, list[int]] = {}
    deadline = time.monotonic() + wait
    while not Path(root, READY).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the raw iceoryx2 consumer did not start")
        time.sleep(0.01)
    time.sleep(0.2)  # its subscriber is connected
    try:
        for size in sizes:
            for i in range(warmup + count):
                time.sleep(interval)
                t0 = time.monotonic_ns()
                sample = pub.loan_slice_uninit(HEADER + size)
                ptr = sample.payload_ptr
                _T0.pack_into(template, _T0_OFFSET, t0 if i >= warmup else 0)
                ctypes.memmove(ptr, bytes(template), HEADER)
                ctypes.memset(ptr + HEADER, i % 251, 1)
                ctypes.memset(ptr + HEADER + size - 1, i % 251, 1)
                sample.assume_init().send()
                notifier.notify_with_custom_event_id(event)
                if answers is not None:
                    back = answers.receive()
                    while back is None:
                        ws.wait_and_process_with_timeout(timeout)
                        listener.try_wait()
                        back = answers.receive()
                    t2 = time.monotonic_ns()
                    back.delete()
                    if i >= warmup:
                        rtt.setdefault(size, []).append(t2 - t0)
        time.sleep(interval)
        sample = pub.loan_slice_uninit(HEADER + 1)
        _T0.pack_into(template, _T0_OFFSET, -1)
        ctypes.memmove(sample.payload_ptr, bytes(template), HEADER)
        sample.assume_init().send()
        notifier.notify_with_custom_event_id(event)
        time.sleep(0.2)  # let the consumer take the end marker before the service goes
    finally:
        if answers is not None:
            guard.delete()
            ws.delete()
            listener.delete()
            answers.delete()
        notifier.delete()
        pub.delete()
    return rtt


def _consumer_process(root: str, reply: bool, conn: Any) -> None:
    conn.send(consumer(root, PREFIX, reply))


def _processes(
    sizes: list[int], count: int, warmup: int, interval: float, reply: bool
) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """(the consumer's one-way latencies, the producer's round trips) in plain processes."""
    from noded.contract.sessionfiles import remove_session_resources

    with tempfile.TemporaryDirectory(
        prefix="rawhop-", ignore_cleanup_errors=True, dir="/run" if os.access("/run", os.W_OK) else None
    ) as root:
        root += "/"
        ctx = mp.get_context("spawn")
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_consumer_process, args=(root, reply, theirs), daemon=True)
        proc.start()
        try:
            what = "request/reply" if reply else "one-way"
            print(
                f"... raw iceoryx2, plain processes, {what}, {interval * 1e3:g} ms apart", file=sys.stderr, flush=True
            )
            rtt = producer(root, PREFIX, sizes, count, warmup, interval, reply)
            lat = mine.recv()
        finally:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
            remove_session_resources(root, PREFIX)
    return lat, rtt


def run_raw(
    sizes: dict[str, int], count: int, warmup: int, interval: float, reply: bool = False
) -> dict[str, list[int]]:
    """Two plain processes: one-way latencies (ns) per size label, or with ``reply`` round
    trips. Leaves no file: the services and nodes are dropped, then
    noded.contract.sessionfiles removes whatever is left under the root and prefix."""
    lat, rtt = _processes(list(sizes.values()), count, warmup, interval, reply)
    got = rtt if reply else lat
    return {label: got.get(size, []) for label, size in sizes.items()}


def floors(sizes: dict[str, int], count: int, warmup: int, interval: float, units: bool) -> dict[str, Any]:
    """Both floors of one pacing, each message answered (the producer waits for the answer
    before the next, as a client waits for a node): ``one_way`` (the consumer's t1 - t0)
    and ``rtt`` (the producer's t2 - t0), ns per size label; in plain processes, or in
    units with a node's sandbox (``units``)."""
    run = _units if units else _processes
    lat, rtt = run(list(sizes.values()), count, warmup, interval, True)
    return {
        "one_way": {label: lat.get(size, []) for label, size in sizes.items()},
        "rtt": {label: rtt.get(size, []) for label, size in sizes.items()},
    }


def run_raw_units(
    sizes: dict[str, int], count: int, warmup: int, interval: float, reply: bool = False
) -> dict[str, list[int]]:
    """``run_raw`` in units with a node's sandbox (see ``_units``)."""
    lat, rtt = _units(list(sizes.values()), count, warmup, interval, reply)
    got = rtt if reply else lat
    return {label: got.get(size, []) for label, size in sizes.items()}


def _units(
    sizes: list[int], count: int, warmup: int, interval: float, reply: bool
) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """The same two roles in transient units with a node's service properties, in a slice
    and a session root of their own (as the daemon makes them); needs systemd as PID 1 and
    root. Removes the units, the slice and the root afterwards."""
    import asyncio
    import secrets

    from noded.daemon.config import Config
    from noded.daemon.resources import prepare_session, remove_session
    from noded.daemon.systemd import JobDone, Systemd, UnitGone
    from noded.daemon.units import service_name, service_properties, slice_name, slice_properties

    config, sid = Config(), "r" + secrets.token_hex(4)
    source = Path(__file__).read_text()
    loop = asyncio.new_event_loop()
    jobs: dict[str, str] = {}
    gone: set[str] = set()
    changed = asyncio.Event()

    def on_event(ev: object) -> None:
        if isinstance(ev, JobDone):
            jobs[ev.job] = ev.result
        elif isinstance(ev, UnitGone):
            gone.add(ev.unit)
        changed.set()

    async def until(pred: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not pred():
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), 0.1)
                except TimeoutError:
                    pass

    async def run() -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        root = prepare_session(config.iox2_root, sid)
        from noded.contract.sessionfiles import session_prefix

        prefix = session_prefix(sid)
        args = {
            "consumer": ["consumer", str(root) + "/", prefix, str(int(reply))],
            "producer": [
                "producer", str(root) + "/", prefix, str(int(reply)), ",".join(map(str, sizes)),
                str(count), str(warmup), str(interval),
            ],
        }  # fmt: skip
        units = {role: service_name(sid, f"raw-{role}") for role in args}
        try:
            sd.start_transient(slice_name(sid), slice_properties(sid, "raw-floor"))
            started = []
            for role in ("consumer", "producer"):
                props = service_properties(
                    sid=sid,
                    node_id=f"raw-{role}",
                    node_class="raw_iceoryx2",
                    argv=[sys.executable, "-c", source, *args[role]],
                    config=config,
                    iox2_root=root,
                )
                props = [p for p in props if p[0] not in ("Type", "NotifyAccess")] + [("Type", "s", "exec")]
                started.append(sd.start_transient(units[role], props))
            await until(lambda: all(j in jobs for j in started), UNIT_TIMEOUT)
            results = {role: root / f"raw-{role}.json" for role in args}
            budget = UNIT_TIMEOUT + len(sizes) * (count + warmup) * (interval + 0.05)
            await until(lambda: all(p.exists() for p in results.values()) or units["producer"] in gone, budget)
            await until(lambda: all(p.exists() for p in results.values()), 5.0)
            lat, rtt = (json.loads(results[role].read_text()) for role in ("consumer", "producer"))
            return {int(k): v for k, v in lat.items()}, {int(k): v for k, v in rtt.items()}
        finally:
            sd.stop(slice_name(sid))  # stops the units in it first
            try:
                await until(lambda: gone.issuperset([*units.values(), slice_name(sid)]), 30.0)
            finally:
                for unit in units.values():
                    if unit not in gone:
                        sd.reset_failed(unit)
                remove_session(config.iox2_root, sid)

    what = "request/reply" if reply else "one-way"
    print(f"... raw iceoryx2, in units with a node's sandbox, {what}, {interval * 1e3:g} ms apart", file=sys.stderr)
    sd = Systemd(on_event)
    sd.open(loop)
    try:
        return loop.run_until_complete(run())
    finally:
        sd.close()
        loop.close()


def _unit_main(argv: list[str]) -> None:
    """A role inside a unit: ``consumer ROOT PREFIX REPLY`` or ``producer ROOT PREFIX REPLY
    SIZES COUNT WARMUP INTERVAL``; writes ``raw-<role>.json`` into ROOT."""
    role, root, prefix, reply = argv[0], argv[1], argv[2], argv[3] == "1"
    if role == "consumer":
        got = consumer(root, prefix, reply)
    else:
        sizes = [int(s) for s in argv[4].split(",")]
        got = producer(root, prefix, sizes, int(argv[5]), int(argv[6]), float(argv[7]), reply, wait=UNIT_TIMEOUT)
    tmp = Path(root, f"raw-{role}.json.tmp")
    tmp.write_text(json.dumps({str(k): v for k, v in got.items()}))
    tmp.rename(Path(root, f"raw-{role}.json"))


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in ("consumer", "producer"):
    _unit_main(sys.argv[1:])
