"""dora-rs chain, relay: forwards every input on "data" with its metadata (send_output
copies it once into a new sample, as a noded passthrough does), until the end marker,
which it forwards too. Its name (r1, r2, r3) is its argument. Reports its CPU seconds
from its first message to the end."""

import sys

from common import cpu_s, write
from dora import Node


def main() -> None:
    node = Node()
    cpu0, n = None, 0
    for event in node:
        if event["type"] == "STOP":
            break
        if event["type"] != "INPUT":
            continue
        if cpu0 is None:
            cpu0 = cpu_s()
        node.send_output("data", event["value"], event["metadata"])
        if event["metadata"].get("end"):
            break
        n += 1
    write(sys.argv[1], {"cpu_s": cpu_s() - (cpu0 or cpu_s()), "count": n})


if __name__ == "__main__":
    main()
