"""The chaos node's params and its harmless paths (the crashes themselves run in
tests/integration/test_crash_scenarios.py, in real processes)."""

from __future__ import annotations

import pytest

from noded.errors import ParamError
from noded.nodes.testing.chaos import Chaos
from noded.testing import FakeContext, run_setup


@pytest.mark.parametrize(
    "params,match",
    [
        ({"crash": "explode"}, "crash must be one of"),
        ({"crash": "sigkill", "at": "later"}, "at must be one of"),
        ({"crash": "exception", "at": "idle"}, "only at 'init'"),
        ({"code": 256}, "code must be"),
        ({"nth": 0}, "nth >= 1"),
        ({"bogus": 1}, "unknown params"),
    ],
)
def test_bad_params_are_refused(params: dict, match: str) -> None:
    with pytest.raises(ParamError, match=match):
        Chaos(node_id="c", params=params)


def test_exception_in_setup_names_the_node() -> None:
    with pytest.raises(RuntimeError, match="chaos: exception in setup of c"):
        run_setup(Chaos, {"crash": "exception", "at": "init"}, node_id="c")


def test_without_a_crash_it_forwards_every_message() -> None:
    node = Chaos(node_id="c", params={})
    ctx = FakeContext(node_id="c")
    node.setup(ctx)
    for m in ("a", "b", "c"):
        assert node.process(m) is None
    assert [(port, value) for port, value, _kind, _fields in ctx.sent] == [("out", "a"), ("out", "b"), ("out", "c")]


def test_idle_threads_are_started_and_end_on_stop() -> None:
    import threading

    node = Chaos(node_id="c", params={"threads": 3})
    ctx = FakeContext(node_id="c")
    node.setup(ctx)
    idle = [t for t in threading.enumerate() if t.name.startswith("chaos-idle-")]
    assert len(idle) == 3
    ctx.stopping.set()
    for t in idle:
        t.join(5)
    assert not any(t.is_alive() for t in idle)
