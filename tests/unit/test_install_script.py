"""packaging/install and packaging/uninstall, staged with --destdir (no system changes).

Marked ``integration``: building the venv needs PyPI (or pip's cache) and about a minute.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def sh(*argv: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900, cwd=cwd)
    assert res.returncode == 0, res
    return res


def files_under(root: Path) -> set[str]:
    return {"/" + str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def test_install_stages_everything_and_uninstall_removes_it_but_an_edited_config(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/local/sbin").mkdir(parents=True)  # there before, empty: it must stay
    sh(REPO / "packaging/install", "--destdir", root)
    venv = root / "opt/noded/venv"
    outside = {f for f in files_under(root) if not f.startswith("/opt/noded/")}
    assert outside == {
        "/usr/local/lib/systemd/system/noded.service",
        "/usr/local/lib/systemd/system/noded.slice",
        "/usr/local/lib/sysusers.d/noded.conf",
        "/usr/local/lib/tmpfiles.d/noded.conf",
        "/usr/local/bin/nodectl",
        "/usr/local/sbin/noded",
        "/usr/local/share/man/man1/nodectl.1",
        "/usr/local/share/man/man8/noded.8",
        "/usr/local/share/man/man5/noded.toml.5",
        "/usr/local/share/man/man5/noded.pipeline.5",
        "/usr/local/share/man/man7/noded-wire.7",
        "/usr/local/share/bash-completion/completions/nodectl",
        "/usr/local/share/zsh/site-functions/_nodectl",
        "/usr/local/share/fish/vendor_completions.d/nodectl.fish",
        "/usr/local/share/doc/noded/noded.toml",
        "/etc/noded/noded.toml",
    }
    unit = (root / "usr/local/lib/systemd/system/noded.service").read_text()
    assert "ExecStart=/opt/noded/venv/bin/noded\n" in unit
    assert (root / "usr/local/bin/nodectl").readlink() == Path("/opt/noded/venv/bin/nodectl")
    # The staged venv names its installed place, never the staging folder.
    assert (venv / "bin/nodectl").read_text().startswith("#!/opt/noded/venv/bin/python")
    assert str(tmp_path) not in (venv / "pyvenv.cfg").read_text()
    res = sh(
        venv / "bin/python",
        "-c",
        # The speech extra too: the installed noded runs examples/commands.toml.
        "import noded, noded.daemon.main, noded.ctl.main, prometheus_client, pystemd, iceoryx2, onnxruntime, "
        "pocketsphinx, soxr; print(noded.__file__)",
        cwd=tmp_path,
    )
    assert res.stdout.startswith(str(venv))
    assert "_nodectl_completion" in (root / "usr/local/share/bash-completion/completions/nodectl").read_text()
    assert ".TH NODECTL 1" in (root / "usr/local/share/man/man1/nodectl.1").read_text()

    # Installing again keeps an edited configuration and puts the new one beside it.
    config = root / "etc/noded/noded.toml"
    config.write_text("max_session_processes = 4\n")
    sh(REPO / "packaging/install", "--destdir", root)
    assert config.read_text() == "max_session_processes = 4\n"
    assert (root / "etc/noded/noded.toml.new").read_text() == (REPO / "packaging/noded.toml").read_text()

    res = sh(REPO / "packaging/uninstall", "--destdir", root)
    assert "kept your edited" in res.stdout
    assert files_under(root) == {"/etc/noded/noded.toml"}
    assert not (root / "opt/noded").exists() and not (root / "usr/local/share/fish").exists()
    assert (root / "usr/local/sbin").is_dir() and not (root / "usr/local/bin").exists()
