"""Users' own node code: class = "file.py:Class" and code = [folders], resolved and
checked at create without running it, and the sandbox that shows that code alone."""

from __future__ import annotations

import textwrap
from pathlib import Path, PurePosixPath

import pytest

from noded.daemon.sandbox import sandbox_properties
from noded.errors import PipelineError, Problem
from noded.pipeline.checks import Pipeline, load_pipeline, parse_pipeline
from noded.pipeline.grants import NodeGrants
from noded.pipeline.usercode import hidden_parents, is_file_class, resolve_path

NODE_SOURCE = """\
import noded


class Transcriber(noded.Node):
    def process(self, msg):
        return msg
"""


def parse(text: str, directory: str | None) -> Pipeline:
    return parse_pipeline(textwrap.dedent(text), "p.toml", directory=directory)


def problems(text: str, directory: str | None) -> list[Problem]:
    with pytest.raises(PipelineError) as info:
        parse(text, directory)
    return list(info.value.problems)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "asr.py").write_text(NODE_SOURCE)
    (tmp_path / "nodes" / "broken.py").write_text("class Oops:\n    pass\n\ndef f(:\n    pass\n")
    return tmp_path


def test_a_class_in_a_file_resolves_against_the_pipeline_folder(project: Path) -> None:
    (spec,) = parse('[[nodes]]\nid = "asr"\nclass = "nodes/asr.py:Transcriber"\n', str(project)).nodes
    assert spec.resolved_cls == "asr:Transcriber"
    assert spec.sys_path == (str(project / "nodes"),)
    assert spec.sandbox.code == (str(project / "nodes" / "asr.py"),)


def test_load_pipeline_resolves_against_the_file_folder(project: Path) -> None:
    (project / "p.toml").write_text('[[nodes]]\nid = "asr"\nclass = "nodes/asr.py:Transcriber"\n')
    (spec,) = load_pipeline(project / "p.toml").nodes
    assert spec.sys_path == (str(project / "nodes"),)


def test_code_folders_are_searched_for_the_module(project: Path) -> None:
    text = '[[nodes]]\nid = "asr"\nclass = "asr:Transcriber"\ncode = ["./nodes"]\n'
    (spec,) = parse(text, str(project)).nodes
    assert spec.resolved_cls == "asr:Transcriber"
    assert spec.sys_path == spec.sandbox.code == (str(project / "nodes"),)


def test_a_missing_file_names_node_field_and_path(project: Path) -> None:
    (p,) = problems('[[nodes]]\nid = "asr"\nclass = "nodes/nope.py:Transcriber"\n', str(project))
    assert (p.node, p.field) == ("asr", "class")
    assert p.reason == f"{str(project / 'nodes' / 'nope.py')!r} does not exist"


def test_a_syntax_error_names_the_file_and_line(project: Path) -> None:
    (p,) = problems('[[nodes]]\nid = "b"\nclass = "nodes/broken.py:Oops"\n', str(project))
    assert (p.node, p.field) == ("b", "class")
    assert p.reason.startswith(f"{project / 'nodes' / 'broken.py'}, line 4: syntax error")


def test_a_syntax_error_in_a_code_folder_names_the_file_and_line(project: Path) -> None:
    (p,) = problems('[[nodes]]\nid = "b"\nclass = "broken:Oops"\ncode = ["nodes"]\n', str(project))
    assert (p.node, p.field) == ("b", "class")
    assert f"at line 4 of {project / 'nodes' / 'broken.py'}" in p.reason


def test_a_missing_class_is_named_with_a_suggestion(project: Path) -> None:
    (p,) = problems('[[nodes]]\nid = "asr"\nclass = "nodes/asr.py:Transcribr"\n', str(project))
    assert p.reason == (
        f"{project / 'nodes' / 'asr.py'} has no top-level class 'Transcribr' (did you mean 'Transcriber'?)"
    )


def test_a_module_missing_from_the_code_folders(project: Path) -> None:
    (p,) = problems('[[nodes]]\nid = "a"\nclass = "nosuch_xyz:A"\ncode = ["nodes"]\n', str(project))
    assert p.reason == f"module 'nosuch_xyz' not found in {project / 'nodes'} or the daemon's Python"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ('["missing"]', "does not exist"),
        ('["nodes/asr.py"]', "is not a folder"),
        ('["/proc/self"]', "which nodes may not be given"),
        ('["/usr"]', "is a system directory"),
    ],
)
def test_bad_code_entries(project: Path, code: str, reason: str) -> None:
    found = problems(f'[[nodes]]\nid = "a"\nclass = "passthrough"\ncode = {code}\n', str(project))
    assert [(p.node, p.field) for p in found] == [("a", "code[0]")]
    assert reason in found[0].reason


def test_relative_paths_need_a_folder() -> None:
    (p,) = problems('[[nodes]]\nid = "a"\nclass = "nodes/asr.py:T"\n', None)
    assert "relative" in p.reason


def test_file_class_detection() -> None:
    assert is_file_class("nodes/asr.py:T") and is_file_class("asr.py:T")
    assert not is_file_class("pkg.mod:T") and not is_file_class("passthrough")


def test_resolve_path_normalises() -> None:
    assert resolve_path("../x/./y", "/srv/p/q") == "/srv/p/x/y"
    assert resolve_path("/srv/a", None) == "/srv/a"


def test_hidden_parents() -> None:
    # the highest folder that is neither a system folder nor holds the interpreter
    assert hidden_parents(("/srv/p/nodes/asr.py",)) == ("/srv",)
    assert hidden_parents(("/srv/p/nodes", "/data/lib")) == ("/srv", "/data")
    assert hidden_parents(("/opt/x/nodes",)) == ("/opt/x",)
    assert hidden_parents(("/opt/x",)) == ()
    assert hidden_parents(("/usr/lib/python3/dist-packages/mine.py", "/var/lib/x/nodes")) == ()
    assert hidden_parents(("/srv/venv/code/a.py",), keep=("/srv/venv",)) == ("/srv/venv/code",)
    # home is hidden by ProtectHome=tmpfs
    assert hidden_parents(("/home/u/p/nodes",)) == ()


def test_sandbox_binds_the_code_alone() -> None:
    grants = NodeGrants(code=("/srv/p/nodes/asr.py", "/home/u/lib"))
    props = sandbox_properties("s1", PurePosixPath("/run/noded/iox2/s1"), grants)
    values = {name: value for name, _, value in props}
    assert values["TemporaryFileSystem"] == [("/srv", "ro,mode=0755")]
    binds = [v for n, _, v in props if n == "BindReadOnlyPaths"]
    assert [("/srv/p/nodes/asr.py", "/srv/p/nodes/asr.py", False, 0), ("/home/u/lib", "/home/u/lib", False, 0)] in binds
    assert values["ProtectHome"] == "tmpfs"
