"""dora-rs baseline, receiver node: latency = time.monotonic_ns() once it holds a numpy
view of the payload (to_numpy(zero_copy_only=True)) minus the sender's "t0". Writes
{"size": [latencies in ns, ...]} as JSON to HOP_OUT when the sender says "done"."""

import json
import os
import time

from dora import Node


def main() -> None:
    node = Node()
    lat: dict[str, list[int]] = {}
    for event in node:
        if event["type"] != "INPUT":
            if event["type"] == "STOP":
                break
            continue
        if event["id"] == "done":
            break
        view = event["value"].to_numpy(zero_copy_only=True)
        t1 = time.monotonic_ns()
        meta = event["metadata"]
        assert view[0] == 7 and view[-1] == 7 and view.size == meta["size"]
        if not meta["warm"]:
            lat.setdefault(str(meta["size"]), []).append(t1 - meta["t0"])
    with open(os.environ["HOP_OUT"] + ".tmp", "w") as f:
        json.dump(lat, f)
    os.rename(os.environ["HOP_OUT"] + ".tmp", os.environ["HOP_OUT"])


if __name__ == "__main__":
    main()
