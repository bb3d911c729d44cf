"""A session's data plane: which iceoryx2 channels each endpoint opens (pure, no I/O).

``plan(pipeline, sid)`` turns a checked ``Pipeline``'s edges into one
``noded.contract.spec.DataPlane`` per node and one for the session's client. The same
pipeline and session id always give the same plan.

Names, all under the session's iceoryx2 ``root`` and ``prefix``:

- inboxes (event services): ``<node>/inbox``; for clients, ``input/<name>/inbox`` for
  whoever feeds an external input and ``client/inbox``, ``client1/inbox`` ... for the
  reader slots of the external outputs (``[dataplane] max_clients`` of them);
- a node's output port (publish-subscribe): ``<node>/<port>``;
- an external input (publish-subscribe, the client publishes): ``input/<name>``.

Only consumed output ports exist: a node's ports are known from the edges that name
them, so a port nobody reads has no service (the node's sends on it go nowhere).

Ordering, which fixes ``port_index`` and ``consumer_index``:

- a node's outputs: by first reference, reading the nodes' inputs in file order, then
  the top-level ``outputs``; the client's outputs: the external inputs as declared;
- a port's consumers: the consuming nodes in file order, then ``client.<node>.<port>``
  when it is an external output;
- an endpoint's inputs: as written (a node's ``inputs``, the top-level ``outputs``).

Depth: every consumer of a port gets the same depth, the largest its consumers' edges
ask for. iceoryx2 sizes a service's subscriber buffers once, for the service, and both
sides must agree on it; the producer keeps at most ``depth`` messages in flight per
consumer, so each consumer's buffer must hold that many. A per-edge depth is therefore
a lower bound: "at least this many messages in flight on this edge". An external
output's edge asks for ``[dataplane].depth``.

Overflow: per edge. A port with a lossy edge (``overflow = "drop_oldest"``) is built
with iceoryx2's safe overflow (a service-wide QoS both sides must agree on), and its
producer never waits for that consumer; its other consumers still block it by credits,
so their buffers never fill and safe overflow never touches them. An external output's
edge blocks.

Payload: a node's outputs are sized for its ``max_payload`` (``[dataplane]``'s unless
the node sets its own); the client's (external inputs) for ``[dataplane].max_payload``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from noded.contract.sessionfiles import session_prefix
from noded.contract.spec import DataPlane, InputSpec, OutputSpec, feeder_inbox, reader_consumer, reader_inbox
from noded.pipeline.schema import CLIENT, EXTERNAL_INPUT, OVERFLOW_BLOCK, OVERFLOW_DROP_OLDEST, Pipeline, PortRef

__all__ = ["DEFAULT_ROOT_BASE", "Topology", "inbox", "plan", "service"]

DEFAULT_ROOT_BASE = "/run/noded/iox2"  # noded.daemon.resources.iox2_base of the default runtime_dir
_SID_RE = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class Topology:
    root: str  # iceoryx2 root path of the session, ending in "/"
    prefix: str  # iceoryx2 prefix of the session
    # One entry per node, in pipeline order; None for a node without inputs or
    # consumed outputs (its worker needs no data plane).
    nodes: dict[str, DataPlane | None]
    # The client's side: producer of the external inputs, consumer of the external
    # outputs; None when the pipeline declares neither.
    client: DataPlane | None


def inbox(endpoint: str) -> str:
    """The inbox event service of a node id, or of CLIENT."""
    return f"{endpoint}/inbox"


def service(ref: PortRef) -> str:
    """The publish-subscribe service of a node's output port or of an external input."""
    return f"{ref.node}/{ref.port}"


def _producer(ref: PortRef) -> str:
    return CLIENT if ref.is_external else ref.node


def plan(pipeline: Pipeline, sid: str, root_base: str = DEFAULT_ROOT_BASE) -> Topology:
    """The data plane of a session of ``pipeline`` (checked by ``noded.pipeline.checks``).

    Raises ValueError for a session id that is not letters and digits, or for edges
    a checked pipeline cannot have (an unknown node, an undeclared external input).
    """
    if _SID_RE.fullmatch(sid) is None:
        raise ValueError(f"{sid!r} is not a session id (letters and digits)")
    # The same root and prefix as noded.daemon.resources creates and cleans up.
    root, prefix = f"{root_base.rstrip('/')}/{sid}/", session_prefix(sid)
    ids = {node.id for node in pipeline.nodes}

    # Every consumed port with its consumers: (consumer id, inbox, depth asked, overflow).
    edges: dict[PortRef, list[tuple[str, str, int, str]]] = {PortRef(EXTERNAL_INPUT, n): [] for n in pipeline.inputs}
    for node in pipeline.nodes:
        for edge in node.inputs:
            if edge.ref not in edges and edge.ref.node not in ids:
                raise ValueError(f"node {node.id!r} reads {edge.ref}, which the pipeline does not have")
            edges.setdefault(edge.ref, []).append((node.id, inbox(node.id), edge.depth, edge.overflow))
    readers: dict[PortRef, int] = {}  # external outputs: their clients' reader slots, consumers last
    for ref in pipeline.outputs:
        if ref.node not in ids:
            raise ValueError(f"external output {ref} names no node of the pipeline")
        readers[ref] = pipeline.dataplane.max_clients
        for slot in range(readers[ref]):
            edges.setdefault(ref, []).append(
                (reader_consumer(slot, str(ref)), reader_inbox(slot), pipeline.dataplane.depth, OVERFLOW_BLOCK)
            )

    # Each producer's outputs, and where each port sits in its producer's list.
    outputs: dict[str, list[OutputSpec]] = {}
    where: dict[PortRef, tuple[int, OutputSpec]] = {}
    for ref, consumers in edges.items():
        if not consumers:
            raise ValueError(f"external input {ref.port!r} is not consumed by any node")
        producer = _producer(ref)
        spec = OutputSpec(
            port=ref.port,
            service=service(ref),
            consumers=[c[0] for c in consumers],
            consumer_inboxes=[c[1] for c in consumers],
            depth=max(c[2] for c in consumers),
            drop_oldest=lossy if any(lossy := [c[3] == OVERFLOW_DROP_OLDEST for c in consumers]) else [],
            max_payload=pipeline.dataplane.max_payload if producer == CLIENT else pipeline.node(producer).max_payload,
            readers=readers.get(ref, 0),
        )
        port_list = outputs.setdefault(producer, [])
        # An external input is fed by its own endpoint (feeder_inbox): its only port.
        where[ref] = (0 if ref.is_external else len(port_list), spec)
        port_list.append(spec)

    def input_spec(ref: PortRef, consumer: str, spin_us: int = 0) -> InputSpec:
        port_index, spec = where[ref]
        return InputSpec(
            source=str(ref),
            service=spec.service,
            producer_inbox=feeder_inbox(spec.service) if ref.is_external else inbox(ref.node),
            port_index=port_index,
            consumer_index=(index := spec.consumers.index(consumer)),
            depth=spec.depth,
            drop_oldest=bool(spec.drop_oldest) and spec.drop_oldest[index],
            safe_overflow=spec.safe_overflow,
            spin_us=spin_us,
            reader_slot=0 if consumer.startswith(f"{CLIENT}.") else -1,
        )

    def dataplane(endpoint: str, inputs: list[InputSpec], readers: int = 0) -> DataPlane | None:
        if not inputs and endpoint not in outputs:
            return None
        return DataPlane(
            root=root,
            prefix=prefix,
            inbox=inbox(endpoint),
            outputs=outputs.get(endpoint, []),
            inputs=inputs,
            verify_payload=pipeline.dataplane.verify_payload,
            readers=readers if inputs else 0,
        )

    nodes = {
        node.id: dataplane(node.id, [input_spec(edge.ref, node.id, edge.spin_us) for edge in node.inputs])
        for node in pipeline.nodes
    }
    # The client's side, as one plane: the external inputs (each fed by its own endpoint,
    # whose inbox is feeder_inbox of its service) and reader slot 0 of every external
    # output (slot k: consumer_index + k, reader_inbox(k); noded.dataplane.session).
    client = dataplane(
        CLIENT,
        [input_spec(ref, reader_consumer(0, str(ref))) for ref in pipeline.outputs],
        pipeline.dataplane.max_clients,
    )
    return Topology(root=root, prefix=prefix, nodes=nodes, client=client)
