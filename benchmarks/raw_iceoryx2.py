"""The floor for hop_latency.py: the same hop with iceoryx2's Python binding and almost no
code of ours, measured in the same run as noded.

Two spawned processes (no systemd, no daemon). The producer, every ``interval`` seconds:
t0, ``loan_slice_uninit``, writes t0 into a 128-byte header template (one
``struct.pack_into``) and the payload's first and last bytes, ``assume_init().send()``,
one ``notify`` (a cached EventId) to the consumer's event service. The consumer sleeps in
a WaitSet (``SignalHandlingMode.Disabled``, as noded's) on its listener, drains it with
``try_wait``, ``receive``s the sample, reads t0 with one ``struct.unpack_from`` and makes a
read-only numpy view of the payload; t1 right after the view.

What it leaves out, against noded: header validation and checksums, loan bookkeeping,
credits (backpressure: depth is 4 and the consumer always keeps up), fan-out, the stop
checks, the node SDK. So noded's hop minus this row is what noded's own Python costs, and
this row is what any Python node on this binding pays on this machine.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import struct
import sys
import tempfile
import time
from typing import Any

import numpy as np

HEADER = 128
_T0 = struct.Struct("<q")
_T0_OFFSET = 68  # where wire.py keeps timestamp_ns


class _View:
    __slots__ = ("__array_interface__", "owner")

    def __init__(self, owner: Any, ptr: int, n: int) -> None:
        self.owner = owner
        self.__array_interface__ = {"data": (ptr, True), "shape": (n,), "typestr": "|u1", "version": 3}


def _node(iox: Any, root: str, name: str) -> Any:
    cfg = iox.config.default()
    cfg.global_cfg.root_path = iox.Path.new(root)
    cfg.global_cfg.prefix = iox.FileName.new("rawhop_")
    return (
        iox.NodeBuilder.new()
        .name(iox.NodeName.new(name))
        .config(cfg)
        .signal_handling_mode(iox.SignalHandlingMode.Disabled)
        .create(iox.ServiceType.Ipc)
    )


def _stream(iox: Any, node: Any, max_len: int) -> Any:
    return (
        node.service_builder(iox.ServiceName.new("raw/stream"))
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


def _event(iox: Any, node: Any) -> Any:
    return node.service_builder(iox.ServiceName.new("raw/event")).event().open_or_create()


def _consumer(root: str, max_len: int, conn: Any) -> None:
    import iceoryx2 as iox

    node = _node(iox, root, "raw-consumer")
    sub = _stream(iox, node, max_len).subscriber_builder().buffer_size(4).create()
    listener = _event(iox, node).listener_builder().create()
    ws = iox.WaitSetBuilder.new().signal_handling_mode(iox.SignalHandlingMode.Disabled).create(iox.ServiceType.Ipc)
    guard = ws.attach_notification(listener)
    timeout = iox.Duration.from_secs_f64(1.0)
    lat: dict[int, list[int]] = {}
    conn.send("ready")
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
            if t0 < 0:  # the end marker
                del arr
                sample.delete()
                conn.send(lat)
                guard.delete()
                ws.delete()
                listener.delete()
                sub.delete()
                return
            if t0 > 0:  # 0: warm-up
                lat.setdefault(n - HEADER, []).append(t1 - t0)
            del arr
            sample.delete()
            sample = sub.receive()


def run_raw(sizes: dict[str, int], count: int, warmup: int, interval: float) -> dict[str, list[int]]:
    """One-way latencies in ns per size label. Leaves no file: the services and nodes are
    dropped, then noded.contract.sessionfiles removes whatever is left under the root and prefix."""
    import iceoryx2 as iox

    from noded.contract.sessionfiles import remove_session_resources

    max_len = HEADER + max(sizes.values())
    with tempfile.TemporaryDirectory(
        prefix="rawhop-", ignore_cleanup_errors=True, dir="/run" if os.access("/run", os.W_OK) else None
    ) as root:
        root += "/"
        node = _node(iox, root, "raw-producer")
        pub = (
            _stream(iox, node, max_len)
            .publisher_builder()
            .initial_max_slice_len(max_len)
            .allocation_strategy(iox.AllocationStrategy.Static)
            .backpressure_strategy(iox.BackpressureStrategy.DiscardData)
            .create()
        )
        notifier = _event(iox, node).notifier_builder().create()
        event = iox.EventId.new(1)
        ctx = mp.get_context("spawn")
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_consumer, args=(root, max_len, theirs), daemon=True)
        proc.start()
        template = bytearray(HEADER)
        try:
            if mine.recv() != "ready":
                raise RuntimeError("the raw iceoryx2 consumer did not start")
            time.sleep(0.2)  # its subscriber is connected
            for label, size in sizes.items():
                print(f"... raw iceoryx2 {label}", file=sys.stderr, flush=True)
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
            time.sleep(interval)
            sample = pub.loan_slice_uninit(HEADER + 1)
            _T0.pack_into(template, _T0_OFFSET, -1)
            ctypes.memmove(sample.payload_ptr, bytes(template), HEADER)
            sample.assume_init().send()
            notifier.notify_with_custom_event_id(event)
            lat = mine.recv()
        finally:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
            notifier.delete()
            pub.delete()
            del node
            remove_session_resources(root, "rawhop_")
    return {label: lat.get(size, []) for label, size in sizes.items()}
