"""A node's runtime keys: python, env and jit (noded/pipeline/runtime.py), as far as the
pipeline checks and the unit properties go; the interpreter probe runs real interpreters."""

from __future__ import annotations

import asyncio
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from noded.daemon.config import Config
from noded.daemon.interpreter import check_interpreters, probe
from noded.daemon.units import service_properties, worker_argv
from noded.errors import PipelineError
from noded.pipeline.checks import parse_pipeline
from noded.pipeline.grants import NodeGrants

VENV_PYTHON = sys.executable  # the test venv: noded is installed in it


def node(extra: str, id: str = "a") -> str:
    return f'[[nodes]]\nid = "{id}"\nclass = "passthrough"\n{extra}\n'


def the_problem(text: str) -> tuple[str | None, str | None, str, str]:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(text, "p.toml")
    (problem,) = err.value.problems
    return problem.node, problem.field, problem.reason, err.value.hint or ""


def test_python_env_and_jit_are_carried_per_node_over_defaults() -> None:
    text = (
        f'[defaults]\npython = "{VENV_PYTHON}"\nenv = {{ OMP_NUM_THREADS = "2", A = "x" }}\n'
        + node('env = { OMP_NUM_THREADS = "1", B = "$HOME %n \\\\" }\njit = true')
        + node('python = "/usr/bin/python3"', id="b")
    )
    a, b = parse_pipeline(text, "p.toml").nodes
    assert a.python == VENV_PYTHON and b.python == "/usr/bin/python3"
    assert dict(a.env) == {"OMP_NUM_THREADS": "1", "A": "x", "B": "$HOME %n \\"}
    assert dict(b.env) == {"OMP_NUM_THREADS": "2", "A": "x"}
    assert a.sandbox.jit and not b.sandbox.jit
    (plain,) = parse_pipeline(node(""), "p.toml").nodes
    assert plain.python is None and plain.env == () and plain.sandbox == NodeGrants()


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ('python = "/nonexistent/bin/python"', "python", "does not exist"),
        ('python = "bin/python"', "python", "not an absolute path"),
        ('python = "/etc"', "python", "not a file"),
        ('python = "/etc/passwd"', "python", "not executable"),
        ('env = { "1X" = "a" }', "env.1X", "not a variable name"),
        ('env = { "A=B" = "a" }', "env.A=B", "not a variable name"),
        ('env = { NOTIFY_SOCKET = "/x" }', "env.NOTIFY_SOCKET", "may not be changed"),
        ('env = { NODED_X = "1" }', "env.NODED_X", "may not be changed"),
        ('env = { A = "a\\u0000b" }', "env.A", "NUL"),
    ],
)
def test_bad_runtime_keys_name_node_and_field(extra: str, field: str, reason: str) -> None:
    where, what, why, hint = the_problem(node(extra))
    assert (where, what) == ("a", field) and reason in why, why
    assert hint


def test_a_defaults_problem_is_reported_once_at_its_own_field() -> None:
    where, what, why, _ = the_problem('[defaults]\npython = "/nonexistent/python"\n' + node(""))
    assert (where, what) == (None, "defaults.python") and "does not exist" in why


def test_env_values_must_be_strings() -> None:
    where, what, why, _ = the_problem(node("env = { OMP_NUM_THREADS = 1 }"))
    assert where == "a" and what is not None and what.startswith("env") and "str" in why


def test_python_the_dynamic_user_cannot_reach_is_refused() -> None:
    # Not in pytest's tmp_path: its parents are owner-only.
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        check_reachability(Path(top))


def check_reachability(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "bin").mkdir(parents=True)
    python = private / "bin" / "python"
    python.symlink_to("/usr/bin/python3")
    tmp_path.chmod(0o755)
    private.chmod(0o700)
    where, what, why, _ = the_problem(node(f'python = "{python}"'))
    assert (where, what) == ("a", "python") and "not readable by the node's user" in why and str(private) in why
    private.chmod(0o755)
    (spec,) = parse_pipeline(node(f'python = "{python}"'), "p.toml").nodes
    assert spec.python == str(python)
    # The file itself, not only the directories.
    copy = private / "bin" / "python-copy"
    copy.write_bytes(b"#!/bin/sh\n")
    copy.chmod(stat.S_IRWXU)
    where, what, why, _ = the_problem(node(f'python = "{copy}"'))
    assert what == "python" and "not readable and executable by others" in why


def test_unit_runs_the_nodes_python_with_its_env_after_nodeds() -> None:
    cfg = Config(worker_python="/opt/noded/venv/bin/python")
    argv = worker_argv(cfg, "{}", "/opt/noded/models-venv/bin/python")
    assert argv[0] == "/opt/noded/models-venv/bin/python"
    assert worker_argv(cfg, "{}")[0] == "/opt/noded/venv/bin/python"
    props = {
        name: value
        for name, _, value in service_properties(
            sid="ab12cd34",
            node_id="asr",
            node_class="asr",
            argv=argv,
            config=cfg,
            iox2_root=Path("/run/noded/iox2/ab12cd34"),
            sandbox=NodeGrants(jit=True),
            env=(("OMP_NUM_THREADS", "2"), ("X", "$HOME %n")),
        )
    }
    env = props["Environment"]
    assert b"OMP_NUM_THREADS=2" in env and b"X=$HOME %n" in env and b"OPENBLAS_NUM_THREADS=1" in env
    # The pipeline's value replaces noded's: systemd refuses a block that assigns a name twice.
    names = [item.split(b"=", 1)[0] for item in env]
    assert len(names) == len(set(names)), env
    assert props["ExecStart"][0][0] == "/opt/noded/models-venv/bin/python"
    assert props["MemoryDenyWriteExecute"] is False


def test_probe_accepts_a_python_with_this_noded() -> None:
    assert asyncio.run(probe(VENV_PYTHON)) is None


def test_probe_names_the_node_when_noded_is_missing() -> None:
    text = node('python = "/usr/bin/python3"', id="asr") + node("", id="b")
    pipeline = parse_pipeline(text, "p.toml")
    with pytest.raises(PipelineError) as err:
        asyncio.run(check_interpreters(pipeline, "p.toml"))
    (problem,) = err.value.problems
    assert problem.node == "asr" and problem.field == "python"
    assert "noded is not installed in '/usr/bin/python3'" in problem.reason
    assert err.value.hint is not None and "models-env" in err.value.hint


def test_probe_reports_another_wire_version(tmp_path: Path) -> None:
    # A fake noded that speaks wire version 99, put first on the path of a wrapper interpreter.
    pkg = tmp_path / "site" / "noded"
    (pkg / "contract").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '9.9'\n")
    (pkg / "contract" / "__init__.py").write_text("")
    (pkg / "contract" / "wire.py").write_text("VERSION = 99\n")
    (pkg / "contract" / "spec.py").write_text("def spec_fingerprint():\n    return 'x'\n")
    # The probe runs `python -I -c PROBE`; the wrapper runs PROBE with the fake noded first on the path.
    wrapper = tmp_path / "python"
    wrapper.write_text(
        f"#!/bin/sh\nexec /usr/bin/python3 -c \"import sys; sys.path.insert(0, '{tmp_path / 'site'}'); "
        'exec(sys.argv[1])" "$3"\n'
    )
    wrapper.chmod(0o755)
    reason = asyncio.run(probe(str(wrapper)))
    assert reason is not None and "wire version 99" in reason, reason
