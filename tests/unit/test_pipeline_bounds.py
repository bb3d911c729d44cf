"""Bounds on a pipeline (noded.pipeline.bounds): each is refused with a problem that names
the file, the node and the field, exit 4; just under each bound is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from noded.contract.exitcodes import CLI_EXIT_BY_ERROR_CODE, CliExit
from noded.errors import PipelineError
from noded.pipeline.bounds import DEFAULT_BOUNDS, PipelineBounds, refuse_too_large
from noded.pipeline.checks import load_pipeline, parse_pipeline

NODE = '[[nodes]]\nid = "a"\nclass = "passthrough"\n'


def refused(text: str, bounds: PipelineBounds = DEFAULT_BOUNDS) -> PipelineError:
    with pytest.raises(PipelineError) as info:
        parse_pipeline(text, "p.toml", bounds=bounds)
    assert CLI_EXIT_BY_ERROR_CODE[info.value.code] == CliExit.INVALID == 4
    assert "p.toml" in str(info.value) and info.value.hint and "noded.pipeline(5)" in info.value.hint
    return info.value


def test_long_name_and_description() -> None:
    e = refused(f'name = "{"x" * 100_000}"\n' + NODE)
    assert "name" in str(e) and "100000 characters" in str(e) and "at most 128" in str(e)
    assert parse_pipeline(f'name = "{"x" * 128}"\n' + NODE, "p.toml").name == "x" * 128
    e = refused(f'description = "{"d" * 5000}"\n' + NODE)
    assert "description" in str(e) and "at most 4096" in str(e)


def test_node_count_configurable() -> None:
    nodes = "".join(f'[[nodes]]\nid = "n{i}"\nclass = "passthrough"\n' for i in range(4))
    e = refused(nodes, PipelineBounds(nodes=3))
    assert "4 nodes" in str(e) and "at most 3" in str(e)
    assert len(parse_pipeline(nodes, "p.toml", bounds=PipelineBounds(nodes=4)).nodes) == 4
    many = "".join(f'[[nodes]]\nid = "n{i}"\nclass = "passthrough"\n' for i in range(257))
    assert "257 nodes" in str(refused(many))


def test_params_size_and_depth_name_the_node() -> None:
    big = NODE + f'params = {{ blob = "{"b" * 70_000}" }}\n'
    e = refused(big)
    assert "node 'a'" in str(e) and "params" in str(e) and "at most 65536" in str(e)
    deep = NODE + "params = { x = " + "[" * 17 + "]" * 17 + " }\n"
    e = refused(deep)
    assert "node 'a'" in str(e) and "nested more than 16" in str(e)
    ok = NODE + "params = { x = " + "[" * 15 + "]" * 15 + " }\n"
    assert parse_pipeline(ok, "p.toml").nodes[0].id == "a"


def test_file_size(tmp_path: Path) -> None:
    text = NODE + "# " + "c" * (1024 * 1024) + "\n"
    e = refused(text)
    assert "file" in str(e) and "at most 1048576" in str(e)
    path = tmp_path / "huge.toml"
    path.write_text(text)
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    assert str(path) in str(info.value) and CLI_EXIT_BY_ERROR_CODE[info.value.code] == 4
    with pytest.raises(PipelineError) as info:
        refuse_too_large(text, "huge.toml")
    assert "huge.toml" in str(info.value) and CLI_EXIT_BY_ERROR_CODE[info.value.code] == 4
