"""dora-rs baseline, sender node (run by `dora run`, see benchmarks/hop_latency.py).

For each size in HOP_SIZES: HOP_WARMUP then HOP_COUNT messages, HOP_INTERVAL seconds
apart. The payload is an existing numpy array (made before timing), wrapped as a pyarrow
array and handed to send_output, which copies it once into dora's shared memory (as
`ctx.send(port, array)` does in noded). Metadata "t0" is time.monotonic_ns() taken just
before the wrap and send; "warm" marks warm-up messages.
"""

import os
import time

import numpy as np
import pyarrow as pa
from dora import Node


def main() -> None:
    sizes = [int(s) for s in os.environ["HOP_SIZES"].split(",")]
    count, warmup = int(os.environ["HOP_COUNT"]), int(os.environ["HOP_WARMUP"])
    interval = float(os.environ["HOP_INTERVAL"])
    node = Node()
    # The first timer tick comes once dora has started the dataflow (every node is
    # subscribed): sent earlier, messages are queued and some discarded.
    while (event := node.next()) is not None and event["type"] != "INPUT":
        pass
    for size in sizes:
        data = np.full(size, 7, np.uint8)
        for i in range(warmup + count):
            # After the first message of a size, a pause: the receiver's first event is
            # slow (lazy imports), and the messages queued meanwhile would be discarded.
            time.sleep(0.3 if i == 1 else interval)
            t0 = time.monotonic_ns()
            node.send_output("data", pa.array(data), {"t0": t0, "warm": i < warmup, "size": size})
    time.sleep(0.5)  # "done" takes another path than the data: let the last message land first
    node.send_output("done", pa.array([1], pa.uint8()))


if __name__ == "__main__":
    main()
