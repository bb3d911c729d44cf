"""dora-rs chain, sender: THR_COUNT messages of THR_SIZE bytes, as fast as send_output
takes them (each an existing numpy array wrapped by pa.array and copied once into dora's
shared memory, as noded's ctx.send(port, existing_array) copies once), then an end marker
(1 byte, metadata "end") on the same output, so it arrives after the data. Metadata "t0"
is time.monotonic_ns() before the send. dora has no backpressure, so the sender keeps at
most THR_WINDOW messages in flight, counting the receiver's acknowledgements ("ack",
metadata "n": messages received so far). Reports its CPU seconds over the batch."""

import os
import time

import numpy as np
import pyarrow as pa
from common import cpu_s, write
from dora import Node


def main() -> None:
    size, count = int(os.environ["THR_SIZE"]), int(os.environ["THR_COUNT"])
    window = int(os.environ.get("THR_WINDOW", "16"))
    node = Node()
    # The first timer tick comes once dora has started the dataflow (every node subscribed).
    while (event := node.next()) is not None and event["type"] != "INPUT":
        pass
    data = np.full(size, 7, np.uint8)
    time.sleep(1.0)  # the relays' and receiver's first events are slow (lazy imports)
    cpu0 = cpu_s()
    acked = 0
    for sent in range(count):
        while sent - acked >= window:
            event = node.next(timeout=10.0)
            if event is None or event["type"] == "STOP":
                raise SystemExit(f"no acknowledgement after {sent} messages")
            if event["type"] == "INPUT" and event["id"] == "ack":
                acked = max(acked, event["metadata"]["n"])
        node.send_output("data", pa.array(data), {"t0": time.monotonic_ns()})
    node.send_output("data", pa.array(np.zeros(1, np.uint8)), {"end": True})
    write("sender", {"cpu_s": cpu_s() - cpu0, "count": count})


if __name__ == "__main__":
    main()
