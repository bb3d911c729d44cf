"""A process's live counters in a small shared block: what `nodectl session show` and
`nodectl top` show about a node and its channels, at no cost on the hot path.

The writer (a worker's ``Endpoint`` and ``Loop``) updates int64 slots of a memory-mapped
file with plain stores: no system call, no message, nothing per data message but a few
increments (tens of ns each). The daemon reads the file when asked (``read_stats``): the
page cache is the mapping itself, so it sees the latest stores. Slots are 8-byte aligned,
so a read never sees half a store; counters read one after another may be a message apart,
which readers tolerate (occupancies are clamped).

File: ``<session iox2 root>/<STATS_PREFIX><endpoint>`` (``stats_path``), created by the
worker that owns it, in the one directory its sandbox may write; removed by ``remove``
(and, after a SIGKILL, with the rest of the session's root by the daemon). An endpoint
without a file (a client that may not write there, unit tests) uses anonymous memory:
the same code path, nobody reads it.

Layout (int64 slots, native byte order; little-endian on every machine noded runs on):

    header, HEADER_SLOTS:  MAGIC VERSION PID N_OUT N_IN STATE STATE_SINCE_NS PROCESSED
                           ERRORS BUSY_NS REJECTED UNCONSUMED SERVING_SINCE_NS (3 spare)
    per output, PORT_SLOTS: SENT BYTES BLOCKED_NS BLOCKED_SINCE_NS OPEN (3 spare)
    per input,  PORT_SLOTS: RECEIVED BYTES RELEASED SUBSCRIBED DROPPED (3 spare)
    per input,  HOP_SLOTS:  hop-latency histogram: one count per bucket of HOP_BOUNDS_NS
                            (a message of latency t counts in the first bucket whose bound
                            is >= t; the last bucket is +Inf), then HOP_SUM_NS (2 spare)

The hop latency of a message is the receiver's CLOCK_MONOTONIC when it accepts the message
minus the header's ``sent_ns`` (stamped by the producer's send, after any wait for credits);
messages without ``sent_ns`` are not counted. Bucket counts are not cumulative; their total
is the count (no count slot: one store less per message, and never out of step).

Times are CLOCK_MONOTONIC nanoseconds (``time.monotonic_ns``: one clock for every process
of the machine). ``BLOCKED_SINCE_NS`` is non-zero while a send waits for credits;
``BLOCKED_NS`` sums the waits of every send (two threads waiting on one port at once
both count).

State: ``READY`` once serving; ``PROCESSING`` from the first message of a burst (or while a
source's ``run`` runs) until the loop finds nothing to do and goes to sleep (``IDLE``): back
to back messages are one PROCESSING stretch, so a transition costs two stores per burst,
not per message.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

MAGIC = int.from_bytes(b"NDSTATS1", "little")
VERSION = 1
STATS_PREFIX = "stats_"  # not the session's iceoryx2 prefix: iceoryx2 never looks at it

HEADER_SLOTS = 16
PORT_SLOTS = 8
SLOT = 8
# Upper bounds (ns, inclusive) of the hop-latency buckets; one more bucket is +Inf.
# Part of the block's layout: change them only with VERSION.
HOP_BOUNDS_NS = (
    50_000, 100_000, 150_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    25_000_000, 50_000_000, 100_000_000,
)  # fmt: skip
HOP_BUCKETS = len(HOP_BOUNDS_NS) + 1
HOP_SUM_NS = HOP_BUCKETS  # slot (relative) summing the latencies, ns
HOP_SLOTS = 16
assert HOP_SUM_NS < HOP_SLOTS

# header slots
H_MAGIC, H_VERSION, H_PID, H_N_OUT, H_N_IN, H_STATE, H_STATE_SINCE, H_PROCESSED = range(8)
H_ERRORS, H_BUSY_NS, H_REJECTED, H_UNCONSUMED, H_SERVING_SINCE = range(8, 13)
# output slots (relative)
O_SENT, O_BYTES, O_BLOCKED_NS, O_BLOCKED_SINCE, O_OPEN = range(5)
# input slots (relative)
# DROPPED: messages a lossy edge (overflow = "drop_oldest") lost before this consumer read
# them, counted from the gaps in the producer's seq; always 0 on an edge that blocks.
I_RECEIVED, I_BYTES, I_RELEASED, I_SUBSCRIBED, I_DROPPED = range(5)


class State(IntEnum):
    NONE = 0
    READY = 2
    PROCESSING = 3
    IDLE = 4
    STOPPING = 5


STATE_NAMES = {State.READY: "ready", State.PROCESSING: "processing", State.IDLE: "idle", State.STOPPING: "stopping"}


def stats_path(root: str, endpoint: str) -> Path:
    return Path(root) / f"{STATS_PREFIX}{endpoint}"


def block_size(n_out: int, n_in: int) -> int:
    return (HEADER_SLOTS + PORT_SLOTS * (n_out + n_in) + HOP_SLOTS * n_in) * SLOT


class StatsBlock:
    """The writer's side. ``slots`` is the int64 view to store into; ``out_base(i)`` and
    ``in_base(i)`` give the first slot of output/input ``i`` (add the O_*/I_* offsets),
    ``hop_base(i)`` the first of input ``i``'s hop histogram (add a bucket or HOP_SUM_NS)."""

    def __init__(self, n_out: int, n_in: int, path: Path | None = None) -> None:
        self.n_out, self.n_in = n_out, n_in
        self.path = path
        size = block_size(n_out, n_in)
        if path is None:
            self._mm = mmap.mmap(-1, size)
        else:
            # Write it whole first, then map it: a reader never sees a short file.
            tmp = path.with_name(path.name + ".new")
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.ftruncate(fd, size)
                self._mm = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        self.slots = memoryview(self._mm).cast("q")
        s = self.slots
        s[H_VERSION], s[H_PID], s[H_N_OUT], s[H_N_IN] = VERSION, os.getpid(), n_out, n_in
        s[H_MAGIC] = MAGIC
        self._inode = 0
        if path is not None:
            self._inode = os.stat(tmp).st_ino
            os.replace(tmp, path)

    def out_base(self, index: int) -> int:
        return HEADER_SLOTS + PORT_SLOTS * index

    def in_base(self, index: int) -> int:
        return HEADER_SLOTS + PORT_SLOTS * (self.n_out + index)

    def hop_base(self, index: int) -> int:
        return HEADER_SLOTS + PORT_SLOTS * (self.n_out + self.n_in) + HOP_SLOTS * index

    def set_state(self, state: State, now_ns: int | None = None) -> None:
        s = self.slots
        s[H_STATE_SINCE] = time.monotonic_ns() if now_ns is None else now_ns
        s[H_STATE] = state

    def remove(self) -> None:
        """Remove the file (the daemon stops seeing the counters); the memory stays
        readable here until the block is dropped. Idempotent."""
        path, self.path = self.path, None
        if path is None:
            return
        try:
            if os.stat(path).st_ino == self._inode:  # not another process's newer block
                path.unlink()
        except FileNotFoundError:
            pass


# -- the reader's side ---------------------------------------------------------------


@dataclass(frozen=True)
class OutputCounters:
    sent: int
    bytes: int
    blocked_ns: int  # total, including the wait in progress
    blocked_for_ns: int  # the wait in progress (0: not blocked)
    open: bool


@dataclass(frozen=True)
class InputCounters:
    received: int
    bytes: int
    released: int
    subscribed: bool
    hop_buckets: tuple[int, ...] = ()  # per bucket of HOP_BOUNDS_NS (+Inf last), not cumulative
    hop_sum_ns: int = 0
    dropped: int = 0  # lost on a lossy edge before this consumer read them

    @property
    def hop_count(self) -> int:
        return sum(self.hop_buckets)


@dataclass(frozen=True)
class Snapshot:
    pid: int
    state: str | None  # ready, processing, idle, stopping; None before serving
    state_for_ns: int
    processed: int
    errors: int
    busy_ns: int  # total time in PROCESSING, including the stretch in progress
    rejected: int
    unconsumed: int
    outputs: list[OutputCounters]
    inputs: list[InputCounters]


class StatsFormatError(ValueError):
    """A stats file that is not (or not yet) a complete block of this version."""


def decode(data: bytes, now_ns: int | None = None) -> Snapshot:
    """A snapshot of a block's bytes, as of ``now_ns`` (CLOCK_MONOTONIC)."""
    now = time.monotonic_ns() if now_ns is None else now_ns
    if len(data) < HEADER_SLOTS * SLOT:
        raise StatsFormatError(f"{len(data)} bytes is shorter than a stats header")
    h = struct.unpack_from(f"={HEADER_SLOTS}q", data)
    if h[H_MAGIC] != MAGIC or h[H_VERSION] != VERSION:
        raise StatsFormatError(f"not a noded stats block of version {VERSION}")
    n_out, n_in = h[H_N_OUT], h[H_N_IN]
    if not (0 <= n_out < 4096 and 0 <= n_in < 4096) or len(data) < block_size(n_out, n_in):
        raise StatsFormatError(f"a block of {n_out} outputs and {n_in} inputs does not fit {len(data)} bytes")
    ports = struct.unpack_from(f"={PORT_SLOTS * (n_out + n_in)}q", data, HEADER_SLOTS * SLOT)
    hops = struct.unpack_from(f"={HOP_SLOTS * n_in}q", data, (HEADER_SLOTS + PORT_SLOTS * (n_out + n_in)) * SLOT)
    outputs, inputs = [], []
    for i in range(n_out):
        p = ports[PORT_SLOTS * i : PORT_SLOTS * (i + 1)]
        waiting = max(now - p[O_BLOCKED_SINCE], 0) if p[O_BLOCKED_SINCE] else 0
        outputs.append(OutputCounters(p[O_SENT], p[O_BYTES], p[O_BLOCKED_NS] + waiting, waiting, bool(p[O_OPEN])))
    for j, i in enumerate(range(n_out, n_out + n_in)):
        p = ports[PORT_SLOTS * i : PORT_SLOTS * (i + 1)]
        hop = hops[HOP_SLOTS * j : HOP_SLOTS * (j + 1)]
        inputs.append(
            InputCounters(
                p[I_RECEIVED],
                p[I_BYTES],
                p[I_RELEASED],
                bool(p[I_SUBSCRIBED]),
                tuple(hop[:HOP_BUCKETS]),
                hop[HOP_SUM_NS],
                p[I_DROPPED],
            )
        )
    try:
        state = STATE_NAMES.get(State(h[H_STATE]))
    except ValueError:
        state = None
    since = h[H_STATE_SINCE]
    state_for = max(now - since, 0) if since else 0
    busy = h[H_BUSY_NS] + (state_for if state == "processing" else 0)
    return Snapshot(
        pid=h[H_PID],
        state=state,
        state_for_ns=state_for,
        processed=h[H_PROCESSED],
        errors=h[H_ERRORS],
        busy_ns=busy,
        rejected=h[H_REJECTED],
        unconsumed=h[H_UNCONSUMED],
        outputs=outputs,
        inputs=inputs,
    )


def read_stats(path: Path) -> Snapshot | None:
    """The block at ``path``; None when there is none (not serving yet, or gone)."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return decode(data)
    except StatsFormatError:
        return None
