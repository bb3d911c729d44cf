"""What the daemon tells a worker about the node it hosts (``--spec`` on its argv).

``DataPlane`` describes the node's iceoryx2 channels, computed by the daemon from the
pipeline's edges (``noded.pipeline.topology``). The same structs describe a client's side
when it attaches to a session's external inputs and outputs.

Flow control is credit-based: every message on an output must be credited back by
each of that output's consumers once it has released the message; a producer keeps
at most ``depth`` messages in flight per consumer and waits on its inbox otherwise.
Each endpoint (node or client) has one inbox event service: producers notify a
consumer's inbox when they send, consumers notify a producer's inbox when they
release. The exact event-id encoding lives in ``noded.dataplane.channels``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from noded.contract.paths import CLIENT

DEFAULT_DEPTH = 4
DEFAULT_MAX_PAYLOAD = 10 * 1024 * 1024 + 4096  # 10 MB frames and tensors, with room to spare
MAX_CONSUMERS = 16  # per output port
MAX_PORTS = 16  # outputs per endpoint
# Messages in flight per consumer: credits carry a count modulo a window of 64, which
# stays unambiguous up to 31 in flight (noded.dataplane.channels).
MAX_DEPTH = 31
# Readers of an external output attached at once (pipeline [dataplane] max_clients): each
# is a consumer "slot" of that output (noded.dataplane.channels, "reader slots").
DEFAULT_MAX_CLIENTS = 2  # each slot is a subscriber the output's service sets memory aside for
MAX_CLIENTS = 8


def reader_inbox(slot: int) -> str:
    """The inbox of a client's reader slot: ``client/inbox``, ``client1/inbox`` ..."""
    return f"{CLIENT}{slot or ''}/inbox"


def reader_consumer(slot: int, source: str) -> str:
    """The consumer name of reader slot ``slot`` of external output ``source``."""
    return f"{CLIENT}{slot or ''}.{source}"


def feeder_inbox(service: str) -> str:
    """The inbox of whoever feeds the external input published on ``service`` (one
    feeder at a time: its one listener): the consuming nodes credit it."""
    return f"{service}/inbox"


class OutputSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    port: str  # the port name the node sends on ("out", ...)
    service: str  # iceoryx2 publish-subscribe service name
    consumers: list[str]  # who consumes it: node ids, or "client.<name>" for external outputs
    consumer_inboxes: list[str]  # each consumer's inbox event service, aligned with consumers
    depth: int = DEFAULT_DEPTH  # messages in flight per consumer
    max_payload: int = DEFAULT_MAX_PAYLOAD  # payload bytes (header excluded), sized up front
    # The last ``readers`` consumers are clients' reader slots (an external output):
    # optional, at least one attached for a send, every attached one gets every message.
    readers: int = 0
    # Per consumer, aligned with consumers: True for a lossy edge (overflow = "drop_oldest"),
    # whose consumer the producer never waits for; empty: every edge blocks.
    drop_oldest: list[bool] = []

    @property
    def safe_overflow(self) -> bool:
        """iceoryx2's safe overflow for the service: on when any edge of the port is lossy."""
        return any(self.drop_oldest)


class InputSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    source: str  # what the node sees as msg.source: "node.port", or "input.<name>"
    service: str  # the producer's publish-subscribe service
    producer_inbox: str  # where this consumer's credits go
    port_index: int  # the producer's index of that output port
    consumer_index: int  # this consumer's index among that port's consumers
    depth: int = DEFAULT_DEPTH
    drop_oldest: bool = False  # this edge is lossy: its oldest unread message may be dropped
    safe_overflow: bool = False  # the service's QoS (OutputSpec.safe_overflow): both sides must agree
    spin_us: int = 0  # poll this long for the next message before sleeping (the endpoint: its largest)
    reader_slot: int = -1  # a client's reader slot (joins and leaves: noded.dataplane.channels)


class DataPlane(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    root: str  # iceoryx2 root path of the session, e.g. /run/noded/iox2/<sid>/
    prefix: str  # iceoryx2 prefix of the session, e.g. "noded_<sid>_"
    inbox: str  # this endpoint's inbox event service
    outputs: list[OutputSpec] = []
    inputs: list[InputSpec] = []
    verify_payload: bool = False  # write and check a payload checksum on every message
    readers: int = 0  # the client's plane: reader slots of each external output ([dataplane] max_clients)


class WorkerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    session: str
    node: str
    # Fully resolved "package.module:Class" (built-in short names already expanded).
    cls: str
    params: dict[str, Any] = {}
    dataplane: DataPlane | None = None
    # The node's own code folders (pipeline ``code``, a ``file.py:Class``'s folder): put
    # first on sys.path before the class is imported.
    sys_path: list[str] = []


def feeder_plane(plane: DataPlane, spec: OutputSpec) -> DataPlane:
    """The endpoint that feeds one external input: its publisher and its own inbox."""
    return msgspec.structs.replace(plane, inbox=feeder_inbox(spec.service), outputs=[spec], inputs=[], readers=0)


def reader_plane(plane: DataPlane, slot: int) -> DataPlane:
    """The endpoint of reader slot ``slot`` (slot 0's is the daemon's plan; slot k is
    consumer_index + k of each output, with inbox ``reader_inbox(k)``: noded.pipeline.topology).
    Every other field of the plan's inputs is kept as it is."""
    inputs = [
        msgspec.structs.replace(i, consumer_index=i.consumer_index + slot, reader_slot=slot) for i in plane.inputs
    ]
    return msgspec.structs.replace(plane, inbox=reader_inbox(slot), outputs=[], inputs=inputs)


def feeder_stats(port: str) -> str:
    """The name of the stats block of the endpoint feeding external input ``port``."""
    return f"{CLIENT}:{port}"


def reader_stats(slot: int) -> str:
    """The name of the stats block of reader slot ``slot``."""
    return f"{CLIENT}{slot or ''}"


def client_pid_file(root: str, role: str) -> str:
    """Who holds a client role of a session now (its PID): ``feed.<input>`` or ``read.<slot>``."""
    return f"{root.rstrip('/')}/{CLIENT}.{role}.pid"


def client_planes(plane: DataPlane) -> dict[str, DataPlane]:
    """Every endpoint a session's clients may open, by the name of its stats block."""
    planes = {feeder_stats(spec.port): feeder_plane(plane, spec) for spec in plane.outputs}
    if plane.inputs:
        planes.update({reader_stats(k): reader_plane(plane, k) for k in range(max(plane.readers, 1))})
    return planes


def encode_spec(spec: WorkerSpec) -> str:
    return msgspec.json.encode(spec).decode()


def decode_spec(text: str) -> WorkerSpec:
    return msgspec.json.decode(text.encode(), type=WorkerSpec)


def spec_fingerprint() -> str:
    """A digest of the worker spec's schema: a daemon and a worker from another venv (a
    node's ``python``) must agree on it, as on the wire version (noded.daemon.interpreter)."""
    import hashlib

    return hashlib.sha256(msgspec.json.encode(msgspec.json.schema(WorkerSpec))).hexdigest()[:16]
