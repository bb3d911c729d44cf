"""The pure parts of the Python API and of finding the daemon: pipelines given as TOML
text, a file or a dict; the control socket a client uses."""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from noded.api import pipeline_text, to_toml
from noded.contract.paths import DEFAULT_SOCKET, configured_socket
from noded.errors import NodedError

REPO = Path(__file__).resolve().parents[2]
TOML = 'inputs = ["x"]\noutputs = ["echo.out"]\n[[nodes]]\nid = "echo"\nclass = "passthrough"\ninputs = ["input.x"]\n'


def test_a_pipeline_as_toml_text_a_file_or_a_dict(tmp_path: Path) -> None:
    assert pipeline_text(TOML) == (TOML, "pipeline.toml")
    assert pipeline_text(TOML, "echo.toml") == (TOML, "echo.toml")
    file = tmp_path / "echo.toml"
    file.write_text(TOML)
    assert pipeline_text(file) == (TOML, "echo.toml")
    assert pipeline_text(str(file)) == (TOML, "echo.toml")  # a one-line string ending in .toml
    text, name = pipeline_text(tomllib.loads(TOML))
    assert tomllib.loads(text) == tomllib.loads(TOML) and name == "pipeline.toml"
    with pytest.raises(NodedError, match="cannot read"):
        pipeline_text(tmp_path / "missing.toml")
    with pytest.raises(TypeError):
        pipeline_text(42)  # type: ignore[arg-type]


def test_a_dict_becomes_toml_that_reads_back_the_same() -> None:
    doc = {
        "name": "odd names",
        "a key": 'quote " backslash \\ del \x7f newline \n tab \t é 😀',
        "numbers": [0, -1, 2**62, 1.5, 1e-05, 1e300, math.inf, -math.inf],
        "flags": [True, False],
        "nested": {"table": {"deep": [{"x": 1}, {"y": []}]}},
        "nodes": [{"id": "a", "class": "passthrough", "params": {}}],
    }
    assert tomllib.loads(to_toml(doc)) == doc
    assert math.isnan(tomllib.loads(to_toml({"v": math.nan}))["v"])
    with pytest.raises(NodedError, match="TOML cannot hold"):
        to_toml({"params": {"missing": None}})


def test_the_socket_comes_from_the_configuration_then_the_environment(tmp_path: Path) -> None:
    conf = tmp_path / "noded.toml"
    assert configured_socket({"NODED_CONFIG": str(conf)}) == DEFAULT_SOCKET  # no file
    conf.write_text('socket = "/run/x/ctl.sock"\n')
    assert configured_socket({"NODED_CONFIG": str(conf)}) == Path("/run/x/ctl.sock")
    assert configured_socket({"NODED_CONFIG": str(conf), "NODED_SOCKET": "/run/y.sock"}) == Path("/run/y.sock")
    conf.write_text('runtime_dir = "/run/z"\n')
    assert configured_socket({"NODED_CONFIG": str(conf)}) == Path("/run/z/control.sock")
    conf.write_text('socket = "relative.sock"\n')
    assert configured_socket({"NODED_CONFIG": str(conf)}) == DEFAULT_SOCKET  # the daemon refuses it
    conf.write_text("socket = [\n")
    assert configured_socket({"NODED_CONFIG": str(conf)}) == DEFAULT_SOCKET  # nor can it read this


def test_the_daemon_and_its_clients_find_the_same_socket(tmp_path: Path) -> None:
    from noded.daemon.config import load_config

    conf = tmp_path / "noded.toml"
    for text in ('socket = "/run/x/ctl.sock"\n', 'runtime_dir = "/run/z"\n', ""):
        conf.write_text(text)
        env = {"NODED_CONFIG": str(conf)}
        assert configured_socket(env) == load_config(env=env).socket_path


def test_importing_noded_and_connect_stays_cheap() -> None:
    code = (
        "import sys; import noded; from noded import connect; import noded.ctl.main; "
        "print(sorted(m for m in ('numpy', 'iceoryx2', 'noded.daemon', 'noded.dataplane') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=REPO)
    assert res.stdout.strip() == "[]", res.stdout
