"""Where one hop's time goes: each step of noded's send and receive path, timed alone,
beside the bare iceoryx2 calls it is built on, in one process and one run.

    python benchmarks/hop_breakdown.py [--count N] [--size BYTES] [--json]

A producer endpoint and a consumer endpoint (noded.dataplane.endpoint, the code a worker
and a client run) live in this process on a private iceoryx2 root, next to a bare
publisher/subscriber/notifier/listener built the way benchmarks/raw_iceoryx2.py builds
them. Every step runs ``count`` times and the table gives its median and p95 in ns, so the
steps of one hop add up to the CPU the hop costs in Python, without the wake-up (a
cross-process WaitSet wake-up is the bare floor of benchmarks/hop_latency.py).

What it cannot see: the scheduler (how long a sleeping worker takes to run once
notified), which depends on the machine's load: the load average is printed before and
after. Instruction counts (``valgrind --tool=callgrind``) are steadier on a busy machine;
the medians here are steady enough to rank the steps.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import iceoryx2 as iox
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conditions import loadavg, wait_quiet, warning

from noded.contract.spec import DataPlane, InputSpec, OutputSpec
from noded.contract.wire import HEADER_SIZE, Kind, patch_template, unpack_head
from noded.dataplane import channels
from noded.dataplane.endpoint import Endpoint

_ns = time.perf_counter_ns


def timed(n: int, step: Callable[[], Any], before: Callable[[], Any] | None = None) -> list[int]:
    """ns of ``step()`` ``n`` times; ``before()`` (untimed) sets each run up."""
    out = []
    for _ in range(n):
        if before is not None:
            before()
        t = _ns()
        step()
        out.append(_ns() - t)
    return out


def summary(ns: list[int]) -> dict[str, float]:
    ns = sorted(ns)
    return {"p50": statistics.median(ns), "p95": ns[int(0.95 * (len(ns) - 1))]}


def planes(root: str, prefix: str, size: int) -> tuple[DataPlane, DataPlane]:
    out = OutputSpec(
        port="out", service="a/out", consumers=["b"], consumer_inboxes=["b/inbox"], depth=4, max_payload=size
    )
    inp = InputSpec(source="a.out", service="a/out", producer_inbox="a/inbox", port_index=0, consumer_index=0, depth=4)
    a = DataPlane(root=root, prefix=prefix, inbox="a/inbox", outputs=[out], inputs=[])
    b = DataPlane(root=root, prefix=prefix, inbox="b/inbox", outputs=[], inputs=[inp])
    return a, b


def run(count: int, size: int, loop: str | None = None) -> dict[str, Any]:
    """The table's rows; with ``loop`` ("noded" or "bare") only that hop, ``count`` times
    (for instruction counts: see ``callgrind``)."""
    root = tempfile.mkdtemp(prefix="nwhb", dir="/tmp") + "/"
    prefix = f"nhb{uuid.uuid4().hex[:8]}_"
    res: dict[str, dict[str, float]] = {}
    pa, pb = planes(root, prefix, size)
    a = Endpoint(pa, "a", send_timeout=10.0)
    b = Endpoint(pb, "b", send_timeout=10.0)
    try:
        deadline = time.monotonic() + 10
        while not a.connected or not b.connected or a.in_flight("out") != [0] or not a._by_index[0].hello[0]:
            b.wait(0.01)
            a.wait(0.01)
            if time.monotonic() > deadline:
                raise RuntimeError("endpoints did not connect")
        shape = (size,)
        gc.disable()

        # -- noded, the whole operations -------------------------------------------
        state: dict[str, Any] = {}

        def loan() -> None:
            state["arr"] = a.loan("out", shape, np.uint8)

        def send() -> None:
            a.send("out", state["arr"])

        def receive() -> None:
            state["msg"] = b.receive()

        def release() -> None:
            state["msg"] = None  # Lease.__del__ -> release + credit notify

        def apply_credit() -> None:
            a._apply(a._inbox.take())  # type: ignore[union-attr]

        def hop() -> None:
            arr = a.loan("out", shape, np.uint8)
            arr[0] = 1
            a.send("out", arr)
            b._inbox.take()  # type: ignore[union-attr]
            msg = b.receive()
            assert msg is not None
            del msg, arr
            a._apply(a._inbox.take())  # type: ignore[union-attr]

        for _ in range(50):
            hop()
        if loop == "noded":
            for _ in range(count):
                hop()
            return res
        n_bare = count
        if loop == "bare":
            count = 10  # the same fixed cost in every run: callgrind's difference drops it
        res["noded: whole hop, in one thread (no wake-up)"] = summary(timed(count, hop))
        steps: dict[str, list[int]] = {k: [] for k in ("loan", "send", "take", "receive", "release", "credit")}
        for _ in range(count):
            for name, fn in (
                ("loan", loan), ("send", send), ("take", lambda: b._inbox.take()),  # type: ignore[union-attr]
                ("receive", receive), ("release", release), ("credit", apply_credit),
            ):  # fmt: skip
                t = _ns()
                fn()
                steps[name].append(_ns() - t)
        labels = {
            "loan": "noded: ep.loan (template, out.loan, Loan, array)",
            "send": "noded: ep.send (credit check, header patch, send, notify, stats)",
            "take": "consumer: inbox take (listener try_wait)",
            "receive": "noded: ep.receive (subscriber.receive, Lease, unpack_head, stats, Message)",
            "release": "noded: last ref dropped (Lease.__del__, sample.delete, credit notify)",
            "credit": "producer: inbox take + apply credit",
        }
        for k, v in steps.items():
            res[labels[k]] = summary(v)

        # -- the pieces inside them ------------------------------------------------
        out = a._by_index[0]
        template = a._template(Kind.TENSOR, np.uint8, shape)
        assert template is not None
        tbytes = template[1]
        res["piece: patch_template (header bytes + 2 CRC-free fields + crc32)"] = summary(
            timed(count, lambda: patch_template(tbytes, 0, 7, time.monotonic_ns()))
        )
        res["piece: out.blocking() (credit check)"] = summary(timed(count, out.blocking))
        res["piece: time.monotonic_ns()"] = summary(timed(count, time.monotonic_ns))
        lock = a._lock
        res["piece: lock acquire+release (_Locked)"] = summary(timed(count, lambda: (lock.acquire(), lock.release())))
        notifier = out._notifiers[0]
        ev = channels._EVENT_IDS[channels.EVENT_DATA]
        res["piece: notify (notify_with_custom_event_id)"] = summary(
            timed(count, lambda: notifier.notify_with_custom_event_id(ev))
        )
        b._inbox.take()  # type: ignore[union-attr]
        head = bytes(patch_template(tbytes, 0, 7, 1))
        res["piece: unpack_head (validate 128-byte header)"] = summary(
            timed(count, lambda: unpack_head(head, HEADER_SIZE + size))
        )
        libc = ctypes.CDLL(None, use_errno=True)
        uid, gid = os.geteuid(), os.getegid()

        def fsuid_pair() -> None:  # what as_session_user does around every client call
            og, ou = libc.setfsgid(gid), libc.setfsuid(uid)
            libc.setfsuid(ou)
            libc.setfsgid(og)

        res["piece: setfsuid/setfsgid x2 (client, per call)"] = summary(timed(count, fsuid_pair))

        # -- bare iceoryx2 ---------------------------------------------------------
        node = a._chan.node
        svc = (
            node.service_builder(iox.ServiceName.new("bare/x"))
            .publish_subscribe(iox.Slice[ctypes.c_uint8])
            .payload_alignment(iox.Alignment.new(64))
            .enable_safe_overflow(False)
            .history_size(0)
            .subscriber_max_buffer_size(4)
            .subscriber_max_borrowed_samples(4)
            .open_or_create()
        )
        pub = svc.publisher_builder().initial_max_slice_len(HEADER_SIZE + size).create()
        sub = svc.subscriber_builder().create()
        esvc = node.service_builder(iox.ServiceName.new("bare/e")).event().open_or_create()
        bn = esvc.notifier_builder().create()
        bl = esvc.listener_builder().create()
        bev = iox.EventId.new(0)

        def bare_hop() -> None:
            s = pub.loan_slice_uninit(HEADER_SIZE + size)
            ctypes.memset(s.payload_ptr, 1, 16)
            s.assume_init().send()
            bn.notify_with_custom_event_id(bev)
            bl.try_wait()
            r = sub.receive()
            r.delete()

        for _ in range(50):
            bare_hop()
        if loop == "bare":
            for _ in range(n_bare):
                bare_hop()
            return res
        res["bare: whole hop, in one thread (no wake-up)"] = summary(timed(count, bare_hop))
        bsteps: dict[str, list[int]] = {k: [] for k in ("loan", "send", "notify", "take", "receive", "release")}
        bst: dict[str, Any] = {}
        for _ in range(count):
            t0 = _ns()
            s = pub.loan_slice_uninit(HEADER_SIZE + size)
            t1 = _ns()
            ctypes.memset(s.payload_ptr, 1, 16)
            t2 = _ns()
            s.assume_init().send()
            t3 = _ns()
            bn.notify_with_custom_event_id(bev)
            t4 = _ns()
            bl.try_wait()
            t5 = _ns()
            bst["r"] = sub.receive()
            t6 = _ns()
            bst["r"].delete()
            t7 = _ns()
            for k, d in zip(bsteps, (t1 - t0, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
                bsteps[k].append(d)
        for k, v in bsteps.items():
            res[f"bare: {k}"] = summary(v)
        for obj in (sub, pub, bl, bn):
            obj.delete()
        svc = esvc = node = None  # before the node closes: services outliving it warn
        gc.enable()
    finally:
        gc.enable()
        a.close()
        b.close()
        gc.collect()
        channels.remove_session_resources(root, prefix)
    return res


def callgrind(size: int, loop: str, counts: tuple[int, int] = (200, 1200)) -> float:
    """Instructions per hop of ``loop``: the difference of two runs under valgrind's
    callgrind (which counts instructions, whatever else the machine runs) over the
    difference of their hop counts, so set-up and tear-down cancel out."""
    totals = []
    for n in counts:
        cmd = [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, __file__, "--loop", loop, "--count", str(n), "--size", str(size),
        ]  # fmt: skip
        err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
        found = re.search(r"Collected : (\d+)", err)
        if found is None:
            raise RuntimeError(f"no instruction count from callgrind:\n{err[-2000:]}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / (counts[1] - counts[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--size", type=int, default=1024, help="payload bytes (default 1024)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--loop", choices=["noded", "bare"], help=argparse.SUPPRESS)
    ap.add_argument(
        "--instructions", action="store_true", help="also count instructions per hop under valgrind (slow, steady)"
    )
    ap.add_argument("--wait-quiet", type=float, nargs="?", const=600.0, metavar="SECONDS")
    args = ap.parse_args()
    if args.loop:
        run(args.count, args.size, args.loop)
        return 0
    if args.wait_quiet is not None and not wait_quiet(timeout=args.wait_quiet):
        print(f"the machine did not get quiet in {args.wait_quiet:g} s: running anyway", file=sys.stderr)
    before = loadavg()
    res = run(args.count, args.size)
    instructions = {}
    if args.instructions:
        instructions = {loop: callgrind(args.size, loop) for loop in ("noded", "bare")}
    after = loadavg()
    if args.json:
        out = {"loadavg_before": before, "loadavg_after": after, "steps": res, "instructions_per_hop": instructions}
        print(json.dumps(out, indent=1))
        return 0
    print(f"hop breakdown, {args.size}-byte payload, {args.count} runs per step; "
          f"loadavg before {' '.join(before)}, after {' '.join(after)}")  # fmt: skip
    warn = warning(before, after)
    if warn:
        print(warn)
    print(f"| {'step':<78} | p50 ns | p95 ns |")
    print(f"|{'-' * 80}|-------:|-------:|")
    for k, v in res.items():
        print(f"| {k:<78} | {v['p50']:>6.0f} | {v['p95']:>6.0f} |")
    if instructions:
        n, b = instructions["noded"], instructions["bare"]
        print(f"\ninstructions per hop (callgrind): noded {n:,.0f}, bare {b:,.0f}, ratio {n / b:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
