"""Spec decoding, class loading and the node SDK, in process."""

from __future__ import annotations

import logging
import math
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from noded import Context, Node
from noded.contract.exitcodes import ExitCode
from noded.contract.registry import BUILTINS
from noded.contract.spec import WorkerSpec, encode_spec
from noded.errors import NodeLoadError, ParamError, SpecError
from noded.loader import load_class, load_node_class
from noded.logs import JournalFormatter
from noded.nodes.testing.basic import Allocate, Crash, FailSetup, PassThrough, SleepSetup
from noded.testing import FakeContext, run_setup
from noded.worker.main import _decode

# -- spec ----------------------------------------------------------------------------


def test_spec_round_trip() -> None:
    spec = WorkerSpec(session="s1", node="cam", cls="sleep", params={"seconds": 0.5, "tags": ["a"]})
    assert _decode(encode_spec(spec)) == spec
    assert _decode('{"session": "s", "node": "n", "cls": "m:C"}').params == {}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("not json", "malformed"),
        ('{"session": "s", "node": "n"}', "missing required field `cls`"),
        ('{"session": "s", "node": "n", "cls": "m:C", "extra": 1}', "unknown field `extra`"),
        ('{"session": "s", "node": "n", "cls": "m:C", "params": []}', "Expected `object`"),
    ],
)
def test_bad_spec_is_a_spec_error(text: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        _decode(text)
    assert needle in str(info.value) and info.value.hint
    assert info.value.exit_code == ExitCode.CONFIG


def test_exit_codes_are_stable() -> None:
    """The daemon and unit settings (e.g. RestartPreventExitStatus=2) rely on these numbers."""
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "FAILED": 1,
        "CONFIG": 2,
        "TEARDOWN_FAILED": 4,
        "PEER_GONE": 5,
    }


# -- loader --------------------------------------------------------------------------


@pytest.mark.parametrize("short", sorted(BUILTINS))
def test_every_builtin_short_name_loads_a_node_class(short: str) -> None:
    assert issubclass(load_node_class(short), Node)


def test_full_path_and_nested_class_names_load() -> None:
    assert load_node_class("noded.nodes.testing.basic:PassThrough") is PassThrough
    assert load_class("collections:OrderedDict") is __import__("collections").OrderedDict


@pytest.mark.parametrize(
    ("name", "message", "hint"),
    [
        ("nope", "neither a built-in node", "package.module:Class"),
        ("no_such_module_xyz:C", "no module named 'no_such_module_xyz'", sys.prefix),
        ("noded.no_such_sub:C", "no module named 'noded.no_such_sub'", "install"),
        ("noded.nodes.testing.basic:Nope", "has no 'Nope'", "PassThrough"),
        ("noded.contract.registry:BUILTINS", "is a dict, not a class", "Node subclass"),
        ("collections:OrderedDict", "not a noded.Node subclass", "derive"),
    ],
)
def test_load_errors_say_what_and_hint_how(name: str, message: str, hint: str) -> None:
    with pytest.raises(NodeLoadError) as info:
        load_node_class(name)
    assert message in info.value.message
    assert hint in info.value.hint
    assert info.value.exit_code == ExitCode.CONFIG
    assert not info.value.show_traceback


def test_a_module_that_fails_to_import_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_nodes_a.py").write_text("import not_installed_dep_xyz\n")
    (tmp_path / "broken_nodes_b.py").write_text("raise RuntimeError('bad module')\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(NodeLoadError) as a:
        load_node_class("broken_nodes_a:N")
    assert "needs module 'not_installed_dep_xyz'" in a.value.message and a.value.show_traceback
    with pytest.raises(NodeLoadError) as b:
        load_node_class("broken_nodes_b:N")
    assert "RuntimeError: bad module" in b.value.message and b.value.show_traceback
    assert isinstance(b.value.__cause__, RuntimeError)


# -- SDK and test nodes with the fake context ------------------------------------------


def test_node_defaults() -> None:
    node = Node(node_id="n7", params={"a": 1})
    assert (node.node_id, node.params, node.logger.name) == ("n7", {"a": 1}, "noded.node.n7")
    node.setup(FakeContext())
    node.teardown()
    with pytest.raises(NotImplementedError):
        node.process(1)


def test_context_is_abstract_and_normalises_progress() -> None:
    with pytest.raises(TypeError):
        Context(session="s", node_id="n", params={})  # type: ignore[abstract]
    ctx = FakeContext(node_id="n1", session="s1", params={"x": 1})
    assert (ctx.session, ctx.node_id, ctx.params, ctx.logger.name) == ("s1", "n1", {"x": 1}, "noded.node.n1")
    assert isinstance(ctx.logger, logging.Logger) and not ctx.ready.is_set()
    ctx.progress(0.5, "half")
    ctx.progress(2)
    ctx.progress(-1.0, "neg")
    ctx.progress(math.nan, "unknown")
    assert ctx.progress_reports == [(0.5, "half"), (1.0, ""), (0.0, "neg"), (None, "unknown")]
    with pytest.raises(TypeError, match="must be a number"):
        ctx.progress("half")  # type: ignore[arg-type]


def test_sleep_setup_reports_each_step() -> None:
    _, ctx = run_setup(SleepSetup, {"seconds": 0.03, "steps": 3})
    assert ctx.progress_reports == [(1 / 3, "step 1/3"), (2 / 3, "step 2/3"), (1.0, "step 3/3")]


def test_fail_setup_raises_its_message() -> None:
    with pytest.raises(RuntimeError, match="^boom$"):
        run_setup(FailSetup, {"message": "boom"})


def test_allocate_touches_and_holds_memory() -> None:
    node, ctx = run_setup(Allocate, {"mb": 3})
    assert sum(map(len, node.chunks)) == 3 << 20
    assert all(c[0] == 1 and c[-1] in (0, 1) for c in node.chunks)
    assert ctx.progress_reports[-1] == (1.0, "3/3 MiB")
    node.teardown()
    assert node.chunks == []
    released, _ = run_setup(Allocate, {"mb": 1, "hold": False})
    assert released.chunks == []


def test_pass_through_returns_its_inputs() -> None:
    node, _ = run_setup(PassThrough)
    frame = object()
    assert node.process(frame) is frame
    assert node.process(1, 2) == (1, 2)
    assert node.process(video=frame) == {"video": frame}


@pytest.mark.parametrize(
    ("cls", "params", "needle"),
    [
        (SleepSetup, {"secs": 1}, "unknown params ['secs']"),
        (SleepSetup, {"seconds": "1"}, "'seconds' must be a float"),
        (SleepSetup, {"steps": 0}, "steps must be >= 1"),
        (SleepSetup, {"seconds": -1}, "must be >= 0"),
        (Crash, {"how": "explode"}, "'how' must be one of"),
        (Crash, {"code": True}, "'code' must be a int"),
        (Crash, {"code": 256}, "0..255"),
        (Allocate, {}, "'mb' is required"),
        (Allocate, {"mb": 1, "when": "later"}, "'when' must be one of"),
        (PassThrough, {"x": 1}, "unknown params ['x']"),
    ],
)
def test_test_nodes_reject_bad_params(cls: type[Node], params: dict[str, Any], needle: str) -> None:
    with pytest.raises(ParamError) as info:
        cls(node_id="n", params=params)
    assert needle in str(info.value)
    assert info.value.exit_code == ExitCode.CONFIG


def test_crash_when_ready_waits_for_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    crashed = threading.Event()
    node = Crash(params={"when": "ready", "after": 0.01, "core": True})
    monkeypatch.setattr(node, "crash", crashed.set)
    ctx = FakeContext()
    node.setup(ctx)
    assert not crashed.wait(0.1)
    ctx.ready.set()
    assert crashed.wait(5.0)


def test_journal_formatter_prefixes_every_line_with_the_syslog_priority() -> None:
    fmt = JournalFormatter()

    def line(level: int, msg: str) -> str:
        return fmt.format(logging.LogRecord("noded.node.a", level, __file__, 1, msg, None, None))

    assert line(logging.DEBUG, "d") == "<7>DEBUG noded.node.a: d"
    assert line(logging.INFO, "i") == "<6>INFO noded.node.a: i"
    assert line(logging.WARNING, "w") == "<4>WARNING noded.node.a: w"
    assert line(logging.ERROR, "e\nsecond") == "<3>ERROR noded.node.a: e\n<3>second"
    assert line(logging.CRITICAL, "c") == "<2>CRITICAL noded.node.a: c"
