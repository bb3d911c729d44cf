"""Shell completion of nodectl (click's own), and global options anywhere on the line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def nodectl_bin(tmp_path: Path) -> Path:
    """A `nodectl` on PATH that runs this checkout, as the installed entry point does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nodectl"
    exe.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\nfrom noded.ctl.main import main\nmain()\n"
    )
    exe.chmod(0o755)
    return exe


def run(exe: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{exe.parent}:/usr/bin:/bin", "HOME": "/nonexistent", **env},
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_generated_and_parse(nodectl_bin: Path, shell: str) -> None:
    res = run(nodectl_bin, _NODECTL_COMPLETE=f"{shell}_source")
    assert res.returncode == 0 and "_NODECTL_COMPLETE" in res.stdout, res
    binary = shutil.which(shell)
    if binary is not None:  # zsh and fish are not installed everywhere; bash is
        check = subprocess.run([binary, "-n"], input=res.stdout, capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr


def complete_in_bash(nodectl_bin: Path, line: str) -> list[str]:
    script = run(nodectl_bin, _NODECTL_COMPLETE="bash_source").stdout
    words = line.split() + ([""] if line.endswith(" ") else [])
    program = (
        f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\nCOMP_CWORD={len(words) - 1}\n"
        "_nodectl_completion nodectl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    res = subprocess.run(
        ["bash", "--norc", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{nodectl_bin.parent}:/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_bash_completes_commands_subcommands_and_options(nodectl_bin: Path) -> None:
    assert {"session", "status", "logs", "run", "feed"} <= set(complete_in_bash(nodectl_bin, "nodectl "))
    assert complete_in_bash(nodectl_bin, "nodectl sess") == ["session"]
    assert {"create", "list", "show", "stop", "watch"} <= set(complete_in_bash(nodectl_bin, "nodectl session "))
    assert "--follow" in complete_in_bash(nodectl_bin, "nodectl logs --")


def test_global_options_have_variables_and_may_follow_the_command(nodectl_bin: Path, tmp_path: Path) -> None:
    sock = str(tmp_path / "none.sock")
    for args, env in (
        (["--json", "session", "list"], {}),
        (["session", "list", "--json"], {}),
        (["session", "list"], {"NODED_JSON": "1"}),
    ):
        res = run(nodectl_bin, "--socket", sock, *args, **env)
        assert res.returncode == 3 and res.stdout.startswith('{"error": {"code": "daemon_unavailable"'), (args, res)
    res = run(nodectl_bin, "status", NODED_SOCKET=sock)
    assert res.returncode == 3 and sock in " ".join(res.stderr.split()), res
    assert os.path.basename(sock) == "none.sock"


def test_the_socket_defaults_to_the_one_the_daemon_configuration_names(nodectl_bin: Path, tmp_path: Path) -> None:
    config = tmp_path / "noded.toml"
    config.write_text(f'socket = "{tmp_path}/configured.sock"\n')
    res = run(nodectl_bin, "status", NODED_CONFIG=str(config))
    assert res.returncode == 3 and f"{tmp_path}/configured.sock" in res.stderr, res
    assert res.stderr.count("\n") == 2  # one line and its hint, however long (no wrapping)
    config.write_text("socket = 42\n")  # invalid: the daemon reports it; nodectl uses the default
    res = run(nodectl_bin, "status", NODED_CONFIG=str(config))
    if Path("/run/noded/control.sock").exists():  # in the sandbox a daemon answers there
        assert res.returncode == 0 and "is running" in res.stdout, res
    else:
        assert res.returncode == 3 and "/run/noded/control.sock" in res.stderr, res
