"""The data plane a session's endpoints are told about, computed from pipeline edges."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noded.contract.spec import (
    DEFAULT_DEPTH,
    DEFAULT_MAX_PAYLOAD,
    MAX_CONSUMERS,
    MAX_PORTS,
    DataPlane,
    InputSpec,
    OutputSpec,
    WorkerSpec,
    decode_spec,
    encode_spec,
    reader_consumer,
)
from noded.daemon.resources import iox2_base, session_prefix, session_root
from noded.dataplane.session import feeder_plane, reader_plane
from noded.pipeline.checks import InputRef, Pipeline, PortRef, load_pipeline, parse_pipeline
from noded.pipeline.topology import Topology, plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SID = "ab12cd34"
ROOT = f"/run/noded/iox2/{SID}/"
PREFIX = f"noded_{SID}_"


def parse(text: str) -> Pipeline:
    return parse_pipeline(textwrap.dedent(text), "p.toml")


def node(id: str, *inputs: str | dict[str, object], **keys: str) -> str:
    """A [[nodes]] table of a passthrough node; ``keys`` are TOML values as written."""
    edges = ", ".join(
        json.dumps(i) if isinstance(i, str) else "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in i.items()) + " }"
        for i in inputs
    )
    lines = ["[[nodes]]", f'id = "{id}"', 'class = "passthrough"', f"inputs = [{edges}]"]
    return "\n".join([*lines, *(f"{k} = {v}" for k, v in keys.items())]) + "\n"


def planned(text: str, sid: str = SID) -> Topology:
    topology = plan(parse(text), sid)
    check_consistent(parse(text), topology)
    return topology


def check_consistent(pipeline: Pipeline, topology: Topology) -> None:
    """What every plan must satisfy, whatever the pipeline."""
    assert list(topology.nodes) == [n.id for n in pipeline.nodes]
    endpoints = {k: v for k, v in topology.nodes.items() if v is not None}
    if topology.client is not None:  # a client's endpoints: a feeder per input, a reader per slot
        assert topology.client.readers == (pipeline.dataplane.max_clients if pipeline.outputs else 0)
        for out in topology.client.outputs:
            endpoints[out.service] = feeder_plane(topology.client, out)
        for slot in range(topology.client.readers):
            endpoints[f"client{slot or ''}"] = reader_plane(topology.client, slot)
    services = [o.service for dp in endpoints.values() for o in dp.outputs]
    assert len(services) == len(set(services)), "one publisher per service"
    for name, dp in endpoints.items():
        assert (dp.root, dp.prefix, dp.inbox) == (topology.root, topology.prefix, f"{name}/inbox")
        assert dp.verify_payload is pipeline.dataplane.verify_payload
        assert dp.inputs or dp.outputs
        assert len(dp.outputs) <= MAX_PORTS
        for out in dp.outputs:
            assert 1 <= len(out.consumers) <= MAX_CONSUMERS
            assert len(out.consumers) == len(set(out.consumers)) == len(out.consumer_inboxes)
            for consumer, consumer_inbox in zip(out.consumers, out.consumer_inboxes):
                endpoint = consumer.partition(".")[0]  # a reader slot: "client<k>.<output>"
                assert consumer_inbox == f"{endpoint}/inbox"
                assert sum(i.service == out.service for i in endpoints[endpoint].inputs) == 1
        for inp in dp.inputs:
            producer = endpoints[inp.producer_inbox.removesuffix("/inbox")]
            out = producer.outputs[inp.port_index]
            assert out.service == inp.service
            want = reader_consumer(inp.reader_slot, inp.source) if inp.reader_slot >= 0 else name
            assert out.consumers[inp.consumer_index] == want
            assert out.consumer_inboxes[inp.consumer_index] == dp.inbox
            assert inp.depth == out.depth
    for spec in pipeline.nodes:
        dp = topology.nodes[spec.id]
        assert [i.source for i in (dp.inputs if dp else [])] == [str(i) for i in spec.inputs]
        for out in dp.outputs if dp else []:
            assert out.max_payload == spec.max_payload
            edges = [i.depth for n in pipeline.nodes for i in n.inputs if i.ref == PortRef(spec.id, out.port)]
            if PortRef(spec.id, out.port) in pipeline.outputs:
                edges.append(pipeline.dataplane.depth)
            assert out.depth == max(edges)
    client = topology.client
    assert (client is None) == (not pipeline.inputs and not pipeline.outputs)
    if client is not None:
        assert [o.service for o in client.outputs] == [f"input/{name}" for name in pipeline.inputs]
        assert [i.source for i in client.inputs] == [str(ref) for ref in pipeline.outputs]
        assert all(o.max_payload == pipeline.dataplane.max_payload for o in client.outputs)


# -- names and shapes ---------------------------------------------------------------


def test_chain_io_example() -> None:
    pipeline = load_pipeline(EXAMPLES / "chain_io.toml")
    topology = plan(pipeline, SID)
    check_consistent(pipeline, topology)
    assert (topology.root, topology.prefix) == (ROOT, PREFIX)
    common = {"root": ROOT, "prefix": PREFIX, "verify_payload": False}
    assert topology.client == DataPlane(
        inbox="client/inbox",
        outputs=[OutputSpec("audio", "input/audio", ["stage1"], ["stage1/inbox"], 4, 1 << 20)],
        inputs=[InputSpec("stage3.out", "stage3/out", "stage3/inbox", 0, 0, 4, reader_slot=0)],
        readers=2,
        **common,
    )
    assert topology.nodes == {
        "stage1": DataPlane(
            inbox="stage1/inbox",
            outputs=[OutputSpec("out", "stage1/out", ["stage2"], ["stage2/inbox"], 8, 1 << 20)],
            inputs=[InputSpec("input.audio", "input/audio", "input/audio/inbox", 0, 0, 4)],
            **common,
        ),
        "stage2": DataPlane(
            inbox="stage2/inbox",
            outputs=[OutputSpec("out", "stage2/out", ["stage3"], ["stage3/inbox"], 4, 2 << 20)],
            inputs=[InputSpec("stage1.out", "stage1/out", "stage1/inbox", 0, 0, 8)],
            **common,
        ),
        "stage3": DataPlane(
            inbox="stage3/inbox",
            outputs=[
                OutputSpec(
                    "out",
                    "stage3/out",
                    ["client.stage3.out", "client1.stage3.out"],
                    ["client/inbox", "client1/inbox"],
                    4,
                    1 << 20,
                    readers=2,
                )
            ],  # fmt: skip
            inputs=[InputSpec("stage2.out", "stage2/out", "stage2/inbox", 0, 0, 4)],
            **common,
        ),
    }


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_plans(path: Path) -> None:
    models = "/opt/noded/models-venv/bin/python"  # assistant.toml's: Debian's python3 where absent
    text = path.read_text()
    if models in text and not Path(models).exists():
        text = text.replace(models, "/usr/bin/python3")
    pipeline = parse_pipeline(text, str(path))
    check_consistent(pipeline, plan(pipeline, SID))


def test_root_and_prefix() -> None:
    text = node("a") + node("b", "a.out")
    for base in ("/tmp/iox", "/tmp/iox/"):
        topology = plan(parse(text), "s1", root_base=base)
        assert (topology.root, topology.prefix) == ("/tmp/iox/s1/", "noded_s1_")
        assert all(
            dp is not None and (dp.root, dp.prefix) == (topology.root, topology.prefix)
            for dp in topology.nodes.values()
        )


def test_root_and_prefix_are_those_the_daemon_creates_and_removes() -> None:
    runtime_dir = Path("/run/noded")
    topology = plan(parse(node("a")), SID, root_base=str(iox2_base(runtime_dir)))
    assert topology.root == f"{session_root(iox2_base(runtime_dir), SID)}/"
    assert topology.prefix == session_prefix(SID)


@pytest.mark.parametrize("sid", ["", "a-b", "a/b", "..", "a b", "a_b"])
def test_bad_session_id(sid: str) -> None:
    with pytest.raises(ValueError, match="is not a session id"):
        plan(parse(node("a")), sid)


def test_node_without_channels_gets_none_and_no_client_without_external_io() -> None:
    topology = planned(node("lone") + node("a") + node("b", "a.out"))
    assert topology.nodes["lone"] is None
    assert topology.nodes["a"] is not None and topology.nodes["b"] is not None
    assert topology.client is None


def test_unconsumed_ports_have_no_service() -> None:
    topology = planned(node("a") + node("b", "a.out"))
    b = topology.nodes["b"]
    assert b is not None and b.outputs == [] and len(b.inputs) == 1


# -- fan-out, fan-in, external IO ----------------------------------------------------


def test_fan_out_lists_consumers_in_file_order_then_the_client() -> None:
    topology = planned(
        'outputs = ["src.out"]\n' + node("c", "src.out") + node("src") + node("a", "src.out") + node("b", "src.out")
    )
    src = topology.nodes["src"]
    assert src is not None
    (out,) = src.outputs
    assert out.consumers == ["c", "a", "b", "client.src.out", "client1.src.out"]  # two reader slots
    assert out.consumer_inboxes == ["c/inbox", "a/inbox", "b/inbox", "client/inbox", "client1/inbox"]
    assert out.readers == 2
    for index, consumer in enumerate(["c", "a", "b"]):
        dp = topology.nodes[consumer]
        assert dp is not None
        assert dp.inputs == [InputSpec("src.out", "src/out", "src/inbox", 0, index, DEFAULT_DEPTH)]
    assert topology.client is not None
    assert topology.client.inputs == [InputSpec("src.out", "src/out", "src/inbox", 0, 3, DEFAULT_DEPTH, reader_slot=0)]
    assert topology.client.outputs == []


def test_fan_in_keeps_the_inputs_as_written() -> None:
    topology = planned(node("left") + node("right") + node("merge", "right.out", "left.out"))
    merge = topology.nodes["merge"]
    assert merge is not None
    assert merge.inputs == [
        InputSpec("right.out", "right/out", "right/inbox", 0, 0, DEFAULT_DEPTH),
        InputSpec("left.out", "left/out", "left/inbox", 0, 0, DEFAULT_DEPTH),
    ]


def test_port_indices_follow_first_reference() -> None:
    topology = planned(
        'outputs = ["src.c", "src.a"]\n' + node("src") + node("x", "src.b") + node("y", "src.a", "src.b")
    )
    src = topology.nodes["src"]
    assert src is not None
    assert [(o.port, o.consumers) for o in src.outputs] == [
        ("b", ["x", "y"]),
        ("a", ["y", "client.src.a", "client1.src.a"]),
        ("c", ["client.src.c", "client1.src.c"]),
    ]
    y = topology.nodes["y"]
    assert y is not None
    assert [(i.source, i.port_index, i.consumer_index) for i in y.inputs] == [("src.a", 1, 0), ("src.b", 0, 1)]
    assert topology.client is not None
    assert [(i.source, i.port_index, i.consumer_index) for i in topology.client.inputs] == [
        ("src.c", 2, 0),
        ("src.a", 1, 1),
    ]


def test_external_inputs_are_published_by_the_client() -> None:
    topology = planned(
        'inputs = ["video", "audio"]\n' + node("asr", "input.audio") + node("vad", "input.audio", "input.video")
    )
    client = topology.client
    assert client is not None and client.inbox == "client/inbox" and client.inputs == [] and client.readers == 0
    assert client.outputs == [
        OutputSpec("video", "input/video", ["vad"], ["vad/inbox"], DEFAULT_DEPTH, DEFAULT_MAX_PAYLOAD),
        OutputSpec(
            "audio", "input/audio", ["asr", "vad"], ["asr/inbox", "vad/inbox"], DEFAULT_DEPTH, DEFAULT_MAX_PAYLOAD
        ),
    ]
    vad = topology.nodes["vad"]
    assert vad is not None and vad.outputs == []
    assert vad.inputs == [
        # each external input has its own feeder endpoint: its only port, its own inbox
        InputSpec("input.audio", "input/audio", "input/audio/inbox", 0, 1, DEFAULT_DEPTH),
        InputSpec("input.video", "input/video", "input/video/inbox", 0, 0, DEFAULT_DEPTH),
    ]


def test_a_node_reading_only_external_input_and_the_client_reading_it() -> None:
    topology = planned('inputs = ["x"]\noutputs = ["a.out"]\n' + node("a", "input.x"))
    a, client = topology.nodes["a"], topology.client
    assert a is not None and client is not None
    assert a.outputs[0].consumers == ["client.a.out", "client1.a.out"]
    assert a.inputs[0].producer_inbox == "input/x/inbox"
    assert client.outputs[0].consumers == ["a"] and client.inputs[0].producer_inbox == "a/inbox"


# -- depths, payload sizes, verification ---------------------------------------------------


def test_port_depth_is_the_largest_edge_depth() -> None:
    topology = planned(
        'outputs = ["src.out"]\n[dataplane]\ndepth = 3\n'
        + node("src")
        + node("a", {"from": "src.out", "depth": 9})
        + node("b", "src.out")
        + node("c", {"from": "src.out", "depth": 2})
        + node("d", {"from": "c.out", "depth": 1})
    )
    assert [o.depth for o in topology.nodes["src"].outputs] == [9]  # type: ignore[union-attr]
    for consumer in "abc":
        assert [i.depth for i in topology.nodes[consumer].inputs] == [9]  # type: ignore[union-attr]
    assert topology.client is not None and [i.depth for i in topology.client.inputs] == [9]
    assert [o.depth for o in topology.nodes["c"].outputs] == [1]  # type: ignore[union-attr]


def test_external_output_edge_asks_for_the_default_depth() -> None:
    topology = planned(
        'outputs = ["src.out"]\n[dataplane]\ndepth = 12\n' + node("src") + node("a", {"from": "src.out", "depth": 2})
    )
    assert [o.depth for o in topology.nodes["src"].outputs] == [12]  # type: ignore[union-attr]


def test_external_input_depth() -> None:
    topology = planned('inputs = ["x"]\n' + node("a", {"from": "input.x", "depth": 16}) + node("b", "input.x"))
    assert topology.client is not None and [o.depth for o in topology.client.outputs] == [16]


def test_payload_sizes_come_from_the_producer_or_the_dataplane() -> None:
    topology = planned(
        'inputs = ["x"]\noutputs = ["big.out", "small.out"]\n[dataplane]\nmax_payload = "64K"\nverify_payload = true\n'
        + node("big", "input.x", max_payload='"8M"')
        + node("small", "input.x")
    )
    assert [o.max_payload for o in topology.nodes["big"].outputs] == [8 << 20]  # type: ignore[union-attr]
    assert [o.max_payload for o in topology.nodes["small"].outputs] == [64 << 10]  # type: ignore[union-attr]
    assert topology.client is not None and [o.max_payload for o in topology.client.outputs] == [64 << 10]
    assert all(dp is not None and dp.verify_payload for dp in [*topology.nodes.values(), topology.client])


# -- determinism, the wire, hand-built pipelines ----------------------------------------


def test_same_pipeline_and_session_give_the_same_plan() -> None:
    text = 'inputs = ["x"]\noutputs = ["b.out"]\n' + node("a", "input.x") + node("b", "a.out", "input.x")
    first, second = plan(parse(text), SID), plan(parse(text), SID)
    assert first == second
    assert msgspec.json.encode(first.nodes) == msgspec.json.encode(second.nodes)
    other = plan(parse(text), "ff00")
    assert msgspec.json.encode(other.nodes) == msgspec.json.encode(first.nodes).replace(SID.encode(), b"ff00")


def test_data_planes_survive_the_worker_spec() -> None:
    pipeline = load_pipeline(EXAMPLES / "chain_io.toml")
    topology = plan(pipeline, SID)
    for spec in pipeline.nodes:
        worker = WorkerSpec(session=SID, node=spec.id, cls=spec.resolved_cls, dataplane=topology.nodes[spec.id])
        assert decode_spec(encode_spec(worker)) == worker


def test_hand_built_pipelines_with_missing_ends_are_refused() -> None:
    base = parse('inputs = ["x"]\n' + node("a", "input.x"))
    a = base.nodes[0]
    for inputs, outputs in [
        ((InputRef(PortRef("zz", "out")),), ()),
        ((InputRef(PortRef("input", "nope")),), ()),
        (a.inputs, (PortRef("zz", "out"),)),
    ]:
        broken = Pipeline(
            base.name,
            base.description,
            (type(a)(a.id, a.cls, a.resolved_cls, inputs=inputs),),
            base.source,
            base.inputs,
            outputs,
        )
        with pytest.raises(ValueError):
            plan(broken, SID)


# -- any valid pipeline ---------------------------------------------------------------


@st.composite
def pipelines(draw: st.DrawFn) -> str:
    """A valid pipeline's TOML: a random DAG over up to 8 nodes in shuffled file order,
    with edges from several ports, external inputs and outputs, depths and payloads."""
    count = draw(st.integers(1, 8))
    ids = [f"n{i}" for i in range(count)]
    ports = st.sampled_from(["out", "aux", "level"])
    externals: list[str] = []
    tables = []
    for index, node_id in enumerate(ids):
        refs: list[str] = []
        for _ in range(draw(st.integers(0, 3))):
            if index and draw(st.booleans()):
                refs.append(f"{draw(st.sampled_from(ids[:index]))}.{draw(ports)}")
            else:
                name = draw(st.sampled_from(["audio", "video", "text"]))
                refs.append(f"input.{name}")
                externals.append(name)
        edges: list[str | dict[str, object]] = [
            {"from": ref, "depth": draw(st.integers(1, 31))} if draw(st.booleans()) else ref
            for ref in dict.fromkeys(refs)
        ]
        keys = {"max_payload": json.dumps(draw(st.sampled_from(["1K", "64K", "10M"])))} if draw(st.booleans()) else {}
        tables.append(node(node_id, *edges, **keys))
    outputs = draw(st.lists(st.builds("{}.{}".format, st.sampled_from(ids), ports), max_size=4, unique=True))
    top = [f"inputs = {json.dumps(list(dict.fromkeys(externals)))}", f"outputs = {json.dumps(outputs)}"]
    if draw(st.booleans()):
        verify = draw(st.sampled_from(["true", "false"]))
        top += ["[dataplane]", f"depth = {draw(st.integers(1, 31))}", f"verify_payload = {verify}"]
    return "\n".join(top) + "\n" + "".join(draw(st.permutations(tables)))


@settings(max_examples=200, deadline=None)
@given(pipelines())
def test_any_pipeline_plans_consistently(text: str) -> None:
    pipeline = parse_pipeline(text, "h.toml")
    topology = plan(pipeline, SID)
    check_consistent(pipeline, topology)
    assert plan(pipeline, SID) == topology
