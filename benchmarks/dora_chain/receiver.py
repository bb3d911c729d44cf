"""dora-rs chain, receiver: counts the data messages, notes the first one's "t0" and when
the last one arrived (after taking a zero-copy numpy view), until the end marker. Reports
that and its CPU seconds from its first message to the end. After every message it
tells the sender how many it got ("ack"), which is the chain's only flow control."""

import time

import pyarrow as pa
from common import cpu_s, write
from dora import Node

ACK_EVERY = 1  # every 4th: dora 1.1 left some messages undelivered (the chain stalled)


def main() -> None:
    node = Node()
    cpu0, n, bad, first_t0, last_ns = None, 0, 0, 0, 0
    for event in node:
        if event["type"] == "STOP":
            break
        if event["type"] != "INPUT":
            continue
        if cpu0 is None:
            cpu0 = cpu_s()
        meta = event["metadata"]
        if meta.get("end"):
            break
        view = event["value"].to_numpy(zero_copy_only=True)
        if not n:
            first_t0 = meta["t0"]
        n += 1
        bad += int(view[0] != view[-1])
        last_ns = time.monotonic_ns()
        if n % ACK_EVERY == 0:
            node.send_output("ack", pa.array([], pa.uint8()), {"n": n})
    write(
        "receiver",
        {"cpu_s": cpu_s() - (cpu0 or cpu_s()), "count": n, "first_t0": first_t0, "last_ns": last_ns, "bad": bad},
    )


if __name__ == "__main__":
    main()
