"""/dev/shm, where every message of every session lives: how much is free, and what that
means for a session about to start or a node that died of SIGBUS.

iceoryx2 sizes a port's segment for ``depth`` messages of ``max_payload`` up front but
sparse: tmpfs pages are taken when a message is first written there. So a full /dev/shm
does not stop a session from starting; the node that writes the first message it cannot
back gets SIGBUS from the kernel. The daemon refuses a session when /dev/shm cannot hold
even one message of its largest port, and names a full /dev/shm when a node dies of
SIGBUS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from noded.contract.wire import HEADER_SIZE
from noded.errors import LimitError
from noded.pipeline.checks import Pipeline

SHM = "/dev/shm"
HINT = "free shared memory (df -h /dev/shm: other programs' files?), or give the pipeline a smaller max_payload"


@dataclass(frozen=True)
class Space:
    free: int  # bytes available
    size: int  # bytes in all


def space(path: str = SHM) -> Space | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return Space(free=st.f_bavail * st.f_frsize, size=st.f_blocks * st.f_frsize)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def message_bytes(pipeline: Pipeline) -> int:
    """The largest message a node of ``pipeline`` (or its client) may write."""
    payloads = [node.max_payload for node in pipeline.nodes] + [pipeline.dataplane.max_payload]
    return max(payloads) + HEADER_SIZE


def refuse_if_full(pipeline: Pipeline, free: Space | None) -> None:
    """LimitError when /dev/shm cannot hold one message of the pipeline's largest port."""
    if free is None:
        return
    need = message_bytes(pipeline)
    if free.free < need:
        raise LimitError(
            f"/dev/shm is full: {mib(free.free)} of {mib(free.size)} free, and a message of pipeline "
            f"{pipeline.name!r} needs up to {mib(need)} there",
            hint=HINT,
        )
