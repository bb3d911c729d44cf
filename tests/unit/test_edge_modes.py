"""Per-edge overflow and spin_us, on real iceoryx2 endpoints in this process (their own
root and prefix): what the pipeline keys make the data plane do."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest

from noded.contract.spec import DataPlane
from noded.contract.stats import I_DROPPED, I_RECEIVED
from noded.pipeline.checks import InputRef, PipelineError, PortRef, parse_pipeline
from noded.pipeline.topology import plan
from tests.unit.dataplane_support import Session, receive


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    s = Session(tmp_path)
    yield s
    s.close()


def with_input(plane: DataPlane, **changes: object) -> DataPlane:
    return msgspec.structs.replace(plane, inputs=[msgspec.structs.replace(i, **changes) for i in plane.inputs])


def lossy_pair(session: Session, overflow: str) -> tuple[dict[str, DataPlane], bool]:
    planes = session.plan([("p.out", "c")], depth=2)
    if overflow == "drop_oldest":
        [out] = planes["p"].outputs
        planes["p"] = msgspec.structs.replace(planes["p"], outputs=[msgspec.structs.replace(out, drop_oldest=[True])])
        planes["c"] = with_input(planes["c"], drop_oldest=True, safe_overflow=True)
    return planes, overflow == "drop_oldest"


def test_drop_oldest_never_holds_the_producer_and_counts_what_it_dropped(session: Session) -> None:
    planes, _ = lossy_pair(session, "drop_oldest")
    producer = session.endpoint("p", planes["p"], send_timeout=5.0)
    consumer = session.endpoint("c", planes["c"])
    for i in range(20):  # the consumer reads nothing meanwhile: a blocking edge stops at 2
        producer.send("out", np.full(16, i, np.uint8))
    seqs = []
    while (msg := consumer.receive()) is not None or not seqs:
        if msg is None:
            consumer.wait(0.05)
            continue
        seqs.append(msg.seq)
        del msg
    assert seqs == [18, 19]  # the newest `depth` messages; the oldest were overwritten
    slots, base = consumer.block.slots, consumer.block.in_base(0)
    assert slots[base + I_RECEIVED] == 2 and slots[base + I_DROPPED] == 18
    producer.send("out", np.full(16, 20, np.uint8))  # after a drop, the count goes on
    assert receive(consumer).seq == 20 and slots[base + I_DROPPED] == 18


def test_block_holds_the_producer_at_depth_and_drops_nothing(session: Session) -> None:
    planes, _ = lossy_pair(session, "block")
    producer = session.endpoint("p", planes["p"], send_timeout=0.5)
    consumer = session.endpoint("c", planes["c"])
    producer.send("out", np.zeros(16, np.uint8))
    producer.send("out", np.ones(16, np.uint8))
    with pytest.raises(TimeoutError):
        producer.send("out", np.full(16, 2, np.uint8))
    assert [receive(consumer).seq for _ in range(2)] == [0, 1]
    assert consumer.block.slots[consumer.block.in_base(0) + I_DROPPED] == 0


def cpu_of_wait(ep: object, timeout: float) -> float:
    t0 = time.thread_time()
    ep.wait(timeout)  # type: ignore[attr-defined]
    return time.thread_time() - t0


def test_spin_us_polls_before_sleeping_and_costs_cpu(session: Session) -> None:
    planes = session.plan([("p.out", "c"), ("p.out", "d")])
    producer = session.endpoint("p", planes["p"])
    spinning = session.endpoint("c", with_input(planes["c"], spin_us=100_000))
    sleeping = session.endpoint("d", planes["d"])
    producer.send("out", np.zeros(16, np.uint8))  # both said hello
    for ep in (spinning, sleeping):
        assert receive(ep).seq == 0
    # Nothing comes: the spinning one burns CPU for its 100 ms (as much of it as a busy
    # machine gives it), the sleeping one next to none.
    for ep in (spinning, sleeping):  # take the data events receive() left pending
        ep.wait(0.01)
    spin_cpu = cpu_of_wait(spinning, 0.15)
    sleep_cpu = cpu_of_wait(sleeping, 0.15)
    assert spin_cpu > 0.001 and spin_cpu > 5 * sleep_cpu, (spin_cpu, sleep_cpu)
    # A message that comes during the spin is taken.
    producer.send("out", np.ones(16, np.uint8))
    assert receive(spinning).seq == 1 and receive(sleeping).seq == 1


def test_spin_us_is_parsed_per_edge_and_planned_per_input() -> None:
    text = textwrap.dedent(
        """
        [[nodes]]
        id = "src"
        class = "passthrough"
        [[nodes]]
        id = "hot"
        class = "passthrough"
        inputs = [{ from = "src.out", spin_us = 500 }]
        [[nodes]]
        id = "cold"
        class = "passthrough"
        inputs = ["src.out"]
        """
    )
    pipeline = parse_pipeline(text, "p.toml")
    hot = pipeline.node("hot")
    assert hot.inputs == (InputRef(PortRef("src", "out"), 4, "block", 500),)
    topology = plan(pipeline, "ab12")
    assert [i.spin_us for i in topology.nodes["hot"].inputs] == [500]  # type: ignore[union-attr]
    assert [i.spin_us for i in topology.nodes["cold"].inputs] == [0]  # type: ignore[union-attr]
    for bad, reason in (("-1", "-1 is not between 0 and 100000"), ("100001", "100001 is not between 0 and 100000")):
        with pytest.raises(PipelineError) as info:
            parse_pipeline(text.replace("spin_us = 500", f"spin_us = {bad}"), "p.toml")
        [problem] = info.value.problems
        assert (problem.node, problem.field, problem.reason) == ("hot", "inputs[0].spin_us", reason)
        assert info.value.hint is not None and "spin_us" in info.value.hint
