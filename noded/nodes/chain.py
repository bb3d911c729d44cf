"""Run a linear chain of nodes in this process, stage after stage: each node processes
every message of its input before the next node starts. This is how speech pipelines are
usually run (one process, one model after another); the unit tests and the sequential
mode of ``benchmarks/speech_latency.py`` use it. Nodes get ``testing.FakeContext``s;
what a node sends on "out" is what the next receives.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from noded.contract.registry import resolve_class_name
from noded.loader import load_node_class
from noded.node import Node
from noded.nodes.streams import LocalMessage, as_messages
from noded.testing import FakeContext


class TimedContext(FakeContext):
    """A FakeContext that also notes when (time.perf_counter) each send happened."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent_at: list[float] = []

    def _send(self, port: str, value: Any, kind: int | None, fields: dict[str, Any]) -> None:
        self.sent_at.append(time.perf_counter())
        super()._send(port, value, kind, fields)


@dataclass
class Stage:
    node_id: str
    node: Node
    ctx: TimedContext
    started: float = 0.0  # time.perf_counter() when the last run of this stage began
    seconds: float = 0.0  # time spent in process() by the last run
    sent: list[LocalMessage] = field(default_factory=list)  # everything the last run sent


class LocalChain:
    def __init__(self, nodes: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
        """``nodes``: (id, class name or built-in short name, params), upstream first.
        Each node is constructed and set up here."""
        self.stages: list[Stage] = []
        for node_id, cls_name, params in nodes:
            cls = load_node_class(resolve_class_name(cls_name))
            node = cls(node_id=node_id, params=params)
            ctx = TimedContext(params=node.params, node_id=node_id)
            node.setup(ctx)
            ctx.ready.set()
            self.stages.append(Stage(node_id, node, ctx))

    def run(self, messages: Iterable[LocalMessage]) -> list[LocalMessage]:
        """Each stage on all of its input in turn; the last stage's "out" messages."""
        current = list(messages)
        for stage in self.stages:
            stage.ctx.sent.clear()
            stage.ctx.sent_at.clear()
            t0 = stage.started = time.perf_counter()
            for msg in current:
                stage.node.process(msg)
            stage.seconds = time.perf_counter() - t0
            stage.sent = as_messages(stage.ctx.sent, stage.node_id)
            current = [m for m in stage.sent if m.source == f"{stage.node_id}.out"]
        return current

    def first_sent(self, node_id: str, port: str = "out", kind: int | None = None) -> float | None:
        """time.perf_counter() of the node's first send on ``port`` (of ``kind``) in the last run."""
        stage = self[node_id]
        for (p, _value, k, _fields), at in zip(stage.ctx.sent, stage.ctx.sent_at):
            if p == port and (kind is None or k == kind):
                return at
        return None

    def __getitem__(self, node_id: str) -> Stage:
        return next(s for s in self.stages if s.node_id == node_id)

    def close(self) -> None:
        for stage in self.stages:
            stage.node.teardown()
