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

from nodeworker.builtins.streams import LocalMessage, as_messages
from nodeworker.loader import load_node_class
from nodeworker.node import Node
from nodeworker.registry import resolve_class_name
from nodeworker.testing import FakeContext


@dataclass
class Stage:
    node_id: str
    node: Node
    ctx: FakeContext
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
            ctx = FakeContext(params=node.params, node_id=node_id)
            node.setup(ctx)
            ctx.ready.set()
            self.stages.append(Stage(node_id, node, ctx))

    def run(self, messages: Iterable[LocalMessage]) -> list[LocalMessage]:
        """Each stage on all of its input in turn; the last stage's "out" messages."""
        current = list(messages)
        for stage in self.stages:
            stage.ctx.sent.clear()
            t0 = time.perf_counter()
            for msg in current:
                stage.node.process(msg)
            stage.seconds = time.perf_counter() - t0
            stage.sent = as_messages(stage.ctx.sent, stage.node_id)
            current = [m for m in stage.sent if m.source == f"{stage.node_id}.out"]
        return current

    def __getitem__(self, node_id: str) -> Stage:
        return next(s for s in self.stages if s.node_id == node_id)

    def close(self) -> None:
        for stage in self.stages:
            stage.node.teardown()
