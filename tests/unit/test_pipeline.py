"""Pipeline files: parsing, every validation problem, resource values, the examples."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from noded.contract.registry import BUILTINS
from noded.contract.spec import DEFAULT_DEPTH, DEFAULT_MAX_PAYLOAD, MAX_CONSUMERS, MAX_PORTS
from noded.errors import NodedError, PipelineError, Problem
from noded.pipeline.checks import (
    DataplaneSettings,
    InputRef,
    Pipeline,
    PortRef,
    Resources,
    load_pipeline,
    parse_depth,
    parse_payload,
    parse_pipeline,
    parse_quota,
    parse_size,
    parse_tasks,
)
from noded.pipeline.topology import plan
from tests.fuzzing import fuzz

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def parse(text: str, filename: str = "p.toml") -> Pipeline:
    return parse_pipeline(textwrap.dedent(text), filename)


def problems(text: str, filename: str = "p.toml") -> list[Problem]:
    with pytest.raises(PipelineError) as info:
        parse(text, filename)
    return list(info.value.problems)


def only_problem(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def node(id: str = "a", cls: str = "passthrough", **keys: str) -> str:
    """A [[nodes]] table; ``keys`` are TOML values as written."""
    lines = ["[[nodes]]", f'id = "{id}"', f'class = "{cls}"', *(f"{k} = {v}" for k, v in keys.items())]
    return "\n".join(lines) + "\n"


# -- valid pipelines ----------------------------------------------------------------


def test_minimal_pipeline_gets_defaults() -> None:
    text = node("src")
    pipeline = parse(text, "dir/voice.toml")
    assert pipeline.name == "voice"
    assert pipeline.description == ""
    assert pipeline.source == text
    (src,) = pipeline.nodes
    assert src.id == "src"
    assert src.cls == "passthrough"
    assert src.resolved_cls == BUILTINS["passthrough"]
    assert src.params == {}
    assert src.inputs == ()
    assert src.resources == Resources(None, None, None)


def test_results_are_frozen() -> None:
    pipeline = parse(node("src"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        pipeline.name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pipeline.nodes[0].resources.memory_max = 1  # type: ignore[misc]


def test_full_node() -> None:
    pipeline = parse(
        """
        name = "voice"
        description = "speech in, text out"

        [[nodes]]
        id = "mic"
        class = "sleep"
        params = { seconds = 2, nested = { a = [1, 2] } }

        [[nodes]]
        id = "asr"
        class = "passthrough"
        inputs = ["mic.audio", "mic.level"]
        memory_max = "256M"
        cpu_quota = "50%"
        tasks_max = 32
        """
    )
    assert (pipeline.name, pipeline.description) == ("voice", "speech in, text out")
    mic, asr = pipeline.nodes
    assert mic.params == {"seconds": 2, "nested": {"a": [1, 2]}}
    assert asr.inputs == (InputRef(PortRef("mic", "audio"), 4), InputRef(PortRef("mic", "level"), 4))
    assert str(asr.inputs[0]) == str(asr.inputs[0].ref) == "mic.audio"
    assert asr.resources == Resources(memory_max=256 << 20, cpu_quota=0.5, tasks_max=32)
    assert pipeline.node("asr") is asr
    with pytest.raises(KeyError):
        pipeline.node("nope")


def test_limits_are_inherited_and_overridden_per_field() -> None:
    pipeline = parse(
        """
        [limits]
        memory_max = "512M"
        cpu_quota = "150%"
        tasks_max = 64
        """
        + node("a")
        + node("b", memory_max='"1G"', tasks_max='"infinity"')
        + node("c", memory_max='"infinity"', cpu_quota='"infinity"', tasks_max="8")
    )
    a, b, c = (n.resources for n in pipeline.nodes)
    assert a == Resources(memory_max=512 << 20, cpu_quota=1.5, tasks_max=64)
    assert b == Resources(memory_max=1 << 30, cpu_quota=1.5, tasks_max=None)
    assert c == Resources(memory_max=None, cpu_quota=None, tasks_max=8)


def test_watchdog_is_a_limit_inherited_and_overridden() -> None:
    pipeline = parse(
        '[limits]\nwatchdog = "2min"\n'
        + node("a")
        + node("b", watchdog='"1500ms"')
        + node("c", watchdog='"infinity"')
        + node("d", watchdog="5")
        + node("e", watchdog='"off"')
        + node("f", watchdog="2.5")
        + node("g", watchdog='"1h"')
    )
    assert [n.resources.watchdog for n in pipeline.nodes] == [120.0, 1.5, None, 5.0, None, 2.5, 3600.0]
    (plain,) = parse(node("a")).nodes
    assert plain.resources.watchdog is None  # unset: the daemon's node_limits.watchdog
    (default,) = parse_pipeline(node("a"), "p.toml", defaults=Resources(watchdog=30.0)).nodes
    assert default.resources.watchdog == 30.0


@pytest.mark.parametrize("short", sorted(BUILTINS))
def test_builtin_short_names_resolve(short: str) -> None:
    (spec,) = parse(node("n", short)).nodes
    assert (spec.cls, spec.resolved_cls) == (short, BUILTINS[short])


def test_builtin_full_path_is_accepted() -> None:
    (spec,) = parse(node("n", BUILTINS["sleep"])).nodes
    assert spec.resolved_cls == spec.cls == BUILTINS["sleep"]


@pytest.mark.parametrize("cls", ["json.decoder:JSONDecoder", "fractions:Fraction", "json.decoder:JSONDecodeError"])
def test_module_class_resolves_against_real_module_source(cls: str) -> None:
    (spec,) = parse(node("n", cls)).nodes
    assert spec.resolved_cls == cls


def test_topological_order_puts_upstream_first_and_keeps_file_order() -> None:
    pipeline = parse(
        node("sink", inputs='["left.out", "right.out"]')
        + node("right", inputs='["src.out"]')
        + node("left", inputs='["src.out"]')
        + node("src")
        + node("lone")
    )
    assert [n.id for n in pipeline.topological_order()] == ["src", "right", "left", "sink", "lone"]


# -- user modules are looked at, never run -------------------------------------------


@pytest.fixture
def user_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package whose import would fail (and leave a marker), with a module of nodes."""
    pkg = tmp_path / "usernodes_pkg"
    pkg.mkdir()
    marker = tmp_path / "imported"
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('imported!')\n")
    (pkg / "nodes.py").write_text(
        textwrap.dedent(
            """
            open(__file__ + ".imported", "w").close()
            import collections.abc
            from os import path as Aliased
            from json import JSONDecoder

            class Model:
                class Inner:
                    pass

            Alias = Model
            Typed: type = Model
            First, Second = Model, Model
            try:
                class InTry: pass
            except ImportError:
                class InExcept: pass
            if True:
                class InIf: pass

            def factory(): pass
            pattern = "\\d"  # an invalid escape: a warning when compiled
            """
        )
    )
    (pkg / "lazy.py").write_text("def __getattr__(name):\n    return object\n")
    (pkg / "star.py").write_text("from json import *\n")
    (pkg / "broken.py").write_text("class Oops(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    assert not marker.exists(), "the package was imported"
    assert not (pkg / "nodes.py.imported").exists(), "the module was imported"
    assert not any(name.startswith("usernodes_pkg") for name in sys.modules)


@pytest.mark.parametrize(
    "name",
    [
        "Model",
        "Model.Inner",
        "Alias",
        "Typed",
        "First",
        "Second",
        "InTry",
        "InExcept",
        "InIf",
        "JSONDecoder",
        "Aliased",
        "collections",
    ],
)
def test_user_module_class_found_without_importing(user_pkg: Path, name: str) -> None:
    (spec,) = parse(node("n", f"usernodes_pkg.nodes:{name}")).nodes
    assert spec.resolved_cls == f"usernodes_pkg.nodes:{name}"


@pytest.mark.parametrize("module", ["usernodes_pkg.lazy", "usernodes_pkg.star"])
def test_dynamic_modules_are_given_the_benefit_of_the_doubt(user_pkg: Path, module: str) -> None:
    (spec,) = parse(node("n", f"{module}:Anything")).nodes
    assert spec.resolved_cls == f"{module}:Anything"


def test_missing_class_in_user_module(user_pkg: Path) -> None:
    p = only_problem(node("n", "usernodes_pkg.nodes:Modle"))
    assert (p.node, p.field) == ("n", "class")
    assert p.reason == "module 'usernodes_pkg.nodes' has no top-level class 'Modle' (did you mean 'Model'?)"


def test_functions_are_not_classes(user_pkg: Path) -> None:
    p = only_problem(node("m", "usernodes_pkg.nodes:factory"))
    assert (p.node, p.field) == ("m", "class")
    assert "no top-level class 'factory'" in p.reason


def test_user_module_with_syntax_error(user_pkg: Path) -> None:
    p = only_problem(node("n", "usernodes_pkg.broken:Oops"))
    assert (p.node, p.field) == ("n", "class")
    assert p.reason.startswith("module 'usernodes_pkg.broken' has a syntax error at line 1")


def test_same_missing_module_reported_for_every_node() -> None:
    found = problems(node("a", "nosuch_mod_xyz:A") + node("b", "nosuch_mod_xyz:B"))
    assert [(p.node, p.field, p.reason) for p in found] == [
        ("a", "class", "module 'nosuch_mod_xyz' not found"),
        ("b", "class", "module 'nosuch_mod_xyz' not found"),
    ]


# -- every kind of problem ------------------------------------------------------------


def test_toml_syntax_error_has_line_and_column() -> None:
    p = only_problem('name = "x"\n[[nodes]]\nid = \n')
    assert (p.file, p.node, p.field) == ("p.toml", None, None)
    assert p.reason.startswith("TOML syntax error at line 3, column 6:")


def test_deeply_nested_toml_is_a_problem_not_a_crash() -> None:
    p = only_problem("a = " + "[" * 100_000)
    assert p.reason.startswith("TOML syntax error")


def test_unknown_top_level_key() -> None:
    p = only_problem('nmae = "x"\n' + node())
    assert (p.node, p.field) == (None, "nmae")
    assert p.reason == "unknown key 'nmae' (did you mean 'name'?)"


def test_unknown_limits_key() -> None:
    p = only_problem("[limits]\nmemory = 1\n" + node())
    assert (p.node, p.field) == (None, "limits.memory")
    assert p.reason == "unknown key 'memory' (did you mean 'memory_max'?)"


def test_every_unknown_node_key_is_reported() -> None:
    found = problems(node("a", input='["x.y"]', paramz="{}", zzz="1"))
    assert [(p.node, p.field) for p in found] == [("a", "input"), ("a", "paramz"), ("a", "zzz")]
    assert found[0].reason == "unknown key 'input' (did you mean 'inputs'?)"
    assert found[1].reason == "unknown key 'paramz' (did you mean 'params'?)"
    assert found[2].reason == "unknown key 'zzz'"


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("name = 1\n" + node(), (None, "name"), "expected a string, got an integer"),
        ("description = []\n" + node(), (None, "description"), "expected a string, got an array"),
        ("limits = 3\n" + node(), (None, "limits"), "expected a table, got an integer"),
        ('[[nodes]]\nid = 1\nclass = "sleep"\n', ("#1", "id"), "expected a string, got an integer"),
        ('[[nodes]]\nid = "a"\nclass = true\n', ("a", "class"), "expected a string, got a boolean"),
        (node(inputs='"b.out"'), ("a", "inputs"), "expected an array, got a string"),
        (node(inputs='["b.out", 3]'), ("a", "inputs[1]"), "expected a string or a table, got an integer"),
        (node(params="[1]"), ("a", "params"), "expected a table, got an array"),
        (node(tasks_max="1.5"), ("a", "tasks_max"), "expected an integer or a string, got a float"),
        (node(memory_max="true"), ("a", "memory_max"), "expected an integer or a string, got a boolean"),
        (node(cpu_quota="0.5"), ("a", "cpu_quota"), "expected a string, got a float"),
        (node(cpu_quota="1979-05-27"), ("a", "cpu_quota"), "expected a string, got a date"),
        ("nodes = [1]", ("#1", None), "expected a table, got an integer"),
        ('[nodes]\nid = "a"\n', (None, "nodes"), "expected an array, got a table"),
    ],
)
def test_wrong_types(text: str, where: tuple[str | None, str | None], reason: str) -> None:
    p = problems(text)[0]
    assert ((p.node, p.field), p.reason) == (where, reason)


@pytest.mark.parametrize(
    ("text", "node_label", "field"),
    [('[[nodes]]\nclass = "sleep"\n', "#1", "id"), ('[[nodes]]\nid = "a"\n', "a", "class")],
)
def test_missing_required_key(text: str, node_label: str, field: str) -> None:
    p = only_problem(text)
    assert (p.node, p.field, p.reason) == (node_label, field, f"required key {field!r} is missing")


@pytest.mark.parametrize("bad", ["1a", "a-b", "", "_a", "a" * 49, "a b", "é"])
def test_invalid_node_id(bad: str) -> None:
    p = only_problem(node(bad))
    assert (p.field, p.reason) == ("id", f"{bad!r} is not a valid node id")


def test_longest_node_id_is_valid() -> None:
    assert parse(node("a" * 48)).nodes[0].id == "a" * 48


def test_upstream_with_problems_of_its_own_still_exists() -> None:
    p = only_problem('[[nodes]]\nid = "src"\n' + node("b", inputs='["src.out"]'))
    assert (p.node, p.field) == ("src", "class")


def test_node_without_usable_id_is_numbered() -> None:
    found = problems(node("a") + node("", inputs='["zz.out"]'))
    assert [(p.node, p.field) for p in found] == [("#2", "id"), ("#2", "inputs")]


def test_duplicate_node_id() -> None:
    p = only_problem(node("a") + node("b") + node("a", "sleep"))
    assert (p.node, p.field, p.reason) == ("a", "id", "duplicate node id: node #1 has the same id")


def test_unknown_builtin_class() -> None:
    p = only_problem(node("a", "resampel"))
    assert (p.node, p.field) == ("a", "class")
    assert p.reason.startswith("'resampel' is neither a built-in node")
    assert p.reason.endswith("(did you mean 'resample'?)")


def test_test_nodes_are_never_offered() -> None:
    """Test nodes resolve by their short names but a user's typo is not pointed at them."""
    p = only_problem(node("a", "crahs"))
    assert "crash" not in p.reason and "alloc" not in p.reason and "did you mean" not in p.reason
    assert p.reason.startswith("'crahs' is neither a built-in node (asr, ")


@pytest.mark.parametrize(
    ("cls", "reason"),
    [
        ("nosuch_module_xyz:Node", "module 'nosuch_module_xyz' not found"),
        ("nosuch_pkg_xyz.sub.mod:Node", "module 'nosuch_pkg_xyz.sub.mod' not found"),  # find_spec would raise
        ("json.decoder.sub:Node", "module 'json.decoder.sub' not found"),  # parent is not a package
        ("json.decoder:Nope", "module 'json.decoder' has no top-level class 'Nope'"),
        ("json:", "'json:' is neither a built-in node"),
        (":Node", "':Node' is neither a built-in node"),
        ("my-mod:Node", "'my-mod' is not a module name"),
        (".rel:Node", "'.rel' is not a module name"),
        ("json:1Node", "'1Node' is not a class name"),
        ("json:A:B", "'A:B' is not a class name"),
    ],
)
def test_unknown_class(cls: str, reason: str) -> None:
    p = only_problem(node("a", cls))
    assert (p.node, p.field) == ("a", "class")
    assert p.reason.startswith(reason)


def test_missing_upstream_node() -> None:
    p = only_problem(node("src") + node("asr", inputs='["vad.out", "src.out"]'))
    assert (p.node, p.field, p.reason) == ("asr", "inputs", "upstream node 'vad' does not exist")


def test_missing_upstream_suggests_a_close_id() -> None:
    p = only_problem(node("microphone") + node("asr", inputs='["micophone.out"]'))
    assert p.reason == "upstream node 'micophone' does not exist (did you mean 'microphone'?)"


@pytest.mark.parametrize("ref", ["src", "src.", ".out", "src.out.x", "1src.out", "src.o-ut", "src .out"])
def test_malformed_input(ref: str) -> None:
    p = only_problem(node("src") + node("b", inputs=json.dumps([ref])))
    assert (p.node, p.field, p.reason) == ("b", "inputs", f"{ref!r} is not of the form 'node.port'")


def test_input_listed_twice() -> None:
    p = only_problem(node("src") + node("b", inputs='["src.out", "src.out"]'))
    assert (p.node, p.field, p.reason) == ("b", "inputs", "'src.out' is listed twice")


def test_cycle_names_its_nodes_in_data_flow_order() -> None:
    p = only_problem(
        node("src")
        + node("b", inputs='["a.out"]')
        + node("c", inputs='["b.out", "src.out"]')
        + node("a", inputs='["c.out"]')
    )
    assert (p.node, p.field, p.reason) == ("b", "inputs", "inputs form a cycle: b -> c -> a -> b")


def test_self_loop_is_a_cycle() -> None:
    p = only_problem(node("a", inputs='["a.out"]'))
    assert (p.node, p.field, p.reason) == ("a", "inputs", "inputs form a cycle: a -> a")


def test_every_cycle_is_reported() -> None:
    found = problems(node("a", inputs='["b.out"]') + node("b", inputs='["a.out"]') + node("c", inputs='["c.x"]'))
    assert sorted(p.reason for p in found) == ["inputs form a cycle: a -> b -> a", "inputs form a cycle: c -> c"]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("memory_max", '"12Q"', "'12Q' is not a size"),
        ("memory_max", "-1", "-1 is not a positive size"),
        ("memory_max", '"-1G"', "'-1G' is not a positive size"),
        ("memory_max", "0", "0 is not a positive size"),
        ("memory_max", '"0M"', "'0M' is not a positive size"),
        ("memory_max", '"1.5"', "'1.5' is not a whole number of bytes"),
        ("memory_max", '"16777216T"', "'16777216T' is too large"),
        ("memory_max", '"Infinity"', "'Infinity' is not a size"),
        ("cpu_quota", '"0%"', "'0%' is not more than 0%"),
        ("cpu_quota", '"-5%"', "'-5%' is not more than 0%"),
        ("cpu_quota", '"50"', "'50' is not a CPU quota"),
        ("cpu_quota", '"0.00001%"', "'0.00001%' is too small"),
        ("cpu_quota", '"' + "9" * 400 + '%"', "is too large"),
        ("tasks_max", "0", "0 is not a positive number of tasks"),
        ("tasks_max", "-3", "-3 is not a positive number of tasks"),
        ("tasks_max", '"32"', "'32' is not a positive integer or 'infinity'"),
        ("tasks_max", str(2**64), "is too large"),
        ("watchdog", '"soon"', "'soon' is not a time span"),
        ("watchdog", '"30 parsecs"', "is not a time span"),
        ("watchdog", '"500ms"', "'500ms' is shorter than the shortest watchdog, 1 s"),
        ("watchdog", "0", "0 is shorter than the shortest watchdog"),
        ("watchdog", '"-5s"', "is not a time span"),
        ("watchdog", "nan", "nan is shorter than the shortest watchdog"),
        ("watchdog", "true", "expected an integer or a float or a string, got a boolean"),
        ("watchdog", '"9999999999999h"', "is too long"),
    ],
)
def test_bad_resource_value(key: str, value: str, reason: str) -> None:
    p = only_problem(node("a", **{key: value}))
    assert (p.node, p.field) == ("a", key)
    assert reason in p.reason
    p = only_problem(f"[limits]\n{key} = {value}\n" + node("a"))
    assert (p.node, p.field) == (None, f"limits.{key}")
    assert reason in p.reason


@pytest.mark.parametrize("text", ["", 'name = "x"\n', "nodes = []\n", "[limits]\ntasks_max = 3\n"])
def test_empty_pipeline(text: str) -> None:
    p = only_problem(text)
    assert (p.node, p.field, p.reason) == (None, "nodes", "the pipeline has no nodes")


def test_empty_name() -> None:
    p = only_problem('name = " "\n' + node())
    assert (p.node, p.field, p.reason) == (None, "name", "the name must not be empty")


def test_all_problems_are_reported_one_per_line_with_hints() -> None:
    text = (
        'nmae = "voice"\n[limits]\ncpu_quota = "0%"\n'
        + node("src", "pasthrough")
        + node("asr", inputs='["vad.out", "src.out"]', memory_max='"12Q"')
        + node("asr", "sleep")
    )
    with pytest.raises(PipelineError) as info:
        parse(text, "voice.toml")
    err = info.value
    assert str(err).splitlines() == [str(p) for p in err.problems]
    assert [(p.node, p.field) for p in err.problems] == [
        (None, "nmae"),
        (None, "limits.cpu_quota"),
        ("src", "class"),
        ("asr", "memory_max"),
        ("asr", "id"),
        ("asr", "inputs"),
    ]
    assert "voice.toml: node 'asr': field 'inputs': upstream node 'vad' does not exist" in str(err).splitlines()
    assert err.hint is not None
    assert "keys allowed at the top level: name, description, limits, nodes" in err.hint
    assert "use a built-in node" in err.hint
    assert err.code == "invalid_pipeline"
    assert isinstance(err, NodedError)


def test_problem_str() -> None:
    assert str(Problem("v.toml", "asr", "inputs", "why")) == "v.toml: node 'asr': field 'inputs': why"
    assert str(Problem("v.toml", None, "nmae", "why")) == "v.toml: field 'nmae': why"
    assert str(Problem("v.toml", None, None, "why")) == "v.toml: why"


# -- the data plane: external inputs and outputs, edges, [dataplane] ------------------


def test_dataplane_defaults() -> None:
    pipeline = parse(node("src") + node("b", inputs='["src.out"]'))
    assert (pipeline.inputs, pipeline.outputs) == ((), ())
    assert pipeline.dataplane == DataplaneSettings(DEFAULT_DEPTH, DEFAULT_MAX_PAYLOAD, False)
    src, b = pipeline.nodes
    assert src.max_payload == b.max_payload == DEFAULT_MAX_PAYLOAD
    assert b.inputs == (InputRef(PortRef("src", "out"), DEFAULT_DEPTH),)


def test_dataplane_settings_edge_depths_and_node_payloads() -> None:
    pipeline = parse(
        """
        inputs = ["audio", "video"]
        outputs = ["mix.out", "src.level"]

        [dataplane]
        depth = 8
        max_payload = "1M"
        verify_payload = true
        """
        + node("src", inputs='["input.video"]', max_payload='"64K"')
        + node(
            "mix", inputs='["input.audio", { from = "src.out", depth = 2 }, { from = "src.level" }]', max_payload="4096"
        )
    )
    assert pipeline.inputs == ("audio", "video")
    assert pipeline.outputs == (PortRef("mix", "out"), PortRef("src", "level"))
    assert pipeline.dataplane == DataplaneSettings(depth=8, max_payload=1 << 20, verify_payload=True)
    src, mix = pipeline.nodes
    assert (src.max_payload, mix.max_payload) == (64 << 10, 4096)
    assert src.inputs == (InputRef(PortRef("input", "video"), 8),)
    assert mix.inputs == (
        InputRef(PortRef("input", "audio"), 8),
        InputRef(PortRef("src", "out"), 2),
        InputRef(PortRef("src", "level"), 8),
    )
    assert [i.ref.is_external for i in mix.inputs] == [True, False, False]
    assert [str(i) for i in mix.inputs] == ["input.audio", "src.out", "src.level"]


def test_dataplane_without_nodes_payload_override_uses_the_default() -> None:
    pipeline = parse('[dataplane]\nmax_payload = "2K"\n' + node("a") + node("b", max_payload='"3K"'))
    assert [n.max_payload for n in pipeline.nodes] == [2048, 3072]


def test_topological_order_skips_external_inputs() -> None:
    pipeline = parse('inputs = ["x"]\n' + node("b", inputs='["a.out", "input.x"]') + node("a", inputs='["input.x"]'))
    assert [n.id for n in pipeline.topological_order()] == ["a", "b"]


def test_external_output_may_share_a_port_with_nodes() -> None:
    pipeline = parse('outputs = ["a.out"]\n' + node("a") + node("b", inputs='["a.out"]'))
    assert pipeline.outputs == (PortRef("a", "out"),)


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("[dataplane]\ndepth = 0\n", (None, "dataplane.depth"), "0 is not between 1 and 31"),
        ("[dataplane]\ndepth = 32\n", (None, "dataplane.depth"), "32 is not between 1 and 31"),
        ('[dataplane]\ndepth = "4"\n', (None, "dataplane.depth"), "expected an integer, got a string"),
        ("[dataplane]\ndepth = true\n", (None, "dataplane.depth"), "expected an integer, got a boolean"),
        ('[dataplane]\nmax_payload = "infinity"\n', (None, "dataplane.max_payload"), "'infinity' is not allowed"),
        ("[dataplane]\nmax_payload = 1023\n", (None, "dataplane.max_payload"), "1023 is less than the smallest"),
        ('[dataplane]\nmax_payload = "2G"\n', (None, "dataplane.max_payload"), "'2G' is more than the largest"),
        ('[dataplane]\nmax_payload = "12Q"\n', (None, "dataplane.max_payload"), "'12Q' is not a size"),
        (
            "[dataplane]\nmax_payload = true\n",
            (None, "dataplane.max_payload"),
            "expected an integer or a string, got a boolean",
        ),
        (
            '[dataplane]\nverify_payload = "yes"\n',
            (None, "dataplane.verify_payload"),
            "expected a boolean, got a string",
        ),
        ("[dataplane]\ndeph = 3\n", (None, "dataplane.deph"), "unknown key 'deph' (did you mean 'depth'?)"),
        ("dataplane = 3\n", (None, "dataplane"), "expected a table, got an integer"),
        (node("a", max_payload='"512"'), ("a", "max_payload"), "'512' is less than the smallest max_payload, 1K"),
        (node("a", max_payload="1.5"), ("a", "max_payload"), "expected an integer or a string, got a float"),
    ],
)
def test_bad_dataplane_values(text: str, where: tuple[str | None, str | None], reason: str) -> None:
    if "[[nodes]]" not in text:
        text += node()
    p = only_problem(text)
    assert (p.node, p.field) == where
    assert p.reason.startswith(reason)


@pytest.mark.parametrize(
    ("inputs", "field", "reason"),
    [
        ('[{ from = "src.out", dept = 3 }]', "inputs[0].dept", "unknown key 'dept' (did you mean 'depth'?)"),
        ("[{ depth = 3 }]", "inputs[0].from", "required key 'from' is missing"),
        ('[{ from = "src.out", depth = true }]', "inputs[0].depth", "expected an integer, got a boolean"),
        ('[{ from = "src.out", depth = 0 }]', "inputs[0].depth", "0 is not between 1 and 31"),
        ('[3, "src.x", { from = "src.out", depth = 99 }]', "inputs[0]", "expected a string or a table, got an integer"),
        ("[{ from = 3 }]", "inputs[0].from", "expected a string, got an integer"),
        ('[{ from = "src" }]', "inputs", "'src' is not of the form 'node.port'"),
        ('["src.out", { from = "src.out", depth = 2 }]', "inputs", "'src.out' is listed twice"),
    ],
)
def test_bad_edge(inputs: str, field: str, reason: str) -> None:
    p = problems(node("src") + node("b", inputs=inputs))[0]
    assert (p.node, p.field, p.reason) == ("b", field, reason)


def test_edge_problems_name_the_entry_as_written() -> None:
    found = problems(node("src") + node("b", inputs='[3, "src.x", { from = "src.out", depth = 99 }]'))
    assert [(p.field, p.reason) for p in found] == [
        ("inputs[0]", "expected a string or a table, got an integer"),
        ("inputs[2].depth", "99 is not between 1 and 31"),
    ]


def test_edge_with_a_bad_key_still_counts_in_the_graph() -> None:
    with pytest.raises(PipelineError) as info:
        parse(node("a", inputs='[{ from = "b.out", dept = 1 }]') + node("b", inputs='["a.out"]'))
    assert [p.reason for p in info.value.problems] == [
        "unknown key 'dept' (did you mean 'depth'?)",
        "inputs form a cycle: a -> b -> a",
    ]
    assert info.value.hint is not None and "keys allowed in an inputs table: from, depth" in info.value.hint


@pytest.mark.parametrize("reserved", ["input", "client"])
def test_reserved_node_ids(reserved: str) -> None:
    with pytest.raises(PipelineError) as info:
        parse(node(reserved))
    (p,) = info.value.problems
    assert (p.node, p.field, p.reason) == (reserved, "id", f"{reserved!r} is reserved and cannot name a node")
    assert info.value.hint is not None and "reserved" in info.value.hint


@pytest.mark.parametrize(
    ("top", "where", "reason"),
    [
        ('inputs = ["x", "1x"]', (None, "inputs"), "'1x' is not a valid input name"),
        ('inputs = ["x", "x"]', (None, "inputs"), "external input 'x' is listed twice"),
        ('inputs = ["x", 3]', (None, "inputs[1]"), "expected a string, got an integer"),
        ('inputs = ["x", "y"]', (None, "inputs"), "external input 'y' is not consumed by any node"),
        ("", ("a", "inputs"), "external input 'x' is not declared"),
        ('inputs = ["xx"]', ("a", "inputs"), "external input 'x' is not declared (did you mean 'xx'?)"),
        ('inputs = ["x"]\noutputs = ["a"]', (None, "outputs"), "'a' is not of the form 'node.port'"),
        (
            'inputs = ["x"]\noutputs = ["input.x"]',
            (None, "outputs"),
            "'input.x' is an external input, not a node's output port",
        ),
        ('inputs = ["x"]\noutputs = ["aa.out"]', (None, "outputs"), "node 'aa' does not exist (did you mean 'a'?)"),
        ('inputs = ["x"]\noutputs = ["a.out", "a.out"]', (None, "outputs"), "external output 'a.out' is listed twice"),
        ('inputs = ["x"]\noutputs = [1]', (None, "outputs[0]"), "expected a string, got an integer"),
        ('inputs = ["x"]\noutputs = "a.out"', (None, "outputs"), "expected an array, got a string"),
    ],
)
def test_bad_external_io(top: str, where: tuple[str | None, str | None], reason: str) -> None:
    found = problems(top + "\n" + node("a", inputs='["input.x"]'))
    assert [((p.node, p.field), p.reason) for p in found] == [(where, reason)]


def test_external_inputs_not_an_array() -> None:
    found = problems('inputs = "x"\n' + node("a"))
    assert [(p.field, p.reason) for p in found] == [("inputs", "expected an array, got a string")]


def test_undeclared_and_unconsumed_external_inputs_are_both_reported_unless_close() -> None:
    found = problems('inputs = ["video", "audio"]\n' + node("a", inputs='["input.audoi"]'))
    assert [(p.node, p.reason) for p in found] == [
        ("a", "external input 'audoi' is not declared (did you mean 'audio'?)"),
        (None, "external input 'video' is not consumed by any node"),
    ]


def test_unconsumed_external_input_has_a_hint() -> None:
    with pytest.raises(PipelineError) as info:
        parse('inputs = ["audio"]\n' + node("a"))
    (p,) = info.value.problems
    assert (p.node, p.field, p.reason) == (None, "inputs", "external input 'audio' is not consumed by any node")
    assert info.value.hint is not None and "'input.<name>'" in info.value.hint


@pytest.mark.parametrize(
    "nodes",
    [
        node("a", inputs='["input.audio", 3]'),  # an entry that cannot be read
        node("a", inputs='["input audio"]'),  # a malformed reference
        node("a", inputs="[{ depth = 1 }]"),  # a table without its source
        '[[nodes]]\nid = "a"\ninputs = ["input.audio"]\n',  # a node that cannot be read
        node("a", inputs='"input.audio"'),  # inputs that are not an array
    ],
)
def test_unconsumed_is_not_reported_when_inputs_cannot_be_read(nodes: str) -> None:
    found = problems('inputs = ["audio"]\n' + nodes)
    assert not any("not consumed" in p.reason for p in found)


def test_consumed_only_through_a_table_counts() -> None:
    assert parse('inputs = ["audio"]\n' + node("a", inputs='[{ from = "input.audio" }]')).inputs == ("audio",)


def test_cycles_are_found_through_real_nodes_only() -> None:
    p = only_problem('inputs = ["x"]\n' + node("a", inputs='["input.x", "c.out"]') + node("c", inputs='["a.out"]'))
    assert (p.node, p.field, p.reason) == ("a", "inputs", "inputs form a cycle: a -> c -> a")


def _consumers(count: int, ref: str) -> str:
    return "".join(node(f"c{i}", inputs=f'["{ref}"]') for i in range(count))


def test_most_consumers_of_one_port() -> None:
    """Each reader slot of an external output ([dataplane] max_clients, 2 by default) is one of its consumers."""
    pipeline = parse('outputs = ["src.out"]\n' + node("src") + _consumers(MAX_CONSUMERS - 2, "src.out"))
    assert len(pipeline.nodes) == MAX_CONSUMERS - 1
    parse(
        'outputs = ["src.out"]\n[dataplane]\nmax_clients = 1\n' + node("src") + _consumers(MAX_CONSUMERS - 1, "src.out")
    )
    text = 'outputs = ["src.out"]\n' + node("src") + _consumers(MAX_CONSUMERS, "src.out")
    p = only_problem(text)
    assert (p.node, p.field) == ("src", None)
    assert p.reason.startswith(f"output port 'out' has {MAX_CONSUMERS + 2} consumers (c0, c1,")
    assert p.reason.endswith(
        f"c{MAX_CONSUMERS - 1}, client.src.out, client1.src.out); at most {MAX_CONSUMERS} are allowed"
    )


@pytest.mark.parametrize("value", [0, 9, "2", True])
def test_max_clients_is_checked(value: object) -> None:
    v = f'"{value}"' if isinstance(value, str) else str(value).lower()
    p = only_problem(f'outputs = ["src.out"]\n[dataplane]\nmax_clients = {v}\n' + node("src"))
    assert (p.node, p.field) == (None, "dataplane.max_clients"), p


def test_most_consumers_of_one_external_input() -> None:
    parse('inputs = ["x"]\n' + _consumers(MAX_CONSUMERS, "input.x"))
    p = only_problem('inputs = ["x"]\n' + _consumers(MAX_CONSUMERS + 1, "input.x"))
    assert (p.node, p.field) == (None, "inputs")
    assert p.reason.startswith(f"external input 'x' has {MAX_CONSUMERS + 1} consumers (c0,")


def test_most_consumed_ports_of_one_node() -> None:
    ports = [f"p{i}" for i in range(MAX_PORTS + 1)]
    nodes = node("src") + node("sink", inputs=json.dumps([f"src.{p}" for p in ports[:-1]]))
    parse(nodes)
    p = only_problem(f'outputs = ["src.{ports[-1]}"]\n' + nodes)
    assert (p.node, p.field) == ("src", None)
    assert p.reason == f"{MAX_PORTS + 1} of its output ports are consumed ({', '.join(ports)}); at most {MAX_PORTS}"


def test_most_external_inputs() -> None:
    names = [f"i{n}" for n in range(MAX_PORTS + 1)]
    text = node("a", inputs=json.dumps([f"input.{n}" for n in names]))
    parse(f"inputs = {json.dumps(names[:-1])}\n" + text.replace(f', "input.{names[-1]}"', ""))
    p = only_problem(f"inputs = {json.dumps(names)}\n" + text)
    assert (p.node, p.field, p.reason) == (
        None,
        "inputs",
        f"{MAX_PORTS + 1} external inputs are declared; a client feeds at most {MAX_PORTS}",
    )


# -- files ----------------------------------------------------------------------------


def test_load_pipeline_names_it_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "voice.toml"
    path.write_text(node())
    assert load_pipeline(path).name == "voice"


def test_load_pipeline_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as info:
        load_pipeline(tmp_path / "nope.toml")
    (p,) = info.value.problems
    assert p.file == str(tmp_path / "nope.toml")
    assert p.reason == "cannot read the file: No such file or directory"


def test_load_pipeline_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    assert info.value.problems[0].reason == "not UTF-8 text (byte 8 cannot be decoded)"


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES.glob("*.toml")}
    assert {"five_nodes.toml", "slow_load.toml"} <= names


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    # assistant.toml names the models venv that packaging/models-env makes; where it is not
    # made (or made elsewhere), Debian's python3 stands in for it: every other key is checked.
    models = "/opt/noded/models-venv/bin/python"
    text = path.read_text()
    if models in text and not Path(models).exists():
        text = text.replace(models, "/usr/bin/python3")
    pipeline = parse_pipeline(text, str(path))
    assert pipeline.name == path.stem
    assert pipeline.description
    if path.name == "assistant.toml":
        assert {n.id for n in pipeline.nodes if n.python} == {"asr", "llm", "tts"}
        assert [n.id for n in pipeline.nodes if n.sandbox.jit] == ["asr"]


def test_chain_io_is_a_chain_from_an_external_input_to_an_external_output() -> None:
    pipeline = load_pipeline(EXAMPLES / "chain_io.toml")
    assert pipeline.inputs == ("audio",)
    assert pipeline.outputs == (PortRef("stage3", "out"),)
    assert [n.cls for n in pipeline.nodes] == ["passthrough"] * 3
    assert [[str(i) for i in n.inputs] for n in pipeline.nodes] == [["input.audio"], ["stage1.out"], ["stage2.out"]]


def test_five_nodes_is_a_chain() -> None:
    pipeline = load_pipeline(EXAMPLES / "five_nodes.toml")
    order = pipeline.topological_order()
    assert len(order) == 5
    for upstream, downstream in zip(order, order[1:]):
        assert [i.ref for i in downstream.inputs] == [PortRef(upstream.id, "out")]


# -- resource values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1, 1),
        (4096, 4096),
        ("4096", 4096),
        ("1K", 1024),
        ("512M", 512 << 20),
        ("2G", 2 << 30),
        ("1T", 1 << 40),
        ("1.5G", 3 << 29),
        (" 64 m ", 64 << 20),
        ("infinity", None),
    ],
)
def test_parse_size(value: int | str, size: int | None) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["", "12Q", "M", "1.5", "-1", 0, -5, True, 1.5, "1 000", "1KB", "50%", 2**64])
def test_parse_size_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(
    ("value", "cpus"),
    [("100%", 1.0), ("50%", 0.5), ("150%", 1.5), ("12.5%", 0.125), (" 200 % ", 2.0), ("infinity", None)],
)
def test_parse_quota(value: str, cpus: float | None) -> None:
    assert parse_quota(value) == cpus


@pytest.mark.parametrize("value", ["", "0%", "-1%", "50", "%", "1e3%", "abc", 0.5, 50, "0.00001%"])
def test_parse_quota_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_quota(value)


@pytest.mark.parametrize(("value", "tasks"), [(1, 1), (64, 64), ("infinity", None)])
def test_parse_tasks(value: int | str, tasks: int | None) -> None:
    assert parse_tasks(value) == tasks


@pytest.mark.parametrize("value", [0, -1, "32", 1.5, True, "inf", 2**64])
def test_parse_tasks_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_tasks(value)


@pytest.mark.parametrize(("value", "depth"), [(1, 1), (4, 4), (31, 31)])
def test_parse_depth(value: int, depth: int) -> None:
    assert parse_depth(value) == depth


@pytest.mark.parametrize("value", [0, -1, 32, True, "4", 4.0, None])
def test_parse_depth_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_depth(value)


@pytest.mark.parametrize(("value", "size"), [(1024, 1024), ("1K", 1024), ("10M", 10 << 20), ("1G", 1 << 30)])
def test_parse_payload(value: int | str, size: int) -> None:
    assert parse_payload(value) == size


@pytest.mark.parametrize("value", [1023, "1023", "infinity", (1 << 30) + 1, "1.5G", "2T", 0, "-1K", "12Q", True])
def test_parse_payload_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_payload(value)


# -- no input makes it raise anything but PipelineError ------------------------------


def _toml(value: Any) -> str:
    """A TOML value (inline tables and arrays) for what hypothesis generates."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_KEYS = st.sampled_from(
    [
        "name",
        "description",
        "limits",
        "nodes",
        "id",
        "class",
        "params",
        "inputs",
        "memory_max",
        "cpu_quota",
        "tasks_max",
        "memory",
        "outputs",
        "dataplane",
        "depth",
        "max_payload",
        "verify_payload",
        "from",
        "network",
        "read_only_paths",
    ]
) | st.text(max_size=6)
_STRINGS = st.sampled_from(
    [
        "a",
        "b",
        "c",
        "a.out",
        "b.out",
        "c.x",
        "zz.out",
        "bad-id",
        "passthrough",
        "sleep",
        "pasthrough",
        "json.decoder:JSONDecoder",
        "json.decoder:Nope",
        "nosuch_xyz:X",
        "a:",
        "512M",
        "12Q",
        "50%",
        "0%",
        "infinity",
        "",
        "input",
        "client",
        "x",
        "input.x",
        "input.y",
    ]
) | st.text(max_size=10)
_SCALARS = st.booleans() | st.integers() | st.floats() | _STRINGS
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3), max_leaves=8
)
_RESOURCES = {
    "memory_max": st.sampled_from(["512M", 1 << 20, "infinity", "12Q", 0]),
    "cpu_quota": st.sampled_from(["50%", "infinity", "0%", "50"]),
    "tasks_max": st.sampled_from([8, "infinity", 0, 1.5]),
}
# Mostly valid documents, so that every check gets to run, and anything at all.
_REFS = st.sampled_from(["a.out", "b.out", "c.x", "a.y", "z.out", "input.x", "input.y"])
_EDGES = _REFS | st.fixed_dictionaries({"from": _REFS}, optional={"depth": st.sampled_from([1, 8, 31, 0, 32, True])})
_PAYLOADS = st.sampled_from(["1M", 4096, "infinity", 100, "2G", "12Q"])
_PATHS = st.sampled_from(
    [
        "/usr/share",
        "/usr/share/",
        "/opt",
        "relative",
        "/usr/../etc",
        "/nonexistent-x",
        "/proc",
        "/run/noded/x",
        "/",
        "",
        "/usr/./share",
        "/a\nb",
    ]
) | st.text(max_size=8)
_LIKELY_NODES = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["a", "b", "c", "d"]),
        "class": st.sampled_from(["passthrough", "json.decoder:JSONDecoder"]),
    },
    optional={
        "inputs": st.lists(_EDGES, max_size=3),
        "max_payload": _PAYLOADS,
        **_RESOURCES,
        "network": st.booleans() | _SCALARS,
        "read_only_paths": st.lists(_PATHS, max_size=3) | _SCALARS,
    },
)
_ANY_NODES = (
    st.fixed_dictionaries(
        {},
        optional={
            "id": _STRINGS,
            "class": _STRINGS,
            "inputs": st.lists(_STRINGS, max_size=3) | _VALUES,
            "params": _VALUES,
            "memory_max": _SCALARS,
            "cpu_quota": _SCALARS,
            "tasks_max": _SCALARS,
            "extra": _VALUES,
            "max_payload": _SCALARS,
            "network": _VALUES,
            "read_only_paths": _VALUES,
        },
    )
    | _VALUES
)
_DOCS = st.fixed_dictionaries(
    {"nodes": st.lists(_LIKELY_NODES, max_size=4, unique_by=lambda n: n["id"])},
    optional={
        "name": _STRINGS,
        "limits": st.fixed_dictionaries({}, optional=_RESOURCES),
        "inputs": st.lists(st.sampled_from(["x", "y"]), max_size=2, unique=True),
        "outputs": st.lists(st.sampled_from(["a.out", "b.z", "c.x", "z.out"]), max_size=2, unique=True),
        "dataplane": st.fixed_dictionaries(
            {},
            optional={
                "depth": st.sampled_from([1, 4, 64, 0]),
                "max_payload": _PAYLOADS,
                "verify_payload": st.booleans(),
            },
        ),
    },
) | st.fixed_dictionaries(
    {},
    optional={
        "name": _SCALARS,
        "description": _SCALARS,
        "nodes": st.lists(_LIKELY_NODES | _ANY_NODES, max_size=4) | _VALUES,
        "limits": st.dictionaries(_KEYS, _SCALARS, max_size=3) | _SCALARS,
        "nmae": _VALUES,
        "inputs": st.lists(_STRINGS, max_size=3) | _VALUES,
        "outputs": st.lists(_STRINGS, max_size=3) | _VALUES,
        "dataplane": st.dictionaries(_KEYS, _SCALARS, max_size=3) | _SCALARS,
    },
)


def _parses_or_explains(text: str) -> None:
    try:
        pipeline = parse_pipeline(text, "h.toml")
    except PipelineError as err:
        assert err.problems
        assert all(p.file == "h.toml" and p.reason for p in err.problems)
    else:
        assert pipeline.nodes
        assert {n.id for n in pipeline.topological_order()} == {n.id for n in pipeline.nodes}
        assert all(n.resolved_cls for n in pipeline.nodes)
        plan(pipeline, "hypo")  # every checked pipeline has a data plane


@fuzz(1000)
@given(st.text())
def test_any_text_raises_only_pipeline_error(text: str) -> None:
    _parses_or_explains(text)


@fuzz(2000)
@given(_DOCS)
def test_any_toml_document_raises_only_pipeline_error(doc: dict[str, Any]) -> None:
    _parses_or_explains("\n".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in doc.items()))
